//! Agent hook configuration: which scripts run as hooks, concurrently across sessions.
//!
//! Reads `.claude/settings.json` (and `settings.local.json`), `.codex/hooks.json` and
//! `.mcp.json` under a scanned directory, collects every command string they run (hook
//! `command`s, MCP server `command` + `args`), and takes each word that names a file as a hook
//! script. A malformed config is ignored (the scan reports code, not config errors).

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

/// The script names (as written in the configs, `$CLAUDE_PROJECT_DIR/` and `./` stripped) run
/// by the agent configs found under `root`.
pub fn hook_scripts(root: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    for rel in [
        ".claude/settings.json",
        ".claude/settings.local.json",
        ".codex/hooks.json",
        ".mcp.json",
    ] {
        let Ok(text) = std::fs::read_to_string(root.join(rel)) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let mut cmds = Vec::new();
        commands(&v, &mut cmds);
        for c in cmds {
            for word in c.split_whitespace() {
                let unquoted = word.replace(['"', '\''], "");
                let w = unquoted.as_str();
                let w = w
                    .trim_start_matches("$CLAUDE_PROJECT_DIR/")
                    .trim_start_matches("${CLAUDE_PROJECT_DIR}/")
                    .trim_start_matches("./");
                if w.contains('.') || w.contains('/') {
                    out.insert(w.to_string());
                }
            }
        }
    }
    out
}

fn commands(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(c)) = m.get("command") {
                let mut s = c.clone();
                if let Some(Value::Array(args)) = m.get("args") {
                    for a in args.iter().filter_map(Value::as_str) {
                        s.push(' ');
                        s.push_str(a);
                    }
                }
                out.push(s);
            }
            for x in m.values() {
                commands(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| commands(x, out)),
        _ => {}
    }
}

/// Whether `file` (relative to the scanned root) is one of the hook scripts.
pub fn is_hook<S: std::hash::BuildHasher>(scripts: &HashSet<String, S>, file: &str) -> bool {
    scripts
        .iter()
        .any(|s| s == file || s.ends_with(&format!("/{file}")) || file.ends_with(&format!("/{s}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_commands_name_scripts() {
        let v: Value = serde_json::from_str(
            r#"{"hooks":{"PreToolUse":[{"matcher":"Bash","hooks":[{"type":"command",
               "command":"bash \"$CLAUDE_PROJECT_DIR\"/hooks/gate.sh --x"}]}]}}"#,
        )
        .unwrap();
        let mut cmds = Vec::new();
        commands(&v, &mut cmds);
        assert_eq!(cmds.len(), 1);
        let set: HashSet<String> = ["hooks/gate.sh".to_string()].into();
        assert!(is_hook(&set, "hooks/gate.sh"));
        assert!(!is_hook(&set, "hooks/other.sh"));
    }
}
