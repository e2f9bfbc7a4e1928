//! The same promises checked on the local backend and on etcd (see `backends.rs`).

use std::process::{Output, Stdio};

use crate::util::{Barrier, assert_code, code, retry, stderr, stdout};

on_both_backends! {
    /// A token issued once is taken by exactly one of 8 racing sessions; the others exit 1.
    fn token_has_exactly_one_winner(b) {
        for round in 0..5 {
            let name = format!("t{round}");
            assert_code(&b.run(["token", "issue", &name, "--data", &format!("{{\"r\":{round}}}")]), 0);
            let mut bar = Barrier::new();
            for k in 0..8 {
                bar.spawn(&b.cmd(["--session", &format!("s{k}"), "token", "take", &name]));
            }
            let outs = bar.run_all();
            let winners: Vec<_> = outs.iter().filter(|o| code(o) == 0).collect();
            assert_eq!(winners.len(), 1, "{}: round {round}: exactly one winner", b.name());
            assert_eq!(stdout(winners[0]).trim(), format!("{{\"r\":{round}}}"));
            for o in outs.iter().filter(|o| code(o) != 0) {
                assert_code(o, 1);
            }
        }
    }
}

on_both_backends! {
    /// `lock --name` admits one holder at a time among 6 processes: each appends its enter and
    /// leave lines inside the lock, and no two sections interleave.
    fn named_lock_admits_one_holder(b) {
        let log = b.env.path("log");
        let script = format!(
            "echo \"in $$\" >> {0}; echo \"out $$\" >> {0}",
            log.display()
        );
        let mut bar = Barrier::new();
        for k in 0..6 {
            bar.spawn(&b.cmd(["--session", &format!("s{k}"), "lock", "--name", "crit", "-c", &script]));
        }
        for o in bar.run_all() {
            assert_code(&o, 0);
        }
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12, "{}: {text}", b.name());
        for pair in lines.chunks(2) {
            let pid = pair[0].strip_prefix("in ").expect("enter line");
            assert_eq!(pair[1], format!("out {pid}"), "{}: sections interleaved: {text}", b.name());
        }
    }
}

/// A stand-in agent process (`sleep`), killed and reaped when dropped, so that no session
/// keeper of a failed test outlives it (a keeper exits when its agent does).
struct Agent(std::process::Child);

