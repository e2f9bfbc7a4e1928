//! Gemini CLI (`@google/gemini-cli`), headless: `gemini -p … --yolo --skip-trust`, its model at
//! `GOOGLE_GEMINI_BASE_URL` with a dummy `GEMINI_API_KEY` (API-key auth chosen in its settings).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::{Agent, Lab, put_file};

pub struct Gemini;

impl Agent for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn install(&self) -> (&'static str, &'static str) {
        ("gemini-cli-0.61.0", "gemini")
    }

    fn prepare(&self, lab: &Lab) {
        let s = self.settings(lab);
        std::fs::create_dir_all(s.parent().unwrap()).unwrap();
        let auth = json!({"security": {"auth": {"selectedType": "gemini-api-key"}}});
        put_file(&s, &auth.to_string());
    }

    fn settings(&self, lab: &Lab) -> PathBuf {
        lab.agent_home.join(".gemini/settings.json")
    }

    fn command(&self, lab: &Lab, url: &str) -> Command {
        let mut c = lab.env_cmd(&lab.cli);
        c.args(["-p", "follow the script", "--yolo", "--skip-trust"])
            .env("GOOGLE_GEMINI_BASE_URL", url)
            .env("GEMINI_API_KEY", "scripted");
        c
    }

    fn edit(&self, path: &Path, old: &str, new: &str) -> Value {
        json!({"name": "replace", "input": {"file_path": path, "old_string": old,
                                            "new_string": new, "instruction": "scripted"}})
    }

    fn write(&self, path: &Path, content: &str) -> Value {
        json!({"name": "write_file", "input": {"file_path": path, "content": content}})
    }

    fn shell(&self, command: &str) -> Value {
        json!({"name": "run_shell_command", "input": {"command": command}})
    }

    fn read(&self, path: &Path) -> Value {
        json!({"name": "read_file", "input": {"file_path": path}})
    }

    fn prime(&self, _path: &Path) -> Option<Value> {
        None
    }
}

/// The server in the user's `settings.json`, next to the auth `prepare` wrote; `--yolo` runs its
/// tools unasked. Gemini CLI calls MCP tools `mcp_<server>_<tool>`.
impl super::browser::Mcp for Gemini {
    fn mcp_server(&self, lab: &Lab, name: &str, argv: &[String]) {
        let file = self.settings(lab);
        let mut settings: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        settings["mcpServers"] = json!({ name: {"command": argv[0], "args": argv[1..]} });
        put_file(&file, &settings.to_string());
    }

    fn mcp_call(&self, server: &str, tool: &str, input: Value) -> Value {
        json!({"name": format!("mcp_{server}_{tool}"), "input": input})
    }
}

super::agent_tests!(Gemini, gemini_two_sessions, gemini_fails_closed);

#[test]
fn gemini_isolated_mcp_browser() {
    if let Some(bin) = super::cli(&Gemini) {
        super::browser::singleton_mcp(&Gemini, &bin);
    }
}
