//! One-time tokens: issued once, taken by exactly one process, every take audited.
//!
//! A token is a file; taking it is `rename(2)` of that file to a unique "consumed" name. Of any
//! number of concurrent takers exactly one rename succeeds (the kernel serialises renames of one
//! directory entry), the others find the name gone: one winner, never two, never zero while the
//! token exists. This is the seed's `mv /tmp/opus-override-token ...consumed.$$` pattern, with the
//! token kept in the private runtime home instead of a predictable /tmp path, an optional expiry,
//! and every attempt recorded.
//!
//! This module is also the vocabulary every backend's tokens share ([`Take`], [`Outcome`],
//! [`Issued`], the audit record): the etcd implementation ([`crate::etcd::token`]) reports in
//! these types and audits through [`audit`], and [`crate::backend::tokens`] puts both behind one
//! trait.
//!
//! ## Layout
//!
//! `HOME/tokens/NAME` holds `{"name", "issued_at", "expires_at", "issuer", "data"}` (times in
//! Unix milliseconds); a taken token moves to `HOME/tokens/.consumed/NAME@<ms>.<pid>.<n>` (kept
//! as evidence; `<ms>` is the time of the take, which decides whether it had expired).
//! [`take_file`] takes any existing file, renaming it to `P.consumed.<pid>.<n>.<nanos>` beside
//! it. Every take ([`take`], [`take_file`]) is appended to `HOME/audit.jsonl` ([`audit`]) with
//! [`crate::append`]: who (pid, session), when, which token, on which backend, the outcome.
//!
//! A take that finds no token tells why from the consumed tokens: none of that name was ever
//! taken ([`Outcome::Absent`]), the last one was taken before it expired ([`Outcome::Taken`]), or
//! after ([`Outcome::Expired`], as for the taker that consumed it: an expired token stays
//! expired for everyone, as on etcd).
//!
//! ## What is not guaranteed
//!
//! - Expiry is wall-clock time (`SystemTime`): a clock step can expire a token early or late.
//!   An expired token is still consumed by the rename that discovers it: nobody can use it after.
//! - Consumed files are not cleaned up; a loser's classification reads their names.
//! - All or nothing, with one window: the audit record is written after the rename, and a take
//!   whose record cannot be written puts the token back and fails. If the process dies between
//!   the rename and the record, the take happened but is not recorded; if putting back fails
//!   too, the token stays consumed and the take fails with the audit's error.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::append::{AppendOptions, encode_json};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::SessionId;
use crate::sys;
use crate::time::now_unix_ms;

/// What a take of a named token found, on any backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This caller won the token: exit 0.
    Won,
    /// The last token of that name expired untaken (this caller may have consumed it): not
    /// usable, exit 3.
    Expired,
    /// Another caller took it first: exit 1.
    Taken,
    /// No token of that name was ever issued (or taken): exit 1.
    Absent,
}

impl Outcome {
    /// `won`, `expired`, `taken` or `absent`, as `--json` and the audit ledger name it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Won => "won",
            Outcome::Expired => "expired",
            Outcome::Taken => "taken",
            Outcome::Absent => "absent",
        }
    }
}

/// A take of a named token, on any backend: the one result type of [`take`] and the etcd take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Take {
    /// The token's name.
    pub token: String,
    /// What happened.
    pub outcome: Outcome,
    /// The `data` given at issue, for [`Outcome::Won`]; `null` otherwise.
    pub payload: Value,
    /// When the token expired (Unix milliseconds), for [`Outcome::Expired`] when known.
    pub expired_at: Option<u64>,
    /// On etcd, the revision of the take (won) or of the last change seen; `None` locally.
    pub revision: Option<i64>,
    /// Locally, where the token this take consumed lies; `None` on etcd or when nothing was
    /// consumed.
    pub consumed: Option<PathBuf>,
}

