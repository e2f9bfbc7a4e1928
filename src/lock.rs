//! File locks with std's vocabulary, and who holds them.
//!
//! [`LockOptions`] opens a lock file (any file, a directory, or a named lock in the runtime
//! home) and takes a `flock(2)` lock or an open-file-description byte-range lock
//! (`fcntl(F_OFD_SETLKW)`), shared or exclusive; the [`LockGuard`] releases it on drop. Both
//! kinds belong to the open file description, so the kernel drops them the moment the holder
//! dies, however it dies. Waiting is a blocking wait in the kernel: a waiter runs as soon as the
//! lock is released, with no polling lag.
//!
//! ## Holder records
//!
//! A holder can say who it is — pid, session, command, since when — so that a caller who must
//! wait can tell its user who it waits for. The record is **never written into the lock file**:
//! `concur lock data.json cmd` locks a user's file, and writing anything into it would corrupt
//! it. Records live in the runtime home instead (`holders/<major>.<minor>.<inode>`, keyed by the
//! lock file's device and inode, so two paths to one file share them; shared holders add
//! `.<pid>`). An exclusive holder overwrites the one record in place and leaves it on release —
//! creating and removing a file per lock costs a filesystem journal transaction each, which
//! doubled `concur lock F true` on a busy disk. [`LockFile::holders`] cross-checks them with the kernel's lock table
//! (`/proc/locks`): a record whose process is dead, or for an inode nobody has locked, is stale
//! and ignored (and removed); a holder without a record (a plain `flock(1)`, say) is still
//! reported by pid.
//!
//! ## Not guaranteed
//!
//! - Locks are advisory: they exclude only processes that take them.
//! - On NFS, `flock(2)` is emulated with byte-range locks and behaves differently; concur does
//!   not detect that.
//! - Holder records are a description, not part of the lock: a record can lag the lock by the
//!   moment between taking the lock and writing the record.
//! - A timed wait ([`LockFile::acquire_timeout`]) runs the blocking call in a helper thread; if
//!   the time runs out, the helper is abandoned and releases the lock at once should it get it
//!   later, so for an instant after a timeout the lock may look held by the caller.

use std::fs::File;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::sys;
pub use crate::sys::lock::Mode;
pub use crate::sys::ofd::Range;

/// Which kernel lock to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Api {
    /// `flock(2)`: whole-file, interoperates with flock(1) and most scripts.
    #[default]
    Flock,
    /// `fcntl(F_OFD_SETLK)`: open-file-description byte-range lock on `Range`.
    Ofd(Range),
}

/// How to open and lock a file; a builder in the style of `std::fs::OpenOptions`.
///
/// # Examples
/// ```
/// use concur::lock::LockOptions;
/// let dir = tempfile::tempdir()?;
/// let guard = LockOptions::new(dir.path().join("build.lock")).lock()?;
/// // ... exclusive work ...
/// drop(guard);
/// let shared = LockOptions::new(dir.path().join("build.lock")).shared(true).try_lock()?;
/// assert!(shared.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LockOptions {
    path: PathBuf,
    mode: Mode,
    api: Api,
    follow_symlinks: bool,
    create: bool,
    create_mode: u32,
    write: bool,
}

impl LockOptions {
    /// Options to lock `path`: exclusive, `flock(2)`, created 0600 if missing, a symlink refused.
    pub fn new(path: impl Into<PathBuf>) -> LockOptions {
        LockOptions {
            path: path.into(),
            mode: Mode::Exclusive,
            api: Api::Flock,
            follow_symlinks: false,
            create: true,
            create_mode: sys::fs::DEFAULT_MODE,
            write: false,
        }
    }

    /// Options for the named lock `name` in the runtime home (`<home>/locks/<name>`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a name outside `[A-Za-z0-9._-]{1,128}` (or `.`/`..`); home errors.
    pub fn named(home: &Home, name: &str) -> Result<LockOptions> {
        validate_name("lock", name)?;
        Ok(LockOptions::new(home.subdir("locks")?.join(name)))
    }

