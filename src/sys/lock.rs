//! Raw `flock(2)` calls.
//!
//! `flock` locks belong to the open file description: they are released when the last
//! descriptor sharing it is closed, which the kernel does at once when the holder dies, however
//! it dies. They do not work across NFS the way local locks do; concur refuses no filesystem
//! but documents that limit.

use std::io;
use std::os::unix::io::AsRawFd;

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
pub fn try_flock(fd: &impl AsRawFd, mode: Mode) -> io::Result<bool> {
    let raw = fd.as_raw_fd();
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
pub fn flock_interruptible(fd: &impl AsRawFd, mode: Mode) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: as in try_flock.
    cvt(unsafe { libc::flock(raw, mode.op()) }).map(drop)
}

/// Waits until the lock is taken, retrying on EINTR.
pub fn flock(fd: &impl AsRawFd, mode: Mode) -> io::Result<()> {
    retry_eintr(|| flock_interruptible(fd, mode))
}

/// Releases a lock held through this open file description.
pub fn unlock(fd: &impl AsRawFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: as in try_flock.
    retry_eintr(|| cvt(unsafe { libc::flock(raw, libc::LOCK_UN) })).map(drop)
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
}
