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
