//! Running a command while an etcd lease is held (`concur lock --name N CMD` and `concur slot`
//! with an etcd backend, through [`crate::hold`]): [`crate::child`]'s supervision (signals
//! forwarded, hold limit, reaping) plus a watcher thread on the lease.
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

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::lease::Lease;
use crate::child::{self, Ended, Running, Supervise};
use crate::error::{Error, Result};
use crate::sys::proc::boot_clock;
use crate::sys::timer::{BootTimer, wait_readable};
use crate::sys::watchdog::Bound;

/// Runs `cmd` to its end under `how` (signals forwarded, hold limit: see [`crate::child`])
/// while `lease` stays valid; [`Ended::lost`] says the lease was lost first and the command
/// killed for it (see the module docs). The command always dies with this process. The inner
/// error is the spawn's: nothing ran.
///
/// # Errors
/// [`Error::Io`] when the lease can no longer be watched (the command is then killed: it never
/// runs on unwatched).
pub fn run(lease: &Lease, mut cmd: Command, how: &Supervise) -> Result<std::io::Result<Ended>> {
    let program = cmd.get_program().to_owned();
    let io = |action: &'static str| {
        let program = program.clone();
        move |e: std::io::Error| Error::io(action, &program, e)
    };
    let gone = lease.gone().map_err(io("cannot wait for command"))?;
    let bound = Bound::new(lease.valid_until()).map_err(io("cannot start the lease watchdog"))?;
    let arm = bound.arm();
    // SAFETY: the closure only calls getpid, fork, waitpid and _exit, which are
    // async-signal-safe (the forked watchdog makes raw system calls only).
    unsafe {
        cmd.pre_exec(move || arm.in_child());
    }
    let how = Supervise {
        die_with_parent: true,
        ..how.clone()
    };
    // Closed when the command has ended: the watcher's cue to stop.
    let (done, ended) = crate::sys::signal::pipe().map_err(io("cannot wait for command"))?;
    let (tx, rx) = std::sync::mpsc::channel::<Running>();
    let done_fd = done.as_fd();
    let bound_ref = &bound;
    let (ended_run, watched) = std::thread::scope(|s| {
        let watcher = s.spawn(move || -> std::io::Result<()> {
            let Ok(running) = rx.recv() else {
                return Ok(()); // the command never started
            };
            let r = watch(lease, &running, gone, done_fd, bound_ref);
            if r.is_err() {
                // Nothing watches the lease any more: the command must not run on unprotected.
                running.kill_lost();
            }
            r
        });
        let r = child::run_watched(cmd, &how, move |running| {
            let _ = tx.send(running);
        });
        drop(ended);
        (r, watcher.join())
    });
    bound.clear();
    match watched {
        Ok(Ok(())) => Ok(ended_run),
        Ok(Err(e)) => Err(io("cannot wait for command")(e)),
        Err(_) => Err(Error::Invalid("the lease watcher panicked".into())),
    }
}

/// Watches the lease until the command has ended (`done` readable); kills it the moment the
/// lease is lost.
fn watch(
    lease: &Lease,
    running: &Running,
    gone: BorrowedFd<'_>,
    done: BorrowedFd<'_>,
    bound: &Bound,
) -> std::io::Result<()> {
    let timer = BootTimer::new()?;
    loop {
        if !lease.is_valid() {
            running.kill_lost();
            return Ok(());
        }
        // The watchdog kills at the last bound published: publish the renewed one well before
        // the old one passes (renewals come every TTL/3).
        let until = lease.valid_until();
        bound.set(until);
        timer.fire_at(until.min(boot_clock() + lease.ttl() / 6))?;
        let ready = wait_readable(&[done, timer.as_fd(), gone])?;
        if ready[0] {
            return Ok(());
        }
        // The timer fired (renewals may have moved the bound) or a keepalive found the lease
        // gone: check again.
    }
}
