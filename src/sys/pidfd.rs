//! Waiting for another (non-child) process to exit without polling: `pidfd_open(2)` + `poll(2)`.
//!
//! A pidfd names one process, not a pid number: once open, a later process that reuses the pid
//! is never confused with it. The caller checks the process's start time *after* opening, so a
//! pid reused between the caller learning it and the open is caught too.
//!
//! Not guaranteed: availability. Kernels before 5.3 (or seccomp profiles that forbid the call)
//! answer `ENOSYS`/`EPERM`; the caller then falls back to checking `/proc` periodically.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// An open pidfd.
#[derive(Debug)]
pub struct PidFd(OwnedFd);

impl From<PidFd> for OwnedFd {
    fn from(fd: PidFd) -> OwnedFd {
        fd.0
    }
}

/// Opens a pidfd for `pid` (close-on-exec, as every pidfd is).
///
/// # Errors
/// `ESRCH` when no such process exists; `ENOSYS`/`EPERM` when pidfds are not available.
pub fn open(pid: u32) -> io::Result<PidFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; no pointers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(PidFd(unsafe { OwnedFd::from_raw_fd(fd) }))
}

impl std::os::fd::AsFd for PidFd {
    /// Readable once the process has exited (a zombie counts).
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl PidFd {
    /// Waits at most `timeout` for the process to exit; `true` when it has (a zombie counts).
    ///
    /// # Errors
    /// As `poll(2)` (EINTR is retried with the full timeout: a caller's loop bounds the wait).
    pub fn wait_exit(&self, timeout: Duration) -> io::Result<bool> {
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let n = super::retry_eintr(|| {
            // SAFETY: one valid pollfd for the duration of the call.
            super::cvt(unsafe { libc::poll(&raw mut p, 1, ms) })
        })?;
        Ok(n > 0 && p.revents != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_process_exit() {
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let fd = match open(child.id()) {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("skipping: pidfd_open unavailable: {e}");
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
        };
        assert!(!fd.wait_exit(Duration::ZERO).unwrap());
        child.kill().unwrap();
        assert!(fd.wait_exit(Duration::from_secs(60)).unwrap());
        child.wait().unwrap();
    }
}
