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
}

const PRELUDE: &str = r#"
def ensure($ev; $entry; has):
  .hooks[$ev] = ((.hooks[$ev] // []) | if has then . else . + [$entry] end);
if type != "object" then error("the settings file is not a JSON object") else . end
| .hooks = (.hooks // {})
"#;

/// The jq filter merging the hook entries for `agent` (the command is `$cmd`).
fn filter(agent: Agent) -> String {
    let nested = "any(.[]?; any(.hooks[]?; .command == $cmd))";
    let flat = "any(.[]?; .command == $cmd)";
    let cmd = |timeout: u32| {
        format!("{{hooks: [{{type: \"command\", command: $cmd, timeout: {timeout}}}]}}")
    };
    let with_matcher = |m: &str, timeout: u32| {
        format!(
            "{{matcher: \"{m}\", hooks: [{{type: \"command\", command: $cmd, timeout: {timeout}}}]}}"
        )
    };
    let body = match agent {
        Agent::Claude => format!(
            "| ensure(\"PreToolUse\"; {}; {nested}) | ensure(\"SessionStart\"; {}; {nested}) | ensure(\"SessionEnd\"; {}; {nested})",
            with_matcher("Write|Edit|MultiEdit|NotebookEdit", 10),
            cmd(10),
            cmd(2)
        ),
        Agent::Codex => format!(
            "| ensure(\"PreToolUse\"; {}; {nested}) | ensure(\"SessionStart\"; {}; {nested})",
            with_matcher("Edit|Write|apply_patch", 10),
            cmd(10)
        ),
        Agent::Gemini => format!(
            "| ensure(\"BeforeTool\"; {}; {nested}) | ensure(\"SessionStart\"; {}; {nested}) | ensure(\"SessionEnd\"; {}; {nested})",
            with_matcher("write_file|replace", 10_000),
            cmd(10_000),
            cmd(2_000)
        ),
        Agent::Cursor => format!(
            "| .version = (.version // 1) | ensure(\"preToolUse\"; {{command: $cmd}}; {flat}) | ensure(\"sessionStart\"; {{command: $cmd}}; {flat})"
        ),
    };
    format!("{PRELUDE}{body}")
}

/// Merges the hook entries running `command` for `agent` into `settings` (created as `{}` when
/// missing). With `dry_run`, computes the change on a copy and writes nothing.
///
/// # Errors
/// [`Error::Invalid`] when the settings file is not a JSON object; [`Error::Timeout`] when its
/// lock is not had in time; [`Error::Io`] otherwise.
pub fn install(settings: &Path, agent: Agent, command: &str, dry_run: bool) -> Result<Installed> {
    let update = JsonUpdate::new(filter(agent))
        .arg("cmd", command)
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
        });
    }
    let mut backup = None;
    if let Some(b) = &before {
        let mut s = settings.as_os_str().to_owned();
        s.push(".bak");
        let bak = PathBuf::from(s);
        let dir = sys::fs::parent_dir(settings);
        let mut tmp = sys::fs::TempFile::new_in(dir, "settings-bak", 0o600)
            .map_err(Error::with("cannot create temporary file in", dir))?;
        tmp.write_durable(b.as_bytes(), true)
            .map_err(Error::with("cannot write", tmp.path()))?;
        sys::fs::rename(tmp.path(), &bak).map_err(Error::with("cannot write backup", &bak))?;
        tmp.keep();
        backup = Some(bak);
    }
    let done = update.apply(settings)?;
    Ok(Installed {
        settings: settings.to_path_buf(),
        changed: done.changed || done.created,
        backup,
        diff,
    })
}

fn read_opt(p: &Path) -> Result<Option<String>> {
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