impl Agent {
    fn spawn() -> Agent {
        Agent(
            std::process::Command::new("sleep")
                .arg("1000")
                .stdin(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `concur --json ARGS...` on `b`, expecting exit 0: its JSON.
fn json_of(b: &crate::backends::Backend, args: &[&str]) -> serde_json::Value {
    let o = b.run(std::iter::once("--json").chain(args.iter().copied()));
    assert_code(&o, 0);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

/// The ids `session list` shows on `b`.
fn listed(b: &crate::backends::Backend) -> Vec<String> {
    let v = json_of(b, &["session", "list"]);
    assert_eq!(v["backend"], b.name(), "{v}");
    v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["alive"], true, "{s}");
            s["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Session A holds a task lease, a reservation, a marker and a pointer value.
fn hold_everything(b: &crate::backends::Backend, agent: &Agent, file: &str) {
    let started = json_of(
        b,
        &[
            "session",
            "start",
            "--session",
            "A",
            "--pid",
            &agent.pid(),
            "--agent",
            "claude",
        ],
    );
    assert_eq!(started["etcd"].is_object(), b.url().is_some(), "{started}");
    for args in [
        ["lease", "acquire", "task-a"].as_slice(),
        &["reserve", file],
        &["marker", "set", "m"],
        &["pointer", "set", "p", "v"],
    ] {
        let o = b.run(["--session", "A"].iter().chain(args));
        assert_code(&o, 0);
    }
    // Held: session B is refused the lease and the file.
    assert_code(
        &b.run(["--session", "B", "lease", "acquire", "task-a", "-w", "0"]),
        1,
    );
    assert_code(&b.run(["--session", "B", "reserve", file]), 1);
}

/// Everything of session A is free again: B gets the lease and the file, A's marker and
/// pointer are gone, and A is no longer listed.
fn all_released(b: &crate::backends::Backend, file: &str) {
    assert_code(
        &b.run(["--session", "B", "lease", "acquire", "task-a", "-w", "0"]),
        0,
    );
    assert_code(&b.run(["--session", "B", "reserve", file]), 0);
    assert_code(&b.run(["--session", "A", "marker", "check", "m"]), 3);
    assert_code(&b.run(["--session", "A", "pointer", "get", "p"]), 3);
    assert!(!listed(b).contains(&"A".to_owned()), "{}", b.name());
}

/// What ending A released, as `session end`/`gc` report it: one lease, one reservation, one
/// marker, one pointer, and on etcd its registration.
fn assert_released_all(b: &crate::backends::Backend, e: &serde_json::Value) {
    assert_eq!(e["session"], "A", "{e}");
    assert_eq!(e["backend"], b.name(), "{e}");
    assert_eq!(e["leases"], serde_json::json!(["task-a"]), "{e}");
    let res = e["reservations"].as_array().unwrap();
    assert!(
        res.len() == 1 && res[0].as_str().unwrap().ends_with("a.txt"),
        "{e}"
    );
    assert_eq!(e["markers"].as_array().unwrap().len(), 1, "{e}");
    assert_eq!(e["pointers"].as_array().unwrap().len(), 1, "{e}");
    assert_eq!(e["record"], true, "{e}");
    assert_eq!(e["etcd"].is_object(), b.url().is_some(), "{e}");
}

on_both_backends! {
    /// `session start` registers, `list` shows the session live (on etcd: on this host),
    /// `is_live`-based verbs agree, and `end` removes it.
    fn session_start_list_end(b) {
        let a = Agent::spawn();
        let v = json_of(b, &["session", "start", "--session", "S", "--pid", &a.pid()]);
        assert_eq!(v["session"]["pid"].to_string(), a.pid(), "{v}");
        let list = json_of(b, &["session", "list"]);
        let s = &list["sessions"][0];
        assert_eq!((s["id"].as_str(), s["this_host"].as_bool()), (Some("S"), Some(true)), "{list}");
        assert_eq!(listed(b), ["S"]);
        let e = json_of(b, &["session", "end", "--session", "S"]);
        assert_eq!(e["ended"]["record"], true, "{e}");
        if b.url().is_some() {
            assert_eq!(e["ended"]["etcd"]["revoked"], true, "{e}");
        }
        assert!(listed(b).is_empty(), "{}", b.name());
        // Ending again: nothing left to release, not an error.
        let e = json_of(b, &["session", "end", "--session", "S"]);
        assert_eq!(e["ended"]["record"], false, "{e}");
    }
}

on_both_backends! {
    /// `session end` releases at once the session's task lease, its reservation (local state
    /// also when the backend is etcd), its marker and pointer, and its registration.
    fn session_end_releases_leases_reservations_and_markers(b) {
        std::fs::create_dir_all(b.env.path("repo/.git")).unwrap();
        let file = b.env.path("repo/a.txt");
        let file = file.to_str().unwrap();
        let a = Agent::spawn();
        hold_everything(b, &a, file);
        let v = json_of(b, &["session", "end", "--session", "A"]);
        assert_released_all(b, &v["ended"]);
        all_released(b, file);
    }
}

on_both_backends! {
    /// A session whose agent is killed with SIGKILL (no `SessionEnd` ever runs) is reclaimed by
    /// `session gc`: the same release as `session end`, reported per session.
    fn killed_session_is_reclaimed_by_gc(b) {
        std::fs::create_dir_all(b.env.path("repo/.git")).unwrap();
        let file = b.env.path("repo/a.txt");
        let file = file.to_str().unwrap();
        let mut a = Agent::spawn();
        hold_everything(b, &a, file);
        let v = json_of(b, &["session", "gc"]);
        assert_eq!(v["removed"], serde_json::json!([]), "a live session is kept: {v}");
        a.kill();
        let v = json_of(b, &["session", "gc"]);
        let removed = v["removed"].as_array().unwrap();
        assert_eq!(removed.len(), 1, "{v}");
        assert_released_all(b, &removed[0]);
        all_released(b, file);
    }
}

/// The audit records of token `name` in the home's ledger.
fn audited(b: &crate::backends::Backend, name: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(b.env.home.join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("audit line is JSON"))
        .filter(|r| r["token"] == name)
        .collect()
}

/// The sorted field names of a `--json` line.
fn fields(o: &std::process::Output) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(stdout(o).trim()).expect("--json output");
    let mut keys: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    keys.sort();
    keys
}

/// Waits until token `name`, which expires at `expires_at` (Unix ms), has expired: by the
/// clock, and on etcd until its lease has removed the key.
fn wait_until_expired(b: &crate::backends::Backend, name: &str, expires_at: u64) {
    let bound = std::time::Duration::from_secs(30);
    retry("token expiry", bound, || {
        (concur::time::now_unix_ms() > expires_at).then_some(())
    });
    #[cfg(feature = "etcd")]
    if let Some(url) = b.url() {
        let c = concur::etcd::Client::new(&url).unwrap();
        let key = format!("concur/token/{name}");
        retry("token lease expiry", bound, || {
            c.get(key.as_bytes()).unwrap().is_none().then_some(())
        });
    }
    #[cfg(not(feature = "etcd"))]
    let _ = (b, name);
}

on_both_backends! {
    /// A token past its TTL is refused with exit 3 to every taker, and never prints its data.
    fn expired_token_exits_3_for_every_taker(b) {
        let o = b.run(["--json", "token", "issue", "short", "--ttl", "1s", "--data", "\"secret\""]);
        assert_code(&o, 0);
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        wait_until_expired(b, "short", v["expires_at"].as_u64().expect("expires_at"));
        for _ in 0..2 {
            let o = b.run(["token", "take", "short"]);
            assert_code(&o, 3);
            assert!(stderr(&o).contains("expired"), "{}: {}", b.name(), stderr(&o));
            assert!(!stdout(&o).contains("secret"), "{}", stdout(&o));
        }
        let outcomes: Vec<_> = audited(b, "short").iter().map(|r| r["outcome"].clone()).collect();
        assert_eq!(outcomes, ["expired", "expired"], "{}", b.name());
    }
}

on_both_backends! {
    /// Taking a token that was never issued exits 1 and says so; a token that was taken says
    /// that instead.
    fn take_of_a_never_issued_token_exits_1(b) {
        let o = b.run(["--json", "token", "take", "never"]);
        assert_code(&o, 1);
        assert!(stderr(&o).contains("never issued"), "{}: {}", b.name(), stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(v["error"]["kind"], "conflict", "{v}");
        assert_code(&b.run(["token", "issue", "once"]), 0);
        assert_code(&b.run(["token", "take", "once"]), 0);
        let o = b.run(["token", "take", "once"]);
        assert_code(&o, 1);
        assert!(stderr(&o).contains("taken by another"), "{}: {}", b.name(), stderr(&o));
        assert_eq!(audited(b, "never")[0]["outcome"], "absent", "{}", b.name());
    }
}

on_both_backends! {
    /// Every take of a raced token is in the taker's audit ledger, the winner's and the
    /// losers', with its session and the backend.
    fn every_take_is_audited_won_or_lost(b) {
        assert_code(&b.run(["token", "issue", "raced", "--data", "7"]), 0);
        let mut bar = Barrier::new();
        for k in 0..6 {
            bar.spawn(&b.cmd(["--session", &format!("s{k}"), "token", "take", "raced"]));
        }
        let outs = bar.run_all();
        assert_eq!(outs.iter().filter(|o| code(o) == 0).count(), 1, "{}", b.name());
        let records = audited(b, "raced");
        assert_eq!(records.len(), 6, "{}: {records:?}", b.name());
        let mut sessions: Vec<_> = records.iter().map(|r| r["session"].to_string()).collect();
        sessions.sort();
        assert_eq!(sessions, (0..6).map(|k| format!("\"s{k}\"")).collect::<Vec<_>>());
        let won = records.iter().filter(|r| r["outcome"] == "won").count();
        let taken = records.iter().filter(|r| r["outcome"] == "taken").count();
        assert_eq!((won, taken), (1, 5), "{}: {records:?}", b.name());
        assert!(records.iter().all(|r| r["backend"] == b.name()), "{records:?}");
    }
}

on_both_backends! {
    /// A won take whose audit record cannot be written puts the token back and fails; once the
    /// ledger is writable the token is still there to win.
    fn a_take_that_cannot_be_audited_puts_the_token_back(b) {
        assert_code(&b.run(["token", "issue", "once", "--data", "\"go\""]), 0);
        let ledger = b.env.home.join("audit.jsonl");
        std::os::unix::fs::symlink(b.env.path("elsewhere"), &ledger).unwrap();
        let o = b.run(["token", "take", "once"]);
        assert_code(&o, 77);
        assert!(stdout(&o).is_empty(), "{}: {}", b.name(), stdout(&o));
        std::fs::remove_file(&ledger).unwrap();
        let o = b.run(["token", "take", "once"]);
        assert_code(&o, 0);
        assert_eq!(stdout(&o).trim(), "\"go\"", "{}", b.name());
        assert_code(&b.run(["token", "take", "once"]), 1);
    }
}

on_both_backends! {
    /// `concur --json token` prints the same fields on every backend: issue, a won take, and a
    /// lost take's error.
    fn token_json_has_one_shape(b) {
        let issue = b.run(["--json", "token", "issue", "j", "--data", "{\"a\":1}", "--ttl", "1h"]);
        assert_code(&issue, 0);
        assert_eq!(
            fields(&issue),
            ["backend", "expires_at", "ok", "path", "revision", "token", "ttl_ms"],
        );
        let won = b.run(["--json", "token", "take", "j"]);
        assert_code(&won, 0);
        assert_eq!(
            fields(&won),
            ["backend", "consumed", "ok", "outcome", "payload", "revision", "token"],
        );
        let v: serde_json::Value = serde_json::from_str(stdout(&won).trim()).unwrap();
        assert_eq!(
            (&v["backend"], &v["outcome"], &v["payload"]),
            (&b.name().into(), &"won".into(), &serde_json::json!({"a": 1})),
        );
        let lost = b.run(["--json", "token", "take", "j"]);
        assert_code(&lost, 1);
        assert_eq!(fields(&lost), ["error", "ok"]);
    }
}

on_both_backends! {
    /// `json --key` increments from 8 racing processes, 10 rounds, lose none; the document is
    /// read back without being written, and `--json` names the backend.
    fn json_key_increments_lose_none(b) {
        for _ in 0..10 {
            let mut bar = Barrier::new();
            for _ in 0..8 {
                bar.spawn(&b.cmd(["json", "--key", "count", ".n += 1", "--init", "{\"n\":0}"]));
            }
            for o in bar.run_all() {
                assert_code(&o, 0);
            }
        }
        let o = b.run(["--json", "json", "--key", "count", "."]);
        assert_code(&o, 0);
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(v["value"], serde_json::json!({"n": 80}), "{}: {v}", b.name());
        assert_eq!((&v["changed"], &v["backend"]), (&false.into(), &b.name().into()), "{v}");
        assert_eq!(
            fields(&o),
            ["backend", "changed", "created", "etag", "fence", "key", "ok", "revision", "value"],
        );
    }
}

on_both_backends! {
    /// `json --key --fence` under `lock --name` writes; the first holder's token, used after a
    /// second holder has written, is refused (exit 3) and changes nothing.
    fn json_key_refuses_a_stale_fence(b) {
        let write = |v: u32| {
            let o = b.run([
                "lock", "--name", "deploy", "-c",
                &format!(
                    "{} json --key release --fence \"$CONCUR_FENCE\" '.v = {v}' --init '{{}}' \
                     >/dev/null && printf %s \"$CONCUR_FENCE\"",
                    crate::util::bin().display()
                ),
            ]);
            assert_code(&o, 0);
            stdout(&o)
        };
        let first = write(1);
        let second = write(2);
        assert_ne!(first, second, "{}: each holder gets its own token", b.name());
        let o = b.run(["json", "--key", "release", "--fence", &first, ".v = 3"]);
        assert_code(&o, 3);
        assert!(stderr(&o).contains("write refused"), "{}: {}", b.name(), stderr(&o));
        let o = b.run(["json", "--key", "release", "."]);
        assert_eq!(stdout(&o).trim(), r#"{"v":2}"#, "{}", b.name());
    }
}

/// A `concur lock --name NAME` (or any verb) that holds until dropped: its command prints
/// `held` (read here, so the hold is certain before the test goes on) and waits for its stdin
/// to close.
struct Holding {
    child: std::process::Child,
}

impl Holding {
    fn start(b: &crate::backends::Backend, args: &[&str]) -> Holding {
        use std::io::BufRead;
        let mut child = b
            .cmd(
                args.iter()
                    .copied()
                    .chain(["-c", "echo held; cat >/dev/null"]),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn holder");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line,
            "held\n",
            "{}: the holder did not get its hold",
            b.name()
        );
        Holding { child }
    }

    /// Lets the command end and waits for the holder: its exit status.
    fn finish(mut self) -> Option<i32> {
        drop(self.child.stdin.take());
        self.child.wait().unwrap().code()
    }
}

/// The keys of a `--json` object, sorted.
fn keys(o: &Output) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(stdout(o).trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", stdout(o)));
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

on_both_backends! {
    /// A busy named lock: `-n` exits the `-E` code at once and names the holder's session;
    /// `-w` gives up with the same code and message, and the command never runs.
    fn busy_named_lock_names_its_holder(b) {
        let held = Holding::start(b, &["--session", "holder-7", "lock", "--name", "busy"]);
        let ran = b.env.path("ran");
        let touch = format!("touch {}", ran.display());
        let o = b.run(["lock", "-n", "-E", "75", "--name", "busy", "-c", &touch]);
        assert_code(&o, 75);
        let err = stderr(&o);
        assert!(err.contains("lock busy is busy: held by pid "), "{}: {err}", b.name());
        assert!(err.contains("session holder-7"), "{}: {err}", b.name());
        assert_eq!(err.lines().count(), 1, "{}: {err}", b.name());
        let o = b.run(["lock", "-w", "0.3", "-E", "76", "--name", "busy", "-c", &touch]);
        assert_code(&o, 76);
        let err = stderr(&o);
        assert!(err.contains("timed out waiting for lock busy"), "{}: {err}", b.name());
        assert!(err.contains("session holder-7"), "{}: {err}", b.name());
        assert!(!ran.exists(), "{}: a command ran without the lock", b.name());
        assert_eq!(held.finish(), Some(0));
        assert_code(&b.run(["lock", "-n", "--name", "busy", "-c", &touch]), 0);
        assert!(ran.exists());
    }
}

on_both_backends! {
    /// `--max-hold` kills the command's process group and frees the lock, on every backend,
    /// and `--json` says so; the next holder gets a larger fencing token.
    fn max_hold_kills_and_reports_over_limit(b) {
        let o = b.run(["--json", "lock", "--name", "m", "--max-hold", "0.5", "-c", "sleep 60"]);
        assert_code(&o, 137);
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(v["over_limit"], true, "{}: {v}", b.name());
        assert_eq!(v["lost"], false, "{}: {v}", b.name());
        assert_eq!(v["backend"], b.name(), "{v}");
        assert!(stderr(&o).contains("longer than --max-hold"), "{}: {o:?}", b.name());
        let first = v["token"].as_i64().expect("a token");
        let o = b.run(["--json", "lock", "-n", "--name", "m", "--max-hold", "5m", "true"]);
        assert_code(&o, 0);
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(v["over_limit"], false, "{}: {v}", b.name());
        assert!(v["token"].as_i64().unwrap() > first, "{}: {v}", b.name());
        let o = b.run(["--json", "slot", "s", "--max", "1", "--max-hold", "0.5", "-c", "sleep 60"]);
        assert_code(&o, 137);
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(v["over_limit"], true, "{}: {v}", b.name());
    }
}

on_both_backends! {
    /// 8 processes started at once on a slot of 3: never more than 3 inside; a busy `-n`
    /// names the holders; `status` sees them.
    fn slot_admits_at_most_max(b) {
        let log = b.env.path("log");
        let script = format!("echo A >> {0}; sleep 0.1; echo R >> {0}", log.display());
        let mut bar = Barrier::new();
        for k in 0..8 {
            bar.spawn(&b.cmd(["--session", &format!("s{k}"), "slot", "sl", "--max", "3", "-c", &script]));
        }
        for o in bar.run_all() {
            assert_code(&o, 0);
        }
        let text = std::fs::read_to_string(&log).unwrap();
        let mut inside = 0;
        let mut most = 0;
        for line in text.lines() {
            inside += if line == "A" { 1 } else { -1 };
            assert!((0..=3).contains(&inside), "{}: more than 3 inside:\n{text}", b.name());
            most = most.max(inside);
        }
        assert_eq!((text.lines().count(), inside), (16, 0), "{}: {text}", b.name());
        let one = Holding::start(b, &["--session", "h1", "slot", "busy", "--max", "1"]);
        let o = b.run(["slot", "busy", "--max", "1", "-n", "-E", "9", "true"]);
        assert_code(&o, 9);
        assert!(stderr(&o).contains("1 of 1 held: pid "), "{}: {o:?}", b.name());
        assert!(stderr(&o).contains("session h1"), "{}: {o:?}", b.name());
        let st = b.run(["--json", "slot", "status", "busy"]);
        assert_code(&st, 0);
        let v: serde_json::Value = serde_json::from_str(stdout(&st).trim()).unwrap();
        assert_eq!((v["max"].as_u64(), v["held"].as_u64()), (Some(1), Some(1)), "{}: {v}", b.name());
        assert_eq!(v["holders"][0]["session"], "h1", "{}: {v}", b.name());
        assert_eq!(one.finish(), Some(0));
    }
}

on_both_backends! {
    /// `--json` of `lock --name`, `slot` and `slot status` has the same fields on every
    /// backend.
    fn json_fields_are_the_same_on_every_backend(b) {
        let o = b.run(["--json", "lock", "--name", "j", "true"]);
        assert_code(&o, 0);
        assert_eq!(
            keys(&o),
            ["backend", "locked", "lost", "ok", "over_limit", "status", "token", "waited_ms"],
            "{}", b.name()
        );
        let o = b.run(["--json", "slot", "j", "--max", "2", "true"]);
        assert_code(&o, 0);
        assert_eq!(
            keys(&o),
            ["backend", "index", "lost", "ok", "over_limit", "slot", "status", "token", "waited_ms"],
            "{}", b.name()
        );
        let held = Holding::start(b, &["slot", "j", "--max", "2"]);
        let o = b.run(["--json", "slot", "status", "j"]);
        assert_code(&o, 0);
        assert_eq!(keys(&o), ["backend", "held", "holders", "max", "ok", "slot"], "{}", b.name());
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        let mut hk: Vec<&String> = v["holders"][0].as_object().expect("a holder").keys().collect();
        hk.sort();
        assert_eq!(
            hk,
            ["cmd", "held_secs", "host", "index", "pid", "session", "since", "token"],
            "{}", b.name()
        );
        assert_eq!(v["holders"][0]["cmd"], "echo held; cat >/dev/null", "{}: {v}", b.name());
        assert_eq!(held.finish(), Some(0));
    }
}

on_both_backends! {
    /// Task leases: of 8 sessions racing `lease acquire`, exactly one holds the task and prints
    /// its fencing token; after its release the next holder's token is larger; a build-once task
    /// completed is never granted again.
    fn lease_has_one_holder_growing_tokens_and_build_once(b) {
        let mut bar = Barrier::new();
        for k in 0..8 {
            bar.spawn(&b.cmd(["--session", &format!("s{k}"), "lease", "acquire", "build", "--once", "--ttl", "10m"]));
        }
        let outs = bar.run_all();
        let won: Vec<usize> = (0..8).filter(|&k| code(&outs[k]) == 0).collect();
        assert_eq!(won.len(), 1, "{}: one holder: {:?}", b.name(), outs.iter().map(code).collect::<Vec<_>>());
        for o in outs.iter().filter(|o| code(o) != 0) {
            assert_code(o, 1);
        }
        let first: u64 = stdout(&outs[won[0]]).trim().parse().expect("a fencing token");
        let holder = format!("s{}", won[0]);
        assert_code(&b.run(["--session", &holder, "lease", "release", "build"]), 0);
        let next = b.run(["--session", "t", "lease", "acquire", "build", "--once", "--ttl", "10m"]);
        assert_code(&next, 0);
        let second: u64 = stdout(&next).trim().parse().expect("a fencing token");
        assert!(second > first, "{}: token {second} after {first}", b.name());
        assert_code(&b.run(["--session", "t", "lease", "complete", "build"]), 0);
        let again = b.run(["--session", "u", "lease", "acquire", "build", "--once", "--ttl", "10m"]);
        assert_code(&again, 1);
        assert!(stderr(&again).contains("complete"), "{}: {}", b.name(), stderr(&again));
    }
}