    /// A shared (`true`) or exclusive (`false`, the default) lock.
    #[must_use]
    pub fn shared(mut self, yes: bool) -> LockOptions {
        self.mode = if yes { Mode::Shared } else { Mode::Exclusive };
        self
    }

    /// Uses an open-file-description lock (`fcntl(F_OFD_SETLK)`) on the whole file.
    #[must_use]
    pub fn fcntl(mut self, yes: bool) -> LockOptions {
        self.api = if yes {
            Api::Ofd(Range::default())
        } else {
            Api::Flock
        };
        self
    }

    /// Locks only `range` (an open-file-description lock).
    #[must_use]
    pub fn range(mut self, range: Range) -> LockOptions {
        self.api = Api::Ofd(range);
        self
    }

    /// Follows a symlink at the path (refused by default).
    #[must_use]
    pub fn follow_symlinks(mut self, yes: bool) -> LockOptions {
        self.follow_symlinks = yes;
        self
    }

    /// Creates a missing lock file (the default) or fails with `NotFound`.
    #[must_use]
    pub fn create(mut self, yes: bool) -> LockOptions {
        self.create = yes;
        self
    }

    /// The permission bits of a created lock file (before the umask; default 0600).
    #[must_use]
    pub fn create_mode(mut self, mode: u32) -> LockOptions {
        self.create_mode = mode;
        self
    }

    /// Opens the file for writing (needed for exclusive locks on some network filesystems).
    #[must_use]
    pub fn write(mut self, yes: bool) -> LockOptions {
        self.write = yes;
        self
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the lock file without locking it.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path; a symlink (unless followed) is a permission error; a
    /// FIFO, socket or device is refused.
    pub fn open(&self) -> Result<LockFile> {
        let needs_write = self.write || (self.mode == Mode::Exclusive && self.api != Api::Flock);
        let mut flags = if needs_write {
            libc::O_WRONLY
        } else {
            libc::O_RDONLY
        };
        if self.create {
            flags |= libc::O_CREAT;
        }
        if !self.follow_symlinks {
            flags |= libc::O_NOFOLLOW;
        }
        // Non-blocking open so that a FIFO planted at the path cannot hang us (a FIFO or device
        // can then be locked like any inode; nothing reads or writes it). No fstat: the lock
        // costs what open + flock + close cost.
        let file = sys::ofd::open_for_lock(&self.path, flags | libc::O_NONBLOCK, self.create_mode)
            .map_err(Error::with("cannot open lock file", &self.path))?;
        Ok(LockFile {
            file: ManuallyDrop::new(file),
            owned: true,
            path: self.path.clone(),
            mode: self.mode,
            api: self.api,
        })
    }

    /// Opens and waits (blocking in the kernel) for the lock.
    ///
    /// # Errors
    /// As [`LockOptions::open`], and a failing lock call.
    pub fn lock(&self) -> Result<LockGuard> {
        let f = self.open()?;
        f.acquire()?;
        Ok(f.into_guard())
    }

    /// Opens and takes the lock if it is free; `Ok(None)` when it is held.
    ///
    /// # Errors
    /// As [`LockOptions::lock`].
    pub fn try_lock(&self) -> Result<Option<LockGuard>> {
        let f = self.open()?;
        Ok(f.try_acquire()?.then(|| f.into_guard()))
    }

    /// Opens and waits at most `timeout` for the lock; `Ok(None)` when the time ran out.
    ///
    /// # Errors
    /// As [`LockOptions::lock`].
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>> {
        let f = self.open()?;
        Ok(f.acquire_timeout(timeout)?.then(|| f.into_guard()))
    }
}

/// Checks a lock or slot name: `[A-Za-z0-9._-]{1,128}`, not `.` or `..`.
///
/// # Errors
/// [`Error::Invalid`] naming what is wrong.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    crate::id::check_name(what, name)
}

