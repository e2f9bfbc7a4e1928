//! The same promises checked on the local backend and on etcd (see `backends.rs`).

use crate::util::{Barrier, assert_code, code, stdout};

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
