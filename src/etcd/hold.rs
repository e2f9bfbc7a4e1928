//! Running a command while an etcd lease is held (`concur lock --name N CMD` and `concur slot`
//! with an etcd backend).
//!
//! Guarantees: if the holder's own validity bound for the lease passes before the command ends
//! (renewals failed: partition, lost quorum, or the lease was revoked), the command is killed
//! (SIGKILL) at that moment and the outcome says so — the command never keeps running as if it
//! still held the lock. The check is a timer on the boot clock set to the bound, re-armed as
//! renewals extend it, and a wake-up from the keepalive thread when the server says the lease is
//! gone (revoked): the command is killed then, not at the bound; no polling. The boot clock
//! counts suspend: a machine that wakes past the bound kills the command at once, not a whole
//! suspension later.
//!
//! If the caller itself dies (killed, crashed), the command gets SIGKILL from the kernel
//! (`PR_SET_PDEATHSIG`): it never runs on after its holder stopped renewing the lease. If the
//! caller is stopped instead (SIGSTOP, a job-control stop, swapped out, starved), a watchdog
//! process ([`crate::sys::watchdog`], forked for the command, in its own process group) kills
//! the command at the last bound the caller published (at most TTL/6 old, always before the
//! server can let the lease expire): a stopped holder's command does not run into the next
//! holder's section.
//!
//! Not guaranteed: that the command's own children die with it (kill them from a trap, or run a
//! command that does not fork off work). Fence writes made under the lock ([`super::fence`])
//! for protection that does not depend on timing.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus};

use super::lease::Lease;
use crate::error::{Error, Result};
use crate::sys::proc::boot_clock;
use crate::sys::timer::{BootTimer, wait_readable};
use crate::sys::watchdog::Bound;

/// How a command run under a lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The command exited on its own while the lease was valid.
    Exited(ExitStatus),
    /// The lease was lost first; the command was killed and ended with this status.
    LeaseLost(ExitStatus),
}

/// Spawns `cmd` and waits for it while `lease` stays valid (see the module docs).
///
/// # Errors
/// [`Error::Io`] when the command cannot be started.
pub fn run(lease: &Lease, cmd: &mut Command) -> Result<Outcome> {
    let program = cmd.get_program().to_owned();
    let gone = lease
        .gone()
        .map_err(|e| Error::io("cannot wait for command", &program, e))?;
    let parent = crate::sys::supervise::getpid();
    let bound = Bound::new(lease.valid_until())
        .map_err(|e| Error::io("cannot start the lease watchdog", &program, e))?;
    let arm = bound.arm();
    // SAFETY: the closure only calls prctl, getppid, getpid, fork, waitpid and _exit, which
    // are async-signal-safe (the forked watchdog makes raw system calls only).
    unsafe {
        cmd.pre_exec(move || {
            crate::sys::supervise::die_with_parent(libc::SIGKILL, parent)?;
            arm.in_child()
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io("cannot run command", &program, e))?;
    let pid = child.id();
    let watched = watch(lease, pid, gone, &bound);
    bound.clear();
    match watched {
        Ok(lost) => {
            let st = child
                .wait()
                .map_err(|e| Error::io("cannot wait for command", &program, e))?;
            Ok(if lost {
                Outcome::LeaseLost(st)
            } else {
                Outcome::Exited(st)
            })
        }
        Err(e) => {
            // Nothing watches the lease any more: the command must not run on unprotected.
            let _ = crate::sys::supervise::kill(pid, libc::SIGKILL);
            let _ = child.wait();
            Err(Error::io("cannot wait for command", &program, e))
        }
    }
}

/// Waits until command `pid` exits (`Ok(false)`) or the lease is lost, in which case the
/// command gets SIGKILL (`Ok(true)`). The command is not reaped.
fn watch(lease: &Lease, pid: u32, gone: BorrowedFd<'_>, bound: &Bound) -> std::io::Result<bool> {
    // Something that turns readable when the command exits, without reaping it (until the
    // caller's `child.wait()`, the pid stays ours to signal): a pidfd, or where the kernel has
    // none (before 5.3) a pipe whose write end a waiting thread closes at the exit.
    let exited: OwnedFd = if let Ok(fd) = crate::sys::pidfd::open(pid) {
        fd.into()
    } else {
        let (exited, tell) = crate::sys::signal::pipe()?;
        std::thread::Builder::new()
            .name("etcd-hold-wait".into())
            .spawn(move || {
                let _ = crate::sys::nowait::wait_exited(pid);
                drop(tell);
            })?;
        exited.into()
    };
    let timer = BootTimer::new()?;
    loop {
        if !lease.is_valid() {
            let _ = crate::sys::supervise::kill(pid, libc::SIGKILL);
            return Ok(true);
        }
        // The watchdog kills at the last bound published: publish the renewed one well before
        // the old one passes (renewals come every TTL/3).
        let until = lease.valid_until();
        bound.set(until);
        timer.fire_at(until.min(boot_clock() + lease.ttl() / 6))?;
        let ready = wait_readable(&[exited.as_fd(), timer.as_fd(), gone])?;
        if ready[0] {
            return Ok(false);
        }
        // The timer fired (renewals may have moved the bound) or a keepalive found the lease
        // gone: check again.
    }
}
