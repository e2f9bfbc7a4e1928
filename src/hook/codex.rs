//! What Codex CLI needs beyond its `hooks.json` before it runs concur's hooks, written into its
//! `config.toml` by `concur hook install --agent codex` (facts read from Codex 0.169):
//!
//! - **Hooks on.** `[features] hooks = true` (the default in 0.169; written so an older
//!   default or a profile cannot leave them off).
//! - **Trust.** Codex runs a user hook only when `config.toml` records its hash:
//!   `[hooks.state."<hooks.json path>:<event>:<group>:<handler>"] trusted_hash = "sha256:…"`,
//!   the hash being SHA-256 of the compact, key-sorted JSON of
//!   `{"event_name": <event, snake_case>, "matcher": <matcher, absent when none>,
//!   "hooks": [{"type": "command", "command": …, "timeout": …, "async": false}]}`.
//!   `codex exec` skips an untrusted hook without a word, so an install without this protects
//!   nothing.
//! - **A writable concur home.** Under `-s workspace-write` the shell tool may write only the
//!   workspace and `[sandbox_workspace_write] writable_roots`: the concur home is added there,
//!   or `concur reserve` in the shell tool fails (exit 77).
//!
//! The hook command itself is an absolute path (see [`super::install::hook_command`]), so the
//! `PATH` of Codex's login shell does not matter.

use std::path::{Path, PathBuf};

use sha2::Digest;

use super::install::{Installed, Uninstalled, line_diff};
use crate::error::{Error, Result};

/// One of concur's handlers in a Codex `hooks.json`, and its trust entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    /// The `hooks.state` key: `<hooks.json>:<event>:<group index>:<handler index>`.
    pub key: String,
    /// The `trusted_hash` Codex compares against.
    pub hash: String,
}

/// `PreToolUse` → `pre_tool_use`.
fn snake(event: &str) -> String {
    let mut out = String::new();
    for (i, c) in event.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The hash Codex records to trust a command hook.
pub fn trust_hash(event: &str, matcher: Option<&str>, command: &str, timeout: u64) -> String {
    // Keys written in sorted order: the canonical form, whether or not serde_json keeps order.
    let mut identity = serde_json::json!({
        "event_name": snake(event),
        "hooks": [{"async": false, "command": command, "timeout": timeout, "type": "command"}],
    });
    if let Some(m) = matcher {
        identity["matcher"] = serde_json::json!(m);
    }
    let digest = sha2::Sha256::digest(identity.to_string().as_bytes());
    format!("sha256:{}", crate::hex::encode(&digest))
}

/// concur's handlers (`command`, or an older concur command line: see
/// [`super::install::is_ours`]) in the Codex hooks file `hooks_json` (its parsed `value`), with
/// their trust keys and hashes.
pub fn trusted(hooks_json: &Path, value: &serde_json::Value, command: &str) -> Vec<Trusted> {
    let mut out = Vec::new();
    let Some(events) = value["hooks"].as_object() else {
        return out;
    };
    for (event, groups) in events {
        for (gi, group) in groups.as_array().into_iter().flatten().enumerate() {
            for (hi, h) in group["hooks"].as_array().into_iter().flatten().enumerate() {
                let Some(line) = h["command"].as_str() else {
                    continue;
                };
                if !super::install::is_ours(line, super::Agent::Codex, command) {
                    continue;
                }
                let timeout = h["timeout"].as_u64().unwrap_or(600).max(1);
                out.push(Trusted {
                    key: format!("{}:{}:{gi}:{hi}", hooks_json.display(), snake(event)),
                    hash: trust_hash(event, group["matcher"].as_str(), line, timeout),
                });
            }
        }
    }
    out
}

/// Writes what Codex needs into `config` (see the module docs) for concur's handlers in
/// `hooks_json` (its content `hooks`, as installed): hooks on, their trust, `writable` among the sandbox's
/// writable roots. Keeps everything else, comments and layout included. With `dry_run`,
/// writes nothing.
///
/// # Errors
/// [`Error::Invalid`] when `config.toml` or `hooks.json` does not parse; [`Error::Io`].
pub fn configure(
    config: &Path,
    hooks_json: &Path,
    hooks: &str,
    command: &str,
    writable: &Path,
    dry_run: bool,
) -> Result<Installed> {
    let before = super::install::read_opt(config)?;
    let mut doc = parse(config, before.as_deref().unwrap_or(""))?;
    let hooks: serde_json::Value = serde_json::from_str(hooks)
        .map_err(|e| Error::Invalid(format!("{} is not JSON: {e}", hooks_json.display())))?;
    let root = doc.as_table_mut();
    let features = table(root, "features", false)?;
    if features.get("hooks").and_then(toml_edit::Item::as_bool) != Some(true) {
        features.insert("hooks", toml_edit::value(true));
    }
    for t in trusted(hooks_json, &hooks, command) {
        let state = table(table(root, "hooks", true)?, "state", true)?;
        let entry = table(state, &t.key, false)?;
        if entry.get("trusted_hash").and_then(toml_edit::Item::as_str) != Some(t.hash.as_str()) {
            entry.insert("trusted_hash", toml_edit::value(t.hash));
        }
    }
    let sandbox = table(root, "sandbox_workspace_write", false)?;
    let dir = writable.to_string_lossy().into_owned();
    if let Some(a) = sandbox
        .get_mut("writable_roots")
        .and_then(toml_edit::Item::as_array_mut)
    {
        if !a.iter().any(|v| v.as_str() == Some(dir.as_str())) {
            a.push(dir);
        }
    } else {
        let mut a = toml_edit::Array::new();
        a.push(dir);
        sandbox.insert("writable_roots", toml_edit::value(a));
    }
    let after = doc.to_string();
    let old = before.as_deref().unwrap_or("");
    let changed = after != old || before.is_none();
    let diff = if changed {
        line_diff(old, &after)
    } else {
        String::new()
    };
    if changed && !dry_run {
        super::install::write_recorded(config, before.as_deref(), &after)?;
    }
    Ok(Installed {
        settings: config.to_path_buf(),
        changed,
        backup: None,
        diff,
        after,
    })
}

/// Takes concur's trust entries out of `config` (those of the handlers running `command` in
/// `hooks_json`, read before it is uninstalled); restores the file byte for byte when nothing
/// else changed it since the install. The `features` flag and the writable root stay when
/// other changes were made (they protect nothing and harm nothing).
///
/// # Errors
/// As [`configure`].
pub fn unconfigure(config: &Path, hooks_json: &Path, command: &str) -> Result<Uninstalled> {
    if let Some(u) = super::install::restore(config)? {
        return Ok(u);
    }
    let Some(before) = super::install::read_opt(config)? else {
        return Ok(Uninstalled {
            file: config.to_path_buf(),
            changed: false,
            restored: false,
        });
    };
    let mut doc = parse(config, &before)?;
    let hooks = read_hooks(hooks_json)?;
    if let Some(state) = doc
        .get_mut("hooks")
        .and_then(|h| h.get_mut("state"))
        .and_then(toml_edit::Item::as_table_like_mut)
    {
        for t in trusted(hooks_json, &hooks, command) {
            state.remove(&t.key);
        }
    }
    let after = doc.to_string();
    let changed = after != before;
    if changed {
        super::install::write_file(config, after.as_bytes())?;
    }
    super::install::remove_record(config)?;
    Ok(Uninstalled {
        file: config.to_path_buf(),
        changed,
        restored: false,
    })
}

/// The table `key` of `t`, created when missing (implicit: no header of its own unless it
/// gets keys), converted when it is an inline table.
fn table<'a>(
    t: &'a mut toml_edit::Table,
    key: &str,
    implicit: bool,
) -> Result<&'a mut toml_edit::Table> {
    let item = t.entry(key).or_insert_with(|| {
        let mut n = toml_edit::Table::new();
        n.set_implicit(implicit);
        toml_edit::Item::Table(n)
    });
    if let Some(inline) = item.as_inline_table() {
        *item = toml_edit::Item::Table(inline.clone().into_table());
    }
    item.as_table_mut()
        .ok_or_else(|| Error::Invalid(format!("`{key}` in Codex's config.toml is not a table")))
}