impl Take {
    fn new(token: &str, outcome: Outcome) -> Take {
        Take {
            token: token.to_string(),
            outcome,
            payload: Value::Null,
            expired_at: None,
            revision: None,
            consumed: None,
        }
    }

    /// The error a caller that needed the token reports: `None` when it was won;
    /// [`Error::Conflict`] when taken by another or never issued; [`Error::Precondition`] when
    /// expired.
    #[must_use]
    pub fn refusal(&self) -> Option<Error> {
        refusal(&self.token, self.outcome, self.expired_at)
    }
}

fn refusal(name: &str, outcome: Outcome, expired_at: Option<u64>) -> Option<Error> {
    match outcome {
        Outcome::Won => None,
        Outcome::Taken => Some(Error::Conflict(format!(
            "token {name} is gone: taken by another process"
        ))),
        Outcome::Absent => Some(Error::Conflict(format!(
            "token {name} was never issued (nothing to take)"
        ))),
        Outcome::Expired => Some(Error::Precondition(match expired_at {
            Some(at) => format!("token {name} expired at {} (not usable)", iso8601(at)),
            None => format!("token {name} expired (not usable)"),
        })),
    }
}

/// An issued token, on any backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The token's name.
    pub token: String,
    /// When it expires (Unix milliseconds, by the issuer's clock); `None`: never.
    pub expires_at: Option<u64>,
    /// On etcd, the revision of the issue; `None` locally.
    pub revision: Option<i64>,
    /// Locally, the token's file; `None` on etcd.
    pub path: Option<PathBuf>,
}

/// The outcome of a take of a file ([`take_path`], [`take_file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// This process won the token.
    Won {
        /// The token's payload: for concur tokens the `data` value as compact JSON (`null` when
        /// none); for files that are not concur tokens, the file's bytes.
        payload: Vec<u8>,
        /// Where the consumed token now lies.
        consumed: PathBuf,
    },
    /// Another process took it first (or it was never there).
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

    /// The payload and the consumed file of a won take; for any other outcome the error a
    /// caller that needed the token file `label` reports, as [`Take::refusal`] (a file that is
    /// gone reads as taken).
    ///
    /// # Errors
    /// [`Error::Conflict`] when lost; [`Error::Precondition`] when expired.
    pub fn into_won(self, label: &str) -> Result<(Vec<u8>, PathBuf)> {
        let (outcome, expired_at) = match self {
            Taken::Won { payload, consumed } => return Ok((payload, consumed)),
            Taken::Lost => (Outcome::Taken, None),
            Taken::Expired { expired_at, .. } => (Outcome::Expired, Some(expired_at)),
        };
        Err(refusal(label, outcome, expired_at)
            .unwrap_or_else(|| Error::Conflict(format!("token {label} was not won"))))
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

/// The `--data` of an issue: JSON text, `null` when none.
///
/// # Errors
/// [`Error::Invalid`] when it is not JSON.
pub fn parse_data(data: Option<&str>) -> Result<Value> {
    data.map_or(Ok(Value::Null), |d| {
        serde_json::from_str(d).map_err(|e| Error::Invalid(format!("--data: invalid JSON: {e}")))
    })
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

/// When a token issued now with `ttl` expires (Unix milliseconds).
#[must_use]
pub fn expiry(issued_at: u64, ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|t| issued_at.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)))
}

