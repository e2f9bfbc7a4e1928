//! `concur hook <agent>` with payloads of each agent's documented shape, and `hook install`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::util::*;

/// A test env whose guard protects `<dir>/mem/*.md`; returns it and the real `mem` dir.
fn guarded() -> (TestEnv, PathBuf) {
    let t = TestEnv::new();
    assert_code(&t.run(["home"]), 0);
    let mem = std::fs::canonicalize(t.dir.path()).unwrap().join("mem");
    std::fs::create_dir(&mem).unwrap();
    let cfg = format!(
        "[guard]\nprotect = [\"{}/*.md\"]\nreason = \"use: concur append --broker FILE JSON\"\n",
        mem.display()
    );
    put(&t.home.join("concur.toml"), &cfg);
    (t, mem)
}

fn put(p: &Path, text: &str) {
    use std::io::Write;
    std::fs::File::create(p)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap();
}

fn hook(t: &TestEnv, agent: &str, payload: &Value) -> std::process::Output {
    t.run_stdin(["hook", agent], payload.to_string().as_bytes())
}

fn assert_allowed(o: &std::process::Output) {
    assert_code(o, 0);
    assert!(o.stdout.is_empty(), "allow prints nothing: {}", stdout(o));
}

fn deny_json(o: &std::process::Output) -> Value {
    assert_code(o, 0);
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

fn claude_pre(tool: &str, input: &Value) -> Value {
    json!({"session_id":"8c35adc1-0b1e","transcript_path":"/tmp/t.jsonl","cwd":"/tmp",
           "permission_mode":"default","hook_event_name":"PreToolUse","tool_name":tool,
           "tool_input":input,"tool_use_id":"toolu_01DU"})
}

#[test]
fn claude_denies_protected_writes_and_allows_the_rest() {
    let (t, mem) = guarded();
    let target = mem.join("MEMORY.md");
    for (tool, input) in [
        ("Write", json!({"file_path": target, "content": "x"})),
        (
            "Edit",
            json!({"file_path": target, "old_string": "a", "new_string": "b"}),
        ),
        ("MultiEdit", json!({"file_path": target, "edits": []})),
        ("NotebookEdit", json!({"notebook_path": mem.join("n.md")})),
    ] {
        let v = deny_json(&hook(&t, "claude", &claude_pre(tool, &input)));
        let out = &v["hookSpecificOutput"];
        assert_eq!(out["hookEventName"], "PreToolUse");
        assert_eq!(out["permissionDecision"], "deny", "{tool}");
        let reason = out["permissionDecisionReason"].as_str().unwrap();
        assert!(reason.contains("concur append --broker"), "{reason}");
    }
    let other = mem.join("notes.txt");
    assert_allowed(&hook(
        &t,
        "claude",
        &claude_pre("Write", &json!({"file_path": other})),
    ));
    assert_allowed(&hook(
        &t,
        "claude",
        &claude_pre("Bash", &json!({"command": "ls"})),
    ));
}

#[test]
fn symlink_and_dotdot_detours_are_denied() {
    let (t, mem) = guarded();
    let alias = t.path("alias");
    std::os::unix::fs::symlink(&mem, &alias).unwrap();
    let via_link = json!({"file_path": alias.join("MEMORY.md")});
    assert_eq!(
        deny_json(&hook(&t, "claude", &claude_pre("Write", &via_link)))["hookSpecificOutput"]["permissionDecision"],
        "deny"
    );
    let dotdot = format!("{}/x/../MEMORY.md", mem.display());
    let v = deny_json(&hook(
        &t,
        "claude",
        &claude_pre("Edit", &json!({"file_path": dotdot})),
    ));
    assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny");
}

#[test]
fn malformed_payloads_and_broken_config_deny() {
    let (t, mem) = guarded();
    let o = t.run_stdin(["hook", "claude"], b"{not json");
    assert_code(&o, 2);
    assert!(stderr(&o).contains("not JSON"), "{}", stderr(&o));
    let v = deny_json(&hook(&t, "claude", &claude_pre("Write", &json!({}))));
    assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny");
    put(&t.home.join("concur.toml"), "[guard]\nprotec = []\n");
    let free = json!({"file_path": mem.join("notes.txt")});
    let v = deny_json(&hook(&t, "claude", &claude_pre("Write", &free)));
    assert_eq!(
        v["hookSpecificOutput"]["permissionDecision"], "deny",
        "fail closed"
    );
    // A tool the guard does not cover stays allowed even then.
    assert_allowed(&hook(&t, "claude", &claude_pre("Read", &free)));
}

#[test]
fn codex_apply_patch_paths_are_guarded() {
    let (t, mem) = guarded();
    let patch = |p: &str| {
        json!({"session_id":"s","cwd": mem.parent().unwrap(),"hook_event_name":"PreToolUse",
               "turn_id":"t1","model":"gpt","tool_name":"apply_patch",
               "tool_input":{"command": format!("*** Begin Patch\n*** Update File: {p}\n@@\n-a\n+b\n*** End Patch\n")}})
    };
    let v = deny_json(&hook(&t, "codex", &patch("mem/MEMORY.md")));
    assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny");
    assert_allowed(&hook(&t, "codex", &patch("src/lib.rs")));
}

#[test]
fn gemini_before_tool_denies_in_its_dialect() {
    let (t, mem) = guarded();
    let p = |tool: &str, file: &Path| {
        json!({"session_id":"g1","transcript_path":"/tmp/g","cwd":"/tmp","hook_event_name":"BeforeTool",
               "timestamp":"2026-05-18T10:00:00Z","tool_name":tool,"tool_input":{"file_path": file, "content":"x"}})
    };
    for tool in ["write_file", "replace"] {
        let v = deny_json(&hook(&t, "gemini", &p(tool, &mem.join("MEMORY.md"))));
        assert_eq!(v["decision"], "deny");
        assert!(v["reason"].as_str().unwrap().contains("protected"));
    }
    assert_allowed(&hook(&t, "gemini", &p("write_file", &mem.join("ok.txt"))));
    assert_allowed(&hook(
        &t,
        "gemini",
        &p("run_shell_command", &mem.join("MEMORY.md")),
    ));
}

#[test]
fn cursor_pre_tool_use_denies_in_its_dialect() {
    let (t, mem) = guarded();
    let p = |tool: &str, file: &str| {
        json!({"conversation_id":"c-1","generation_id":"g","hook_event_name":"preToolUse",
               "workspace_roots":[mem.parent().unwrap()],"tool_name":tool,"tool_input":{"file_path": file}})
    };
    let v = deny_json(&hook(&t, "cursor", &p("Write", "mem/MEMORY.md")));
    assert_eq!(v["decision"], "deny");
    assert!(v["agent_message"].as_str().unwrap().contains("protected"));
    assert!(v["user_message"].is_string());
    let v = deny_json(&hook(&t, "cursor", &p("StrReplace", "mem/MEMORY.md")));
    assert_eq!(v["decision"], "deny");
    assert_allowed(&hook(&t, "cursor", &p("Write", "mem/ok.txt")));
}

#[test]
fn session_start_exports_the_session_id() {
    let (t, _) = guarded();
    let env_file = t.path("claude.env");
    let mut c = t.cmd(["hook", "claude"]);
    c.env("CLAUDE_ENV_FILE", &env_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let payload = json!({"session_id":"8c35adc1","transcript_path":"/t","cwd":"/tmp",
                         "hook_event_name":"SessionStart","source":"startup"});
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        payload.to_string().as_bytes(),
    )
    .unwrap();
    drop(child.stdin.take());
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read_to_string(&env_file).unwrap(),
        "export CONCUR_SESSION=8c35adc1\n"
    );
}

