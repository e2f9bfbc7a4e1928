//! Running a command while something is held (a lock, a slot permit): signals forwarded, an
//! optional hold limit, and the command's status turned into an exit code.
//!
//! What it guarantees:
//! - **No lost signals.** SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGCHLD are blocked before the
//!   fork and taken synchronously (`sigtimedwait`), so a signal that arrives at any moment is
//!   either forwarded to the command or, if the command is gone, ignored; the supervisor never
//!   dies of it while the command runs (which would release the lock under a running command).
//!   A terminal's Ctrl-C already reaches the command through its process group, so a
//!   kernel-sent signal is not forwarded a second time unless the command runs in its own group.
//! - **Never unprotected.** With [`Supervise::die_with_parent`] the command gets SIGKILL if the
//!   supervisor itself is killed (`PR_SET_PDEATHSIG`, checked against a parent that died before
//!   it was set): the kernel frees the lock when the supervisor dies, and the command must not
//!   go on as if it still held it.
//! - **Hold limit.** With [`Supervise::max_hold`] the command runs in a process group of its
//!   own and the whole group is sent SIGKILL when the limit passes; the caller releases after.
//! - **Watchers.** [`run_watched`] hands the running command to a watcher on another thread
//!   (an etcd lease's, see [`crate::etcd::hold`]) that can kill it; the kill and the reaping
//!   take one lock, so a kill never reaches a reaped, possibly reused, pid.
//!
//! Not guaranteed: processes that leave the command's process group (`setsid`) are not killed
//! by the hold limit; the child's signal mask is the one this process started with.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::sys::supervise::{self, SigSet};

/// How to supervise a command.
#[derive(Debug, Clone, Default)]
pub struct Supervise<'fd> {
    /// Kill the command's process group when it has run this long.
    pub max_hold: Option<Duration>,
    /// SIGKILL the command if this process dies.
    pub die_with_parent: bool,
    /// Descriptors to hand to the command: `(ours, theirs)` — `ours` is duplicated onto
    /// descriptor number `theirs` in the child (the same number just clears close-on-exec).
    pub pass_fds: Vec<(BorrowedFd<'fd>, RawFd)>,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Its wait status.
    pub status: ExitStatus,
    /// True when the hold limit killed it.
    pub over_limit: bool,
    /// True when a watcher killed it because what it ran under was lost (an etcd lease).
    pub lost: bool,
}

impl Ended {
    /// The conventional exit code: the command's own, or 128+N when signal N killed it.
    pub fn code(&self) -> u8 {
        status_code(self.status)
    }
}

/// The exit code for a wait status: the code, or 128+N for signal N.
pub fn status_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c & 0xff).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(255),
        _ => 1,
    }
}

/// The command for `argv`, or for `sh -c CMD` through `$SHELL` (else `/bin/sh`) as flock(1)
/// runs `-c`.
pub fn command_for(argv: &[OsString], shell_command: Option<&OsString>) -> Option<Command> {
    if let Some(c) = shell_command {
        let shell = std::env::var_os("SHELL")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into());
        let mut cmd = Command::new(shell);
        cmd.arg("-c").arg(c);
        return Some(cmd);
    }
    let (first, rest) = argv.split_first()?;
    let mut cmd = Command::new(first);
    cmd.args(rest);
    Some(cmd)
}