/// Issues token `name` in `home`, valid for `ttl` (forever when `None`), carrying `data`. The
/// token appears whole (temp file + rename). An existing, untaken token of that name is an
/// [`Error::Conflict`] unless `replace`.
///
/// # Errors
/// [`Error::Invalid`] for a bad name; [`Error::Conflict`] when it exists; I/O errors.
///
/// # Examples
/// ```
/// use concur::{Home, token};
/// let dir = tempfile::tempdir().unwrap();
/// let home = Home::at(dir.path().join("home")).unwrap();
/// let data = serde_json::json!({"by": "alice"});
/// token::issue(&home, "deploy-ok", None, &data, None, false).unwrap();
/// let won = token::take(&home, "deploy-ok", None).unwrap();
/// assert_eq!((won.outcome, won.payload), (token::Outcome::Won, data));
/// assert_eq!(token::take(&home, "deploy-ok", None).unwrap().outcome, token::Outcome::Taken);
/// assert_eq!(token::take(&home, "other", None).unwrap().outcome, token::Outcome::Absent);
/// ```
pub fn issue(
    home: &Home,
    name: &str,
    ttl: Option<Duration>,
    data: &Value,
    issuer: Option<&SessionId>,
    replace: bool,
) -> Result<Issued> {
    check_name(name)?;
    let issued_at = now_unix_ms();
    let expires_at = expiry(issued_at, ttl);
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
        Ok(()) => Ok(Issued {
            token: name.to_string(),
            expires_at,
            revision: None,
            path: Some(target),
        }),
        Err(e) if e.target_exists() => Err(Error::Conflict(format!(
            "token {name} is already issued and not yet taken (pass --replace to re-issue)"
        ))),
        Err(e) => Err(e.into()),
    }
}

static TAKE_COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    let n = TAKE_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}.{n}", std::process::id())
}

/// Takes token `name` from `home` and records the take in the home's audit ledger: exactly one
/// of any number of concurrent takers gets [`Outcome::Won`] and the token's data; the others
/// learn whether it was taken, expired or never issued. The consumed token goes to
/// `HOME/tokens/.consumed/`.
///
/// # Errors
/// [`Error::Invalid`] for a bad name; a permission error for a symlink at the token's path or
/// an unsafe home; [`Error::Io`] when the rename or a read fails for another reason than the
/// token being gone; the audit's error when the record cannot be written (the token is put
/// back first).
pub fn take(home: &Home, name: &str, session: Option<&SessionId>) -> Result<Take> {
    take_as(home, name, session, false)
}

/// The reservation hook's take of an override token, which it tries on every refused edit: as
/// [`take`], but a won take is recorded as `override`, and a token that is not there is neither
/// recorded nor classified (reported [`Outcome::Absent`]): nothing was taken, and a refused
/// edit stays one rename attempt.
///
/// # Errors
/// As [`take`].
pub(crate) fn take_override(home: &Home, name: &str, session: Option<&SessionId>) -> Result<Take> {
    take_as(home, name, session, true)
}

fn take_as(home: &Home, name: &str, session: Option<&SessionId>, hook: bool) -> Result<Take> {
    let from = path(home, name)?;
    let consumed_dir = home.subdir("tokens/.consumed")?;
    let at = now_unix_ms();
    let to = consumed_dir.join(format!("{name}@{at}.{}", unique_suffix()));
    let file = take_to(&from, &to, at)?;
    let take = match &file {
        Taken::Won { payload, consumed } => Take {
            payload: serde_json::from_slice(payload)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into())),
            consumed: Some(consumed.clone()),
            ..Take::new(name, Outcome::Won)
        },
        Taken::Expired {
            expired_at,
            consumed,
        } => Take {
            expired_at: Some(*expired_at),
            consumed: Some(consumed.clone()),
            ..Take::new(name, Outcome::Expired)
        },
        Taken::Lost if hook => return Ok(Take::new(name, Outcome::Absent)),
        Taken::Lost => why_gone(&consumed_dir, name)?,
    };
    let outcome = match take.outcome {
        Outcome::Won if hook => "override",
        o => o.name(),
    };
    let record = Audit {
        token: name,
        outcome,
        session,
        backend: "local",
        revision: None,
    };
    recorded(home, &record, || untake(&file, &from))?;
    Ok(take)
}

