//! The session registry through the binary: liveness, end, gc.

use std::process::{Command, Stdio};

use crate::util::*;

#[test]
fn gc_after_killing_a_session_releases_its_lease_and_markers() {
    let t = TestEnv::new();
    let mut a = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = a.id().to_string();
    assert_code(
        &t.run([
            "session",
            "start",
            "--session",
            "A",
            "--pid",
            &pid,
            "--agent",
            "claude",
        ]),
        0,
    );
    assert_code(&t.run(["lease", "acquire", "task-a", "--session", "A"]), 0);
    assert_code(&t.run(["marker", "set", "m", "--session", "A"]), 0);
    assert_code(&t.run(["pointer", "set", "p", "v", "--session", "A"]), 0);

    let o = t.run(["session", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["sessions"][0]["alive"], true);
    assert_eq!(v["sessions"][0]["agent"], "claude");
    // A live session is not collected.
    assert_eq!(stdout(&t.run(["session", "gc"])).trim(), "no dead sessions");

    a.kill().unwrap();
    a.wait().unwrap();
    let o = t.run(["session", "list"]);
    assert!(stdout(&o).contains("A\tDEAD"), "{}", stdout(&o));
    let o = t.run(["session", "gc"]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("removed dead session A"), "{out}");
    assert!(out.contains("task-a"), "{out}");
    let o = t.run(["lease", "show", "task-a", "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(v["lease"].is_null(), "{v}");
    assert_code(&t.run(["marker", "check", "m", "--session", "A"]), 3);
    assert_code(&t.run(["pointer", "get", "p", "--session", "A"]), 3);
    assert!(stdout(&t.run(["session", "list"])).is_empty());
}

#[test]
fn end_releases_leases_and_a_missing_pid_is_invalid() {
    let t = TestEnv::new();
    assert_code(&t.run(["session", "start", "--session", "S"]), 0);
    assert_code(&t.run(["lease", "acquire", "j", "--session", "S"]), 0);
    let o = t.run(["session", "end", "--session", "S"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("released leases j"), "{}", stdout(&o));
    assert_code(&t.run(["lease", "acquire", "j", "--session", "T"]), 0);
    // No such process: exit 4 and no record.
    let o = t.run(["session", "start", "--session", "X", "--pid", "999999999"]);
    assert_code(&o, 4);
    assert!(stdout(&t.run(["session", "list"])).is_empty());
    assert_code(&t.run(["session", "start"]), 2);
}

#[test]
fn concurrent_starts_leave_one_intact_record_each() {
    let t = TestEnv::new();
    assert_code(&t.run(["home"]), 0);
    let mut b = Barrier::new();
    for i in 0..12 {
        let s = format!("s{}", i % 3);
        b.spawn(&t.cmd([
            "session",
            "start",
            "--session",
            &s,
            "--pid",
            &std::process::id().to_string(),
        ]));
    }
    for o in b.run_all() {
        assert_code(&o, 0);
    }
    let o = t.run(["session", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let s = v["sessions"].as_array().unwrap();
    assert_eq!(s.len(), 3);
    assert!(s.iter().all(|x| x["alive"] == true));
}

/// `concur diagnose --targets TARGET --json`: the naive writer is caught with `violation`, the
/// concur writer is SAFE, exit 0.
fn diagnose_caught_and_safe(target: &str, violation: &str) {
    let t = TestEnv::new();
    let o = t.run(["diagnose", "--json", "--targets", target]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim())
        .unwrap_or_else(|e| panic!("bad json ({e}): {} / {}", stdout(&o), stderr(&o)));
    let rs = v["results"].as_array().unwrap();
    let find = |mode: &str| {
        rs.iter()
            .find(|r| r["target"] == target && r["mode"] == mode)
            .unwrap_or_else(|| panic!("no {target}/{mode} in {rs:?}"))
    };
    assert_eq!(find("naive")["verdict"], violation, "{}", find("naive"));
    assert_eq!(find("concur")["verdict"], "SAFE", "{}", find("concur"));
    assert_code(&o, 0);
}

#[test]
fn diagnose_hash_ledger_naive_breaks_the_chain_and_concur_is_safe() {
    diagnose_caught_and_safe("hash-ledger", "CHAIN_BROKEN");
}

#[test]
fn diagnose_task_start_naive_double_starts_and_concur_is_safe() {
    diagnose_caught_and_safe("task-start", "DOUBLE_START");
}

#[test]
fn diagnose_session_pointer_naive_leaks_and_concur_is_safe() {
    diagnose_caught_and_safe("session-pointer", "CROSS_SESSION_LEAK");
}
