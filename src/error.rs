//! The library's one error type.
//!
//! Every variant says what was attempted and, where there is one, on which path. The CLI maps
//! [`Error::kind`] onto the exit codes of README.md's table; library users can match on the kind instead of
//! parsing messages. Contention is not an error: a busy lock is a value (`Ok(None)`), and only a
//! wait that ran out of time becomes [`Error::Timeout`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with the operation and path that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed on a path (disk full, EIO, permission, missing directory).
    /// Shown as `ACTION (PATH): WHY`; a "no such file" where a directory on the way is missing
    /// says which one.
    #[error("{action} ({}): {}", path.display(), Why(action, path, source))]
    Io {
        /// What was being attempted, e.g. `"cannot open"`.
        action: &'static str,
        /// The path it was attempted on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A path was refused for safety: a symlink where none is allowed, a foreign owner, a loose mode.
    #[error("{what} ({}): {why}", path.display())]
    Unsafe {
        /// What was refused, e.g. `"refusing runtime home"`.
        what: &'static str,
        /// The offending path.
        path: PathBuf,
        /// Why it was refused.
        why: String,
    },
    /// Input was rejected before anything was written: bad JSON, bad session id, oversize line.
    #[error("{0}")]
    Invalid(String),
    /// A precondition did not hold: an etag differed, a chain was broken, an expired token.
    #[error("{0}")]
    Precondition(String),
    /// Someone else holds or won the thing: a lost token race, a lease held by another session.
    #[error("{0}")]
    Conflict(String),
    /// A wait ran out of time; nothing was done.
    #[error("timed out after {secs} s waiting for {what} ({})", path.display())]
    Timeout {
        /// What was waited for, e.g. `"lock"`.
        what: &'static str,
        /// The path (or name) it was waited on.
        path: PathBuf,
        /// How long it waited, in seconds.
        secs: f64,
    },
    /// The configuration file is malformed or has an unknown key.
    #[error("{} line {line}: {message}", path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// The 1-based line of the problem.
        line: usize,
        /// What is wrong there.
        message: String,
    },
}

/// The class of an [`Error`], which decides the CLI's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Lost a race, busy, timed out (exit 1).
    Conflict,
    /// A precondition failed (exit 3).
    Precondition,
    /// Invalid input, nothing written (exit 4).
    Invalid,
    /// An I/O error (exit 74).
    Io,
    /// Permission denied or an unsafe path (exit 77).
    Permission,
}

impl ErrorKind {
    /// The short machine name used in `--json` error objects.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Conflict => "conflict",
            ErrorKind::Precondition => "precondition",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Io => "io",
            ErrorKind::Permission => "permission",
        }
    }
}

impl Error {
    /// Wraps an I/O error with the action and path it belongs to.
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A closure for `map_err` that wraps an I/O error with action and path.
    pub fn with<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
        move |source| Error::io(action, path, source)
    }

    /// Builds an [`Error::Unsafe`].
    pub fn unsafe_path(what: &'static str, path: impl AsRef<Path>, why: impl Into<String>) -> Self {
        Error::Unsafe {
            what,
            path: path.as_ref().to_path_buf(),
            why: why.into(),
        }
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { source, .. } => io_kind(source),
            Error::Unsafe { .. } => ErrorKind::Permission,
            Error::Invalid(_) | Error::Config { .. } => ErrorKind::Invalid,
            Error::Precondition(_) => ErrorKind::Precondition,
            Error::Conflict(_) | Error::Timeout { .. } => ErrorKind::Conflict,
        }
    }
}

impl From<crate::sys::fs::AtomicError> for Error {
    /// The failed step of an atomic write as `ACTION (PATH): WHY`.
    fn from(e: crate::sys::fs::AtomicError) -> Self {
        Error::io(e.action(), e.path, e.source)
    }
}

/// For ENOENT on `path`: the outermost missing directory on the way to it (`path` itself when
/// the action works *in* it, e.g. "cannot create temporary file in"), if there is one.
fn missing_dir(action: &str, path: &Path, e: &io::Error) -> Option<PathBuf> {
    if e.raw_os_error() != Some(libc::ENOENT) {
        return None;
    }
    let first = if action.ends_with(" in") {
        Some(path)
    } else {
        path.parent()
    };
    let mut missing = None;
    for dir in first.into_iter().flat_map(Path::ancestors) {
        if dir.as_os_str().is_empty() || std::fs::symlink_metadata(dir).is_ok() {
            break;
        }
        missing = Some(dir.to_path_buf());
    }
    missing
}

/// Classifies an OS error: permission and symlink refusals are 77, the rest 74.
fn io_kind(e: &io::Error) -> ErrorKind {
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM | libc::ELOOP | libc::EROFS) => ErrorKind::Permission,
        _ if e.kind() == io::ErrorKind::PermissionDenied => ErrorKind::Permission,
        _ => ErrorKind::Io,
    }
}

/// The reason of an [`Error::Io`]: the missing directory, if that is it, else the OS error.
struct Why<'a>(&'a str, &'a Path, &'a io::Error);

impl fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match missing_dir(self.0, self.1, self.2) {
            Some(dir) => write!(f, "directory {} does not exist", dir.display()),
            None => IoDisplay(self.2).fmt(f),
        }
    }
}

/// Shows an `io::Error` without Rust's "(os error N)" suffix, and names ELOOP for what it means
/// here: `O_NOFOLLOW` met a symlink.
struct IoDisplay<'a>(&'a io::Error);

impl fmt::Display for IoDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.raw_os_error() {
            Some(libc::ELOOP) => f.write_str("is a symlink (refused)"),
            Some(code) => {
                let full = io::Error::from_raw_os_error(code).to_string();
                let text = full.split(" (os error").next().unwrap_or(&full);
                f.write_str(text)
            }
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_names_action_and_path_without_os_suffix() {
        let e = Error::io(
            "cannot open",
            "/concur-test-missing-file",
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert_eq!(
            e.to_string(),
            "cannot open (/concur-test-missing-file): No such file or directory"
        );
        assert_eq!(e.kind(), ErrorKind::Io);
    }

    #[test]
    fn a_missing_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let enoent = || io::Error::from_raw_os_error(libc::ENOENT);
        let lock = dir.path().join("nodir/sub/x.txt.lock");
        let e = Error::io("cannot open lock file", &lock, enoent());
        let want = format!(
            "directory {} does not exist",
            dir.path().join("nodir").display()
        );
        assert!(e.to_string().ends_with(&want), "{e}");
        assert_eq!(e.kind(), ErrorKind::Io);
        let e = Error::io(
            "cannot create temporary file in",
            dir.path().join("logs"),
            enoent(),
        );
        assert!(e.to_string().contains("logs does not exist"), "{e}");
        // The directory exists, the file does not: the plain message.
        let e = Error::io("cannot open", dir.path().join("f"), enoent());
        assert!(e.to_string().ends_with("No such file or directory"), "{e}");
    }

    #[test]
    fn symlink_refusal_is_a_permission_error() {
        let e = Error::io(
            "cannot open",
            "/x",
            io::Error::from_raw_os_error(libc::ELOOP),
        );
        assert_eq!(e.kind(), ErrorKind::Permission);
        assert!(e.to_string().ends_with("is a symlink (refused)"));
    }
}
