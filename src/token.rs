//! One-time tokens: issued once, taken by exactly one process.
//!
//! A token is a file; taking it is `rename(2)` of that file to a unique "consumed" name. Of any
//! number of concurrent takers exactly one rename succeeds (the kernel serialises renames of one
//! directory entry), the others find the name gone: one winner, never two, never zero while the
//! token exists. This is the seed's `mv /tmp/opus-override-token ...consumed.$$` pattern, with the
//! token kept in the private runtime home instead of a predictable /tmp path, an optional expiry,
//! and every attempt recorded.
//!
//! ## Layout
//!
//! `HOME/tokens/NAME` holds `{"name", "issued_at", "expires_at", "issuer", "data"}` (times in
//! Unix milliseconds); a taken token moves to `HOME/tokens/.consumed/NAME.<pid>.<n>.<nanos>`
//! (kept as evidence). [`take_path`] takes any existing file, renaming it to
//! `P.consumed.<pid>.<n>.<nanos>` beside it. Every take is appended to `HOME/audit.jsonl`
//! ([`audit`]) with [`crate::append`]: who (pid, session), when, which token, the outcome.
//!
//! ## What is not guaranteed
//!
//! - Expiry is wall-clock time (`SystemTime`): a clock step can expire a token early or late.
//!   An expired token is still consumed by the rename that discovers it: nobody can use it after.
//! - Consumed files are not cleaned up.
//! - An audit record is written after the rename; if the process dies in between, the take
//!   happened but is not recorded.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::append::{AppendOptions, encode_json};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::SessionId;
use crate::sys;
use crate::time::now_unix_ms;

/// The outcome of a take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// This process won the token.
    Won {
        /// The token's payload: for concur tokens the `data` value as compact JSON (`null` when
        /// none); for [`take_path`] files that are not concur tokens, the file's bytes.
        payload: Vec<u8>,
        /// Where the consumed token now lies.
        consumed: PathBuf,
    },
    /// Another process took it first (or it was never issued).
    Lost,
    /// This process took it, but it had expired: consumed, not usable.
    Expired {
        /// When it expired (Unix milliseconds).
        expired_at: u64,
        /// Where the consumed token now lies.
        consumed: PathBuf,
    },
}

impl Taken {
    /// `won`, `lost` or `expired` (the audit ledger's outcome field).
    pub fn outcome(&self) -> &'static str {
        match self {
            Taken::Won { .. } => "won",
            Taken::Lost => "lost",
            Taken::Expired { .. } => "expired",
        }
    }
}

/// Checks a token name: `[A-Za-z0-9._-]{1,128}`, not starting with `.`.
///
/// # Errors
/// [`Error::Invalid`] naming what is wrong.
pub fn check_name(name: &str) -> Result<()> {
    crate::id::check_name("token", name)?;
    if name.starts_with('.') {
        // Consumed tokens are renamed to hidden names; a live one must not look like them.
        return Err(Error::Invalid(format!(
            "invalid token name {name:?}: must not start with '.'"
        )));
    }
    Ok(())
}

/// The tokens directory of `home` (`HOME/tokens`, created 0700 and checked).
///
/// # Errors
/// As [`Home::subdir`].
pub fn dir(home: &Home) -> Result<PathBuf> {
    home.subdir("tokens")
}

/// The path of token `name` in `home`.
///
/// # Errors
/// [`Error::Invalid`] for a bad name; as [`dir`] otherwise.
pub fn path(home: &Home, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    Ok(dir(home)?.join(name))
}

