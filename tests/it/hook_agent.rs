//! The agent a hook runs for, found through the shells and wrappers agents launch hooks with,
//! and the session a verb run in the agent's shell tool acts for.
//!
//! This test process stands in for the agent: it is long-lived, not a shell, and launches the
//! hook the ways the real agents do (`sh -c` that does not `exec`, `bash -lc`, `env`/`timeout`
//! launchers, direct exec). The session must be registered with *its* pid, and stay live after
//! the shell in between has exited.

use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::util::*;

/// `PROGRAM ARGS...` (a shell) with the test env's home, no session variables, `$C` = concur.
fn via(t: &TestEnv, program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .env("CONCUR_HOME", &t.home)
        .env("C", bin())
        .current_dir(t.dir.path());
    for v in concur::id::ENV_VARS {
        c.env_remove(v);
    }
    c.env_remove("CONCUR_BACKEND");
    c
}

fn feed(mut c: Command, input: &[u8]) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input).unwrap();
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn start_payload(t: &TestEnv, id: &str) -> Vec<u8> {
    json!({"session_id": id, "transcript_path": "/t", "cwd": t.dir.path(),
           "hook_event_name": "SessionStart", "source": "startup"})
    .to_string()
    .into_bytes()
}

fn sessions(t: &TestEnv) -> Vec<Value> {
    let o = t.run(["session", "list", "--json"]);
    assert_code(&o, 0);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    v["sessions"].as_array().unwrap().clone()
}

fn session<'a>(all: &'a [Value], id: &str) -> Option<&'a Value> {
    all.iter().find(|s| s["id"] == id)
}

#[test]
fn the_agent_is_found_through_every_launcher_and_outlives_the_shell() {
    let t = TestEnv::new();
    let concur = bin();
    // The `; exit $?` keeps each shell from exec'ing its last command, as dash does for
    // Claude Code's hooks: the shell is the hook's parent and exits right after it.
    let launchers: [(&str, &str, Vec<&str>); 5] = [
        ("sh-c", "sh", vec!["-c", "\"$C\" hook claude; exit $?"]),
        (
            "bash-lc",
            "bash",
            vec!["-lc", "\"$C\" hook claude; exit $?"],
        ),
        (
            "wrapped",
            "sh",
            vec![
                "-c",
                "env timeout 60 nice stdbuf -o0 \"$C\" hook claude; exit $?",
            ],
        ),
        (
            "nested",
            "sh",
            vec!["-c", "bash -c '\"$C\" hook claude; exit $?'; exit $?"],
        ),
        ("exec", concur.to_str().unwrap(), vec!["hook", "claude"]),
    ];
    for (id, program, args) in &launchers {
        let mut c = via(&t, program, args);
        if *id == "exec" {
            c.env_remove("C");
        }
        let o = feed(c, &start_payload(&t, id));
        assert_code(&o, 0);
        assert!(stderr(&o).is_empty(), "{id}: {}", stderr(&o));
    }
    // Every shell above has exited by now; the sessions are this (live) process.
    let all = sessions(&t);
    for (id, _, _) in &launchers {
        let s = session(&all, id).unwrap_or_else(|| panic!("{id} registered: {all:?}"));
        assert_eq!(s["pid"], std::process::id(), "{id}: {s}");
        assert_eq!(s["alive"], true, "{id}: {s}");
    }
}

#[test]
fn a_chain_of_wrappers_deeper_than_the_bound_registers_nothing() {
    let t = TestEnv::new();
    // 17 nested shells (each runs the script $S again until $D is 0): more wrappers than the
    // walk looks through.
    let script = r#"if [ "$D" -gt 0 ]; then D=$((D - 1)) sh -c "$S"; exit $?; fi; "$C" hook claude; exit $?"#;
    let mut c = via(&t, "sh", &["-c", script]);
    c.env("S", script).env("D", "17");
    let o = feed(c, &start_payload(&t, "deep"));
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("not registered") && stderr(&o).contains("ancestors"),
        "{}",
        stderr(&o)
    );
    assert!(session(&sessions(&t), "deep").is_none());
}

#[test]
fn a_verb_in_the_shell_tool_acts_for_the_agent_session_found_by_ancestry() {
    let t = TestEnv::new();
    std::fs::File::create(t.path("a.txt")).unwrap();
    let o = feed(
        via(&t, "sh", &["-c", "\"$C\" hook gemini; exit $?"]),
        &start_payload(&t, "gem-1"),
    );
    assert_code(&o, 0);
    // Gemini's shell tool exports no session id: the session is the registered ancestor.
    let o = via(&t, "bash", &["-c", "\"$C\" reserve a.txt; exit $?"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let o = t.run(["reservations", "--json"]);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["reservations"][0]["session"], "gem-1", "{v}");
    // With no registered ancestor and no id, a verb that needs a session says so.
    let other = TestEnv::new();
    let o = other.run(["reserve", "x.txt"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("no session id"), "{}", stderr(&o));
}

#[test]
fn the_ids_each_agent_exports_name_the_session() {
    let t = TestEnv::new();
    for (var, id) in [
        ("CODEX_THREAD_ID", "codex-thread"),
        ("CODEX_SESSION_ID", "codex-session"),
        ("GEMINI_SESSION_ID", "gemini-hook"),
        ("CLAUDE_CODE_SESSION_ID", "claude-code"),
    ] {
        let file = format!("{id}.txt");
        let o = t.cmd(["reserve", &file]).env(var, id).output().unwrap();
        assert_code(&o, 0);
        let o = t.run(["reservations", "--json"]);
        let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        let held = v["reservations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"].as_str().unwrap().ends_with(&file))
            .unwrap_or_else(|| panic!("{file}: {v}"))
            .clone();
        assert_eq!(held["session"], id, "{var}");
    }
    // --session and $CONCUR_SESSION come first.
    let o = t
        .cmd(["reserve", "first.txt"])
        .env("CONCUR_SESSION", "concur-first")
        .env("CODEX_THREAD_ID", "codex-thread")
        .output()
        .unwrap();
    assert_code(&o, 0);
    let o = t.run(["reservations", "--json"]);
    assert!(stdout(&o).contains("concur-first"), "{}", stdout(&o));
}
