//! `concur hook install`: merge concur's hook entries into an agent's settings file.
//!
//! ## Guarantees
//! - **Nothing else touched.** The merge is a jq filter run by [`crate::json::JsonUpdate`]: it
//!   adds an entry to an event's list only when no entry of that list already runs the concur
//!   command, and leaves every other key, entry and the key order as they were (the file is
//!   re-printed with two-space indentation).
//! - **Idempotent.** Installing twice is installing once: the second run changes nothing and
//!   does not rewrite the file.
//! - **Locked and atomic.** The update runs under the settings file's sidecar lock and replaces
//!   the file atomically (temp file, fsync, rename), so a concurrent reader sees the old or the
//!   new settings, and two concurrent installs add the entries once.
//! - **Backup.** Before a change, the previous content is saved as `<settings>.bak`.
//!
//! Not guaranteed: comments (JSONC) are not supported — a settings file that is not plain JSON
//! is refused and left as it is.

use std::path::{Path, PathBuf};

use super::Agent;
use crate::error::{Error, Result};
use crate::json::JsonUpdate;
use crate::sys;

/// What an install did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The settings file.
    pub settings: PathBuf,
    /// Whether the content changed (or would change).
    pub changed: bool,
    /// The backup written, if any.
    pub backup: Option<PathBuf>,
    /// A line diff of the change (`-`/`+` lines), empty when unchanged.
    pub diff: String,
    /// The content after the install (or, dry, the content it would have).
    pub after: String,
}

/// One hook entry concur installs: the event, the tool matcher, the timeout in the agent's
/// unit (seconds; Gemini: milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The agent's event name.
    pub event: &'static str,
    /// The tool matcher (a regex in every agent that has one), if the event takes one.
    pub matcher: Option<&'static str>,
    /// The timeout, in the agent's unit; `None` where the format has none (Cursor).
    pub timeout: Option<u32>,
}

const fn spec(event: &'static str, matcher: Option<&'static str>, timeout: Option<u32>) -> Spec {
    Spec {
        event,
        matcher,
        timeout,
    }
}

/// What concur installs for `agent`: the file tools *and* the shell tool of each agent, and the
/// session events it has.
pub fn specs(agent: Agent) -> &'static [Spec] {
    // The post-tool events make the edit record precise (a failed or refused file-tool call
    // is withdrawn; see `reserve::edits`); Codex and Gemini keep the record their pre-tool
    // hook makes.
    const CLAUDE: [Spec; 5] = [
        spec(
            "PreToolUse",
            Some("Write|Edit|MultiEdit|NotebookEdit|Bash"),
            Some(10),
        ),
        spec(
            "PostToolUse",
            Some("Write|Edit|MultiEdit|NotebookEdit"),
            Some(10),
        ),
        spec(
            "PostToolUseFailure",
            Some("Write|Edit|MultiEdit|NotebookEdit"),
            Some(10),
        ),
        spec("SessionStart", None, Some(10)),
        spec("SessionEnd", None, Some(2)),
    ];
    const CODEX: [Spec; 2] = [
        spec("PreToolUse", Some("Edit|Write|apply_patch|Bash"), Some(10)),
        spec("SessionStart", None, Some(10)),
    ];
    const GEMINI: [Spec; 3] = [
        spec(
            "BeforeTool",
            Some("write_file|replace|edit|run_shell_command"),
            Some(10_000),
        ),
        spec("SessionStart", None, Some(10_000)),
        spec("SessionEnd", None, Some(2_000)),
    ];
    const CURSOR: [Spec; 3] = [
        spec("preToolUse", None, None),
        spec("beforeShellExecution", None, None),
        spec("sessionStart", None, None),
    ];
    match agent {
        Agent::Claude => &CLAUDE,
        Agent::Codex => &CODEX,
        Agent::Gemini => &GEMINI,
        Agent::Cursor => &CURSOR,
    }
}

/// The hook entry (one element of an event's list) running `command` for `spec`.
pub fn entry(agent: Agent, spec: &Spec, command: &str) -> serde_json::Value {
    use serde_json::json;
    if agent == Agent::Cursor {
        return json!({ "command": command });
    }
    let mut hook = json!({ "type": "command", "command": command });
    if let Some(t) = spec.timeout {
        hook["timeout"] = json!(t);
    }
    let mut group = json!({ "hooks": [hook] });
    if let Some(m) = spec.matcher {
        group["matcher"] = json!(m);
    }
    group
}