/// Issues token `name` in `home`, valid for `ttl` (forever when `None`), carrying `data` (JSON
/// text). The token appears whole (temp file + rename). An existing, untaken token of that
/// name is an [`Error::Conflict`] unless `replace`.
///
/// # Errors
/// [`Error::Invalid`] for a bad name or data; [`Error::Conflict`] when it exists; I/O errors.
///
/// # Examples
/// ```
/// use concur::{Home, token};
/// let dir = tempfile::tempdir().unwrap();
/// let home = Home::at(dir.path().join("home")).unwrap();
/// token::issue(&home, "deploy-ok", None, Some(r#"{"by":"alice"}"#), None, false).unwrap();
/// let p = token::path(&home, "deploy-ok").unwrap();
/// assert!(matches!(token::take_path(&p).unwrap(), token::Taken::Won { .. }));
/// assert_eq!(token::take_path(&p).unwrap(), token::Taken::Lost);
/// ```
pub fn issue(
    home: &Home,
    name: &str,
    ttl: Option<Duration>,
    data: Option<&str>,
    issuer: Option<&SessionId>,
    replace: bool,
) -> Result<PathBuf> {
    check_name(name)?;
    let data: serde_json::Value = match data {
        Some(d) => serde_json::from_str(d)
            .map_err(|e| Error::Invalid(format!("--data: invalid JSON: {e}")))?,
        None => serde_json::Value::Null,
    };
    let issued_at = now_unix_ms();
    let expires_at =
        ttl.map(|t| issued_at.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)));
    let body = serde_json::json!({
        "name": name,
        "issued_at": issued_at,
        "expires_at": expires_at,
        "issuer": { "pid": std::process::id(), "session": issuer.map(SessionId::as_str) },
        "data": data,
    });
    let mut text = body.to_string().into_bytes();
    text.push(b'\n');
    let dir = dir(home)?;
    let target = dir.join(name);
    let place = if replace {
        sys::fs::Place::Replace
    } else {
        sys::fs::Place::NoReplace
    };
    match sys::fs::write_atomic(&target, &text, &sys::fs::Atomic::new(name).place(place)) {
        Ok(()) => Ok(target),
        Err(e) if e.target_exists() => Err(Error::Conflict(format!(
            "token {name} is already issued and not yet taken (pass --replace to re-issue)"
        ))),
        Err(e) => Err(e.into()),
    }
}

static TAKE_COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    let n = TAKE_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}.{n}.{nanos}", std::process::id())
}

/// Takes token `name` from `home`: see [`take_path`]; the consumed token goes to
/// `HOME/tokens/.consumed/`.
///
/// # Errors
/// As [`take_path`], and [`Error::Invalid`] for a bad name.
pub fn take(home: &Home, name: &str) -> Result<Taken> {
    let from = path(home, name)?;
    let consumed_dir = home.subdir("tokens/.consumed")?;
    let to = consumed_dir.join(format!("{name}.{}", unique_suffix()));
    take_to(&from, &to)
}

/// Takes the token file at `path` (any existing file, e.g. a legacy /tmp override token):
/// renames it to `path.consumed.<pid>.<n>.<nanos>`. Exactly one of any number of concurrent
/// takers gets [`Taken::Won`] (or [`Taken::Expired`]); the rest get [`Taken::Lost`].
///
/// # Errors
/// A permission error for a symlink at `path`; [`Error::Io`] when the rename or the read of
/// the consumed file fails for another reason than the token being gone.
pub fn take_path(path: &Path) -> Result<Taken> {
    let mut to = path.as_os_str().to_owned();
    to.push(format!(".consumed.{}", unique_suffix()));
    take_to(path, Path::new(&to))
}

