//! Descriptor numbers this process inherited from its caller, turned into typed descriptors.
//!
//! A number the user names (`exec 9>f; concur lock 9`, `lockf 9`) or a parent hands over in the
//! environment is the one place where concur meets a descriptor it did not open. It is accepted
//! only when it is open *and* lacks close-on-exec: every descriptor concur opens itself is
//! close-on-exec (std, `sys::fs`, `pipe2`, `timerfd`, `signalfd` and `SQLite` all set it), and a
//! descriptor that survived the `execve` into this process cannot have it set unless this
//! process set it. So an accepted number is one the caller lent, never one of concur's own
//! files that a later close could free and reuse under the borrow.
//!
//! Not guaranteed: the caller's copy of the open file description is shared, so a lock taken
//! through it stays with the caller after this process exits (that is the point of
//! `concur lock 9`).

use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Checks that `n` names an open descriptor this process inherited (not close-on-exec).
fn check_inherited(n: RawFd) -> io::Result<RawFd> {
    let ebadf = || io::Error::from_raw_os_error(libc::EBADF);
    if n < 0 {
        return Err(ebadf());
    }
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails with EBADF if `n` is not open.
    let flags = unsafe { libc::fcntl(n, libc::F_GETFD) };
    if flags == -1 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::FD_CLOEXEC != 0 {
        // One of this process's own descriptors: to the caller that number is not open.
        return Err(ebadf());
    }
    Ok(n)
}

/// Borrows descriptor `n`, which this process inherited from its caller, for the rest of the
/// process: the typed form of a number the user names (`concur lock 9`, `lockf 9`).
///
/// # Errors
/// EBADF when `n` is negative, not open, or one of this process's own (close-on-exec)
/// descriptors rather than an inherited one; it is then never borrowed.
pub fn inherited(n: RawFd) -> io::Result<BorrowedFd<'static>> {
    let n = check_inherited(n)?;
    // SAFETY: `n` is open and not close-on-exec, so it came through the exec into this process
    // (concur opens everything close-on-exec); nothing here closes a descriptor it did not open
    // (only `OwnedFd`/`File` close, and they own what they close), so it stays open for the
    // process's life, which outlives the 'static borrow.
    Ok(unsafe { BorrowedFd::borrow_raw(n) })
}

/// Takes ownership of the inherited descriptor whose number the environment variable `var`
/// holds (set by a parent that laid it out for this process); `None` when the variable is
/// unset, not a number above stderr, or names no inherited descriptor.
///
/// # Safety
/// Call at most once per process for a given variable, and only for a variable whose
/// descriptor nothing else in the process uses: the returned `OwnedFd` closes it when dropped,
/// and a second call would make a second owner.
pub unsafe fn take_inherited(var: &str) -> Option<OwnedFd> {
    let n: RawFd = std::env::var(var).ok()?.parse().ok()?;
    if n < 3 {
        return None;
    }
    let n = check_inherited(n).ok()?;
    // SAFETY: open and inherited (checked above); the parent handed it to this process alone,
    // and the caller promises to take it once.
    Some(unsafe { OwnedFd::from_raw_fd(n) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, IntoRawFd};

    /// A pipe end without close-on-exec, as a descriptor inherited through exec looks, leaked so
    /// that the 'static borrow stays valid for the test process.
    fn leaked_inheritable() -> RawFd {
        let (r, _w) = crate::sys::signal::pipe().unwrap();
        let n = r.into_raw_fd();
        // SAFETY: clears FD_CLOEXEC on a descriptor this test owns (and leaks).
        assert_ne!(unsafe { libc::fcntl(n, libc::F_SETFD, 0) }, -1);
        n
    }

    #[test]
    fn an_inherited_descriptor_is_borrowed() {
        let n = leaked_inheritable();
        assert_eq!(inherited(n).unwrap().as_raw_fd(), n);
    }

    #[test]
    fn a_number_that_is_not_open_is_refused() {
        // Far above any descriptor a test opens, so never open.
        let err = inherited(1_000_000).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        assert_eq!(inherited(-1).unwrap_err().raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn this_process_own_descriptor_is_refused() {
        let f = tempfile::tempfile().unwrap();
        let err = inherited(f.as_raw_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn nothing_is_taken_without_the_variable() {
        // SAFETY: a variable nothing sets; nothing is taken.
        assert!(unsafe { take_inherited("CONCUR_TEST_FD_NEVER_SET") }.is_none());
    }
}
