//! Atomic whole-file replace, and conditional replace with etags.
//!
//! ## What is guaranteed
//!
//! - **Readers never see an empty or half-written file.** New content goes to a temporary file
//!   in the same directory (created `O_EXCL`, mode set with `fchmod` so the umask does not
//!   interfere), which is written, fsynced and then `rename(2)`d over the target; the directory is
//!   fsynced after. A reader opens either the old inode or the new one, each complete.
//! - **Mode is kept.** An existing file's permission bits carry over; a new file gets 0600 (or
//!   [`ReplaceOptions::mode`]).
//! - **No lost updates with `if_match`.** The sidecar lock (`F.lock`) is held from reading the
//!   current content to the rename, and the write goes through only if the current content's
//!   [`etag`] is still the expected one ([`Error::Precondition`] otherwise). Every replace takes
//!   the sidecar lock, so a plain replace cannot slip between another writer's check and rename
//!   (the read-modify-write of [`crate::json`] included).
//! - **Fenced writes** ([`ReplaceOptions::fence`]): under the same sidecar lock, a write whose
//!   fencing token is below the highest the file has accepted for that lock name is refused
//!   ([`Error::Precondition`], nothing written); see [`crate::fence`].
//! - **Refusals.** A symlink at the target is refused (a permission error); so are FIFOs and
//!   other non-regular files, and files this process may not write by their permission bits
//!   (`faccessat(2)`; an immutable file, or one without any write bit, counts as read-only even
//!   for root).
//!
//! ## What is not
//!
//! - Owner and extended attributes of a replaced file are not carried over: the new inode belongs
//!   to the writer. Hard links to the old file keep the old content.
//! - A killed writer leaves its `.F.<pid>-<start>.<n>.tmp` beside the target (never renamed
//!   into place half-written); the next writer removes it (see [`crate::sys::fs::TempFile`]).
//! - Writers that do not take `F.lock` can still replace the file between a conditional
//!   replace's check and rename.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::sidecar::{self, SidecarGuard};
use crate::sys;

/// The etag of some content: the first 16 bytes of its SHA-256, as 32 lowercase hex digits.
///
/// # Examples
/// ```
/// let e = concur::replace::etag(b"hello\n");
/// assert_eq!(e.len(), 32);
/// assert_eq!(e, concur::replace::etag(b"hello\n"));
/// assert_ne!(e, concur::replace::etag(b"hello"));
/// ```
pub fn etag(content: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(content)[..16])
}

/// A decision, taken under the target's sidecar lock after the new content is durable and just
/// before the rename, whether a write may go ahead: a fence ([`crate::fence::Fencing`]) is one.
/// Its error refuses the write and nothing is written.
pub trait Gate: std::fmt::Debug + Send + Sync {
    /// `Ok` lets the write of `target` (whose permission bits will be `mode`) go ahead.
    ///
    /// # Errors
    /// Whatever refuses the write (for a fence, [`Error::Precondition`]).
    fn pass(&self, target: &Path, mode: u32) -> Result<()>;
}

/// A file's content and its etag, read at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The bytes.
    pub content: Vec<u8>,
    /// [`etag`] of the bytes.
    pub etag: String,
}

impl Snapshot {
    /// The `--json` fields of `read FILE`: the file, etag and size, and the content as text
    /// (`content`) when it is UTF-8, else as base64 (`content_base64`).
    pub fn to_json(&self, file: &Path) -> serde_json::Value {
        let mut v =
            serde_json::json!({ "file": file, "etag": self.etag, "bytes": self.content.len() });
        match std::str::from_utf8(&self.content) {
            Ok(s) => v["content"] = s.into(),
            Err(_) => v["content_base64"] = crate::base64::encode(&self.content).into(),
        }
        v
    }
}

