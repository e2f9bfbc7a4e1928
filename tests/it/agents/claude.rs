//! Claude Code (`@anthropic-ai/claude-code`), headless: `claude -p`, its model at
//! `ANTHROPIC_BASE_URL`, edits accepted by `--permission-mode acceptEdits` and the tools the
//! script uses allowed by `--allowedTools` (`bypassPermissions` is refused as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::{Agent, Lab};

pub struct Claude;

impl Agent for Claude {
    fn name(&self) -> &'static str {
        "claude"
    }

    fn install(&self) -> (&'static str, &'static str) {
        ("claude-code-2.1.328", "claude")
    }

    fn prepare(&self, _lab: &Lab) {}

    fn settings(&self, lab: &Lab) -> PathBuf {
        lab.agent_home.join(".claude/settings.json")
    }

    fn command(&self, lab: &Lab, url: &str) -> Command {
        let mut c = lab.env_cmd(&lab.cli);
        c.args(["-p", "follow the script"])
            .args(["--permission-mode", "acceptEdits"])
            .args(["--allowedTools", "Bash,Read,Write,Edit"])
            .env("ANTHROPIC_BASE_URL", url)
            .env("ANTHROPIC_API_KEY", "scripted")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
        c
    }

    fn edit(&self, path: &Path, old: &str, new: &str) -> Value {
        json!({"name": "Edit", "input": {"file_path": path, "old_string": old, "new_string": new}})
    }

    fn write(&self, path: &Path, content: &str) -> Value {
        json!({"name": "Write", "input": {"file_path": path, "content": content}})
    }

    fn shell(&self, command: &str) -> Value {
        json!({"name": "Bash", "input": {"command": command, "description": "scripted"}})
    }

    fn read(&self, path: &Path) -> Value {
        json!({"name": "Read", "input": {"file_path": path}})
    }

    fn prime(&self, path: &Path) -> Option<Value> {
        Some(self.read(path))
    }
}

/// The checkout's `.mcp.json`, as docs/isolate.md shows it (`claude -p` starts a project's
/// servers unasked), the server's tools allowed in the user's settings (a headless run cannot
/// ask).
impl super::browser::Mcp for Claude {
    fn mcp_server(&self, lab: &Lab, name: &str, argv: &[String]) {
        let server = json!({"type": "stdio", "command": argv[0], "args": argv[1..]});
        let config = json!({ "mcpServers": { name: server } });
        super::put_file(&lab.repo.join(".mcp.json"), &config.to_string());
        let settings = json!({ "permissions": { "allow": [format!("mcp__{name}")] } });
        let file = self.settings(lab);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        super::put_file(&file, &settings.to_string());
    }

    fn mcp_call(&self, server: &str, tool: &str, input: Value) -> Value {
        json!({"name": format!("mcp__{server}__{tool}"), "input": input})
    }
}

super::agent_tests!(Claude, claude_two_sessions, claude_fails_closed);

#[test]
fn claude_isolated_mcp_browser() {
    if let Some(bin) = super::cli(&Claude) {
        super::browser::singleton_mcp(&Claude, &bin);
    }
}

/// Claude Code's post-tool hooks keep the edit record exact (docs/reserve.md), with the real
/// CLI: a successful `Edit` is recorded pending by `PreToolUse` and confirmed by `PostToolUse`
/// under the same `tool_use_id`; an `Edit` whose `old_string` is not in the file is refused by
/// Claude Code before any hook runs, so nothing is recorded for it. (The withdrawal by
/// `PostToolUseFailure` is tested with payloads in `git_guard.rs`: this CLI fails file tools in
/// validation, before the hooks, for every failure the test could cause.)
#[test]
fn claude_post_tool_hooks_confirm_edits() {
    use super::scenario::{Script, calls, hold, text};
    let Some(bin) = super::cli(&Claude) else {
        return;
    };
    let lab = Lab::new(&Claude, bin);
    lab.put("x.txt", "X0\n");
    lab.put("y.txt", "Y0\n");
    lab.install_hooks(&Claude);
    let (x, y) = (lab.file("x.txt"), lab.file("y.txt"));
    let mut s = Script::prime(&Claude, &[x.clone(), y.clone()]);
    s.push(
        "fails",
        calls(vec![Claude.edit(&x, "not in the file", "X1")]),
    )
    .push("works", calls(vec![Claude.edit(&y, "Y0", "Y1")]))
    .push("live", hold("live", text("done")));
    let model = super::model::Model::start(lab.dir.path(), &json!({ "A": s.json() }));
    let run = lab.start(&Claude, &model, "A");
    // Read while the session lives: its SessionEnd forgets the record.
    model.wait("A", "live");
    let mut record = String::new();
    if let Ok(dir) = std::fs::read_dir(lab.home.join("edits")) {
        for e in dir.flatten() {
            record.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    model.release("A", "live");
    let out = run.finish();
    assert!(out.status.success(), "{}", super::show(&out));
    assert_eq!(lab.bytes("x.txt").as_deref(), Some("X0\n"));
    assert_eq!(lab.bytes("y.txt").as_deref(), Some("Y1\n"));
    let ids = |kind: &str| -> Vec<String> {
        record
            .lines()
            .filter_map(|l| l.strip_prefix(kind)?.split_once(' '))
            .filter(|(_, path)| Path::new(path) == y)
            .map(|(id, _)| id.to_owned())
            .collect()
    };
    let pending = ids("? ");
    assert_eq!(pending.len(), 1, "y.txt recorded pending once:\n{record}");
    assert!(pending[0].starts_with("toolu_"), "{record}");
    assert_eq!(ids("+ "), pending, "confirmed by the same call:\n{record}");
    assert_eq!(
        record.lines().count(),
        2,
        "nothing else recorded:\n{record}"
    );
}
