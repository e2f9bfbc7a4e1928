//! Sidecar locks: the lock for a file `F` is `F.lock` beside it.
//!
//! Every concur writer that must serialise with others (long appends, conditional writes, JSON
//! read-modify-write, ledger appends, the broker) takes the same exclusive `flock(2)` on the same
//! sidecar, so they interoperate with each other and with scripts that run `flock F.lock ...`
//! or `lockf -k F.lock ...`. The sidecar is opened with `O_NOFOLLOW` (a symlinked sidecar is
//! refused) and created 0600 if missing; it is never removed, because removing a lock file while
//! someone waits on it splits the lock in two.
//!
//! ## Append records: what a killed appender left is cut by the next holder
//!
//! An append that the kernel cuts short — a `kill -9` during a large `write(2)` stops it at a
//! page boundary — leaves a fragment with no newline, and the next line written would be glued
//! to it. So every concur appender (`append`, `ledger append`, the broker's batches) writes,
//! under the lock and before its `write(2)`, an **append record** into the lock file itself:
//! `concur-append DEV INO OFFSET LEN`, the target's identity, where the write starts and how long
//! it is; it empties the lock file again once the write returned. The next holder reads the
//! record first ([`SidecarGuard::cut_torn_append`]): if the holder before it died leaving the
//! target longer than `OFFSET` but shorter than `OFFSET + LEN`, those bytes are a torn,
//! never-acknowledged write and are cut (`ftruncate` back to `OFFSET`). A write that completed
//! (the target is at least `OFFSET + LEN` long) is kept, whether or not it was acknowledged.
//!
//! The record lives in the page cache only (no fsync): it covers killed processes, not power
//! loss. Scripts that only `flock` the lock file never see or disturb it; a lock file holding
//! anything else than a record is left alone.

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

/// The first word of an append record in a lock file.
const RECORD_TAG: &str = "concur-append";

impl SidecarGuard {
    /// Cuts the torn bytes a holder that died mid-append left in `target` (see the module docs)
    /// and clears its record. Returns how many bytes were cut.
    ///
    /// # Errors
    /// [`Error::Io`] when the lock file or the target cannot be read, truncated or synced.
    pub fn cut_torn_append(&self, target: &File, target_path: &Path) -> Result<u64> {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let mut buf = [0u8; 128];
        let n = sys::retry_eintr(|| self.file.read_at(&mut buf, 0))
            .map_err(Error::with("cannot read lock file", &self.path))?;
        if n == 0 {
            return Ok(0);
        }
        let Some((dev, ino, off, len)) = parse_record(&buf[..n]) else {
            return Ok(0); // not ours: someone else's lock file content
        };
        let md = target
            .metadata()
            .map_err(Error::with("cannot stat", target_path))?;
        let mut cut = 0;
        if md.dev() == dev && md.ino() == ino && md.len() > off && md.len() < off + len {
            cut = md.len() - off;
            sys::fileio::truncate(target, off)
                .and_then(|()| sys::fs::sync_data(target))
                .map_err(Error::with("cannot cut a torn append from", target_path))?;
        }
        self.end_append()?;
        Ok(cut)
    }

    /// Gets `target` (open for reading and appending) ready for an append under this lock:
    /// cuts a torn write a dead holder left, then returns the file's length and whether the
    /// new bytes must start with a newline (the file ends in an unterminated line nobody
    /// recorded: edited by hand, or written by another tool; it is kept).
    ///
    /// # Errors
    /// [`Error::Io`] when the target or the lock file cannot be read or written.
    pub fn prepare_append(&self, target: &File, target_path: &Path) -> Result<(u64, bool)> {
        use std::os::unix::fs::FileExt;
        self.cut_torn_append(target, target_path)?;
        let len = sys::fileio::size(target).map_err(Error::with("cannot stat", target_path))?;
        if len == 0 {
            return Ok((0, false));
        }
        let mut last = [0u8; 1];
        sys::retry_eintr(|| target.read_exact_at(&mut last, len - 1))
            .map_err(Error::with("cannot read", target_path))?;
        Ok((len, last[0] != b'\n'))
    }

    /// Appends `buf` (whole lines) to `target` with one `write(2)`, recorded in the lock file
    /// while it runs; `start` is the length [`SidecarGuard::prepare_append`] returned. A short
    /// or failed write (disk full) is cut back to `start` before the error is returned.
    ///
    /// # Errors
    /// [`Error::Io`] when the write fails or comes up short (nothing is left of it), or the
    /// lock file cannot be written (nothing was written).
    pub fn write_append(
        &self,
        target: &File,
        target_path: &Path,
        start: u64,
        buf: &[u8],
    ) -> Result<()> {
        self.begin_append(target, target_path, start, buf.len() as u64)?;
        let written = sys::fs::write_once(target, buf);
        if !matches!(written, Ok(n) if n == buf.len()) {
            sys::fileio::truncate(target, start)
                .and_then(|()| sys::fs::sync_data(target))
                .map_err(Error::with("cannot remove partial line", target_path))?;
            self.end_append()?;
            let e = written
                .err()
                .unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::ENOSPC));
            return Err(Error::io("cannot append", target_path, e));
        }
        self.end_append()
    }

    /// Records in the lock file that `len` bytes are about to be appended to `target` at
    /// offset `off` (see the module docs). Call [`SidecarGuard::end_append`] once the write
    /// returned.
    ///
    /// # Errors
    /// [`Error::Io`] when the lock file cannot be written.
    pub(crate) fn begin_append(
        &self,
        target: &File,
        target_path: &Path,
        off: u64,
        len: u64,
    ) -> Result<()> {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let md = target
            .metadata()
            .map_err(Error::with("cannot stat", target_path))?;
        let rec = format!("{RECORD_TAG} {} {} {off} {len}\n", md.dev(), md.ino());
        sys::retry_eintr(|| self.file.write_all_at(rec.as_bytes(), 0))
            .and_then(|()| sys::fileio::truncate(&self.file, rec.len() as u64))
            .map_err(Error::with("cannot write lock file", &self.path))
    }

    /// Clears the append record (the write returned, whole or cut back by its writer).
    ///
    /// # Errors
    /// [`Error::Io`] when the lock file cannot be truncated.
    fn end_append(&self) -> Result<()> {
        sys::fileio::truncate(&self.file, 0)
            .map_err(Error::with("cannot clear lock file", &self.path))
    }
}

/// `concur-append DEV INO OFFSET LEN\n` → its numbers.
fn parse_record(b: &[u8]) -> Option<(u64, u64, u64, u64)> {
    let s = std::str::from_utf8(b).ok()?.strip_suffix('\n')?;
    let mut w = s.split(' ');
    if w.next()? != RECORD_TAG {
        return None;
    }
    let mut num = || w.next()?.parse::<u64>().ok();
    let r = (num()?, num()?, num()?, num()?);
    w.next().is_none().then_some(r)
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