/// Reads `path` whole (symlinks and non-regular files refused); `Ok(None)` when it does not
/// exist.
///
/// # Errors
/// [`Error::Io`] for a failed open or read; a permission error for a symlink.
pub fn read(path: &Path) -> Result<Option<Snapshot>> {
    match sys::fs::open(path, sys::fs::Open::READ) {
        Ok(mut f) => {
            let mut content = Vec::new();
            f.read_to_end(&mut content)
                .map_err(Error::with("cannot read", path))?;
            let etag = etag(&content);
            Ok(Some(Snapshot { content, etag }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::append::open_error("cannot open", path, e)),
    }
}

/// What a replace did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// The etag of the new content.
    pub etag: String,
    /// The file did not exist before.
    pub created: bool,
}

/// How to replace; build with [`ReplaceOptions::new`], then call [`ReplaceOptions::replace`].
///
/// # Examples
/// ```
/// use concur::replace::{self, ReplaceOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let f = dir.path().join("state.txt");
/// let first = ReplaceOptions::new().replace(&f, b"v1\n").unwrap();
/// // A conditional write with the etag we read goes through ...
/// ReplaceOptions::new().if_match(&first.etag).replace(&f, b"v2\n").unwrap();
/// // ... and one with a stale etag is refused, leaving the file as it was.
/// assert!(ReplaceOptions::new().if_match(&first.etag).replace(&f, b"v3\n").is_err());
/// assert_eq!(replace::read(&f).unwrap().unwrap().content, b"v2\n");
/// ```
#[derive(Debug, Clone)]
pub struct ReplaceOptions {
    mode: Option<u32>,
    fsync: bool,
    if_match: Option<String>,
    lock_file: Option<PathBuf>,
    wait: Option<Duration>,
    fence: Option<Arc<dyn Gate>>,
}

impl Default for ReplaceOptions {
    fn default() -> Self {
        ReplaceOptions::new()
    }
}

impl ReplaceOptions {
    /// Defaults: keep the existing mode (0600 for a new file), fsync on, unconditional, sidecar
    /// `F.lock`, wait for it as long as it takes.
    pub fn new() -> ReplaceOptions {
        ReplaceOptions {
            mode: None,
            fsync: true,
            if_match: None,
            lock_file: None,
            wait: None,
            fence: None,
        }
    }

    /// Permission bits for the file (default: the existing file's, else 0600).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Whether to fsync the data and the directory (default true).
    #[must_use]
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// Replace only if the current content has this etag (a missing file never matches).
    #[must_use]
    pub fn if_match(mut self, etag: impl Into<String>) -> Self {
        self.if_match = Some(etag.into());
        self
    }

    /// Use this lock file instead of `F.lock`.
    #[must_use]
    pub fn lock_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.lock_file = Some(path.into());
        self
    }

    /// Wait at most this long for the sidecar lock (default: as long as it takes).
    #[must_use]
    pub fn wait(mut self, d: Option<Duration>) -> Self {
        self.wait = d;
        self
    }

    /// Fence the write: refused unless the fence's token is not below the highest accepted for
    /// its lock name on this file (and its holder check, if any, passes); see [`crate::fence`].
    #[must_use]
    pub fn fence(mut self, fencing: impl Gate + 'static) -> Self {
        self.fence = Some(Arc::new(fencing));
        self
    }

    /// With a fence set, decides under the sidecar lock (which the caller holds) whether a
    /// write of `path` may go ahead, advancing the fence record if so; without one, `Ok`. For a
    /// caller that decided not to write (its result equals the content) but must still refuse
    /// a stale fence; [`ReplaceOptions::replace_locked`] checks the fence itself.
    ///
    /// # Errors
    /// As the fence's [`Gate::pass`] (for a fence, [`crate::fence::Fencing::admit`]); a
    /// permission error for a target that must not be replaced.
    pub fn check_fence(&self, path: &Path) -> Result<()> {
        if let Some(f) = &self.fence {
            let mode = match self.mode {
                Some(m) => m,
                None => existing_mode(path)?.unwrap_or(sys::fs::DEFAULT_MODE),
            };
            f.pass(path, mode)?;
        }
        Ok(())
    }

    /// Takes the sidecar lock these options name for `path`.
    ///
    /// # Errors
    /// As [`sidecar::lock`].
    pub fn lock(&self, path: &Path) -> Result<SidecarGuard> {
        let lock_path = self
            .lock_file
            .clone()
            .unwrap_or_else(|| sidecar::path_for(path));
        sidecar::lock(&lock_path, self.wait)
    }

    /// Atomically replaces `path` with `content`, under the sidecar lock.
    ///
    /// # Errors
    /// [`Error::Precondition`] when `if_match` is set and the current etag differs (nothing
    /// written); [`Error::Timeout`] when the lock was not had in time; a permission error for a
    /// symlinked, read-only or non-regular target; [`Error::Io`] for a failed write (the target
    /// is left as it was).
    pub fn replace(&self, path: &Path, content: &[u8]) -> Result<Replaced> {
        let _guard = self.lock(path)?;
        if let Some(want) = &self.if_match {
            let current = read(path)?;
            let have = current.as_ref().map(|s| s.etag.as_str());
            if have != Some(want.as_str()) {
                return Err(Error::Precondition(format!(
                    "{} changed: etag is {}, not {want} (re-read and retry)",
                    path.display(),
                    have.unwrap_or("(missing file)")
                )));
            }
        }
        self.replace_locked(path, content)
    }

    /// [`ReplaceOptions::replace`] for a caller that already holds the sidecar lock (and has
    /// done its own checks under it): the temp + fsync + rename + fsync-dir step alone. With a
    /// fence, the fence is decided after the temporary file is durable and just before the
    /// rename, so a holder check (one etcd read) is as close to the write as a local file allows.
    ///
    /// # Errors
    /// As [`ReplaceOptions::replace`], without the etag precondition and the lock wait
    /// ([`Error::Precondition`] for a refused fence).
    pub fn replace_locked(&self, path: &Path, content: &[u8]) -> Result<Replaced> {
        let existing = existing_mode(path)?;
        let mode = self.mode.or(existing).unwrap_or(sys::fs::DEFAULT_MODE);
        let stem = path
            .file_name()
            .map_or_else(|| "replace".into(), |n| n.to_string_lossy().into_owned());
        let how = sys::fs::Atomic::new(&stem)
            .exact_mode(mode)
            .fsync(self.fsync);
        let staged = sys::fs::stage(path, content, &how)?;
        if let Some(f) = &self.fence {
            f.pass(path, mode)?; // refused: the temporary file is removed when dropped
        }
        staged.commit()?;
        Ok(Replaced {
            etag: etag(content),
            created: existing.is_none(),
        })
    }
}

