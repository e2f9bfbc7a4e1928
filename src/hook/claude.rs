//! The agents' hook dialects: how each names its events, tools and paths, and how each wants a
//! deny spelled. Claude Code is the reference; Codex speaks the same wire format (plus
//! `apply_patch`), Gemini CLI names its events and tools differently, Cursor uses
//! `conversation_id`, `workspace_roots` and camelCase events.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Agent, Event};

/// Claude Code's file-writing tools (Codex's `Edit`/`Write` too).
const CLAUDE_FILE_TOOLS: [&str; 4] = ["Write", "Edit", "MultiEdit", "NotebookEdit"];
/// Gemini CLI's file-writing tools.
const GEMINI_FILE_TOOLS: [&str; 3] = ["write_file", "replace", "edit"];
/// Cursor's file-writing tools.
const CURSOR_FILE_TOOLS: [&str; 6] = [
    "Write",
    "StrReplace",
    "Edit",
    "MultiEdit",
    "Delete",
    "EditNotebook",
];

/// True when a payload given to the Claude Code hook comes from Cursor, which also runs the
/// hooks of `.claude/settings.json`: Cursor's payloads carry `cursor_version`, or
/// `conversation_id` with `workspace_roots`.
pub fn is_cursor_payload(p: &Value) -> bool {
    p.get("cursor_version").is_some()
        || (p.get("conversation_id").is_some() && p.get("workspace_roots").is_some())
}

/// Classifies a payload (already known to be a JSON object).
pub fn classify(agent: Agent, p: &Value) -> Event {
    if agent == Agent::Claude && is_cursor_payload(p) {
        return Event::Foreign;
    }
    let event = p["hook_event_name"].as_str().unwrap_or("");
    let tool = p["tool_name"].as_str().unwrap_or("");
    let cwd = cwd_of(agent, p);
    let session = match agent {
        Agent::Cursor => p["conversation_id"].as_str().or(p["session_id"].as_str()),
        _ => p["session_id"].as_str(),
    }
    .map(str::to_owned);
    let is_pre = match agent {
        Agent::Claude | Agent::Codex => event == "PreToolUse",
        Agent::Gemini => event == "BeforeTool",
        Agent::Cursor => event == "preToolUse",
    };
    if is_pre {
        let input = &p["tool_input"];
        let paths = match agent {
            Agent::Claude => CLAUDE_FILE_TOOLS
                .contains(&tool)
                .then(|| fields(input, &["file_path", "notebook_path"])),
            Agent::Codex if tool == "apply_patch" => Some(patch_paths(input)),
            Agent::Codex => CLAUDE_FILE_TOOLS
                .contains(&tool)
                .then(|| fields(input, &["file_path", "notebook_path"])),
            Agent::Gemini => GEMINI_FILE_TOOLS
                .contains(&tool)
                .then(|| fields(input, &["file_path", "absolute_path", "path"])),
            Agent::Cursor => CURSOR_FILE_TOOLS.contains(&tool).then(|| {
                fields(
                    input,
                    &["file_path", "path", "target_file", "target_notebook"],
                )
            }),
        };
        return match paths {
            None => Event::Other,
            Some(paths) if paths.is_empty() => {
                Event::Malformed(format!("{tool} payload names no file path in tool_input"))
            }
            Some(paths) => match bounded(&paths, &cwd) {
                Err(why) => Event::Malformed(format!("{tool}: {why}")),
                Ok(()) => Event::Write {
                    tool: tool.to_owned(),
                    paths,
                    cwd,
                },
            },
        };
    }
    if agent == Agent::Claude
        && matches!(event, "PostToolUse" | "PostToolUseFailure")
        && CLAUDE_FILE_TOOLS.contains(&tool)
    {
        let paths = fields(&p["tool_input"], &["file_path", "notebook_path"]);
        if bounded(&paths, &cwd).is_ok() {
            return Event::WriteEnded {
                paths,
                cwd,
                call: p["tool_use_id"].as_str().map(str::to_owned),
                ok: event == "PostToolUse",
            };
        }
        return Event::Other;
    }
    match event {
        "SessionStart" | "sessionStart" => Event::SessionStart { session, cwd },
        "SessionEnd" | "sessionEnd" => Event::SessionEnd { session },
        _ => Event::Other,
    }
}

