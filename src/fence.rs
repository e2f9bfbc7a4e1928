//! Fenced writes to local files: the storage side refuses a writer whose lock was taken over.
//!
//! A fencing token is a number that grows with every new holder of a lock (etcd's create
//! revision for `concur lock --name` on etcd, the lease token of `concur lease acquire`). A
//! writer passes `NAME:TOKEN` ([`Fence`]); the file it writes remembers, per lock name, the
//! highest token it has accepted, and refuses a lower one. This is the check Kleppmann asks of
//! the storage ("How to do distributed locking"): a holder that was paused past its lease, and
//! replaced, finds its late write refused once the new holder has written.
//!
//! ## What is guaranteed
//!
//! - The record of accepted tokens is `FILE.fence` (a JSON object `{"NAME": TOKEN, ...}`),
//!   beside `FILE` and its sidecar `FILE.lock`. It is read, compared and advanced under the same
//!   sidecar lock as the write of `FILE` itself, and advanced *before* `FILE` is replaced, fsynced
//!   and renamed into place like `FILE`. A crash between the two leaves the record ahead of the
//!   file, which only refuses more, never less.
//! - A token lower than the recorded one for its lock name is refused with
//!   [`Error::Precondition`] naming both tokens; nothing is written. An equal or higher token is
//!   accepted (a holder writes many times with one token).
//! - With a [`Fencing::check`] (the CLI installs one when an etcd backend is configured), the
//!   check runs under the same sidecar lock, after the token comparison and before the record
//!   or the file changes: the write is refused unless the lock is still held with that token
//!   right then. [`crate::replace::ReplaceOptions::replace_locked`] decides the fence after the
//!   new content's temporary file is durable, just before the rename, so the check is as close
//!   to the write as a local file allows.
//!
//! ## What is not
//!
//! - A local file cannot ask etcd atomically. A writer paused *between* the holder check and the
//!   rename (a few system calls; on a holder's first write to the file also the record's own
//!   durable replace), holding the sidecar lock, still writes after its lease ran out. Its write is then
//!   ordered before every later write to the same file (they wait for the sidecar lock), and
//!   every later fenced write with the new token succeeds; but the new holder may already have
//!   acted elsewhere believing itself alone. Keep fenced writes short.
//! - Without a check, only the token order protects: a stale writer whose token is not below
//!   the record (the new holder has not written this file yet) is accepted, and the tokens are
//!   whatever the writers pass.
//! - Writers that do not pass a fence are not checked at all; fencing is per writer.
//! - Deleting `FILE.fence` forgets the accepted tokens.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::lock::LockGuard;
use crate::replace::{self, ReplaceOptions};

/// A lock name and the fencing token its holder got: `NAME:TOKEN`.
///
/// # Examples
/// ```
/// let f: concur::fence::Fence = "deploy:1234".parse().unwrap();
/// assert_eq!((f.lock.as_str(), f.token), ("deploy", 1234));
/// assert_eq!(f.to_string(), "deploy:1234");
/// assert!("deploy".parse::<concur::fence::Fence>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lock's name.
    pub lock: String,
    /// The fencing token the writer holds.
    pub token: i64,
}

impl FromStr for Fence {
    type Err = Error;

    fn from_str(s: &str) -> Result<Fence> {
        let bad = |why: &str| Error::Invalid(format!("invalid fence {s:?}: {why}"));
        if s.is_empty() {
            return Err(bad(
                "empty (is $CONCUR_FENCE set? `concur lock --name` sets it for its command)",
            ));
        }
        let (lock, token) = s
            .rsplit_once(':')
            .ok_or_else(|| bad("expected NAME:TOKEN"))?;
        crate::id::check_name("lock", lock).map_err(|e| bad(&e.to_string()))?;
        let token = token
            .parse::<i64>()
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| bad("TOKEN must be a positive integer"))?;
        Ok(Fence {
            lock: lock.to_string(),
            token,
        })
    }
}

impl fmt::Display for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.lock, self.token)
    }
}

/// A check that the fence's lock is still held with its token (e.g. one etcd read).
pub type HolderCheck = Arc<dyn Fn(&Fence) -> Result<()> + Send + Sync>;

/// A fence to enforce on a write, with an optional live holder check.
#[derive(Clone)]
pub struct Fencing {
    fence: Fence,
    check: Option<HolderCheck>,
}

impl fmt::Debug for Fencing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fencing")
            .field("fence", &self.fence)
            .field("check", &self.check.is_some())
            .finish()
    }
}

/// What [`Fencing::admit`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The highest token accepted for this lock name before (`None`: never fenced).
    pub before: Option<i64>,
    /// The record was advanced to this write's token.
    pub advanced: bool,
}

impl Fencing {
    /// Enforces `fence` by the token record alone.
    pub fn new(fence: Fence) -> Fencing {
        Fencing { fence, check: None }
    }

    /// Also runs `check` under the sidecar lock before writing; its error refuses the write.
    #[must_use]
    pub fn check(mut self, check: impl Fn(&Fence) -> Result<()> + Send + Sync + 'static) -> Self {
        self.check = Some(Arc::new(check));
        self
    }

