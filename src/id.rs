//! Session ids: which session a call acts for.
//!
//! Resolved as `--session`, else `$CONCUR_SESSION`, else the id the agent exports to its shell
//! tool and hooks: `$CLAUDE_CODE_SESSION_ID` (Claude Code), `$CLAUDE_SESSION_ID` (the name older
//! scripts use), `$CODEX_THREAD_ID`, `$CODEX_SESSION_ID` (Codex CLI), `$GEMINI_SESSION_ID` (Gemini
//! CLI's hooks). When none is set, the CLI looks for the registered session whose agent process
//! is an ancestor of the caller ([`crate::session::of_caller`]). A valid id matches
//! `[A-Za-z0-9._-]{1,128}` and is not `.` or `..`, so it can name a file in the home without
//! escaping it; anything else is rejected before any file is touched.

use std::fmt;

use crate::error::{Error, Result};

/// The environment variables consulted, in order, after an explicit id.
pub const ENV_VARS: [&str; 6] = [
    "CONCUR_SESSION",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_SESSION_ID",
    "CODEX_THREAD_ID",
    "CODEX_SESSION_ID",
    "GEMINI_SESSION_ID",
];

/// A validated session id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// Validates `id`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the id and what is wrong with it.
    ///
    /// # Examples
    /// ```
    /// use concur::SessionId;
    /// assert!(SessionId::new("8c35adc1-0b1e").is_ok());
    /// assert!(SessionId::new("../etc").is_err());
    /// ```
    pub fn new(id: &str) -> Result<SessionId> {
        let why = if id.is_empty() {
            Some("is empty")
        } else if id.len() > 128 {
            Some("is longer than 128 bytes")
        } else if id == "." || id == ".." {
            Some("is a path component")
        } else if !id.bytes().all(is_name_byte) {
            Some("may only hold letters, digits, '.', '_' and '-'")
        } else {
            None
        };
        match why {
            Some(why) => Err(Error::Invalid(format!("invalid session id {id:?}: {why}"))),
            None => Ok(SessionId(id.to_owned())),
        }
    }

    /// The id from `explicit`, else the environment; `Ok(None)` when none is set.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the first id found is not valid (later sources are not tried:
    /// a bad id is a mistake to report, not to paper over).
    pub fn resolve(explicit: Option<&str>) -> Result<Option<SessionId>> {
        if let Some(id) = explicit {
            return SessionId::new(id).map(Some);
        }
        for var in ENV_VARS {
            if let Some(v) = std::env::var_os(var) {
                let v = v.to_string_lossy();
                if !v.is_empty() {
                    return SessionId::new(&v).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Checks that `name` can name exactly one file in the home, like a session id:
/// `[A-Za-z0-9._-]{1,128}` and not `.` or `..`. Lock, slot, token and marker names use it, on
/// every backend, so a name valid on one is valid on all.
///
/// # Errors
/// [`Error::Invalid`] naming `what`, the name and the rule.
///
/// # Examples
/// ```
/// assert!(concur::id::check_name("lock", "nightly-build").is_ok());
/// assert!(concur::id::check_name("lock", "../x").is_err());
/// ```
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name.bytes().all(is_name_byte);
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid {what} name {name:?}: use 1 to 128 letters, digits, '.', '_' or '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_traversal_empty_and_odd_bytes() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a b",
            "é",
            &"x".repeat(129),
            "a\nb",
        ] {
            assert!(SessionId::new(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "A.b_c-9", &"x".repeat(128), "..."] {
            assert!(SessionId::new(good).is_ok(), "{good:?} rejected");
        }
    }
}