/// Refuses what cannot name a file, before any matching or resolution: a path longer than
/// `PATH_MAX` once made absolute, a cwd longer than that, or a relative path against a cwd
/// that is not absolute. This bounds everything done with the paths afterwards.
fn bounded(paths: &[PathBuf], cwd: &Path) -> Result<(), String> {
    let short = |p: &Path| {
        let s = p.to_string_lossy();
        let cut: String = s.chars().take(60).collect();
        if cut.len() < s.len() {
            format!("{cut}...")
        } else {
            cut
        }
    };
    if crate::reserve::check_len(cwd).is_err() {
        return Err(format!(
            "the payload's cwd {} is longer than PATH_MAX ({} bytes)",
            short(cwd),
            crate::reserve::PATH_MAX
        ));
    }
    for p in paths {
        if p.is_absolute() {
            crate::reserve::check_len(p)
        } else if !cwd.is_absolute() {
            return Err(format!(
                "the relative path {} cannot be resolved: the payload's cwd {} is not absolute",
                short(p),
                short(cwd)
            ));
        } else {
            crate::reserve::check_len(&cwd.join(p))
        }
        .map_err(|e| format!("{}: {e}", short(p)))?;
    }
    Ok(())
}

fn cwd_of(agent: Agent, p: &Value) -> PathBuf {
    let s = match agent {
        Agent::Cursor => p["workspace_roots"][0].as_str().or(p["cwd"].as_str()),
        _ => p["cwd"].as_str(),
    };
    s.map_or_else(
        || std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        PathBuf::from,
    )
}

fn fields(input: &Value, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .filter_map(|n| input[*n].as_str())
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// The files a Codex `apply_patch` touches: its `*** Add File:`, `*** Update File:`,
/// `*** Delete File:` and `*** Move to:` lines. The patch is `tool_input.command` (a string, or
/// an argv array whose last element is the patch), or `tool_input.patch`/`input`.
fn patch_paths(input: &Value) -> Vec<PathBuf> {
    let text = match &input["command"] {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n"),
        _ => input["patch"]
            .as_str()
            .or(input["input"].as_str())
            .unwrap_or("")
            .to_owned(),
    };
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            [
                "*** Add File:",
                "*** Update File:",
                "*** Delete File:",
                "*** Move to:",
            ]
            .iter()
            .find_map(|pre| l.strip_prefix(pre))
        })
        .map(|p| PathBuf::from(p.trim()))
        .filter(|p| !p.as_os_str().is_empty())
        .collect()
}

/// The deny response (stdout JSON) in the agent's dialect.
pub fn deny_json(agent: Agent, reason: &str) -> Value {
    match agent {
        Agent::Claude | Agent::Codex => serde_json::json!({
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }
        }),
        Agent::Gemini => serde_json::json!({ "decision": "deny", "reason": reason }),
        Agent::Cursor => serde_json::json!({
            "decision": "deny",
            "permission": "deny",
            "user_message": reason,
            "agent_message": reason,
        }),
    }
}

/// The `SessionStart` response carrying `context` for the model.
pub fn session_context(agent: Agent, context: &str) -> Option<Value> {
    match agent {
        Agent::Claude | Agent::Codex | Agent::Gemini => Some(serde_json::json!({
            "hookSpecificOutput": {
                "hookEventName": "SessionStart",
                "additionalContext": context,
            }
        })),
        Agent::Cursor => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_patch_paths_are_read_from_every_header_kind() {
        let input = serde_json::json!({"command": ["apply_patch",
            "*** Begin Patch\n*** Update File: src/a.rs\n@@\n-x\n+y\n*** Add File: b.md\n+hi\n*** End Patch"]});
        assert_eq!(
            patch_paths(&input),
            vec![PathBuf::from("src/a.rs"), PathBuf::from("b.md")]
        );
    }

    #[test]
    fn non_file_tools_are_other_and_pathless_file_tools_malformed() {
        let p = serde_json::json!({"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"}});
        assert!(matches!(classify(Agent::Claude, &p), Event::Other));
        let p =
            serde_json::json!({"hook_event_name":"PreToolUse","tool_name":"Write","tool_input":{}});
        assert!(matches!(classify(Agent::Claude, &p), Event::Malformed(_)));
    }
}
