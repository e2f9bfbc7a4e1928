//! Start-up and hot-path shortcuts must not change behaviour: the one-verb parser accepts and
//! refuses what the full parser does, and the hook skips the reservation database only while
//! nothing was ever reserved.

use serde_json::json;

use crate::util::*;

fn write_payload(session: &str, cwd: &std::path::Path, file: &std::path::Path) -> Vec<u8> {
    json!({"session_id": session, "transcript_path": "/t.jsonl", "cwd": cwd,
           "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Write",
           "tool_input": {"file_path": file, "content": "hi"}, "tool_use_id": "toolu_01"})
    .to_string()
    .into_bytes()
}

#[test]
fn hook_opens_no_database_until_something_is_reserved_then_enforces_it() {
    let t = TestEnv::new();
    let dir = std::fs::canonicalize(t.dir.path()).unwrap();
    let file = dir.join("x.txt");
    let o = t.run_stdin(["hook", "claude"], &write_payload("b", &dir, &file));
    assert_code(&o, 0);
    assert!(o.stdout.is_empty(), "allowed silently: {}", stdout(&o));
    assert!(
        !t.home.join("leases.db").exists(),
        "an allowed write in a home without reservations opened the database"
    );
    assert_code(&t.run(["--session", "a", "reserve", "x.txt"]), 0);
    // Session b is now refused: the marker written before the claim sends the hook to the table.
    let o = t.run_stdin(["hook", "claude"], &write_payload("b", &dir, &file));
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("a deny answer");
    assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny", "{v}");
    // The holder itself may still write.
    let o = t.run_stdin(["hook", "claude"], &write_payload("a", &dir, &file));
    assert_code(&o, 0);
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
}

#[test]
fn shell_writes_are_checked_once_something_is_reserved() {
    let t = TestEnv::new();
    let dir = std::fs::canonicalize(t.dir.path()).unwrap();
    let bash = |session: &str| {
        json!({"session_id": session, "cwd": dir, "hook_event_name": "PreToolUse",
               "tool_name": "Bash", "tool_input": {"command": "echo hi > notes.md"}})
        .to_string()
        .into_bytes()
    };
    let o = t.run_stdin(["hook", "claude"], &bash("b"));
    assert_code(&o, 0);
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    assert_code(&t.run(["--session", "a", "reserve", "notes.md"]), 0);
    let o = t.run_stdin(["hook", "claude"], &bash("b"));
    assert_code(&o, 0);
    assert!(stdout(&o).contains("\"deny\""), "{}", stdout(&o));
}

#[test]
fn global_options_parse_the_same_before_and_after_the_verb() {
    let t = TestEnv::new();
    let before = t.run(["--json", "home"]);
    let after = t.run(["home", "--json"]);
    assert_code(&before, 0);
    assert_eq!(stdout(&before), stdout(&after));
    let v: serde_json::Value = serde_json::from_str(stdout(&before).trim()).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let a = t.run(["--session", "s1", "token", "issue", "t1"]);
    assert_code(&a, 0);
    let b = t.run(["token", "take", "t1", "--session", "s1", "--json"]);
    assert_code(&b, 0);
    assert!(stdout(&b).contains("\"ok\":true"), "{}", stdout(&b));
    assert_code(&t.run(["--session=s1", "token", "issue", "t2"]), 0);
    let c = t.run(["--json", "--session", "s1", "token", "take", "t2"]);
    assert_code(&c, 0);
    assert!(stdout(&c).contains("\"outcome\":\"won\""), "{}", stdout(&c));
    // Taken once: the second take loses, whichever parser read the line.
    assert_code(&t.run(["--session=s1", "token", "take", "t2"]), 1);
}

#[test]
fn usage_errors_help_and_version_are_the_full_parsers() {
    let t = TestEnv::new();
    let o = t.run(["hook", "bogus"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("Usage: concur hook"), "{}", stderr(&o));
    // `hook AGENT` alone is built without a parser; anything more is the parser's.
    let o = t.run(["hook", "claude", "extra"]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("unexpected argument 'extra'"),
        "{}",
        stderr(&o)
    );
    let o = t.run(["hook", "aider"]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("unrecognized subcommand 'aider'"),
        "{}",
        stderr(&o)
    );
    let o = t.run(["lock", "-w"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--timeout"), "{}", stderr(&o));
    let o = t.run(["hook", "--version"]);
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o).trim(),
        concat!("concur-hook ", env!("CARGO_PKG_VERSION"))
    );
    let o = t.run(["lock", "--help"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("Usage: concur lock"), "{}", stdout(&o));
    let o = t.run(["--help"]);
    assert_code(&o, 0);
    for verb in ["hook", "lock", "append", "diagnose", "scan"] {
        assert!(stdout(&o).contains(verb), "{verb} missing from --help");
    }
}

#[test]
fn a_closed_stdout_reaches_a_command_as_dev_null_as_with_std_start_up() {
    let t = TestEnv::new();
    // The command reports on stderr what its own stdout is. Not a shell: dash applies a
    // `>&2` to its own descriptors before it runs the command, so `readlink /proc/$$/fd/1 >&2`
    // would report the redirection, not what the shell was given.
    let probe = "import os\n\
                 try:\n    t = os.readlink('/proc/self/fd/1')\n\
                 except OSError:\n    t = 'closed'\n\
                 os.write(2, (t + '\\n').encode())\n";
    // concur runs with stdout closed (`>&-`).
    let o = std::process::Command::new("sh")
        .args(["-c", "exec \"$@\" >&-", "sh"])
        .arg(bin())
        .args(["lock", "l", "python3", "-c", probe])
        .env("CONCUR_HOME", &t.home)
        .current_dir(t.dir.path())
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(stderr(&o).trim(), "/dev/null", "{}", stderr(&o));
}