/// A short printable form of a command line, for holder records and messages.
pub fn describe(argv: &[OsString], shell_command: Option<&OsString>) -> String {
    let mut s = match shell_command {
        Some(c) => c.to_string_lossy().into_owned(),
        None => argv
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
    };
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

static ORIGINAL_MASK: std::sync::OnceLock<SigSet> = std::sync::OnceLock::new();

fn handled() -> SigSet {
    let mut all = FORWARDED.to_vec();
    all.push(libc::SIGCHLD);
    SigSet::of(&all)
}

/// Blocks the signals [`run`] handles in the calling thread, remembering the mask it had.
///
/// Call it first thing in `main`, before any thread starts: threads inherit the mask, so none
/// of them can then take a SIGCHLD or a forwarded signal that [`run`] waits for. Idempotent.
///
/// # Errors
/// The `pthread_sigmask` error.
pub fn block_signals() -> io::Result<()> {
    let orig = supervise::block(&handled())?;
    let _ = ORIGINAL_MASK.set(orig);
    Ok(())
}

/// The running command as a watcher on another thread sees it ([`run_watched`]): it can kill the
/// command, and a kill never reaches a pid that was reaped (and may have been reused).
#[derive(Debug, Clone)]
pub struct Running {
    pid: Arc<Mutex<Option<u32>>>,
    own_group: bool,
    lost: Arc<AtomicBool>,
}

impl Running {
    /// Kills the command (its process group when it has its own) with SIGKILL because what it
    /// ran under was lost; [`Ended::lost`] then says so. False when it had already ended.
    pub fn kill_lost(&self) -> bool {
        let pid = self.pid.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(pid) = *pid else {
            return false;
        };
        self.lost.store(true, Ordering::SeqCst);
        let _ = if self.own_group {
            supervise::kill_group(pid, libc::SIGKILL)
        } else {
            supervise::kill(pid, libc::SIGKILL)
        };
        true
    }
}

/// Blocks SIGCHLD only, in the calling thread and so in every thread it starts afterwards,
/// remembering the mask the command will start with. For a caller that starts threads before
/// [`run`] (an etcd lease's keepalive) but must stay interruptible while it waits for a lock: a
/// thread that does not block SIGCHLD can take the one [`run`] waits for (a stopped process
/// that is continued hands its pending SIGCHLD to whichever thread runs first), and the wait
/// would not end. Idempotent.
///
/// # Errors
/// The `pthread_sigmask` error.
pub fn reserve_sigchld() -> io::Result<()> {
    let orig = supervise::block(&SigSet::of(&[libc::SIGCHLD]))?;
    let _ = ORIGINAL_MASK.set(orig);
    Ok(())
}

/// Runs `cmd` to its end under `how`. The command starts with the signal mask this process
/// had before [`block_signals`] (or [`reserve_sigchld`]).
///
/// Call [`block_signals`] before starting any thread: a SIGCHLD taken by a thread that does
/// not block it would be lost and this wait would not end.
///
/// # Errors
/// The spawn error (command not found, not executable, ...) — nothing ran.
pub fn run(cmd: Command, how: &Supervise<'_>) -> io::Result<Ended> {
    run_watched(cmd, how, |_| {})
}

/// [`run`], handing the running command to `started` (a watcher that may kill it, e.g. when a
/// lease is lost) once it runs; `started` is not called when the spawn fails.
///
/// # Errors
/// As [`run`].
pub fn run_watched(
    mut cmd: Command,
    how: &Supervise<'_>,
    started: impl FnOnce(Running),
) -> io::Result<Ended> {
    let set = handled();
    let blocked_now = supervise::block(&set)?;
    let orig = *ORIGINAL_MASK.get_or_init(|| blocked_now);
    let parent = supervise::getpid();
    let own_group = how.max_hold.is_some();
    let die = how.die_with_parent;
    let fds: Vec<(RawFd, RawFd)> = how
        .pass_fds
        .iter()
        .map(|&(ours, theirs)| (ours.as_raw_fd(), theirs))
        .collect();
    // SAFETY: the closure only makes async-signal-safe calls (pthread_sigmask, prctl,
    // getppid, setpgid, dup2, fcntl) and allocates nothing. It runs only in the child of the
    // spawn below, while `how` still lends the descriptors: `cmd` is owned here and dropped
    // when this returns, so it is never spawned again after the borrow ends.
    unsafe {
        cmd.pre_exec(move || {
            supervise::set_mask(&orig)?;
            if die {
                supervise::die_with_parent(libc::SIGKILL, parent)?;
            }
            if own_group {
                supervise::new_process_group()?;
            }
            for &(ours, theirs) in &fds {
                // borrow_raw: `ours` is open in the child (a copy of this process's table taken
                // while `how` lent it). dup_to's contract: in the child between fork and exec,
                // laying out the descriptors the program gets: `theirs` numbers are the caller's
                // to give.
                supervise::dup_to(BorrowedFd::borrow_raw(ours), theirs)?;
            }
            Ok(())
        });
    }
    let result = supervise_child(&mut cmd, &set, how.max_hold, started);
    let _ = supervise::set_mask(&orig);
    result
}

fn supervise_child(
    cmd: &mut Command,
    set: &SigSet,
    max_hold: Option<Duration>,
    started: impl FnOnce(Running),
) -> io::Result<Ended> {
    let own_group = max_hold.is_some();
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let running = Running {
        pid: Arc::new(Mutex::new(Some(pid))),
        own_group,
        lost: Arc::new(AtomicBool::new(false)),
    };
    started(running.clone());
    let deadline = max_hold.map(|d| Instant::now() + d);
    let mut over_limit = false;
    loop {
        {
            // Reaped under the lock a watcher kills under: its kill comes before, or not at all.
            let mut alive = running.pid.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(status) = child.try_wait()? {
                *alive = None;
                let lost = running.lost.load(Ordering::SeqCst);
                return Ok(Ended {
                    status,
                    over_limit,
                    lost,
                });
            }
        }
        let timeout = match deadline {
            Some(d) if !over_limit => Some(d.saturating_duration_since(Instant::now())),
            _ => None,
        };
        match supervise::wait_signal(set, timeout)? {
            None => {
                over_limit = true;
                let _ = supervise::kill_group(pid, libc::SIGKILL);
            }
            Some(c) if c.signo == libc::SIGCHLD => {}
            Some(c) => {
                let from_terminal = c.code == libc::SI_KERNEL;
                if own_group {
                    let _ = supervise::kill_group(pid, c.signo);
                } else if !from_terminal {
                    let _ = supervise::kill(pid, c.signo);
                }
            }
        }
    }
}

/// Replaces this process with `cmd` (flock's `--no-fork`), keeping `keep_fds` open across the
/// exec. Returns only on failure.
pub fn exec(mut cmd: Command, keep_fds: &[BorrowedFd<'_>]) -> io::Error {
    for &fd in keep_fds {
        // SAFETY: inherit's contract: these descriptors go to the program this process execs
        // next (and if the exec fails, this process only reports it and exits).
        if let Err(e) = unsafe { supervise::inherit(fd) } {
            return e;
        }
    }
    cmd.exec()
}