fn take_to(from: &Path, to: &Path) -> Result<Taken> {
    match std::fs::symlink_metadata(from) {
        Ok(md) if md.file_type().is_symlink() => {
            return Err(Error::unsafe_path("refusing token", from, "is a symlink"));
        }
        Ok(md) if !md.is_file() => {
            return Err(Error::unsafe_path(
                "refusing token",
                from,
                "is not a regular file",
            ));
        }
        _ => {}
    }
    match sys::fs::rename_noreplace(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Taken::Lost),
        Err(e) => return Err(Error::io("cannot take token", from, e)),
    }
    let dir = sys::fs::parent_dir(to);
    sys::fs::sync_dir(dir).map_err(Error::with("cannot fsync directory", dir))?;
    let mut content = Vec::new();
    sys::fs::open(to, sys::fs::Open::READ)
        .and_then(|mut f| f.read_to_end(&mut content))
        .map_err(Error::with("cannot read taken token", to))?;
    let consumed = to.to_path_buf();
    let Ok(serde_json::Value::Object(tok)) = serde_json::from_slice::<serde_json::Value>(&content)
    else {
        return Ok(Taken::Won {
            payload: content,
            consumed,
        });
    };
    if !tok.contains_key("issued_at") {
        return Ok(Taken::Won {
            payload: content,
            consumed,
        });
    }
    if let Some(exp) = tok.get("expires_at").and_then(serde_json::Value::as_u64)
        && now_unix_ms() >= exp
    {
        return Ok(Taken::Expired {
            expired_at: exp,
            consumed,
        });
    }
    let data = tok.get("data").cloned().unwrap_or(serde_json::Value::Null);
    Ok(Taken::Won {
        payload: data.to_string().into_bytes(),
        consumed,
    })
}

/// Puts a token this process took back where it was (`original`): for a take whose audit
/// record could not be written, so that the take is all or nothing — no token burnt without a
/// record of who took it. A [`Taken::Lost`] has nothing to put back. If a token was issued at
/// `original` meanwhile, the taken one stays consumed (never overwritten).
///
/// # Errors
/// [`Error::Io`] when the rename back fails.
pub fn untake(taken: &Taken, original: &Path) -> Result<()> {
    let consumed = match taken {
        Taken::Won { consumed, .. } | Taken::Expired { consumed, .. } => consumed,
        Taken::Lost => return Ok(()),
    };
    sys::fs::rename_noreplace(consumed, original)
        .map_err(Error::with("cannot put the token back at", original))?;
    let dir = sys::fs::parent_dir(original);
    sys::fs::sync_dir(dir).map_err(Error::with("cannot fsync directory", dir))
}

/// Appends one record of a take to `HOME/audit.jsonl`: `{ts, ms, verb, pid, session, token,
/// outcome}` (durable, one line per take, see [`crate::append`]).
///
/// # Errors
/// As [`AppendOptions::append`].
pub fn audit(home: &Home, token: &str, outcome: &str, session: Option<&SessionId>) -> Result<()> {
    let ms = now_unix_ms();
    let rec = serde_json::json!({
        "ts": iso8601(ms),
        "ms": ms,
        "verb": "token take",
        "pid": std::process::id(),
        "session": session.map(SessionId::as_str),
        "token": token,
        "outcome": outcome,
    });
    let line = encode_json(rec.to_string().as_bytes())?;
    AppendOptions::new().append(&home.join("audit.jsonl"), &line)?;
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for Unix milliseconds (proleptic Gregorian, UTC).
pub use crate::time::utc_millis as iso8601;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_knows_leap_years() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_779_062_400_000), "2026-05-18T00:00:00.000Z");
    }

    #[test]
    fn expired_token_is_consumed_and_reported() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path().join("h")).unwrap();
        issue(&home, "t", Some(Duration::ZERO), None, None, false).unwrap();
        assert!(matches!(take(&home, "t").unwrap(), Taken::Expired { .. }));
        assert_eq!(take(&home, "t").unwrap(), Taken::Lost);
    }

    #[test]
    fn reissue_needs_replace() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path().join("h")).unwrap();
        issue(&home, "t", None, Some("1"), None, false).unwrap();
        assert!(matches!(
            issue(&home, "t", None, Some("2"), None, false),
            Err(Error::Conflict(_))
        ));
        issue(&home, "t", None, Some("3"), None, true).unwrap();
        match take(&home, "t").unwrap() {
            Taken::Won { payload, .. } => assert_eq!(payload, b"3"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_cannot_escape_or_hide() {
        for bad in ["", ".x", "..", "a/b", "../t", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
