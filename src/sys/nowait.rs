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
