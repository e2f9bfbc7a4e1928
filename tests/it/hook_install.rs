//! `concur hook install|uninstall|doctor|plugin` as a user runs them (default settings paths
//! under `$HOME`), the installed command run the way each agent runs hooks, and the exact answer
//! of each agent's dialect.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::util::*;

/// A test env with its own `$HOME` and `$CODEX_HOME` (so the default paths land inside it).
struct Env {
    t: TestEnv,
    home: PathBuf,
}

impl Env {
    fn new() -> Env {
        let t = TestEnv::new();
        let home = t.path("user");
        std::fs::create_dir(&home).unwrap();
        Env { t, home }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.t.cmd(args);
        c.env("HOME", &self.home)
            .env("CODEX_HOME", self.home.join(".codex"));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn settings(&self, agent: &str) -> PathBuf {
        self.home.join(match agent {
            "claude" => ".claude/settings.json",
            "codex" => ".codex/hooks.json",
            "gemini" => ".gemini/settings.json",
            _ => ".cursor/hooks.json",
        })
    }
}

fn put(p: &Path, text: &str) {
    use std::io::Write;
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::File::create(p)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap();
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The command lines concur installed for `event` (nested groups or Cursor's flat list).
fn commands(v: &Value, event: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for e in v["hooks"][event].as_array().into_iter().flatten() {
        let m = e["matcher"].as_str().map(str::to_owned);
        if let Some(c) = e["command"].as_str() {
            out.push((m.clone(), c.to_owned()));
        }
        for h in e["hooks"].as_array().into_iter().flatten() {
            out.push((m.clone(), h["command"].as_str().unwrap().to_owned()));
        }
    }
    out
}

/// Runs `command` the way the agent does (`sh -c` / `bash -c`), `payload` on stdin.
fn run_hook(shell: &str, command: &str, payload: &Value, home: &Path) -> Output {
    run_hook_env(shell, command, payload, home, &[])
}

fn run_hook_env(
    shell: &str,
    command: &str,
    payload: &Value,
    home: &Path,
    env: &[(&str, &Path)],
) -> Output {
    let mut c = Command::new(shell);
    for v in concur::id::ENV_VARS {
        c.env_remove(v);
    }
    c.args(["-c", command])
        .envs(env.iter().copied())
        .env("CONCUR_HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let _ = std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        payload.to_string().as_bytes(),
    );
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

#[test]
fn every_agent_gets_its_shell_tool_covered_and_doctor_passes() {
    let e = Env::new();
    let want = [
        (
            "claude",
            "PreToolUse",
            "Write|Edit|MultiEdit|NotebookEdit|Bash",
        ),
        ("codex", "PreToolUse", "Edit|Write|apply_patch|Bash"),
        (
            "gemini",
            "BeforeTool",
            "write_file|replace|edit|run_shell_command",
        ),
    ];
    for agent in ["claude", "codex", "gemini", "cursor"] {
        let o = e.run(&["hook", "install", "--agent", agent]);
        assert_code(&o, 0);
        assert!(e.settings(agent).exists(), "{agent}: default path");
    }
    for (agent, event, matcher) in want {
        let v = read_json(&e.settings(agent));
        let (m, c) = &commands(&v, event)[0];
        assert_eq!(m.as_deref(), Some(matcher), "{agent}");
        assert!(c.contains(&format!("hook {agent}")), "{c}");
        assert!(c.contains(&bin().display().to_string()), "absolute: {c}");
    }
    let cursor = read_json(&e.settings("cursor"));
    for event in ["preToolUse", "beforeShellExecution", "sessionStart"] {
        assert_eq!(commands(&cursor, event).len(), 1, "cursor {event}");
    }
    let o = e.run(&["hook", "doctor", "--json"]);
    assert_code(&o, 0);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["healthy"], true, "{v}");
    assert_eq!(v["agents"].as_array().unwrap().len(), 4);
    for a in v["agents"].as_array().unwrap() {
        let names: Vec<&str> = a["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"agent-pid") && names.contains(&"fails-closed"),
            "{a}"
        );
    }
}

#[test]
fn uninstall_puts_back_the_exact_bytes_and_otherwise_only_removes_concurs_entries() {
    let e = Env::new();
    let s = e.settings("claude");
    let original = "{ \"model\":\"opus\",\n\t\"hooks\": {\"PreToolUse\": [{\"matcher\": \"Bash\", \"hooks\": [{\"type\": \"command\", \"command\": \"./mine.sh\"}]}]} }\n";
    put(&s, original);
    assert_code(&e.run(&["hook", "install", "--agent", "claude"]), 0);
    assert_ne!(std::fs::read_to_string(&s).unwrap(), original);
    let o = e.run(&["hook", "uninstall", "--agent", "claude"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("restored"), "{}", stdout(&o));
    assert_eq!(
        std::fs::read_to_string(&s).unwrap(),
        original,
        "byte for byte"
    );
    // A file concur created is removed again.
    assert_code(&e.run(&["hook", "install", "--agent", "gemini"]), 0);
    assert_code(&e.run(&["hook", "uninstall", "--agent", "gemini"]), 0);
    assert!(!e.settings("gemini").exists());
    // Changed by someone else since: only concur's entries go, the change stays.
    assert_code(&e.run(&["hook", "install", "--agent", "claude"]), 0);
    let mut v = read_json(&s);
    v["theme"] = json!("dark");
    put(&s, &v.to_string());
    let o = e.run(&["hook", "uninstall", "--agent", "claude"]);
    assert_code(&o, 0);
    let v = read_json(&s);
    assert_eq!(v["theme"], "dark");
    assert_eq!(v["model"], "opus");
    assert_eq!(
        commands(&v, "PreToolUse"),
        vec![(Some("Bash".to_owned()), "./mine.sh".to_owned())]
    );
    assert!(v["hooks"].get("SessionStart").is_none(), "{v}");
}

#[test]
fn the_installed_command_refuses_when_concur_is_gone() {
    let e = Env::new();
    // A link to concur the hooks point at, then deleted.
    let copy = e.t.path("bin/concur");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(bin(), &copy).unwrap();
    let b = copy.to_str().unwrap();
    for agent in ["claude", "codex", "gemini", "cursor"] {
        let o = e.run(&["hook", "install", "--agent", agent, "--binary", b]);
        assert_code(&o, 0);
    }
    let pre = json!({"session_id": "s", "hook_event_name": "PreToolUse", "tool_name": "Write",
                     "tool_input": {"file_path": "/tmp/x"}, "cwd": "/tmp"});
    let claude = commands(&read_json(&e.settings("claude")), "PreToolUse")[0]
        .1
        .clone();
    let o = run_hook("sh", &claude, &pre, &e.t.home);
    assert_code(&o, 0);
    std::fs::remove_file(&copy).unwrap();
    for (agent, event, shell) in [
        ("claude", "PreToolUse", "sh"),
        ("codex", "PreToolUse", "bash"),
        ("gemini", "BeforeTool", "bash"),
        ("cursor", "preToolUse", "sh"),
    ] {
        let cmd = commands(&read_json(&e.settings(agent)), event)[0].1.clone();
        let o = run_hook(shell, &cmd, &pre, &e.t.home);
        assert_code(&o, 2);
        assert!(
            stderr(&o).contains("missing or not executable"),
            "{agent}: {}",
            stderr(&o)
        );
    }
    let o = e.run(&["hook", "doctor", "--agent", "claude"]);
    assert_code(&o, 3);
    assert!(stdout(&o).contains("FAIL binary"), "{}", stdout(&o));
    // A bare `concur hook claude` not on PATH exits 127, which agents let through: doctor says.
    let bare = e.t.path("bare.json");
    let o = e.run(&[
        "hook",
        "install",
        "--agent",
        "claude",
        "--settings",
        bare.to_str().unwrap(),
        "--command",
        &format!("{} hook claude", bin().display()),
    ]);
    assert_code(&o, 0);
    let o = e.run(&[
        "hook",
        "doctor",
        "--agent",
        "claude",
        "--settings",
        bare.to_str().unwrap(),
    ]);
    assert!(stdout(&o).contains("FAIL fails-closed"), "{}", stdout(&o));
}

#[test]
fn codex_config_gets_hooks_on_trust_and_a_writable_concur_home_and_keeps_the_rest() {
    let e = Env::new();
    let config = e.home.join(".codex/config.toml");
    let original = "# my settings\nmodel = \"o3\"\n\n[sandbox_workspace_write]\nwritable_roots = [\"/srv\"] # kept\n";
    put(&config, original);
    assert_code(&e.run(&["hook", "install", "--agent", "codex"]), 0);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.starts_with("# my settings\nmodel = \"o3\"\n"),
        "{text}"
    );
    let doc: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(doc["features"]["hooks"].as_bool(), Some(true));
    let hooks = e.settings("codex");
    let state = doc["hooks"]["state"].as_table().unwrap();
    for key in ["pre_tool_use:0:0", "session_start:0:0"] {
        let k = format!("{}:{key}", hooks.display());
        let h = state[&k]["trusted_hash"].as_str().unwrap();
        assert!(h.starts_with("sha256:") && h.len() == 71, "{k}: {h}");
    }
    let roots: Vec<&str> = doc["sandbox_workspace_write"]["writable_roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(roots, vec!["/srv", e.t.home.to_str().unwrap()]);
    // Installing again changes nothing.
    let o = e.run(&["hook", "install", "--agent", "codex"]);
    assert!(stdout(&o).contains("already installed"), "{}", stdout(&o));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
    assert_code(&e.run(&["hook", "uninstall", "--agent", "codex"]), 0);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
    assert!(!hooks.exists());
}

#[test]
fn cursor_running_claudes_hooks_gets_silence_and_the_cursor_hook_decides() {
    let t = TestEnv::new();
    let dir = std::fs::canonicalize(t.dir.path()).unwrap();
    put(&dir.join("a.txt"), "a");
    let o = t.run(["--session", "holder", "reserve", "a.txt"]);
    assert_code(&o, 0);
    let file = dir.join("a.txt");
    let payload = json!({"conversation_id": "cur-1", "generation_id": "g", "cursor_version": "1.7",
        "workspace_roots": [dir], "hook_event_name": "preToolUse", "tool_name": "Write",
        "tool_input": {"file_path": file}});
    let o = t.run_stdin(["hook", "claude"], payload.to_string().as_bytes());
    assert_code(&o, 0);
    assert!(
        o.stdout.is_empty() && o.stderr.is_empty(),
        "silent: {}",
        stdout(&o)
    );
    let o = t.run_stdin(["hook", "cursor"], payload.to_string().as_bytes());
    assert_code(&o, 0);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["permission"], "deny", "{v}");
}

#[test]
fn each_dialect_answers_a_shell_write_to_a_reserved_file_exactly() {
    let t = TestEnv::new();
    let dir = std::fs::canonicalize(t.dir.path()).unwrap();
    put(&dir.join("a.txt"), "a");
    assert_code(&t.run(["--session", "holder", "reserve", "a.txt"]), 0);
    let cmd = "echo x > a.txt";
    let cases = [
        (
            "claude",
            json!({"session_id": "other", "hook_event_name": "PreToolUse", "tool_name": "Bash",
                   "tool_input": {"command": cmd}, "cwd": dir}),
        ),
        (
            "codex",
            json!({"session_id": "other", "turn_id": "t", "hook_event_name": "PreToolUse",
                   "tool_name": "Bash", "tool_input": {"command": cmd}, "cwd": dir}),
        ),
        (
            "gemini",
            json!({"session_id": "other", "hook_event_name": "BeforeTool",
                   "tool_name": "run_shell_command", "tool_input": {"command": cmd}, "cwd": dir}),
        ),
        (
            "cursor",
            json!({"conversation_id": "other", "hook_event_name": "beforeShellExecution",
                   "command": cmd, "cwd": dir, "workspace_roots": [dir]}),
        ),
    ];
    for (agent, payload) in &cases {
        let o = t.run_stdin(["hook", agent], payload.to_string().as_bytes());
        assert_code(&o, 0);
        let v: Value = serde_json::from_str(stdout(&o).trim())
            .unwrap_or_else(|e| panic!("{agent}: {e}: {}", stdout(&o)));
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        match *agent {
            "claude" | "codex" => {
                assert_eq!(keys, ["hookSpecificOutput"], "{agent}");
                let h = &v["hookSpecificOutput"];
                assert_eq!(h["hookEventName"], "PreToolUse");
                assert_eq!(h["permissionDecision"], "deny");
                assert!(
                    h["permissionDecisionReason"]
                        .as_str()
                        .unwrap()
                        .contains("a.txt")
                );
                assert_eq!(h.as_object().unwrap().len(), 3, "{agent}: {h}");
            }
            "gemini" => {
                assert_eq!(v["decision"], "deny");
                assert!(v["reason"].as_str().unwrap().contains("a.txt"));
                assert_eq!(keys.len(), 2, "{v}");
            }
            _ => {
                assert_eq!(v["permission"], "deny");
                assert!(v["agent_message"].as_str().unwrap().contains("a.txt"));
            }
        }
        // The holder itself, and a read, are allowed in silence: Codex never sees an `allow`.
        let mut own = payload.clone();
        own["session_id"] = json!("holder");
        own["conversation_id"] = json!("holder");
        let o = t.run_stdin(["hook", agent], own.to_string().as_bytes());
        assert_code(&o, 0);
        assert!(o.stdout.is_empty(), "{agent}: {}", stdout(&o));
    }
}

#[test]
fn the_plugin_runs_the_same_hooks_from_its_root_and_fails_closed() {
    let e = Env::new();
    let copy = e.t.path("bin/concur");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(bin(), &copy).unwrap();
    let dir = e.t.path("plugin");
    let o = e.run(&[
        "hook",
        "plugin",
        dir.to_str().unwrap(),
        "--binary",
        copy.to_str().unwrap(),
    ]);
    assert_code(&o, 0);
    let manifest = read_json(&dir.join(".claude-plugin/plugin.json"));
    assert_eq!(manifest["name"], "concur");
    let hooks = read_json(&dir.join("hooks/hooks.json"));
    let (m, c) = &commands(&hooks, "PreToolUse")[0];
    assert_eq!(m.as_deref(), Some("Write|Edit|MultiEdit|NotebookEdit|Bash"));
    assert!(c.contains("${CLAUDE_PLUGIN_ROOT}"), "{c}");
    assert_eq!(commands(&hooks, "SessionStart").len(), 1);
    // Claude Code substitutes the plugin root in the environment; run it the same way.
    let start = json!({"session_id": "plug", "hook_event_name": "SessionStart",
                       "cwd": e.t.dir.path()});
    let root = [("CLAUDE_PLUGIN_ROOT", dir.as_path())];
    let o = run_hook_env("sh", c, &start, &e.t.home, &root);
    assert_code(&o, 0);
    let o = e.t.run(["session", "list", "--json"]);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["sessions"][0]["id"], "plug");
    assert_eq!(v["sessions"][0]["pid"], std::process::id());
    std::fs::remove_file(&copy).unwrap();
    let pre = json!({"session_id": "plug", "hook_event_name": "PreToolUse", "tool_name": "Write",
                     "tool_input": {"file_path": "/tmp/x"}, "cwd": "/tmp"});
    assert_code(&run_hook_env("sh", c, &pre, &e.t.home, &root), 2);
}

#[test]
fn project_settings_go_to_the_git_root_and_dry_run_writes_nothing() {
    let e = Env::new();
    let repo = e.t.path("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::create_dir_all(repo.join("src/deep")).unwrap();
    let o = e
        .cmd(&[
            "hook",
            "install",
            "--agent",
            "codex",
            "--project",
            "--dry-run",
        ])
        .current_dir(repo.join("src/deep"))
        .output()
        .unwrap();
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains(&format!("--- {}", repo.join(".codex/hooks.json").display())),
        "{out}"
    );
    assert!(
        out.contains("trusted_hash") && out.contains("writable_roots"),
        "{out}"
    );
    assert!(!repo.join(".codex").exists() && !e.home.join(".codex").exists());
    let o = e
        .cmd(&["hook", "install", "--agent", "cursor", "--project"])
        .current_dir(repo.join("src/deep"))
        .output()
        .unwrap();
    assert_code(&o, 0);
    let v = read_json(&repo.join(".cursor/hooks.json"));
    assert_eq!(v["version"], 1);
    assert!(!e.settings("cursor").exists(), "user level untouched");
}