/// The command line agents run for concur's hooks: a small POSIX `sh` script that runs the
/// concur at `binary` (an absolute path, so the agent's `PATH` does not matter) and **fails
/// closed** — when the binary is missing or not executable, or exits with anything but 0 (allow
/// or a JSON answer) or 2 (deny), it prints the reason on stderr and exits 2, which every
/// supported agent (Claude Code, Codex, Gemini CLI, Cursor) takes as a refusal. A bare `concur`
/// that is not on the agent's `PATH` would exit 127, which most agents let through.
pub fn hook_command(binary: &Path, agent: Agent) -> String {
    let c = crate::reserve::git::shell_quote(&binary.to_string_lossy());
    let a = agent.name();
    format!(
        "c={c}; if [ -x \"$c\" ]; then \"$c\" hook {a} && exit 0; r=$?; [ \"$r\" -eq 2 ] || \
         echo \"concur: hook: $c hook {a} failed (exit $r); refusing\" >&2; exit 2; fi; \
         echo \"concur: hook: $c is missing or not executable; refusing (reinstall concur, or \
         remove its hooks: concur hook uninstall --agent {a})\" >&2; exit 2"
    )
}

/// The settings file concur's hooks go into for `agent`: the user-level one, or with
/// `project`, that checkout's own — Claude Code `~/.claude/settings.json`
/// (`<project>/.claude/settings.json`), Codex `$CODEX_HOME/hooks.json` (default
/// `~/.codex/hooks.json`; `<project>/.codex/hooks.json`), Gemini CLI `~/.gemini/settings.json`
/// (`<project>/.gemini/settings.json`), Cursor `~/.cursor/hooks.json`
/// (`<project>/.cursor/hooks.json`).
///
/// # Errors
/// [`Error::Invalid`] when `HOME` (or `CODEX_HOME`) is needed and not set.
pub fn default_settings(agent: Agent, project: Option<&Path>) -> Result<PathBuf> {
    let (dir, file) = match agent {
        Agent::Claude => (".claude", "settings.json"),
        Agent::Codex => (".codex", "hooks.json"),
        Agent::Gemini => (".gemini", "settings.json"),
        Agent::Cursor => (".cursor", "hooks.json"),
    };
    if let Some(p) = project {
        return Ok(p.join(dir).join(file));
    }
    if agent == Agent::Codex {
        return Ok(codex_home()?.join(file));
    }
    Ok(user_home()?.join(dir).join(file))
}

/// Codex's home: `$CODEX_HOME`, else `~/.codex`.
///
/// # Errors
/// [`Error::Invalid`] when neither `CODEX_HOME` nor `HOME` is set.
pub fn codex_home() -> Result<PathBuf> {
    match std::env::var_os("CODEX_HOME").filter(|v| !v.is_empty()) {
        Some(h) => Ok(PathBuf::from(h)),
        None => Ok(user_home()?.join(".codex")),
    }
}

fn user_home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Error::Invalid("HOME is not set: pass --settings PATH".into()))
}

/// True when hook command line `line` is concur's for `agent`: `command` itself, or an older
/// concur command line for the same agent (the same test as the jq filters').
pub fn is_ours(line: &str, agent: Agent, command: &str) -> bool {
    line == command || (line.contains("concur") && line.contains(&format!("hook {}", agent.name())))
}

