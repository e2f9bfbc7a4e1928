//! `concur hook plugin DIR`: concur's Claude Code hooks packaged as a plugin, for users who
//! load plugins (`claude --plugin-dir DIR`, or a marketplace) rather than merge settings.
//!
//! The plugin is `DIR/.claude-plugin/plugin.json` (its manifest), `DIR/hooks/hooks.json` (the
//! same events and matchers `hook install --agent claude` merges) and `DIR/hooks/concur-hook`
//! (the fail-closed wrapper around the concur binary, see [`super::install::hook_command`]),
//! which the hooks run as `sh "${CLAUDE_PLUGIN_ROOT}/hooks/concur-hook"`: Claude Code sets
//! `CLAUDE_PLUGIN_ROOT` to wherever the plugin was installed or copied.

use std::path::{Path, PathBuf};

use super::Agent;
use super::install::{entry, hook_command, specs, write_file};
use crate::error::{Error, Result};

/// The command line the plugin's hooks run.
pub const PLUGIN_COMMAND: &str = "sh \"${CLAUDE_PLUGIN_ROOT}/hooks/concur-hook\"";

/// Writes the plugin into `dir` (created) for the concur at `binary`; returns the files.
///
/// # Errors
/// [`Error::Io`] when a directory or file cannot be written.
pub fn write(dir: &Path, binary: &Path) -> Result<Vec<PathBuf>> {
    let manifest_dir = dir.join(".claude-plugin");
    let hooks_dir = dir.join("hooks");
    for d in [&manifest_dir, &hooks_dir] {
        std::fs::create_dir_all(d).map_err(Error::with("cannot create", d))?;
    }
    let manifest = serde_json::json!({
        "name": "concur",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "concur's hooks: refuse edits and shell writes to files another live \
            session reserved or [guard] protects, register the session, name the others",
    });
    let mut hooks = serde_json::Map::new();
    for s in specs(Agent::Claude) {
        hooks.insert(
            s.event.to_owned(),
            serde_json::json!([entry(Agent::Claude, s, PLUGIN_COMMAND)]),
        );
    }
    let hooks = serde_json::json!({
        "description": "concur: edit reservations, write guard, sessions",
        "hooks": hooks,
    });
    let script = format!("#!/bin/sh\n{}\n", hook_command(binary, Agent::Claude));
    let files = [
        (manifest_dir.join("plugin.json"), pretty(&manifest)),
        (hooks_dir.join("hooks.json"), pretty(&hooks)),
        (hooks_dir.join("concur-hook"), script),
    ];
    for (p, text) in &files {
        write_file(p, text.as_bytes())?;
    }
    let script = &files[2].0;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755))
            .map_err(Error::with("cannot chmod", script))?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("JSON serialises");
    s.push('\n');
    s
}