/// Why token `name` is not there: the newest consumed token of that name (by take time) was
/// taken before it expired, or after; none means it was never issued.
fn why_gone(consumed_dir: &Path, name: &str) -> Result<Take> {
    let entries = std::fs::read_dir(consumed_dir)
        .map_err(Error::with("cannot list consumed tokens in", consumed_dir))?;
    let mut last: Option<(u64, PathBuf)> = None;
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some((of, at)) = file.to_str().and_then(consumed_name) else {
            continue;
        };
        if of == name && last.as_ref().is_none_or(|(t, _)| at >= *t) {
            last = Some((at, entry.path()));
        }
    }
    let Some((at, newest)) = last else {
        return Ok(Take::new(name, Outcome::Absent));
    };
    let mut content = Vec::new();
    sys::fs::open(&newest, sys::fs::Open::READ)
        .and_then(|mut f| f.read_to_end(&mut content))
        .map_err(Error::with("cannot read consumed token", &newest))?;
    let expired_at = serde_json::from_slice::<Value>(&content)
        .ok()
        .and_then(|v| v.get("expires_at").and_then(Value::as_u64));
    Ok(match expired_at {
        Some(exp) if at >= exp => Take {
            expired_at: Some(exp),
            ..Take::new(name, Outcome::Expired)
        },
        _ => Take::new(name, Outcome::Taken),
    })
}

/// The token name and take time (Unix milliseconds) of a consumed token's file name:
/// `NAME@<ms>.<pid>.<n>`, or the older `NAME.<pid>.<n>.<nanos>` (take time unknown: 0).
fn consumed_name(file: &str) -> Option<(&str, u64)> {
    if let Some((name, rest)) = file.rsplit_once('@') {
        let ms = rest.split('.').next()?.parse().ok()?;
        return Some((name, ms));
    }
    let mut name = file;
    for _ in 0..3 {
        let (head, tail) = name.rsplit_once('.')?;
        if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        name = head;
    }
    Some((name, 0))
}

/// Takes the token file at `path` (any existing file, e.g. a legacy /tmp override token) and
/// records the take, labelled with the path, in `home`'s audit ledger (putting the token back
/// when the record cannot be written): as [`take_path`].
///
/// # Errors
/// As [`take_path`]; the audit's error when the record cannot be written.
pub fn take_file(home: &Home, path: &Path, session: Option<&SessionId>) -> Result<Taken> {
    let taken = take_path(path)?;
    let label = path.display().to_string();
    let record = Audit {
        token: &label,
        outcome: taken.outcome(),
        session,
        backend: "local",
        revision: None,
    };
    recorded(home, &record, || untake(&taken, path))?;
    Ok(taken)
}

/// Takes the token file at `path` without recording it (for races that are not real takes, such
/// as `concur diagnose`'s): renames it to `path.consumed.<pid>.<n>.<nanos>`. Exactly one of any
/// number of concurrent takers gets [`Taken::Won`] (or [`Taken::Expired`]); the rest get
/// [`Taken::Lost`].
///
/// # Errors
/// A permission error for a symlink at `path`; [`Error::Io`] when the rename or the read of
/// the consumed file fails for another reason than the token being gone.
pub fn take_path(path: &Path) -> Result<Taken> {
    let mut to = path.as_os_str().to_owned();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    to.push(format!(".consumed.{}.{nanos}", unique_suffix()));
    take_to(path, Path::new(&to), now_unix_ms())
}