fn parse(config: &Path, text: &str) -> Result<toml_edit::DocumentMut> {
    text.parse::<toml_edit::DocumentMut>().map_err(|e| {
        Error::Invalid(format!(
            "{} is not valid TOML: {}",
            config.display(),
            e.to_string().lines().next().unwrap_or("")
        ))
    })
}

fn read_hooks(hooks_json: &Path) -> Result<serde_json::Value> {
    match super::install::read_opt(hooks_json)? {
        None => Ok(serde_json::Value::Null),
        Some(t) => serde_json::from_str(&t)
            .map_err(|e| Error::Invalid(format!("{} is not JSON: {e}", hooks_json.display()))),
    }
}

/// Codex's user config: `$CODEX_HOME/config.toml` (default `~/.codex/config.toml`).
///
/// # Errors
/// As [`super::install::codex_home`].
pub fn config_path() -> Result<PathBuf> {
    Ok(super::install::codex_home()?.join("config.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hashes Codex 0.169's app-server (`hooks/list`, `currentHash`) reported for these two
    /// handlers in a `hooks.json`.
    #[test]
    fn the_trust_hash_is_the_one_codex_computes() {
        assert_eq!(
            trust_hash(
                "PreToolUse",
                Some("Bash|apply_patch"),
                "/usr/bin/true x",
                10
            ),
            "sha256:6fc58c07f4a093cd9bfe17f36a970ecf1bde78d32cde9fc5ec512229ab90f90c"
        );
        assert_eq!(
            trust_hash("SessionStart", None, "/usr/bin/true x", 10),
            "sha256:579dae662418b8dac249cb56ef1a43e67dfff4539700c9b99691346f498c8c1f"
        );
        assert_eq!(snake("PreToolUse"), "pre_tool_use");
    }
}