/// The permission bits of an existing target (`None` if missing), refusing what must not be
/// replaced: a symlink, a non-regular file, a file we may not write.
fn existing_mode(path: &Path) -> Result<Option<u32>> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot stat", path, e)),
    };
    let ft = md.file_type();
    if ft.is_symlink() {
        return Err(Error::unsafe_path(
            "refusing to replace",
            path,
            "is a symlink",
        ));
    }
    if !ft.is_file() {
        return Err(Error::unsafe_path(
            "refusing to replace",
            path,
            "is not a regular file",
        ));
    }
    if !sys::fileio::writable(path).map_err(Error::with("cannot check access to", path))? {
        return Err(Error::unsafe_path(
            "refusing to replace",
            path,
            "is read-only for this user",
        ));
    }
    Ok(Some(md.permissions().mode() & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_is_kept_and_new_files_are_private() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        ReplaceOptions::new().replace(&p, b"a").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        ReplaceOptions::new().replace(&p, b"b").unwrap();
        assert_eq!(mode(&p), 0o640);
        assert_eq!(std::fs::read(&p).unwrap(), b"b");
    }

    #[test]
    fn stale_etag_is_a_precondition_failure_and_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        ReplaceOptions::new().replace(&p, b"one").unwrap();
        let e = ReplaceOptions::new()
            .if_match(etag(b"zero"))
            .replace(&p, b"two")
            .unwrap_err();
        assert!(matches!(e, Error::Precondition(_)), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
    }

    #[test]
    fn symlinked_target_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::File::create(&real).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = ReplaceOptions::new().replace(&link, b"x").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Permission);
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    }
}
