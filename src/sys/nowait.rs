//! Waiting for a child without reaping it, so another thread can still signal it safely.
//!
//! `waitid(WEXITED | WNOWAIT)` blocks until the child has exited but leaves it a zombie: its pid
//! cannot be reused until the owner reaps it (with `Child::wait`), so a `kill` sent in between
//! can never hit an unrelated process.

use std::io;

/// Blocks until child `pid` has exited, without reaping it.
///
/// # Errors
/// The `waitid` error (`ECHILD` if `pid` is not an unreaped child of this process).
pub fn wait_exited(pid: u32) -> io::Result<()> {
    let id = libc::id_t::from(pid);
    super::retry_eintr(|| {
        // SAFETY: siginfo_t is plain data; zeroed is a valid initial value for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid only writes into `info`, which lives for the whole call.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                id,
                &raw mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        super::cvt(r).map(drop)
    })
}

/// Sends `sig` to process `pid`.
///
/// # Errors
/// The `kill` error (`ESRCH` when no such process exists).
pub fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    super::cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}