/// The jq definitions both filters share: which hook entries are concur's (for `agent`, tagged
/// `$tag` = `hook AGENT`): the one being installed, an older concur command line for the same
/// agent (a bare `concur hook claude`, or a wrapper naming another binary).
const OURS: &str = r#"
def ours: type == "object" and ((.command // null) | type == "string"
  and (. == $cmd or (contains("concur") and contains($tag))));
def has_ours: ours or any(.hooks[]?; ours);
if type != "object" then error("the settings file is not a JSON object") else . end
"#;

/// The jq filter merging `$entries` (`[{event, entry}]`): an event list that already holds
/// the exact entry is left alone; otherwise concur's older entries in it are dropped and the
/// new one appended.
fn install_filter(agent: Agent) -> String {
    let version = if agent == Agent::Cursor {
        "| .version = (.version // 1)"
    } else {
        ""
    };
    format!(
        "{OURS}| .hooks = (.hooks // {{}}) {version}
| reduce $entries[] as $e (.;
    .hooks[$e.event] = ((.hooks[$e.event] // []) as $l
      | if any($l[]; . == $e.entry) then $l
        else [$l[] | select(has_ours | not)] + [$e.entry] end))"
    )
}

/// The jq filter removing concur's entries, the event lists left empty, and `hooks` when it is
/// left empty.
const UNINSTALL_FILTER: &str = r#"
| if (.hooks | type) == "object" then
    .hooks |= (with_entries(.value |= (if type == "array" then [.[] | select(has_ours | not)] else . end))
      | with_entries(select((.value | type) != "array" or (.value | length) > 0)))
    | if .hooks == {} then del(.hooks) else . end
  else . end"#;

/// Merges the hook entries running `command` for `agent` into `settings` (created as `{}` when
/// missing). With `dry_run`, computes the change on a copy and writes nothing. The first
/// install that changes the file records what was there before (`<settings>.concur-install`),
/// for [`uninstall`].
///
/// # Errors
/// [`Error::Invalid`] when the settings file is not a JSON object; [`Error::Timeout`] when its
/// lock is not had in time; [`Error::Io`] otherwise.
pub fn install(settings: &Path, agent: Agent, command: &str, dry_run: bool) -> Result<Installed> {
    let entries: Vec<serde_json::Value> = specs(agent)
        .iter()
        .map(|s| serde_json::json!({"event": s.event, "entry": entry(agent, s, command)}))
        .collect();
    let update = JsonUpdate::new(install_filter(agent))
        .arg("cmd", command)
        .arg("tag", format!("hook {}", agent.name()))
        .argjson("entries", &serde_json::Value::Array(entries).to_string())?
        .init("{}")?;
    let before = read_opt(settings)?;
    // Compute the result on a private copy first: it gives the diff, and tells whether a backup
    // is needed before the real (locked) update.
    let scratch = tempfile_dir(settings)?;
    let copy = scratch.path().join("settings.json");
    if let Some(b) = &before {
        write_new(&copy, b)?;
    }
    // An error about the copy is about the user's file: name that one.
    let preview = update.apply(&copy).map_err(|e| match e {
        Error::Invalid(m) => {
            Error::Invalid(m.replace(&copy.display().to_string(), &settings.display().to_string()))
        }
        other => other,
    })?;
    let after = read_opt(&copy)?.unwrap_or_default();
    let diff = line_diff(before.as_deref().unwrap_or(""), &after);
    let changed = preview.changed || preview.created;
    if dry_run || !changed {
        return Ok(Installed {
            settings: settings.to_path_buf(),
            changed,
            backup: None,
            diff: if changed { diff } else { String::new() },
            after,
        });
    }
    let backup = match &before {
        Some(b) => Some(save_backup(settings, b)?),
        None => None,
    };
    let done = update.apply(settings)?;
    let now = read_opt(settings)?.unwrap_or_default();
    Record::note(settings, before.as_deref(), &now)?;
    let now = now.clone();
    Ok(Installed {
        settings: settings.to_path_buf(),
        changed: done.changed || done.created,
        backup,
        diff,
        after: now,
    })
}

fn save_backup(settings: &Path, text: &str) -> Result<PathBuf> {
    let bak = suffixed(settings, ".bak");
    let how = sys::fs::Atomic::new("settings-bak").durability(sys::fs::Durability::Data);
    sys::fs::write_atomic(&bak, text.as_bytes(), &how)?;
    Ok(bak)
}

fn suffixed(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// What the first changing install found, and what the last one left: `<file>.concur-install`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Record {
    /// The file's bytes before concur's first install; `None`: there was no file.
    before: Option<String>,
    /// The file's bytes after concur's last install.
    after: String,
}

impl Record {
    fn path(file: &Path) -> PathBuf {
        suffixed(file, ".concur-install")
    }

    fn read(file: &Path) -> Result<Option<Record>> {
        let p = Record::path(file);
        let Some(text) = read_opt(&p)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Invalid(format!("unreadable install record {}: {e}", p.display())))
    }

    /// Records an install that turned `before` into `after` (keeping the oldest `before`).
    fn note(file: &Path, before: Option<&str>, after: &str) -> Result<()> {
        let before = match Record::read(file)? {
            Some(r) => r.before,
            None => before.map(str::to_owned),
        };
        let rec = Record {
            before,
            after: after.to_owned(),
        };
        let json = serde_json::to_vec(&rec).expect("a record serialises");
        write_file(&Record::path(file), &json)
    }
}

/// Replaces `path` with `bytes` atomically (temp file, fsync, rename, fsync dir), mode 0600.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(sys::fs::write_atomic(
        path,
        bytes,
        &sys::fs::Atomic::new("rec"),
    )?)
}

/// Replaces `file` (which held `before`) with `after`, and records the change for
/// [`uninstall`]/[`restore`].
pub(crate) fn write_recorded(file: &Path, before: Option<&str>, after: &str) -> Result<()> {
    write_file(file, after.as_bytes())?;
    Record::note(file, before, after)
}

/// What an uninstall did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uninstalled {
    /// The file.
    pub file: PathBuf,
    /// Whether the content changed.
    pub changed: bool,
    /// True when the file was put back byte for byte as it was before the first install
    /// (or removed, when there was none): nothing else had changed it since.
    pub restored: bool,
}

