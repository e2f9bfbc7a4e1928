//! The only place that makes raw system calls: opens with `O_NOFOLLOW`, `flock`, `link`,
//! `rename`, `fsync`, process facts from `/proc`.
//!
//! Everything above this module speaks paths and `File`s; everything here speaks file
//! descriptors and errno. Keeping the raw calls in one place makes their error handling (EINTR,
//! short writes, ELOOP from `O_NOFOLLOW`) uniform and reviewable. Linux only: the process facts
//! read `/proc`, and open-file-description locks are Linux's.
#![allow(clippy::disallowed_methods)]

pub mod detach;
pub mod fd;
pub mod fileio;
pub mod fs;
pub mod lock;
pub mod nowait;
pub mod ofd;
pub mod pidfd;
pub mod proc;
pub mod ptrace;
pub mod signal;
pub mod sock;
pub mod supervise;
pub mod timer;
pub mod tty;
pub mod watchdog;

/// Retries a system call while it fails with EINTR.
pub(crate) fn retry_eintr<T>(mut f: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Turns a -1 return into the thread's errno.
pub(crate) fn cvt(ret: libc::c_int) -> std::io::Result<libc::c_int> {
    if ret == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