/// An open lock file (or a borrowed descriptor), locked or not.
#[derive(Debug)]
pub struct LockFile {
    file: ManuallyDrop<File>,
    owned: bool,
    path: PathBuf,
    mode: Mode,
    api: Api,
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: dropped exactly once, here; never used afterwards.
            unsafe { ManuallyDrop::drop(&mut self.file) };
        }
    }
}

impl LockFile {
    /// Wraps an inherited descriptor (`exec 9>file; concur lock 9`; turn the number into one
    /// with [`crate::sys::fd::inherited`], which refuses a number that is not open). The
    /// descriptor is borrowed: it is never closed here, and a lock taken through it stays with
    /// its open file description — shared with the process that passed it — after this process
    /// exits.
    pub fn from_fd(fd: BorrowedFd<'static>, mode: Mode, api: Api) -> LockFile {
        let path = PathBuf::from(format!("fd {}", fd.as_raw_fd()));
        // SAFETY: `fd` is open for the rest of the process (a 'static borrow); ManuallyDrop with
        // owned=false means it is never closed by us.
        let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd.as_raw_fd()) });
        LockFile {
            file,
            owned: false,
            path,
            mode,
            api,
        }
    }

    /// The path (or `fd N` for a borrowed descriptor).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Shared or exclusive.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Takes the lock if free; `Ok(false)` when held by someone else.
    ///
    /// # Errors
    /// [`Error::Io`] when the lock call fails (e.g. EBADF, ENOLCK).
    pub fn try_acquire(&self) -> Result<bool> {
        match self.api {
            Api::Flock => sys::lock::try_flock(&*self.file, self.mode),
            Api::Ofd(r) => sys::ofd::try_lock(&*self.file, self.mode, r),
        }
        .map_err(Error::with("cannot lock", &self.path))
    }

    /// Waits in the kernel until the lock is taken.
    ///
    /// # Errors
    /// As [`LockFile::try_acquire`].
    pub fn acquire(&self) -> Result<()> {
        match self.api {
            Api::Flock => sys::lock::flock(&*self.file, self.mode),
            Api::Ofd(r) => sys::ofd::lock(&*self.file, self.mode, r),
        }
        .map_err(Error::with("cannot lock", &self.path))
    }

    /// Waits until the lock is taken or a signal interrupts the wait and `stop()` says to give
    /// up (`Ok(false)`). For callers that bound the wait with a signal timer, as flock(1) does.
    ///
    /// # Errors
    /// As [`LockFile::try_acquire`].
    pub fn acquire_interruptible(&self, stop: &dyn Fn() -> bool) -> Result<bool> {
        loop {
            if stop() {
                return Ok(false);
            }
            let r = match self.api {
                Api::Flock => sys::lock::flock_interruptible(&*self.file, self.mode),
                Api::Ofd(range) => sys::ofd::lock_interruptible(&*self.file, self.mode, range),
            };
            match r {
                Ok(()) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("cannot lock", &self.path, e)),
            }
        }
    }

    /// Waits at most `timeout` for the lock; `Ok(false)` when the time ran out (see the
    /// module docs for what a timed-out helper does).
    ///
    /// # Errors
    /// As [`LockFile::try_acquire`].
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        if self.try_acquire()? {
            return Ok(true);
        }
        if timeout.is_zero() {
            return Ok(false);
        }
        let (mode, api) = (self.mode, self.api);
        let dup = self
            .file
            .try_clone()
            .map_err(Error::with("cannot duplicate lock descriptor", &self.path))?;
        timed_wait(
            &self.file,
            dup,
            timeout,
            move |f| match api {
                Api::Flock => sys::lock::flock(f, mode),
                Api::Ofd(r) => sys::ofd::lock(f, mode, r),
            },
            api,
        )
        .map_err(Error::with("cannot lock", &self.path))
    }

    /// Releases the lock (the file stays open).
    ///
    /// # Errors
    /// [`Error::Io`] when the unlock call fails.
    pub fn release(&self) -> Result<()> {
        release_raw(&self.file, self.api).map_err(Error::with("cannot unlock", &self.path))
    }

    /// Turns this file, whose lock the caller holds, into a guard that releases it on drop.
    pub fn into_guard(self) -> LockGuard {
        LockGuard {
            file: Some(self),
            record: None,
        }
    }

    /// The lock file's (device, inode).
    ///
    /// # Errors
    /// [`Error::Io`] when fstat fails.
    pub fn identity(&self) -> Result<(u64, u64)> {
        let md = self
            .file
            .metadata()
            .map_err(Error::with("cannot stat lock file", &self.path))?;
        Ok((md.dev(), md.ino()))
    }

    /// Who holds a lock on this file now: the records in `home` (if given) of live holders,
    /// and pids from the kernel's lock table that have no record. Empty when nobody is known.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be stat'ed.
    pub fn holders(&self, home: Option<&Home>) -> Result<Vec<Holder>> {
        let (dev, ino) = self.identity()?;
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        let kernel = sys::ofd::kernel_locks(major, minor, ino).unwrap_or_default();
        let proc_exists = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
        let live_kernel_pids: Vec<u32> = kernel
            .iter()
            .filter_map(|k| k.pid)
            .filter(|p| proc_exists(*p))
            .collect();
        let mut out: Vec<Holder> = Vec::new();
        if let Some(dir) = home.map(|h| h.join("holders"))
            && !kernel.is_empty()
            && let Ok(rd) = std::fs::read_dir(&dir)
        {
            let base = format!("{major}.{minor}.{ino}");
            for entry in rd.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let shared = name.starts_with(&format!("{base}."));
                if name != base && !shared {
                    continue;
                }
                let p = entry.path();
                let Ok(text) = std::fs::read_to_string(&p) else {
                    continue;
                };
                let Ok(h) = serde_json::from_str::<Holder>(&text) else {
                    continue;
                };
                let alive =
                    h.start.is_none_or(|s| sys::proc::is_alive(h.pid, s)) && proc_exists(h.pid);
                // The kernel names flock holders by pid; a record whose pid is not among
                // them is left over (unless the locker has exited, as in the FD form, where
                // the lock lives on with the recorded process's descriptor).
                let current = live_kernel_pids.is_empty() || live_kernel_pids.contains(&h.pid);
                if alive && current {
                    out.push(h);
                } else if !alive && shared {
                    let _ = sys::fs::remove_if_exists(&p);
                }
            }
        }
        for k in &kernel {
            let Some(pid) = k.pid else { continue };
            if out.iter().any(|h| h.pid == pid) || !proc_exists(pid) {
                continue;
            }
            out.push(Holder {
                pid,
                ..Holder::default()
            });
        }
        Ok(out)
    }
}

