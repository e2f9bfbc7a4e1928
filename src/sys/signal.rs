//! Sending signals: `kill(2)` to one process or to a whole process group.
//!
//! Used by the diagnose harness to stop a writer that hangs past its timeout (and everything it
//! started) and to kill a lock holder with SIGKILL on purpose. Not guaranteed: a process that
//! moved itself into another process group escapes a group kill.

use std::io;

use super::cvt;

/// Sends `SIGKILL` to process `pid`. A process that is already gone is not an error.
pub fn kill(pid: u32) -> io::Result<()> {
    send(i32::try_from(pid).unwrap_or(i32::MAX), libc::SIGKILL)
}

/// Sends `SIGKILL` to every process in process group `pgid`. A group that is already empty is
/// not an error.
pub fn kill_group(pgid: u32) -> io::Result<()> {
    send(-i32::try_from(pgid).unwrap_or(i32::MAX), libc::SIGKILL)
}

fn send(target: i32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes plain integers and has no memory preconditions.
    match cvt(unsafe { libc::kill(target, sig) }) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        other => other.map(drop),
    }
}
