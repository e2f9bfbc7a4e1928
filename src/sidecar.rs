//! Sidecar locks: the lock for a file `F` is `F.lock` beside it.
//!
//! Every concur writer that must serialise with others (long appends, conditional writes, JSON
//! read-modify-write, ledger appends, the broker) takes the same exclusive `flock(2)` on the same
//! sidecar, so they interoperate with each other and with scripts that run `flock F.lock ...`
//! or `lockf -k F.lock ...`. The sidecar is opened with `O_NOFOLLOW` (a symlinked sidecar is
//! refused) and created 0600 if missing; it is never removed, because removing a lock file while
//! someone waits on it splits the lock in two.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sys;
use crate::sys::lock::Mode;

/// The conventional sidecar for `target`: `target.lock`.
pub fn path_for(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// A held sidecar lock; released when dropped (or when the process dies, by the kernel).
#[derive(Debug)]
pub struct SidecarGuard {
    file: File,
    path: PathBuf,
}

impl SidecarGuard {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open lock file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for SidecarGuard {
    fn drop(&mut self) {
        let _ = sys::lock::unlock(&self.file);
    }
}

/// Opens (creating 0600) the lock file at `lock_path`, refusing a symlink.
fn open_lock_file(lock_path: &Path) -> Result<File> {
    sys::fs::open(lock_path, sys::fs::Open::read_write(sys::fs::DEFAULT_MODE))
        .map_err(Error::with("cannot open lock file", lock_path))
}

/// Takes the exclusive lock at `lock_path`, waiting as long as it takes (`wait: None`) or at most
/// `wait`.
///
/// # Errors
/// [`Error::Timeout`] when `wait` ran out (nothing was done); [`Error::Io`] or a permission error
/// when the lock file cannot be opened (a symlink is refused).
pub fn lock(lock_path: &Path, wait: Option<Duration>) -> Result<SidecarGuard> {
    let file = open_lock_file(lock_path)?;
    let got = match wait {
        None => sys::lock::flock(&file, Mode::Exclusive).map(|()| true),
        Some(d) => sys::lock::flock_timeout(&file, Mode::Exclusive, d),
    }
    .map_err(Error::with("cannot lock", lock_path))?;
    if !got {
        return Err(Error::Timeout {
            what: "lock",
            path: lock_path.to_path_buf(),
            secs: wait.unwrap_or_default().as_secs_f64(),
        });
    }
    Ok(SidecarGuard {
        file,
        path: lock_path.to_path_buf(),
    })
}

/// Tries the exclusive lock at `lock_path` without waiting; `Ok(None)` when it is held.
///
/// # Errors
/// As [`lock`], without the timeout.
pub fn try_lock(lock_path: &Path) -> Result<Option<SidecarGuard>> {
    let file = open_lock_file(lock_path)?;
    let got = sys::lock::try_flock(&file, Mode::Exclusive)
        .map_err(Error::with("cannot lock", lock_path))?;
    Ok(got.then(|| SidecarGuard {
        file,
        path: lock_path.to_path_buf(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_is_beside_the_target() {
        assert_eq!(
            path_for(Path::new("/a/b.json")),
            PathBuf::from("/a/b.json.lock")
        );
    }

    #[test]
    fn second_taker_sees_it_held_then_free() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        let g = lock(&p, None).unwrap();
        assert!(try_lock(&p).unwrap().is_none());
        assert!(matches!(
            lock(&p, Some(Duration::from_millis(10))),
            Err(Error::Timeout { .. })
        ));
        drop(g);
        // The abandoned timed waiter may hold it for an instant; a blocking take must succeed.
        assert!(lock(&p, None).is_ok());
    }
}