fn release_raw(f: &File, api: Api) -> io::Result<()> {
    match api {
        Api::Flock => sys::lock::unlock(f),
        Api::Ofd(r) => sys::ofd::unlock(f, r),
    }
}

/// Runs `block` on `file` in a helper thread and waits at most `timeout` for it. `Ok(false)`
/// when the time ran out; then the helper, should it still get the lock, releases it.
fn timed_wait(
    own: &File,
    file: File,
    timeout: Duration,
    block: impl FnOnce(&File) -> io::Result<()> + Send + 'static,
    api: Api,
) -> io::Result<bool> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    let abandoned = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&abandoned);
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("concur-lock-wait".into())
        .spawn(move || {
            sys::supervise::block_all_in_thread();
            let r = block(&file);
            let ok = r.is_ok();
            if ok && flag.load(Ordering::SeqCst) {
                let _ = release_raw(&file, api);
                return;
            }
            let _ = tx.send(r);
            // The caller may have given up after our check: it sets the flag before it looks
            // at the channel one last time, so one of us sees the other and releases.
            if ok && flag.load(Ordering::SeqCst) {
                let _ = release_raw(&file, api);
            }
        })?;
    if let Ok(r) = rx.recv_timeout(timeout) {
        return r.map(|()| true);
    }
    abandoned.store(true, Ordering::SeqCst);
    if let Ok(Ok(())) = rx.try_recv() {
        release_raw(own, api)?;
    }
    Ok(false)
}