/// Renames `from` to `to` and reads what was taken; `at` is the time of the take, against which
/// expiry is judged.
fn take_to(from: &Path, to: &Path, at: u64) -> Result<Taken> {
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
    let Ok(Value::Object(tok)) = serde_json::from_slice::<Value>(&content) else {
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
    if let Some(exp) = tok.get("expires_at").and_then(Value::as_u64)
        && at >= exp
    {
        return Ok(Taken::Expired {
            expired_at: exp,
            consumed,
        });
    }
    let data = tok.get("data").cloned().unwrap_or(Value::Null);
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

/// One take, as the audit ledger records it.
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a> {
    /// The token's name (or, for [`take_file`], its path).
    pub token: &'a str,
    /// `won`, `taken`, `absent`, `expired` ([`Outcome::name`]); `lost` for a file token that was
    /// gone; `override` for the reservation hook's won takes.
    pub outcome: &'a str,
    /// The taker's session.
    pub session: Option<&'a SessionId>,
    /// `local` or `etcd`.
    pub backend: &'a str,
    /// On etcd, the revision of the take (or of the last change seen).
    pub revision: Option<i64>,
}

/// Appends one record of a take to `HOME/audit.jsonl`: `{ts, ms, verb, pid, session, token,
/// outcome, backend, revision}` (durable, one line per take, see [`crate::append`]).
///
/// # Errors
/// As [`AppendOptions::append`].
pub fn audit(home: &Home, record: &Audit<'_>) -> Result<()> {
    let ms = now_unix_ms();
    let rec = serde_json::json!({
        "ts": iso8601(ms),
        "ms": ms,
        "verb": "token take",
        "pid": std::process::id(),
        "session": record.session.map(SessionId::as_str),
        "token": record.token,
        "outcome": record.outcome,
        "backend": record.backend,
        "revision": record.revision,
    });
    let line = encode_json(rec.to_string().as_bytes())?;
    AppendOptions::new().append(&home.join("audit.jsonl"), &line)?;
    Ok(())
}

/// Writes `record`; when it cannot be written, undoes the take with `put_back` and fails with
/// the audit's error: no token is consumed without a record of who took it.
///
/// # Errors
/// The audit's error.
pub(crate) fn recorded(
    home: &Home,
    record: &Audit<'_>,
    put_back: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let Err(e) = audit(home, record) else {
        return Ok(());
    };
    // If putting back fails too, the token stays consumed; the audit's error is the cause.
    let _ = put_back();
    Err(e)
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
        issue(&home, "t", Some(Duration::ZERO), &Value::Null, None, false).unwrap();
        let first = take(&home, "t", None).unwrap();
        assert_eq!(first.outcome, Outcome::Expired);
        assert!(first.consumed.is_some());
        // Expired for everyone after, as on etcd: nobody won it.
        let again = take(&home, "t", None).unwrap();
        assert_eq!(again.outcome, Outcome::Expired);
        assert_eq!(again.expired_at, first.expired_at);
    }

    #[test]
    fn reissue_needs_replace() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path().join("h")).unwrap();
        issue(&home, "t", None, &1.into(), None, false).unwrap();
        assert!(matches!(
            issue(&home, "t", None, &2.into(), None, false),
            Err(Error::Conflict(_))
        ));
        issue(&home, "t", None, &3.into(), None, true).unwrap();
        let won = take(&home, "t", None).unwrap();
        assert_eq!((won.outcome, won.payload), (Outcome::Won, 3.into()));
    }

    #[test]
    fn consumed_names_give_the_token_and_the_take_time() {
        assert_eq!(consumed_name("a.b@1700.42.0"), Some(("a.b", 1700)));
        assert_eq!(consumed_name("a.b.42.0.999"), Some(("a.b", 0)));
        assert_eq!(consumed_name("a.b.42.0"), None);
        assert_eq!(consumed_name("x@notatime.1.2"), None);
    }

    #[test]
    fn taken_and_never_issued_are_told_apart() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path().join("h")).unwrap();
        assert_eq!(take(&home, "t", None).unwrap().outcome, Outcome::Absent);
        issue(&home, "t", None, &Value::Null, None, false).unwrap();
        assert_eq!(take(&home, "t", None).unwrap().outcome, Outcome::Won);
        assert_eq!(take(&home, "t", None).unwrap().outcome, Outcome::Taken);
        // A token whose name extends this one's is not taken by it.
        assert_eq!(take(&home, "t.1", None).unwrap().outcome, Outcome::Absent);
    }

    #[test]
    fn names_cannot_escape_or_hide() {
        for bad in ["", ".x", "..", "a/b", "../t", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
