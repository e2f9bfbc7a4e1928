//! The scenarios, written once for every agent: the agent supplies its tool-call shapes and its
//! launcher, the scenario the script, the holds and the checks.
//!
//! Each check is recorded by name (the names docs/hooks.md's tables cite) and all are reported
//! together, so one run shows everything that holds and everything that does not.

use std::fmt::Display;

use serde_json::{Value, json};

use super::{Agent, Lab, Model, Run, show};

/// Outcomes of named checks; panics at the end when one failed.
pub struct Checks {
    agent: &'static str,
    lines: Vec<String>,
    failed: usize,
}

impl Checks {
    pub fn new(agent: &dyn Agent) -> Checks {
        Checks {
            agent: agent.name(),
            lines: Vec::new(),
            failed: 0,
        }
    }

    pub fn check(&mut self, name: &str, ok: bool, detail: impl Display) {
        if ok {
            self.lines.push(format!("  ok   {name}"));
        } else {
            self.failed += 1;
            self.lines.push(format!("  FAIL {name}: {detail}"));
        }
    }

    pub fn finish(self) {
        let report = format!("{} end to end:\n{}", self.agent, self.lines.join("\n"));
        eprintln!("{report}");
        assert!(
            self.failed == 0,
            "{} of the checks above failed",
            self.failed
        );
    }
}

/// A turn of tool calls.
pub fn calls<I: IntoIterator<Item = Value>>(c: I) -> Value {
    let c: Vec<Value> = c.into_iter().collect();
    json!({ "calls": c })
}

/// `turn`, answered only once the test releases `name`.
pub fn hold(name: &str, mut turn: Value) -> Value {
    turn["hold"] = json!(name);
    turn
}

pub fn text(t: &str) -> Value {
    json!({ "text": t })
}

/// One session's script, its turns found again by label.
#[derive(Default)]
pub struct Script {
    turns: Vec<Value>,
    labels: Vec<&'static str>,
}

impl Script {
    /// Reads of the files the session will change, for agents that refuse to edit an unread file.
    pub fn prime(agent: &dyn Agent, paths: &[std::path::PathBuf]) -> Script {
        let mut s = Script::default();
        let reads: Vec<Value> = paths.iter().filter_map(|p| agent.prime(p)).collect();
        if !reads.is_empty() {
            s.push("prime", calls(reads));
        }
        s
    }

    pub fn push(&mut self, label: &'static str, turn: Value) -> &mut Script {
        self.turns.push(turn);
        self.labels.push(label);
        self
    }

    /// The index of the turn labelled `label`.
    pub fn at(&self, label: &str) -> usize {
        self.labels.iter().position(|l| *l == label).unwrap()
    }

    pub fn json(&self) -> Value {
        Value::Array(self.turns.clone())
    }
}

/// What the agent sent back for the calls of turn `k` of a session's script.
pub fn results(turns: &[Value], k: usize) -> Vec<Value> {
    turns
        .get(k + 1)
        .and_then(|t| t["results"].as_array().cloned())
        .unwrap_or_default()
}

fn output(r: &Value) -> &str {
    r["output"].as_str().unwrap_or("")
}

/// A result that carries a reservation denial.
pub fn denied_reserve(r: Option<&Value>) -> bool {
    r.is_some_and(|r| output(r).contains("concur reserve:"))
}

/// A result that carries a guard denial.
pub fn denied_guard(r: Option<&Value>) -> bool {
    r.is_some_and(|r| output(r).contains("concur guard:"))
}

/// A result the agent did not mark as an error and that carries no concur denial.
pub fn allowed(r: Option<&Value>) -> bool {
    r.is_some_and(|r| {
        !r["error"].as_bool().unwrap_or(false)
            && !output(r).contains("concur reserve:")
            && !output(r).contains("concur guard:")
    })
}

fn brief(r: Option<&Value>) -> String {
    r.map_or("no result".into(), |r| {
        let mut s = r.to_string();
        s.truncate(400);
        s
    })
}

