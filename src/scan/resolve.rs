//! Path templates: what a path expression resolves to, by simple constant propagation.
//!
//! Each front end turns its own expressions into template strings (`$HOME/.agent/x.json`,
//! `/tmp/mc-<pid>`); this module holds the shared pieces: the variable environment, the
//! normalisation that makes the same file written from bash, Node and Python group together,
//! and the placeholders.
//!
//! Placeholders: `<date>` (a date command or `Date`), `<pid>` (`$$`, `process.pid`,
//! `os.getpid()`), `<mktemp>` (a unique temp: `mktemp`, `mkstemp`, `mkdtemp`), `<random>`,
//! `<cmd>` (another command substitution), `<expr>` (an expression not followed). Unknown
//! variables stay as `$NAME`. Not guaranteed: propagation is flow-insensitive within a file
//! (the last assignment seen before the use wins), and values passed between files through
//! the environment are not followed.

use std::collections::HashMap;

/// A resolved value: its template and whether it names a unique temp.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Value {
    /// The template.
    pub template: String,
    /// Built from a unique-temp source (`mktemp`, `mkstemp`, ...).
    pub unique: bool,
}

/// Variables seen so far in one file.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, Value>,
}

impl Env {
    /// Records `name = value`. A value the scanner did not follow (`<expr>`) is kept as
    /// `<name>`: two uses of one variable are one path, two unknown expressions are not.
    pub fn set(&mut self, name: &str, template: String) {
        let template = if template == "<expr>" {
            format!("<{name}>")
        } else {
            template
        };
        let unique = is_unique(&template);
        self.vars
            .insert(name.to_string(), Value { template, unique });
    }

    /// The value of `name`, if assigned.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vars.get(name)
    }
}

/// Whether a template names a unique temp.
pub fn is_unique(t: &str) -> bool {
    t.contains("<mktemp>") || t.contains("<random>")
}

/// Whether a template names a staging temp (`*.tmp`, `*.temp`, `*.new`), a lock file
/// (`*.lock`) or a per-session file (a session id in the name): written by one session, or
/// read by nobody whole.
pub fn is_scoped(t: &str) -> bool {
    let name = t.rsplit('/').next().unwrap_or(t).to_ascii_lowercase();
    let stem_ext = |e: &str| name.ends_with(e) || name.contains(&format!("{e}."));
    stem_ext(".tmp")
        || stem_ext(".temp")
        || std::path::Path::new(&name)
            .extension()
            .is_some_and(|e| e == "new" || e == "lock")
        || (name.starts_with('<') && (name.contains("tmp") || name.contains("temp")))
        || t.to_ascii_lowercase().contains("session")
}

/// Whether a template is a resolved path to a document readers take whole: a JSON, JSONL,
/// NDJSON, Markdown, YAML, TOML, CSV or text file whose name the scanner resolved (see
/// [`super::findings::Facts::document`]).
pub fn is_document(t: &str) -> bool {
    let name = t.rsplit('/').next().unwrap_or(t);
    let ext = std::path::Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    is_resolved(t)
        && !name.starts_with('<')
        && matches!(
            ext.as_str(),
            "json" | "jsonl" | "ndjson" | "md" | "yaml" | "yml" | "toml" | "csv" | "txt"
        )
}

/// Whether a template is a predictable path in a shared temp directory.
pub fn is_predictable_tmp(t: &str) -> bool {
    (t.starts_with("/tmp/") || t.starts_with("/var/tmp/") || t.starts_with("/dev/shm/"))
        && !is_unique(t)
}

/// Whether a template is a device or standard stream (not a shared file).
pub fn is_device(t: &str) -> bool {
    t.starts_with("/dev/") && !t.starts_with("/dev/shm/")
        || t.is_empty()
        || t.starts_with('&')
        || t == "-"
}