/// What a holder says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holding process.
    pub pid: u32,
    /// Its start time (clock ticks since boot), to tell it from a later process with its pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    /// Its session id, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The command it runs under the lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// The machine it runs on (set by holders on a shared backend, where it is not this one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// When it took the lock (seconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
}

impl Holder {
    /// A record for process `pid` (its start time looked up), taken now.
    pub fn new(pid: u32, session: Option<String>, cmd: Option<String>) -> Holder {
        Holder {
            pid,
            start: sys::proc::start_time(pid).ok(),
            session,
            cmd,
            host: None,
            since: Some(crate::time::now_unix_secs()),
        }
    }

    /// This process (pid and start time), now: the record a holder writes about itself.
    pub fn me(session: Option<String>, cmd: Option<String>) -> Holder {
        Holder::new(std::process::id(), session, cmd)
    }

    /// The same record naming this machine (`/proc/sys/kernel/hostname`), for holders whose
    /// record other machines read.
    #[must_use]
    pub fn with_host(mut self) -> Holder {
        self.host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        self
    }

    /// How long it has held the lock, in whole seconds, if known.
    pub fn held_secs(&self) -> Option<u64> {
        self.since
            .map(|s| crate::time::now_unix_secs().saturating_sub(s))
    }

    /// `pid P (session S, 12 s) on HOST`, leaving out what is unknown: the one way every
    /// backend names a holder in "held by ..." messages.
    pub fn describe(&self) -> String {
        let mut extra = Vec::new();
        if let Some(s) = &self.session {
            extra.push(format!("session {s}"));
        }
        if let Some(secs) = self.held_secs() {
            extra.push(format!("{secs} s"));
        }
        let mut s = if extra.is_empty() {
            format!("pid {}", self.pid)
        } else {
            format!("pid {} ({})", self.pid, extra.join(", "))
        };
        if let Some(h) = &self.host {
            s.push_str(" on ");
            s.push_str(h);
        }
        s
    }
}

/// Holder records are padded to this size so that rewriting one never changes its length.
const RECORD_LEN: usize = 512;

/// A held lock; released on drop (and by the kernel if the process dies).
#[derive(Debug)]
pub struct LockGuard {
    file: Option<LockFile>,
    record: Option<PathBuf>,
}

impl LockGuard {
    /// The lock file.
    pub fn lock_file(&self) -> &LockFile {
        self.file.as_ref().expect("present until dropped")
    }

    /// Publishes `holder` in `home` so that waiters can name it; removed on release.
    ///
    /// # Errors
    /// [`Error::Io`] when the record cannot be written.
    pub fn record(&mut self, home: &Home, holder: &Holder) -> Result<()> {
        let (dev, ino) = self.lock_file().identity()?;
        let dir = home.subdir("holders")?;
        let base = format!("{}.{}.{ino}", libc::major(dev), libc::minor(dev));
        // An exclusive holder is the only one: it overwrites the lock's one record file in
        // place (no create or unlink per lock, which cost a journal transaction each on a busy
        // disk) and leaves it behind on release; readers tell a stale record by its pid. Shared
        // holders each write their own file and remove it on release.
        let exclusive = self.lock_file().mode() == Mode::Exclusive;
        let p = if exclusive {
            dir.join(&base)
        } else {
            dir.join(format!("{base}.{}", holder.pid))
        };
        let f = sys::fs::open(
            &p,
            sys::fs::Open {
                read: false,
                write: true,
                append: false,
                create: Some(sys::fs::DEFAULT_MODE),
                exclusive: false,
                regular_only: true,
            },
        )
        .map_err(Error::with("cannot write holder record", &p))?;
        let mut text = serde_json::to_vec(holder).map_err(|e| Error::Invalid(e.to_string()))?;
        if text.len() < RECORD_LEN {
            text.resize(RECORD_LEN - 1, b' ');
        }
        text.push(b'\n');
        {
            use std::os::unix::fs::FileExt;
            f.write_all_at(&text, 0)
                .map_err(Error::with("cannot write holder record", &p))?;
        }
        if text.len() != RECORD_LEN {
            f.set_len(text.len() as u64)
                .map_err(Error::with("cannot write holder record", &p))?;
        }
        self.record = (!exclusive).then_some(p);
        Ok(())
    }