/// The shell writes of a file B must not make while A holds it; the last two are git commands
/// that would take A's (untracked) files away: the git guard.
const SHELL_WRITES: [&str; 11] = [
    "echo B > a.txt",
    "echo B >> a.txt",
    "sed -i s/A/B/ a.txt",
    "cp c.txt a.txt",
    "mv d.txt a.txt",
    "echo B | tee a.txt",
    "truncate -s 0 a.txt",
    "rm a.txt",
    "mv a.txt moved.txt",
    "git stash -u",
    "git clean -fd",
];

/// Two live sessions in one checkout, then A ends, then a session is killed with SIGKILL.
/// Checks: reserve from the shell tool, auto-claim on first edit, several calls in one turn, B's
/// file and shell writes refused with the bytes unchanged, reads and own edits allowed, the guard
/// for every session, the one-time override (audited), B's `SessionStart` context, release at
/// normal end and at SIGKILL.
pub fn two_sessions(agent: &dyn Agent, lab: &Lab) {
    let f = |n: &str| lab.file(n);
    lab.config(&format!(
        "[reserve]\nauto = true\n\n[guard]\nprotect = [\"{}\"]\nreason = \"guarded by the test\"\n",
        f("guarded.txt").display()
    ));
    for (n, t) in [
        ("a.txt", "A0\n"),
        ("b.txt", "B0\n"),
        ("c.txt", "C0\n"),
        ("d.txt", "D0\n"),
        ("e.txt", "E0\n"),
    ] {
        lab.put(n, t);
    }
    lab.install_hooks(agent);
    let (sa, sb, sa2) = scripts(agent, lab);
    let script = json!({ "A": sa.json(), "B": sb.json(), "A2": sa2.json() });
    let mut t = Two {
        agent,
        lab,
        model: Model::start(lab.dir.path(), &script),
        ck: Checks::new(agent),
        sa,
        sb,
        a_session: String::new(),
    };
    let a = t.session_a();
    let b = lab.start(agent, &t.model, "B");
    let denial = t.session_b();
    t.override_once(denial.as_deref());
    t.after_a_ends(a);
    t.after_a2_killed(b);
    t.ck.finish();
}

fn scripts(agent: &dyn Agent, lab: &Lab) -> (Script, Script, Script) {
    let f = |n: &str| lab.file(n);
    let edit = |n: &str, old: &str, new: &str| calls(vec![agent.edit(&f(n), old, new)]);
    let mut sa = Script::prime(agent, &[f("a.txt"), f("b.txt")]);
    sa.push("reserve", calls(vec![agent.shell("concur reserve a.txt")]))
        .push(
            "edits",
            calls(vec![
                agent.edit(&f("a.txt"), "A0", "A1"),
                agent.edit(&f("b.txt"), "B0", "B1"),
                agent.write(&f("f1.txt"), "F1\n"),
                agent.write(&f("f2.txt"), "F2\n"),
                agent.write(&f("f3.txt"), "F3\n"),
                agent.write(&f("guarded.txt"), "A\n"),
            ]),
        )
        .push("live", hold("live", text("A done")));
    let mut sb = Script::prime(agent, &[f("a.txt"), f("b.txt"), f("e.txt"), f("f2.txt")]);
    sb.push(
        "files",
        calls(vec![
            agent.edit(&f("a.txt"), "A1", "Bx"),
            agent.write(&f("a.txt"), "Bw\n"),
            agent.edit(&f("b.txt"), "B1", "Bx"),
            agent.write(&f("f2.txt"), "Bw\n"),
        ]),
    )
    .push("shell", calls(SHELL_WRITES.iter().map(|c| agent.shell(c))))
    .push(
        "reads",
        hold(
            "reads",
            calls(vec![
                agent.read(&f("a.txt")),
                agent.shell("cat a.txt"),
                agent.write(&f("bnew.txt"), "mine\n"),
                agent.write(&f("guarded.txt"), "B\n"),
            ]),
        ),
    )
    .push("override", hold("override", edit("a.txt", "A1", "Bo")))
    .push("again", edit("a.txt", "Bo", "Bagain"))
    .push("a-ended", hold("a-ended", edit("a.txt", "Bo", "B2")))
    .push("a2-live", hold("a2-live", edit("e.txt", "E0", "Ex")))
    .push("a2-killed", hold("a2-killed", edit("e.txt", "E0", "E1")))
    .push("done", text("B done"));
    let mut sa2 = Script::default();
    sa2.push("reserve", calls(vec![agent.shell("concur reserve e.txt")]))
        .push("live", hold("live", text("A2 done")));
    (sa, sb, sa2)
}