    /// The fence.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Decides whether a fenced write of `target` may go ahead, and if so advances the record.
    /// The caller must hold `target`'s sidecar lock and write `target` only after `Ok`. A new
    /// record gets `mode` (the target's permission bits).
    ///
    /// # Errors
    /// [`Error::Precondition`] when the token is below the recorded one (or the holder check
    /// refuses); [`Error::Invalid`] when the record is not readable JSON; whatever the holder
    /// check returns; [`Error::Io`] when the record cannot be read or written.
    pub fn admit(&self, target: &Path, mode: u32) -> Result<Admitted> {
        let rec = record_path(target);
        let mut tokens = read_record(&rec)?;
        let before = tokens.get(&self.fence.lock).copied();
        if let Some(high) = before.filter(|h| *h > self.fence.token) {
            return Err(Error::Precondition(format!(
                "fencing token {} for lock {} is below {high}, already accepted for {}; write \
                 refused",
                self.fence.token,
                self.fence.lock,
                target.display()
            )));
        }
        if let Some(check) = &self.check {
            check(&self.fence)?;
        }
        let advanced = before.is_none_or(|h| h < self.fence.token);
        if advanced {
            tokens.insert(self.fence.lock.clone(), self.fence.token);
            let mut text = serde_json::to_vec(&tokens).map_err(|e| {
                Error::Invalid(format!("cannot encode fence record {}: {e}", rec.display()))
            })?;
            text.push(b'\n');
            ReplaceOptions::new()
                .mode(mode)
                .fsync(true)
                .replace_locked(&rec, &text)?;
        }
        Ok(Admitted { before, advanced })
    }
}

impl replace::Gate for Fencing {
    /// [`Fencing::admit`]: the write of `target` goes ahead only if the fence is admitted.
    fn pass(&self, target: &Path, mode: u32) -> Result<()> {
        self.admit(target, mode).map(drop)
    }
}

/// The fence for a new holder of the local named lock `name` (`concur lock --name` without an
/// etcd backend): `NAME:TOKEN`, TOKEN one more than the previous holder's.
///
/// The counter is `<home>/fences/NAME`, advanced with a durable atomic replace, so a token is
/// never handed out twice, even across a crash. `held` is the named lock's guard: only its
/// holder may draw a token, which is what keeps two holders from drawing the same one.
///
/// # Errors
/// [`Error::Invalid`] when the counter file is not a positive integer; [`Error::Io`] when it
/// cannot be read or replaced.
pub fn next_local(home: &Home, name: &str, held: &LockGuard) -> Result<Fence> {
    let _ = held;
    crate::id::check_name("lock", name)?;
    let counter = home.subdir("fences")?.join(name);
    let last = match replace::read(&counter)? {
        None => 0,
        Some(s) => std::str::from_utf8(&s.content)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .filter(|t| *t > 0)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "fencing counter {} is not a positive integer",
                    counter.display()
                ))
            })?,
    };
    let token = last + 1;
    ReplaceOptions::new().replace_locked(&counter, format!("{token}\n").as_bytes())?;
    Ok(Fence {
        lock: name.to_string(),
        token,
    })
}

/// The record of accepted tokens for `target`: `target.fence`.
pub fn record_path(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(".fence");
    PathBuf::from(s)
}

/// The highest token accepted so far for each lock name that fenced a write of `target`.
///
/// # Errors
/// [`Error::Invalid`] when the record is not a JSON object of integers; [`Error::Io`] when it
/// cannot be read.
pub fn accepted(target: &Path) -> Result<BTreeMap<String, i64>> {
    read_record(&record_path(target))
}

fn read_record(rec: &Path) -> Result<BTreeMap<String, i64>> {
    match replace::read(rec)? {
        None => Ok(BTreeMap::new()),
        Some(s) if s.content.trim_ascii().is_empty() => Ok(BTreeMap::new()),
        Some(s) => serde_json::from_slice(&s.content).map_err(|e| {
            Error::Invalid(format!(
                "fence record {} is unreadable ({e}); fenced writes are refused until it is \
                 repaired",
                rec.display()
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_parse_and_bad_ones_are_invalid() {
        let f: Fence = "a.b-c_1:7".parse().unwrap();
        assert_eq!(
            f,
            Fence {
                lock: "a.b-c_1".into(),
                token: 7
            }
        );
        for bad in [
            "", "x", "x:", ":5", "x:0", "x:-3", "x:1.5", "a/b:5", "x:5:", "x: 5",
        ] {
            let e = bad.parse::<Fence>().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn lower_tokens_are_refused_equal_and_higher_accepted() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        let admit = |lock: &str, token| {
            Fencing::new(Fence {
                lock: lock.into(),
                token,
            })
            .admit(&f, 0o600)
        };
        assert_eq!(
            admit("L", 5).unwrap(),
            Admitted {
                before: None,
                advanced: true
            }
        );
        let e = admit("L", 4).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Precondition);
        assert!(
            e.to_string().contains("token 4") && e.to_string().contains("below 5"),
            "{e}"
        );
        assert_eq!(
            admit("L", 5).unwrap(),
            Admitted {
                before: Some(5),
                advanced: false
            }
        );
        assert!(admit("M", 1).unwrap().advanced, "names are independent");
        assert!(admit("L", 9).unwrap().advanced);
        let want: BTreeMap<String, i64> = [("L".into(), 9), ("M".into(), 1)].into();
        assert_eq!(accepted(&f).unwrap(), want);
    }

    #[test]
    fn a_refusing_check_writes_no_record() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        let e = Fencing::new(Fence {
            lock: "L".into(),
            token: 3,
        })
        .check(|f| Err(Error::Precondition(format!("{f} not held"))))
        .admit(&f, 0o600)
        .unwrap_err();
        assert_eq!(e.to_string(), "L:3 not held");
        assert!(!record_path(&f).exists());
    }
}
