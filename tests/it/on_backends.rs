//! The same promises checked on the local backend and on etcd (see `backends.rs`).

use std::process::{Output, Stdio};

use crate::util::{Barrier, assert_code, code, stderr, stdout};

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