/// The running scenario.
struct Two<'a> {
    agent: &'a dyn Agent,
    lab: &'a Lab,
    model: Model,
    ck: Checks,
    sa: Script,
    sb: Script,
    a_session: String,
}

impl Two<'_> {
    fn is(&self, name: &str, want: &str) -> bool {
        self.lab.bytes(name).as_deref() == Some(want)
    }

    /// Session A: reserves from its shell tool, edits (auto-claims), then stays alive, waiting
    /// for its model. Returns the running A.
    fn session_a(&mut self) -> Run {
        let (lab, model) = (self.lab, &self.model);
        let a = lab.start(self.agent, model, "A");
        model.wait("A", "live");
        let ta = model.turns("A");
        let r0 = results(&ta, self.sa.at("reserve"));
        let r1 = results(&ta, self.sa.at("edits"));
        self.ck.check(
            "A: `concur reserve` in the shell tool",
            r0.first()
                .is_some_and(|r| output(r).contains("reserved a.txt")),
            brief(r0.first()),
        );
        let own = (0..5).all(|i| allowed(r1.get(i)));
        let own = own && self.is("a.txt", "A1\n") && self.is("b.txt", "B1\n");
        self.ck
            .check("A: own edits allowed", own, format!("{r1:?}"));
        self.ck.check(
            "A: [guard] path refused",
            denied_guard(r1.get(5)) && lab.bytes("guarded.txt").is_none(),
            brief(r1.get(5)),
        );
        let held = lab.concur(["reservations", "--json"]);
        let held: Value = serde_json::from_slice(&held.stdout).unwrap_or(Value::Null);
        let list = held["reservations"].as_array().cloned().unwrap_or_default();
        let holder = |p: &str| {
            list.iter()
                .find(|r| r["path"] == p)
                .map(|r| r["session"].as_str().unwrap_or("").to_string())
        };
        let a_session = holder("a.txt").unwrap_or_default();
        self.ck.check(
            "A: reservation held while A lives",
            !a_session.is_empty(),
            &held,
        );
        self.ck.check(
            "A: auto-claim on first edit, several calls in one turn, no lost claim",
            ["b.txt", "f1.txt", "f2.txt", "f3.txt"]
                .iter()
                .all(|p| holder(p).as_deref() == Some(a_session.as_str())),
            &held,
        );
        self.a_session = a_session;
        a
    }

    /// Session B, while A is alive: denials, reads, own file, guard. Returns the denial text of
    /// B's first edit (it names the override token).
    fn session_b(&mut self) -> Option<String> {
        self.model.wait("B", "reads");
        let tb = self.model.turns("B");
        let first = tb.first().map_or("", |t| t["text"].as_str().unwrap_or(""));
        self.ck.check(
            "B: SessionStart context names A and A's reservations",
            !self.a_session.is_empty()
                && first.contains(&self.a_session)
                && first.contains("a.txt"),
            format!(
                "A is {:?}; B's first request has no such context",
                self.a_session
            ),
        );
        let r0 = results(&tb, self.sb.at("files"));
        self.ck.check(
            "B: file-tool edits of A's files refused",
            (0..4).all(|i| denied_reserve(r0.get(i)))
                && self.lab.bytes("b.txt").as_deref() == Some("B1\n")
                && self.lab.bytes("f2.txt").as_deref() == Some("F2\n"),
            format!("{r0:?}"),
        );
        let r1 = results(&tb, self.sb.at("shell"));
        for (i, c) in SHELL_WRITES.iter().enumerate() {
            self.ck.check(
                &format!("B: shell `{c}` refused"),
                denied_reserve(r1.get(i)),
                brief(r1.get(i)),
            );
        }
        self.ck.check(
            "B: a.txt's bytes unchanged after B's shell writes",
            self.lab.bytes("a.txt").as_deref() == Some("A1\n")
                && self.lab.bytes("c.txt").is_some()
                && self.lab.bytes("d.txt").is_some(),
            format!("a.txt is {:?}", self.lab.bytes("a.txt")),
        );
        // put back what got through, so each later check stands on its own
        for (n, t) in [("a.txt", "A1\n"), ("c.txt", "C0\n"), ("d.txt", "D0\n")] {
            if !self.is(n, t) {
                self.lab.put(n, t);
            }
        }
        let _ = std::fs::remove_file(self.lab.file("moved.txt"));
        self.model.release("B", "reads");
        self.model.wait("B", "override");
        let tb = self.model.turns("B");
        let r2 = results(&tb, self.sb.at("reads"));
        self.ck.check(
            "B: reads allowed (file tool and `cat`)",
            allowed(r2.first())
                && output(&r2[0]).contains("A1")
                && allowed(r2.get(1))
                && output(&r2[1]).contains("A1"),
            format!("{:?}", &r2.get(..2)),
        );
        self.ck.check(
            "B: own new file allowed",
            allowed(r2.get(2)) && self.lab.bytes("bnew.txt").as_deref() == Some("mine\n"),
            brief(r2.get(2)),
        );
        self.ck.check(
            "B: [guard] path refused",
            denied_guard(r2.get(3)) && self.lab.bytes("guarded.txt").is_none(),
            brief(r2.get(3)),
        );

        r0.first().map(|r| output(r).to_string())
    }

    /// The token named in the denial lets exactly one edit through.
    fn override_once(&mut self, denial: Option<&str>) {
        // One-time override: the token named in the denial lets exactly one edit through.
        let token = denial.and_then(|o| {
            let i = o.find("override-")?;
            Some(o[i..i + 41].to_string())
        });
        if let Some(t) = &token {
            let o = self.lab.concur(["token", "issue", t]);
            assert!(o.status.success(), "token issue: {o:?}");
        }
        self.model.release("B", "override");
        self.model.wait("B", "a-ended");
        let tb = self.model.turns("B");
        let (r3, r4) = (
            results(&tb, self.sb.at("override")),
            results(&tb, self.sb.at("again")),
        );
        let audit = std::fs::read_to_string(self.lab.home.join("audit.jsonl")).unwrap_or_default();
        self.ck.check(
            "B: override token lets exactly one edit through, audited",
            token.is_some()
                && allowed(r3.first())
                && denied_reserve(r4.first())
                && self.lab.bytes("a.txt").as_deref() == Some("Bo\n")
                && audit.contains("\"outcome\":\"override\""),
            format!(
                "token {token:?}: {} / {} / audit {audit}",
                brief(r3.first()),
                brief(r4.first())
            ),
        );
    }

    /// Lets B's turn held at `go` run, waits until B is held at `next`, and returns what B sent
    /// back for the `go` turn.
    fn b_step(&self, go: &str, next: &str) -> Vec<Value> {
        self.model.release("B", go);
        self.model.wait("B", next);
        results(&self.model.turns("B"), self.sb.at(go))
    }

    /// A ends normally: its reservations go with it.
    fn after_a_ends(&mut self, a: Run) {
        self.model.release("A", "live");
        let out = a.finish();
        self.ck
            .check("A: exits normally", out.status.success(), show(&out));
        let r = self.b_step("a-ended", "a2-live");
        self.ck.check(
            "B: may edit once A ended normally",
            allowed(r.first()) && self.is("a.txt", "B2\n"),
            brief(r.first()),
        );
    }

    /// A2 reserves and is killed with SIGKILL: B may edit at once.
    fn after_a2_killed(&mut self, b: Run) {
        let a2 = self.lab.start(self.agent, &self.model, "A2");
        self.model.wait("A2", "live");
        let r = self.b_step("a2-live", "a2-killed");
        self.ck.check(
            "B: refused while A2 (reserved from its shell tool) lives",
            denied_reserve(r.first()) && self.is("e.txt", "E0\n"),
            brief(r.first()),
        );
        a2.kill9();
        self.model.release("B", "a2-killed");
        let out = b.finish();
        self.ck
            .check("B: exits normally", out.status.success(), show(&out));
        let r7 = results(&self.model.turns("B"), self.sb.at("a2-killed"));
        self.ck.check(
            "B: may edit at once after A2 is SIGKILLed",
            allowed(r7.first()) && self.lab.bytes("e.txt").as_deref() == Some("E1\n"),
            brief(r7.first()),
        );
    }
}