#[test]
fn install_twice_is_install_once_and_keeps_unknown_keys() {
    let t = TestEnv::new();
    let s = t.path("settings.json");
    put(
        &s,
        r#"{"model": "opus", "permissions": {"deny": ["Edit(//x)"]},
  "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "./mine.sh"}]}]},
  "zzz": [1, 2]}"#,
    );
    let sp = s.to_str().unwrap();
    let dry = t.run([
        "hook",
        "install",
        "--agent",
        "claude",
        "--settings",
        sp,
        "--dry-run",
    ]);
    assert_code(&dry, 0);
    assert!(stdout(&dry).contains("+ "), "{}", stdout(&dry));
    assert!(stdout(&dry).contains("hook claude"));
    assert!(
        !t.path("settings.json.bak").exists(),
        "dry run writes nothing"
    );
    assert_code(
        &t.run(["hook", "install", "--agent", "claude", "--settings", sp]),
        0,
    );
    let once = std::fs::read_to_string(&s).unwrap();
    let o = t.run(["hook", "install", "--agent", "claude", "--settings", sp]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("already installed"));
    assert_eq!(std::fs::read_to_string(&s).unwrap(), once, "twice = once");
    let v: Value = serde_json::from_str(&once).unwrap();
    assert_eq!(v["model"], "opus");
    assert_eq!(v["permissions"]["deny"][0], "Edit(//x)");
    assert_eq!(v["zzz"], json!([1, 2]));
    let pre = v["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(pre.len(), 2);
    assert_eq!(pre[0]["hooks"][0]["command"], "./mine.sh");
    assert_eq!(pre[1]["matcher"], "Write|Edit|MultiEdit|NotebookEdit|Bash");
    let cmd = pre[1]["hooks"][0]["command"].as_str().unwrap();
    assert!(
        cmd.starts_with(&format!("c={}; ", bin().display())) && cmd.contains("hook claude"),
        "{cmd}"
    );
    assert_eq!(v["hooks"]["SessionStart"][0]["hooks"][0]["command"], cmd);
    assert_eq!(v["hooks"]["SessionEnd"][0]["hooks"][0]["command"], cmd);
    assert!(t.path("settings.json.bak").exists(), "backup kept");
}

#[test]
fn session_start_names_other_live_sessions_and_their_leases_and_end_releases() {
    let t = TestEnv::new();
    let cwd = t.dir.path().to_str().unwrap().to_owned();
    let ev = |id: &str, event: &str| json!({"session_id": id, "transcript_path": "/t", "cwd": cwd, "hook_event_name": event});
    // The registered agent is the hook's parent: this (live) test process.
    let o = hook(&t, "claude", &ev("sess-a", "SessionStart"));
    assert_allowed(&o);
    assert_code(
        &t.run(["--session", "sess-a", "lease", "acquire", "build:web"]),
        0,
    );
    let o = hook(&t, "claude", &ev("sess-b", "SessionStart"));
    let v = deny_json(&o);
    let ctx = v["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap();
    assert_eq!(v["hookSpecificOutput"]["hookEventName"], "SessionStart");
    assert!(ctx.contains("sess-a") && ctx.contains("build:web"), "{ctx}");
    assert!(!ctx.contains("sess-b"), "{ctx}");
    assert_allowed(&hook(&t, "claude", &ev("sess-a", "SessionEnd")));
    let o = t.run(["lease", "list", "--json"]);
    assert!(
        !stdout(&o).contains("sess-a"),
        "lease released: {}",
        stdout(&o)
    );
    let o = hook(&t, "claude", &ev("sess-c", "SessionStart"));
    let v = deny_json(&o);
    let ctx = v["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap();
    assert!(!ctx.contains("sess-a") && ctx.contains("sess-b"), "{ctx}");
}