/// Removes concur's hooks for `agent` from `settings`. When the file is exactly what concur's
/// last install left, it is put back byte for byte as it was before the first one (removed
/// when it did not exist); otherwise only concur's entries are taken out (and event lists and
/// `hooks` left empty), the rest kept.
///
/// # Errors
/// [`Error::Invalid`] when the settings file is not a JSON object; [`Error::Io`] otherwise.
pub fn uninstall(settings: &Path, agent: Agent, command: &str) -> Result<Uninstalled> {
    if let Some(u) = restore(settings)? {
        return Ok(u);
    }
    let Some(_) = read_opt(settings)? else {
        return Ok(Uninstalled {
            file: settings.to_path_buf(),
            changed: false,
            restored: false,
        });
    };
    let done = JsonUpdate::new(format!("{OURS}{UNINSTALL_FILTER}"))
        .arg("cmd", command)
        .arg("tag", format!("hook {}", agent.name()))
        .apply(settings)?;
    remove_record(settings)?;
    Ok(Uninstalled {
        file: settings.to_path_buf(),
        changed: done.changed,
        restored: false,
    })
}

/// Puts `file` back as it was before concur's first install when it is exactly what the last
/// install left; `None` when there is no record or the file changed since.
pub(crate) fn restore(file: &Path) -> Result<Option<Uninstalled>> {
    let Some(rec) = Record::read(file)? else {
        return Ok(None);
    };
    if read_opt(file)?.as_deref() != Some(rec.after.as_str()) {
        return Ok(None);
    }
    match &rec.before {
        Some(b) => write_file(file, b.as_bytes())?,
        None => sys::fs::remove_if_exists(file).map_err(Error::with("cannot remove", file))?,
    }
    remove_record(file)?;
    Ok(Some(Uninstalled {
        file: file.to_path_buf(),
        changed: true,
        restored: true,
    }))
}

pub(crate) fn remove_record(file: &Path) -> Result<()> {
    let p = Record::path(file);
    sys::fs::remove_if_exists(&p).map_err(Error::with("cannot remove", &p))
}

impl std::fmt::Display for Uninstalled {
    /// `FILE: what happened to it`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match (self.changed, self.restored) {
            (_, true) => "restored as it was before the install",
            (true, false) => "concur's hooks removed, the rest kept",
            (false, false) => "nothing of concur's: unchanged",
        };
        write!(f, "{}: {what}", self.file.display())
    }
}

pub(crate) fn read_opt(p: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", p, e)),
    }
}

fn write_new(p: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = sys::fs::open(p, sys::fs::Open::create_new(0o600))
        .map_err(Error::with("cannot create", p))?;
    f.write_all(text.as_bytes())
        .map_err(Error::with("cannot write", p))
}

/// A private scratch directory (removed on drop).
struct Scratch(PathBuf);

impl Scratch {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A scratch directory beside the settings file's directory's temp space: in the system temp
/// dir, created 0700 under a unique name.
fn tempfile_dir(settings: &Path) -> Result<Scratch> {
    let base = std::env::temp_dir();
    for n in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let d = base.join(format!(
            ".concur-install.{}.{n}.{nanos}",
            std::process::id()
        ));
        match std::fs::DirBuilder::new().create(&d) {
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
                    .map_err(Error::with("cannot chmod", &d))?;
                return Ok(Scratch(d));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Error::io(
                    "cannot create scratch directory for",
                    settings,
                    e,
                ));
            }
        }
    }
    Err(Error::Conflict(
        "cannot find a free scratch directory name".into(),
    ))
}

/// A minimal line diff (longest common subsequence): `-` removed, `+` added, ` ` kept lines.
pub fn line_diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push_str("  ");
            out.push_str(a[i]);
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str("+ ");
            out.push_str(b[j]);
            j += 1;
        } else {
            out.push_str("- ");
            out.push_str(a[i]);
            i += 1;
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_twice_is_install_once_and_keeps_other_keys() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("settings.json");
        write_new(&s, r#"{"model":"x","hooks":{"PreToolUse":[{"matcher":"Bash","hooks":[{"type":"command","command":"mine"}]}]},"z":1}"#).unwrap();
        let first = install(&s, Agent::Claude, "concur hook claude", false).unwrap();
        assert!(first.changed);
        assert!(first.backup.is_some());
        let after_one = std::fs::read_to_string(&s).unwrap();
        let second = install(&s, Agent::Claude, "concur hook claude", false).unwrap();
        assert!(!second.changed);
        assert_eq!(std::fs::read_to_string(&s).unwrap(), after_one);
        let v: serde_json::Value = serde_json::from_str(&after_one).unwrap();
        assert_eq!(v["model"], "x");
        assert_eq!(v["z"], 1);
        assert_eq!(v["hooks"]["PreToolUse"].as_array().unwrap().len(), 2);
        assert_eq!(v["hooks"]["PreToolUse"][0]["hooks"][0]["command"], "mine");
        assert!(after_one.find("\"model\"").unwrap() < after_one.find("\"z\"").unwrap());
    }
}