/// The ways concur can be broken under a hooked agent, each in its own lab.
const BREAKAGES: [&str; 3] = [
    "concur missing from the agent's PATH",
    "the concur binary the hooks were installed from deleted",
    "concur.toml broken",
];

/// Fail closed through the agent's real launcher: with concur unreachable or its configuration
/// unreadable, an edit of a `[guard]` path is still refused (the hook either works or denies).
/// The three agents run at once, one per broken lab.
pub fn fails_closed(agent: &dyn Agent, cli: &std::path::Path) {
    let mut ck = Checks::new(agent);
    let labs: Vec<Lab> = BREAKAGES
        .iter()
        .map(|_| Lab::new(agent, cli.to_path_buf()))
        .collect();
    let guard = |lab: &Lab| {
        format!(
            "[guard]\nprotect = [\"{}\"]\n",
            lab.file("guarded.txt").display()
        )
    };
    let system_path = "/usr/local/bin:/usr/bin:/bin".to_string();

    // 1. hooks installed as documented, then the agent started without concur on its PATH
    let mut labs = labs.into_iter();
    let mut missing = labs.next().unwrap();
    missing.config(&guard(&missing));
    missing.install_hooks(agent);
    missing.path.clone_from(&system_path);

    // 2. installed from the user's own copy of concur, which is then deleted
    let mut deleted = labs.next().unwrap();
    deleted.config(&guard(&deleted));
    let copy = deleted.dir.path().join("user-bin/concur");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(crate::util::bin(), &copy).unwrap();
    deleted.install_hooks_with(agent, &copy);
    std::fs::remove_file(&copy).unwrap();
    deleted.path.clone_from(&system_path);

    // 3. a concur.toml that does not parse
    let broken = labs.next().unwrap();
    broken.install_hooks(agent);
    broken.config(&format!("{}[reserve\nauto = ", guard(&broken)));

    let labs = [missing, deleted, broken];
    let mut script = serde_json::Map::new();
    for (i, lab) in labs.iter().enumerate() {
        let mut s = Script::default();
        s.push(
            "write",
            calls([agent.write(&lab.file("guarded.txt"), "x\n")]),
        )
        .push("done", text("done"));
        script.insert(format!("c{i}"), s.json());
    }
    let model = Model::start(labs[0].dir.path(), &Value::Object(script));
    let runs: Vec<Run> = labs
        .iter()
        .enumerate()
        .map(|(i, lab)| lab.start(agent, &model, &format!("c{i}")))
        .collect();
    for (i, (run, lab)) in runs.into_iter().zip(&labs).enumerate() {
        let out = run.finish();
        let r = results(&model.turns(&format!("c{i}")), 0);
        ck.check(
            &format!("fail closed: {}", BREAKAGES[i]),
            r.first().is_some_and(|r| output(r).contains("concur"))
                && lab.bytes("guarded.txt").is_none(),
            format!("{} / agent: {}", brief(r.first()), show(&out)),
        );
    }
    ck.finish();
}
