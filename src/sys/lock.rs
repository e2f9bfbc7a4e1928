//! Raw `flock(2)` calls.
//!
//! `flock` locks belong to the open file description: they are released when the last
//! descriptor sharing it is closed, which the kernel does at once when the holder dies, however
//! it dies. They do not work across NFS the way local locks do; concur refuses no filesystem
//! but documents that limit.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use super::{cvt, retry_eintr};

/// Shared (reader) or exclusive (writer) lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Many holders at once (`LOCK_SH`).
    Shared,
    /// One holder (`LOCK_EX`).
    Exclusive,
}

impl Mode {
    fn op(self) -> libc::c_int {
        match self {
            Mode::Shared => libc::LOCK_SH,
            Mode::Exclusive => libc::LOCK_EX,
        }
    }
}

/// Tries to take the lock without waiting. `Ok(false)` means someone else holds it.
pub fn try_flock(fd: impl AsFd, mode: Mode) -> io::Result<bool> {
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: flock on a descriptor the caller keeps open for the call.
    match retry_eintr(|| cvt(unsafe { libc::flock(raw, mode.op() | libc::LOCK_NB) })) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits (a real blocking wait in the kernel) until the lock is taken.
///
/// A signal that interrupts the wait makes it return `Interrupted` instead of retrying, so a
/// timer signal can bound the wait; callers without such a timer should use [`flock`].
pub fn flock_interruptible(fd: impl AsFd, mode: Mode) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: as in try_flock.
    cvt(unsafe { libc::flock(raw, mode.op()) }).map(drop)
}

/// Waits until the lock is taken, retrying on EINTR.
pub fn flock(fd: impl AsFd, mode: Mode) -> io::Result<()> {
    let fd = fd.as_fd();
    retry_eintr(|| flock_interruptible(fd, mode))
}

/// Releases a lock held through this open file description.
pub fn unlock(fd: impl AsFd) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: as in try_flock.
    retry_eintr(|| cvt(unsafe { libc::flock(raw, libc::LOCK_UN) })).map(drop)
}

/// Waits at most `timeout` for the lock. `Ok(false)` means the time ran out and the lock was
/// not taken.
///
/// The wait is a real blocking `flock(2)` in the kernel, done by a helper thread on a duplicate
/// of the descriptor (the lock belongs to the shared open file description, so the caller holds
/// it when the helper gets it); the caller waits on a channel with a timer, not a sleep loop. If
/// the time runs out, the helper is abandoned: should it get the lock later, it releases it at
/// once without anything having been done under it. So a timed-out wait never holds the lock for
/// the caller, but may briefly show up as a holder to others after the timeout.
pub fn flock_timeout(
    file: &std::fs::File,
    mode: Mode,
    timeout: std::time::Duration,
) -> io::Result<bool> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    if try_flock(file, mode)? {
        return Ok(true);
    }
    if timeout.is_zero() {
        return Ok(false);
    }
    let dup = file.try_clone()?;
    let abandoned = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let flag = Arc::clone(&abandoned);
    std::thread::Builder::new()
        .name("concur-lock-wait".into())
        .spawn(move || {
            let r = flock(&dup, mode);
            if r.is_ok() && flag.load(Ordering::SeqCst) {
                let _ = unlock(&dup);
                return;
            }
            // The receiver may be gone after a timeout; the abandoned check below handles that.
            let _ = tx.send(r);
            if flag.load(Ordering::SeqCst) {
                let _ = unlock(&dup);
            }
        })?;
    if let Ok(r) = rx.recv_timeout(timeout) {
        return r.map(|()| true);
    }
    abandoned.store(true, Ordering::SeqCst);
    // The helper may have taken the lock between the timeout and the store above; then it has
    // sent on the channel, and we must give the lock back rather than keep it.
    if let Ok(Ok(())) = rx.try_recv() {
        unlock(file)?;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_description_cannot_take_a_held_exclusive_lock() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l");
        let a = std::fs::File::create(&p).unwrap();
        let b = std::fs::File::open(&p).unwrap();
        assert!(try_flock(&a, Mode::Exclusive).unwrap());
        assert!(!try_flock(&b, Mode::Shared).unwrap());
        unlock(&a).unwrap();
        assert!(try_flock(&b, Mode::Shared).unwrap());
    }

    #[test]
    fn timed_wait_gives_up_and_never_holds_afterwards() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l");
        let a = std::fs::File::create(&p).unwrap();
        let b = std::fs::File::open(&p).unwrap();
        assert!(try_flock(&a, Mode::Exclusive).unwrap());
        let got = flock_timeout(&b, Mode::Exclusive, std::time::Duration::from_millis(20)).unwrap();
        assert!(!got);
        unlock(&a).unwrap();
        // b's abandoned waiter may grab and drop the lock; a must get it back promptly.
        flock(&a, Mode::Exclusive).unwrap();
    }

    #[test]
    fn timed_wait_gets_a_released_lock() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l");
        let a = std::fs::File::create(&p).unwrap();
        let b = std::fs::File::open(&p).unwrap();
        assert!(try_flock(&a, Mode::Exclusive).unwrap());
        let t = std::thread::spawn(move || {
            flock_timeout(&b, Mode::Exclusive, std::time::Duration::from_secs(30)).unwrap()
        });
        unlock(&a).unwrap();
        assert!(t.join().unwrap());
    }
}