    /// Releases the lock now, reporting an error (drop does this quietly).
    ///
    /// # Errors
    /// [`Error::Io`] when the unlock call fails.
    pub fn unlock(mut self) -> Result<()> {
        self.drop_record();
        let f = self.file.take().expect("present until dropped");
        f.release()
    }

    /// Leaves the lock held after this guard is gone: for a borrowed descriptor
    /// ([`LockFile::from_fd`]) the lock then stays with the caller's open file description.
    /// The holder record, if any, is kept too.
    pub fn keep(mut self) {
        self.record = None;
        if let Some(f) = self.file.take() {
            std::mem::forget(f);
        }
    }

    /// Leaves the holder record in place (for a process that is about to `exec` the command it
    /// holds the lock for: it keeps its pid, so the record stays true).
    pub fn keep_record(&mut self) {
        self.record = None;
    }

    fn drop_record(&mut self) {
        if let Some(p) = self.record.take() {
            let _ = sys::fs::remove_if_exists(&p);
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.drop_record();
        if let Some(f) = self.file.take() {
            // Our own descriptor: closing it releases the lock (one system call, not two). A
            // borrowed one stays open, so it is unlocked explicitly.
            if !f.owned {
                let _ = f.release();
            }
        }
    }
}

impl AsRawFd for LockFile {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for LockFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_shared_shares() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l");
        let g = LockOptions::new(&p).lock().unwrap();
        assert!(
            LockOptions::new(&p)
                .shared(true)
                .try_lock()
                .unwrap()
                .is_none()
        );
        drop(g);
        let s1 = LockOptions::new(&p).shared(true).try_lock().unwrap();
        let s2 = LockOptions::new(&p).shared(true).try_lock().unwrap();
        assert!(s1.is_some() && s2.is_some());
        assert!(LockOptions::new(&p).try_lock().unwrap().is_none());
    }

    #[test]
    fn timed_wait_times_out_then_succeeds_after_release() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l");
        for opts in [LockOptions::new(&p), LockOptions::new(&p).fcntl(true)] {
            let g = opts.lock().unwrap();
            assert!(
                opts.lock_timeout(Duration::from_millis(20))
                    .unwrap()
                    .is_none()
            );
            drop(g);
            assert!(
                opts.lock_timeout(Duration::from_secs(30))
                    .unwrap()
                    .is_some()
            );
        }
    }

    #[test]
    fn a_symlinked_lock_file_is_refused_unless_followed() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = LockOptions::new(&link).lock().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Permission);
        assert!(LockOptions::new(&link).follow_symlinks(true).lock().is_ok());
    }

    #[test]
    fn bad_names_are_invalid() {
        for bad in ["", ".", "..", "a/b", "x y"] {
            assert!(validate_name("lock", bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("lock", "build.main-1").is_ok());
    }

    #[test]
    fn holder_record_is_found_then_removed_and_lock_file_untouched() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path().join("home")).unwrap();
        let p = d.path().join("data.json");
        std::fs::File::create(&p).unwrap();
        let mut g = LockOptions::new(&p).lock().unwrap();
        let me = std::process::id();
        g.record(
            &home,
            &Holder::new(me, Some("s1".into()), Some("true".into())),
        )
        .unwrap();
        let other = LockOptions::new(&p).open().unwrap();
        let hs = other.holders(Some(&home)).unwrap();
        assert_eq!(hs.len(), 1, "{hs:?}");
        assert_eq!(hs[0].pid, me);
        assert_eq!(hs[0].session.as_deref(), Some("s1"));
        assert!(
            hs[0]
                .describe()
                .starts_with(&format!("pid {me} (session s1, "))
        );
        drop(g);
        assert!(other.holders(Some(&home)).unwrap().is_empty());
        assert_eq!(std::fs::read(&p).unwrap(), b"");
    }
}
