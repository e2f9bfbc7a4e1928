//! Agent hook configuration: which scripts run as hooks, concurrently across sessions.
//!
//! Hook configs are found anywhere under a scanned directory: Claude Code settings
//! (`.claude/settings*.json`), plugin hooks (`hooks/hooks.json`, commands under
//! `${CLAUDE_PLUGIN_ROOT}`), Codex (`.codex/hooks.json`), Gemini (`.gemini/settings.json`),
//! Cursor (`.cursor/hooks.json`) and MCP servers (`.mcp.json`); any other JSON file whose
//! `hooks` object is keyed by hook events counts too. Every `command` (with its `args`) they
//! run is split into words; a word naming a file under the root (after `${CLAUDE_PLUGIN_ROOT}`,
//! `$CLAUDE_PROJECT_DIR`, `~/.claude` and `./` are stripped; matched by its last two path
//! components, so `~/.claude/hooks/x.sh` finds an installer's `config/hooks/x.sh`) is a hook,
//! as is `python -m pkg.mod`'s module. Files under a `.claude/hooks/` directory are hooks.
//!
//! Code a hook runs is hook code too: local modules imported by a hook (Python `import`/`from`,
//! JavaScript/TypeScript relative `import`/`require`) and shell files it `source`s, followed
//! transitively. A malformed config is ignored (the scan reports code, not config errors).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::Lang;

/// Hook event names of Claude Code, Codex, Gemini CLI and Cursor: a JSON `hooks` object keyed
/// by one of them is a hook config wherever it lives.
const EVENTS: &[&str] = &[
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "UserPromptSubmit",
    "SessionStart",
    "SessionEnd",
    "Stop",
    "SubagentStart",
    "SubagentStop",
    "Notification",
    "PreCompact",
    "PermissionRequest",
    "Setup",
    "BeforeTool",
    "AfterTool",
    "BeforeAgent",
    "AfterAgent",
    "BeforeModel",
    "AfterModel",
    "beforeShellExecution",
    "beforeMCPExecution",
    "afterFileEdit",
    "beforeReadFile",
    "beforeSubmitPrompt",
    "afterShellExecution",
    "stop",
];

/// The files (display names relative to the scanned root) that run as hooks, or that hooks
/// run: `files` are the scanned files with their languages, `json` the JSON files seen.
pub fn hook_files(root: &Path, files: &[(String, Lang)], json: &[String]) -> HashSet<String> {
    let mut words: Vec<String> = Vec::new();
    for rel in json {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let known = name.starts_with("settings")
            || matches!(name, "hooks.json" | "hook.json" | ".mcp.json");
        let Ok(meta) = std::fs::metadata(root.join(rel)) else {
            continue;
        };
        if meta.len() > 1 << 20 {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(root.join(rel)) else {
            continue;
        };
        if !text.contains("\"command\"") {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if !known && !has_event_hooks(&v) {
            continue;
        }
        let mut cmds = Vec::new();
        commands(&v, &mut cmds);
        for c in cmds {
            words.extend(script_words(&c));
        }
    }
    let by_name: HashMap<&str, Lang> = files.iter().map(|(f, l)| (f.as_str(), *l)).collect();
    let mut hooks: HashSet<String> = files
        .iter()
        .filter(|(f, _)| {
            f.starts_with(".claude/hooks/")
                || f.contains("/.claude/hooks/")
                || words.iter().any(|w| names(w, f))
        })
        .map(|(f, _)| f.clone())
        .collect();
    // Follow imports and `source`s from hook files to the local files they run.
    let mut todo: Vec<String> = hooks.iter().cloned().collect();
    while let Some(f) = todo.pop() {
        let Some(&lang) = by_name.get(f.as_str()) else {
            continue;
        };
        let Ok(src) = std::fs::read_to_string(root.join(&f)) else {
            continue;
        };
        for dep in imports(&f, lang, &src, &by_name) {
            if hooks.insert(dep.clone()) {
                todo.push(dep);
            }
        }
    }
    hooks
}

/// Whether a config value has a `hooks` object keyed by a hook event (at any depth).
fn has_event_hooks(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            m.get("hooks")
                .and_then(Value::as_object)
                .is_some_and(|h| h.keys().any(|k| EVENTS.contains(&k.as_str())))
                || m.values().any(has_event_hooks)
        }
        Value::Array(a) => a.iter().any(has_event_hooks),
        _ => false,
    }
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

/// The words of a hook command that can name a script: quotes and the root variables stripped;
/// `python -m a.b` gives `a/b.py`.
fn script_words(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let words: Vec<String> = cmd
        .split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '|')
        .map(|w| w.replace(['"', '\''], ""))
        .collect();
    for (i, w) in words.iter().enumerate() {
        let mut w = w.as_str();
        for prefix in [
            "${CLAUDE_PLUGIN_ROOT}/",
            "$CLAUDE_PLUGIN_ROOT/",
            "${CLAUDE_PROJECT_DIR}/",
            "$CLAUDE_PROJECT_DIR/",
            "${HOME}/",
            "$HOME/",
            "~/",
            "./",
        ] {
            w = w.strip_prefix(prefix).unwrap_or(w);
        }
        if i > 0 && words[i - 1] == "-m" && !w.contains('/') {
            out.push(format!("{}.py", w.replace('.', "/")));
            out.push(format!("{}/__main__.py", w.replace('.', "/")));
        } else if w.contains('/') || w.contains('.') {
            out.push(w.trim_end_matches('/').to_string());
        }
    }
    out
}

