//! `concur.toml`: the optional configuration file.
//!
//! Read from `--config FILE`, else `$CONCUR_HOME/concur.toml` (absent is fine: every section is
//! optional). An unknown key or malformed value is an error naming the line, never ignored: a
//! typo in a guard list must not silently unprotect a file. The file must be a regular file
//! (a FIFO or device is refused at once, never read from), at most [`MAX_SIZE`] bytes, in UTF-8;
//! a symlink to one is followed.
//!
//! ```toml
//! [guard]                      # paths agents may not write with their file tools
//! protect = ["~/.claude/projects/*/memory/MEMORY.md"]
//! reason = "written through the broker: concur append --broker FILE ..."
//!
//! [broker]
//! roots = ["~/.agent"]         # files the broker may write
//!
//! [legacy.mehanik-cleared]     # a session-scoped marker with a legacy global fallback
//! path = "/tmp/mehanik-cleared-{id}"
//! warn_flag = "ISOLATION_MEHANIK_LEGACY_WARN"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The whole configuration. Every section is optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Paths agents may not write with their file tools.
    #[serde(default)]
    pub guard: Guard,
    /// What the broker may write.
    #[serde(default)]
    pub broker: Broker,
    /// Legacy global paths for session-scoped markers, by marker name.
    #[serde(default)]
    pub legacy: BTreeMap<String, Legacy>,
    /// Where coordination state lives beyond one machine.
    #[serde(default)]
    pub backend: Backend,
    /// Edit reservations.
    #[serde(default)]
    pub reserve: Reserve,
    /// `[sweep]`: the declared inventory for `concur sweep` (read by [`crate::sweep`]; kept
    /// here only so one file can hold both).
    #[serde(default)]
    pub sweep: Option<toml::Table>,
}

/// `[guard]`: paths protected from agents' direct file-tool writes.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Guard {
    /// Glob patterns (`~` expanded) of protected paths.
    #[serde(default)]
    pub protect: Vec<String>,
    /// The reason shown to the agent when a write is denied.
    pub reason: Option<String>,
}

/// `[broker]`: the broker daemon's limits.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Broker {
    /// Directories (`~` expanded) under which the broker accepts files.
    #[serde(default)]
    pub roots: Vec<String>,
}

/// `[legacy.NAME]`: a legacy global path for the session-scoped marker NAME.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Legacy {
    /// Path template; `{id}` is replaced by the session id.
    pub path: String,
    /// Environment variable that, when `1`, makes a legacy hit print a deprecation warning.
    pub warn_flag: Option<String>,
    /// Warn on legacy hits regardless of the environment.
    #[serde(default)]
    pub warn: bool,
}

/// `[backend]`: where coordination verbs keep their state.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Backend {
    /// `etcd://h1:2379,h2:2379`; absent means local files and `SQLite`.
    pub url: Option<String>,
}

/// `[reserve]`: edit reservations.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Reserve {
    /// Claim a file automatically on a session's first edit of it.
    #[serde(default)]
    pub auto: bool,
}

impl Config {
    /// Loads `explicit`, else `home/concur.toml` when it exists, else the defaults.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file and line of a syntax error or unknown key;
    /// [`Error::Config`] too for a file that is not a regular file (a FIFO, `/dev/zero`), is over
    /// [`MAX_SIZE`] or is not UTF-8; [`Error::Io`] if an explicitly named file cannot be read.
    pub fn load(explicit: Option<&Path>, home: Option<&Path>) -> Result<Config> {
        let path = match (explicit, home) {
            (Some(p), _) => p.to_path_buf(),
            (None, Some(h)) => {
                let p = h.join("concur.toml");
                if !p.exists() {
                    return Ok(Config::default());
                }
                p
            }
            (None, None) => return Ok(Config::default()),
        };
        let text = read_capped(&path)?;
        Config::parse(&text, &path)
    }

    /// Parses configuration text; `path` is only used in error messages.
    ///
    /// # Errors
    /// [`Error::Config`] naming the line of the problem.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            Error::Config {
                path: path.to_path_buf(),
                line,
                message: e.message().trim_end_matches('\n').replace('\n', "; "),
            }
        })
    }
}

/// The most bytes a configuration file may hold.
pub const MAX_SIZE: u64 = 1 << 20;

/// Reads a configuration file: a regular file (a FIFO or device is refused, never waited on or
/// streamed), at most [`MAX_SIZE`] bytes, in UTF-8.
fn read_capped(path: &Path) -> Result<String> {
    use std::io::Read;
    let file = crate::sys::fs::open_regular_following(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidInput && e.raw_os_error().is_none() {
            config_error(path, e.to_string())
        } else {
            Error::io("cannot read config", path, e)
        }
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::with("cannot read config", path))?;
    if bytes.len() as u64 > MAX_SIZE {
        return Err(config_error(
            path,
            format!("over {MAX_SIZE} bytes: not a configuration file"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        config_error(path, format!("not UTF-8 (at byte {at})"))
    })
}

fn config_error(path: &Path, message: String) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        line: 1,
        message,
    }
}

/// Expands a leading `~/` to `$HOME/`.
pub fn expand_tilde(s: &str) -> PathBuf {
    match (s.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ if s == "~" => std::env::var_os("HOME").map_or_else(|| PathBuf::from(s), PathBuf::from),
        _ => PathBuf::from(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_an_error_naming_its_line() {
        let text = "[guard]\nprotect = []\n\n[broker]\nrots = [\"x\"]\n";
        let e = Config::parse(text, Path::new("c.toml")).unwrap_err();
        match e {
            Error::Config { line, message, .. } => {
                assert_eq!(line, 5, "{message}");
                assert!(message.contains("rots"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn legacy_sections_parse_by_name() {
        let text = "[legacy.mehanik-cleared]\npath = \"/tmp/m-{id}\"\nwarn_flag = \"W\"\n";
        let c = Config::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(c.legacy["mehanik-cleared"].path, "/tmp/m-{id}");
    }
}