/// Normalises a template so writers in different languages group together: `~` and
/// `${HOME}` become `$HOME`, `$TMPDIR` becomes `/tmp`, doubled slashes and `./` collapse.
pub fn normalize(t: &str) -> String {
    let mut s = t.trim().to_string();
    if let Some(rest) = s.strip_prefix('~')
        && (rest.is_empty() || rest.starts_with('/'))
    {
        s = format!("$HOME{rest}");
    }
    for (from, to) in [
        ("${HOME}", "$HOME"),
        ("${TMPDIR}", "/tmp"),
        ("$TMPDIR", "/tmp"),
        ("${PWD}", "$PWD"),
    ] {
        s = s.replace(from, to);
    }
    while s.contains("//") {
        s = s.replace("//", "/");
    }
    while let Some(i) = s.find("/./") {
        s.replace_range(i..i + 3, "/");
    }
    if let Some(rest) = s.strip_prefix("./") {
        s = rest.to_string();
    }
    s
}

/// `path.join`/`os.path.join` semantics: parts joined by `/`, an absolute part restarts.
pub fn join(parts: &[String]) -> String {
    let mut out = String::new();
    for p in parts {
        if p.starts_with('/') || p.starts_with("$HOME") || out.is_empty() {
            if p.starts_with('/') || p.starts_with("$HOME") {
                out.clear();
            }
            out.push_str(p);
        } else {
            if !out.ends_with('/') {
                out.push('/');
            }
            out.push_str(p);
        }
    }
    normalize(&out)
}

/// The placeholders that stand for a known kind of value; any other `<...>` is an expression
/// the scanner did not follow.
pub const PLACEHOLDERS: &[&str] = &[
    "<date>", "<time>", "<pid>", "<mktemp>", "<random>", "<n>", "<user>", "<host>", "<dir>",
];

/// Whether a template is resolved well enough to trust: no unfollowed `<expr>`, no positional
/// parameters.
pub fn is_resolved(t: &str) -> bool {
    let mut rest = t;
    while let Some(i) = rest.find('<') {
        let Some(j) = rest[i..].find('>') else { break };
        if !PLACEHOLDERS.contains(&&rest[i..=i + j]) {
            return false;
        }
        rest = &rest[i + j + 1..];
    }
    !(t.contains("$1") || t.contains("$2") || t.contains("$@") || t.contains("$*"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_makes_home_and_tmp_canonical() {
        assert_eq!(normalize("~/.agent//x.json"), "$HOME/.agent/x.json");
        assert_eq!(normalize("${HOME}/a/./b"), "$HOME/a/b");
        assert_eq!(normalize("$TMPDIR/x"), "/tmp/x");
    }

    #[test]
    fn join_restarts_at_absolute_parts() {
        let p = |v: &[&str]| join(&v.iter().map(ToString::to_string).collect::<Vec<_>>());
        assert_eq!(p(&["$HOME", ".agent", "h.json"]), "$HOME/.agent/h.json");
        assert_eq!(p(&["a", "/tmp", "x"]), "/tmp/x");
    }

    #[test]
    fn an_unfollowed_value_is_named_by_its_variable() {
        let mut env = Env::default();
        env.set("flagDir", "<expr>".into());
        assert_eq!(env.get("flagDir").unwrap().template, "<flagDir>");
    }

    #[test]
    fn documents_scoped_files_and_flags() {
        assert!(is_document("$HOME/.agent/state.json"));
        assert!(!is_document("$HOME/.agent/last-run"));
        assert!(!is_document("<path>"));
        assert!(is_scoped("$HOME/.agent/state.json.tmp"));
        assert!(is_scoped("$HOME/.agent/x.lock"));
        assert!(is_scoped("/tmp/x-$SESSION_ID.json"));
        assert!(!is_scoped("$HOME/.agent/state.json"));
    }

    #[test]
    fn predictable_tmp_excludes_unique_temps() {
        assert!(is_predictable_tmp("/tmp/mc-active-task"));
        assert!(is_predictable_tmp("/tmp/x-<pid>"));
        assert!(!is_predictable_tmp("/tmp/x.<mktemp>"));
        assert!(!is_predictable_tmp("$HOME/x"));
    }
}