/// Whether the command word `w` names the file `file`: equal, a path suffix of the other, or
/// the same last two components (a config naming the installed copy of a repository file).
fn names(w: &str, file: &str) -> bool {
    if w.is_empty() {
        return false;
    }
    if w == file || file.ends_with(&format!("/{w}")) || w.ends_with(&format!("/{file}")) {
        return true;
    }
    let tail = |s: &str| -> Option<String> {
        let mut parts = s.rsplit('/');
        let a = parts.next()?;
        let b = parts.next()?;
        Some(format!("{b}/{a}"))
    };
    matches!((tail(w), tail(file)), (Some(a), Some(b)) if a == b && !a.starts_with('.'))
}

/// The local files `file` imports or sources (display names that exist in `by_name`).
#[allow(clippy::too_many_lines)] // one arm per language
fn imports(file: &str, lang: Lang, src: &str, by_name: &HashMap<&str, Lang>) -> Vec<String> {
    static PY: OnceLock<Regex> = OnceLock::new();
    static JS: OnceLock<Regex> = OnceLock::new();
    static SH: OnceLock<Regex> = OnceLock::new();
    let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
    let mut out = Vec::new();
    let mut push = |cand: String| {
        let c = normalize_rel(&cand);
        if by_name.contains_key(c.as_str()) && !out.contains(&c) {
            out.push(c);
        }
    };
    match lang {
        Lang::Python => {
            let re = PY.get_or_init(|| {
                Regex::new(
                    r"(?m)^\s*(?:from\s+(\.*)([\w.]*)\s+import\s+([\w, ]+)|import\s+([\w.]+))",
                )
                .expect("valid")
            });
            for c in re.captures_iter(src) {
                let dots = c.get(1).map_or(0, |m| m.as_str().len());
                let module = c
                    .get(2)
                    .or_else(|| c.get(4))
                    .map_or("", |m| m.as_str())
                    .replace('.', "/");
                let names: Vec<&str> = c
                    .get(3)
                    .map(|m| m.as_str().split(',').map(str::trim).collect())
                    .unwrap_or_default();
                // Candidate bases: relative imports from the file's package; absolute ones
                // from every ancestor directory (the package root is not known).
                let mut bases: Vec<String> = Vec::new();
                if dots > 0 {
                    let mut d = dir.to_string();
                    for _ in 1..dots {
                        d = d
                            .rsplit_once('/')
                            .map_or(String::new(), |(p, _)| p.to_string());
                    }
                    bases.push(d);
                } else {
                    let mut d = dir.to_string();
                    loop {
                        bases.push(d.clone());
                        match d.rsplit_once('/') {
                            Some((p, _)) => d = p.to_string(),
                            None if !d.is_empty() => d = String::new(),
                            None => break,
                        }
                    }
                }
                for b in bases {
                    let base = if b.is_empty() {
                        module.clone()
                    } else if module.is_empty() {
                        b.clone()
                    } else {
                        format!("{b}/{module}")
                    };
                    push(format!("{base}.py"));
                    push(format!("{base}/__init__.py"));
                    for n in &names {
                        push(format!("{base}/{n}.py"));
                    }
                }
            }
        }
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => {
            let re = JS.get_or_init(|| {
                Regex::new(r#"(?:from|require\(|import\()\s*['"](\.{1,2}/[^'"]+)['"]"#)
                    .expect("valid")
            });
            for c in re.captures_iter(src) {
                let rel = &c[1];
                let base = if dir.is_empty() {
                    rel.to_string()
                } else {
                    format!("{dir}/{rel}")
                };
                let stem = base
                    .strip_suffix(".js")
                    .or_else(|| base.strip_suffix(".mjs"))
                    .or_else(|| base.strip_suffix(".cjs"))
                    .unwrap_or(&base)
                    .to_string();
                push(base.clone());
                for ext in ["ts", "tsx", "js", "mjs", "cjs", "mts"] {
                    push(format!("{stem}.{ext}"));
                    push(format!("{base}/index.{ext}"));
                }
            }
        }
        Lang::Bash => {
            let re = SH.get_or_init(|| {
                Regex::new(r#"(?m)^\s*(?:source|\.)\s+["']?([^\s"';]+)"#).expect("valid")
            });
            for c in re.captures_iter(src) {
                let w = &c[1];
                let name = w.rsplit('/').next().unwrap_or(w);
                if name.contains('$') || name.is_empty() {
                    continue;
                }
                // `source "$DIR/lib.sh"`: the directory is usually the script's own (or a
                // sibling `lib/`); try those, then any file of that name.
                let rel_dir = w.rsplit_once('/').map_or("", |(d, _)| d);
                let plain_dir = !rel_dir.contains('$') && !rel_dir.is_empty();
                if plain_dir {
                    push(if dir.is_empty() {
                        w.to_string()
                    } else {
                        format!("{dir}/{w}")
                    });
                }
                push(if dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{dir}/{name}")
                });
                let same: Vec<&str> = by_name
                    .keys()
                    .copied()
                    .filter(|k| k.rsplit('/').next() == Some(name))
                    .collect();
                if same.len() == 1 {
                    push(same[0].to_string());
                }
            }
        }
    }
    out
}

/// `a/b/../c` → `a/c`, `a/./b` → `a/b`.
fn normalize_rel(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Whether `file` (relative to the scanned root) is a test: under a `test`/`tests`/
/// `__tests__`/`spec` directory, or named like one (`test_*.py`, `*_test.py`, `*.test.*`,
/// `*.spec.*`, `conftest.py`).
pub fn is_test(file: &str) -> bool {
    let mut parts = file.split('/').collect::<Vec<_>>();
    let name = parts.pop().unwrap_or("");
    parts.iter().any(|d| {
        matches!(
            *d,
            "test" | "tests" | "__tests__" | "spec" | "specs" | "testing" | "e2e" | "__mocks__"
        )
    }) || name.starts_with("test_")
        || name == "conftest.py"
        || name.contains(".test.")
        || name.contains(".spec.")
        || name.contains("_test.")
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
        assert!(has_event_hooks(&v));
        let mut cmds = Vec::new();
        commands(&v, &mut cmds);
        assert_eq!(cmds.len(), 1);
        let words = script_words(&cmds[0]);
        assert!(words.iter().any(|w| names(w, "hooks/gate.sh")));
        assert!(!words.iter().any(|w| names(w, "hooks/other.sh")));
    }

    #[test]
    fn plugin_root_and_installed_copies_are_matched() {
        let w = script_words("python3 ${CLAUDE_PLUGIN_ROOT}/hooks/scripts/save.py");
        assert!(w.iter().any(|w| names(w, "plugin/hooks/scripts/save.py")));
        let w = script_words("~/.claude/hooks/state.sh");
        assert!(w.iter().any(|w| names(w, "config/hooks/state.sh")));
        let w = script_words("python -m pkg.hook");
        assert!(w.iter().any(|w| names(w, "src/pkg/hook.py")));
    }

    #[test]
    fn tests_are_recognised_by_directory_and_name() {
        assert!(is_test("tests/a.sh"));
        assert!(is_test("pkg/__tests__/x.ts"));
        assert!(is_test("src/x.test.ts"));
        assert!(is_test("hooks/test_state.py"));
        assert!(!is_test("hooks/state.py"));
        assert!(!is_test("latest/x.sh"));
    }
}
