//! Codex CLI (`@openai/codex`), headless: `codex exec --dangerously-bypass-approvals-and-sandbox`,
//! its model a custom `model_providers` entry (`wire_api = "responses"`) whose `base_url` is set
//! per session with `-c`; a `model_catalog_json` describing the scripted model so Codex offers its
//! `apply_patch` (freeform) and `exec_command` tools; `[features] plugins = false` so it makes no
//! start-up calls elsewhere.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::{Agent, Lab, put_file};

/// Hooks run as `concur hook install` left them: no `--dangerously-bypass-hook-trust` (Codex
/// silently skips hooks without persisted trust in `codex exec`; the installer records it).
pub struct Codex;

impl Codex {
    fn dir(lab: &Lab) -> PathBuf {
        lab.agent_home.join(".codex")
    }

    fn patch(body: &str) -> Value {
        json!({"name": "apply_patch", "input": format!("*** Begin Patch\n{body}*** End Patch\n")})
    }
}

/// The scripted model as Codex's catalog describes models (the fields its parser requires).
fn catalog() -> Value {
    json!({"models": [{
        "slug": "scripted",
        "display_name": "scripted",
        "description": "replays a test's script",
        "base_instructions": "Follow the script.",
        "apply_patch_tool_type": "freeform",
        "shell_type": "shell_command",
        "visibility": "list",
        "supported_in_api": true,
        "priority": 1,
        "context_window": 100_000,
        "supported_reasoning_levels": [],
        "default_reasoning_level": "low",
        "input_modalities": ["text"],
        "truncation_policy": {"mode": "tokens", "limit": 10_000},
        "supports_parallel_tool_calls": true,
        "support_verbosity": false,
        "experimental_supported_tools": []
    }]})
}

impl Agent for Codex {
    fn name(&self) -> &'static str {
        "codex"
    }

    fn install(&self) -> (&'static str, &'static str) {
        ("codex-0.169.0", "codex")
    }

    fn prepare(&self, lab: &Lab) {
        let dir = Self::dir(lab);
        std::fs::create_dir_all(&dir).unwrap();
        let cat = dir.join("scripted-models.json");
        put_file(&cat, &catalog().to_string());
        let config = format!(
            "model = \"scripted\"\nmodel_provider = \"scripted\"\nmodel_catalog_json = \"{cat}\"\n\n\
             [model_providers.scripted]\nname = \"scripted\"\nbase_url = \"http://127.0.0.1:9/unset\"\n\
             wire_api = \"responses\"\n\n[features]\nplugins = false\nhooks = true\n\n\
             [projects.\"{repo}\"]\ntrust_level = \"trusted\"\n",
            cat = cat.display(),
            repo = lab.repo.display(),
        );
        put_file(&dir.join("config.toml"), &config);
    }

    fn settings(&self, lab: &Lab) -> PathBuf {
        Self::dir(lab).join("hooks.json")
    }

    fn command(&self, lab: &Lab, url: &str) -> Command {
        let mut c = lab.env_cmd(&lab.cli);
        c.args([
            "exec",
            "--dangerously-bypass-approvals-and-sandbox",
            "--skip-git-repo-check",
        ])
        .arg("-c")
        .arg(format!("model_providers.scripted.base_url=\"{url}/v1\""))
        .arg("follow the script")
        .env("OPENAI_API_KEY", "scripted");
        c
    }

    fn edit(&self, path: &Path, old: &str, new: &str) -> Value {
        Self::patch(&format!(
            "*** Update File: {}\n@@\n-{old}\n+{new}\n",
            path.display()
        ))
    }

    fn write(&self, path: &Path, content: &str) -> Value {
        let lines: String = content.lines().flat_map(|l| ["+", l, "\n"]).collect();
        Self::patch(&format!("*** Add File: {}\n{lines}", path.display()))
    }

    fn shell(&self, command: &str) -> Value {
        json!({"name": "exec_command", "input": {"cmd": command}})
    }

    fn read(&self, path: &Path) -> Value {
        self.shell(&format!("cat {}", path.display()))
    }

    fn prime(&self, _path: &Path) -> Option<Value> {
        None
    }
}

/// A `[mcp_servers.NAME]` table in the user's `config.toml`; Codex offers an MCP server's tools
/// in the namespace `mcp__<server>`. Codex starts MCP servers with a pared-down environment, so the lab's
/// `CONCUR_HOME` is passed on by name (`env_vars`).
impl super::browser::Mcp for Codex {
    fn mcp_server(&self, lab: &Lab, name: &str, argv: &[String]) {
        let file = Self::dir(lab).join("config.toml");
        let mut config = std::fs::read_to_string(&file).unwrap();
        // JSON strings and arrays of them are TOML too
        writeln!(
            config,
            "\n[mcp_servers.{name}]\ncommand = {}\nargs = {}\nenv_vars = [\"CONCUR_HOME\"]",
            json!(argv[0]),
            json!(argv[1..]),
        )
        .unwrap();
        put_file(&file, &config);
    }

    fn mcp_call(&self, server: &str, tool: &str, input: Value) -> Value {
        json!({"namespace": format!("mcp__{server}"), "name": tool, "input": input})
    }

    /// `codex exec` asks its model before its MCP servers have started: a pause in the shell
    /// tool (it paces the agent's next request) until a request offers their tools.
    fn mcp_pending(&self) -> Option<Value> {
        Some(super::scenario::calls([self.shell("sleep 0.1")]))
    }
}

super::agent_tests!(Codex, codex_two_sessions, codex_fails_closed);

#[test]
fn codex_isolated_mcp_browser() {
    if let Some(bin) = super::cli(&Codex) {
        super::browser::singleton_mcp(&Codex, &bin);
    }
}
