//! Raw calls for supervising a wrapped command: signal masks, synchronous signal waits, a
//! wait-bounding timer, process groups, parent-death signals and descriptor inheritance.
//!
//! The supervisor blocks the signals it handles *before* it forks, so none can arrive between
//! fork and the wait (no lost SIGCHLD, no handler races), and waits for them synchronously with
//! `sigtimedwait(2)`. The only asynchronous handler is the timer's, which only sets a flag: it
//! exists to interrupt a blocking lock call, exactly as util-linux flock(1) bounds `-w`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::cvt;

/// A set of signals.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl std::fmt::Debug for SigSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigSet")
    }
}

impl SigSet {
    /// A set holding `signals`.
    pub fn of(signals: &[libc::c_int]) -> SigSet {
        // SAFETY: sigemptyset initialises the set; sigaddset only writes into it.
        unsafe {
            let mut s = std::mem::zeroed();
            libc::sigemptyset(&raw mut s);
            for &sig in signals {
                libc::sigaddset(&raw mut s, sig);
            }
            SigSet(s)
        }
    }
}

/// Blocks `set` in the calling thread; returns the previous mask.
pub fn block(set: &SigSet) -> io::Result<SigSet> {
    // SAFETY: both pointers are valid sigset_t values for the call.
    unsafe {
        let mut old = std::mem::zeroed();
        let r = libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set.0, &raw mut old);
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(SigSet(old))
    }
}

/// Blocks every signal in the calling thread (for helper threads, so that process-directed
/// signals go to the thread that waits for them).
pub fn block_all_in_thread() {
    // SAFETY: sigfillset initialises the set; pthread_sigmask reads it.
    unsafe {
        let mut s = std::mem::zeroed();
        libc::sigfillset(&raw mut s);
        libc::pthread_sigmask(libc::SIG_BLOCK, &raw const s, std::ptr::null_mut());
    }
}

/// Replaces the calling thread's mask with `set`. Async-signal-safe (usable after fork).
pub fn set_mask(set: &SigSet) -> io::Result<()> {
    // SAFETY: valid sigset pointer; a null old-set pointer is allowed.
    let r =
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &raw const set.0, std::ptr::null_mut()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// A signal taken by [`wait_signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caught {
    /// The signal number.
    pub signo: libc::c_int,
    /// `si_code`: `SI_USER` for kill(2), `SI_KERNEL` for terminal-generated signals, ...
    pub code: libc::c_int,
}

/// Waits for one of the (blocked) signals in `set`, at most `timeout` (`None`: forever).
/// `Ok(None)` when the time ran out.
pub fn wait_signal(set: &SigSet, timeout: Option<Duration>) -> io::Result<Option<Caught>> {
    loop {
        // SAFETY: siginfo_t is plain data; all-zero is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(d.subsec_nanos().cast_signed()),
        });
        let tsp = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
        // SAFETY: valid set, writable info, and a valid or null timespec.
        let r = unsafe { libc::sigtimedwait(&raw const set.0, &raw mut info, tsp) };
        if r >= 0 {
            return Ok(Some(Caught {
                signo: r,
                code: info.si_code,
            }));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) => return Ok(None),
            Some(libc::EINTR) => {}
            _ => return Err(e),
        }
    }
}

/// Sends `sig` to process `pid`.
pub fn kill(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill has no memory-safety preconditions.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// Sends `sig` to every process in process group `pgid`. Groups 0 and 1 are refused: `killpg(0)`
/// would signal the caller's own group.
pub fn kill_group(pgid: u32, sig: libc::c_int) -> io::Result<()> {
    let pgid =
        libc::pid_t::try_from(pgid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal process group 0 or 1",
        ));
    }
    // SAFETY: killpg has no memory-safety preconditions.
    cvt(unsafe { libc::killpg(pgid, sig) }).map(drop)
}

/// Puts the calling process in a new process group of its own. Async-signal-safe.
pub fn new_process_group() -> io::Result<()> {
    // SAFETY: setpgid(0, 0) acts on the calling process only.
    cvt(unsafe { libc::setpgid(0, 0) }).map(drop)
}

/// Asks the kernel to send `sig` to the calling process when its parent dies, and fails with
/// ESRCH if the parent (`expected_parent`) is already gone. Async-signal-safe.
pub fn die_with_parent(sig: libc::c_int, expected_parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl with integer arguments; getppid has no preconditions.
    unsafe {
        cvt(libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::c_ulong::try_from(sig).unwrap_or(9),
        ))?;
        if libc::getppid() != expected_parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    Ok(())
}

/// The calling process's pid as a `pid_t`.
pub fn getpid() -> libc::pid_t {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// Makes `fd` survive `execve` (clears `FD_CLOEXEC`). Async-signal-safe.
///
/// # Safety
/// The caller means to hand `fd` to the program it is about to exec: every other user of that
/// descriptor loses its close-on-exec protection (a child another thread spawns meanwhile
/// inherits it too).
pub unsafe fn inherit(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments on a live descriptor; the rest is the caller's
    // contract.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) }).map(drop)
}

/// Duplicates `fd` onto descriptor number `target` (which then survives `execve`; equal numbers
/// only clear close-on-exec). Async-signal-safe.
///
/// # Safety
/// `target` is closed first if open, whoever owns it: call this only in a child between fork
/// and exec, laying out the descriptors the program will get, with `target` a number the
/// caller was asked to fill. In a live multi-threaded process this would pull a descriptor from
/// under its owner.
pub unsafe fn dup_to(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    if fd.as_raw_fd() == target {
        // SAFETY: the same contract, passed on.
        return unsafe { inherit(fd) };
    }
    // SAFETY: dup2 with integer arguments on a live source; `target` is the caller's contract.
    cvt(unsafe { libc::dup2(fd.as_raw_fd(), target) }).map(drop)
}

/// Sets `sig`'s disposition to ignore (`true`) or default (`false`).
pub fn ignore(sig: libc::c_int, yes: bool) {
    let h = if yes { libc::SIG_IGN } else { libc::SIG_DFL };
    // SAFETY: installing SIG_IGN/SIG_DFL has no handler-safety requirements.
    unsafe {
        libc::signal(sig, h);
    }
}

static TIMER_FIRED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_timer(_: libc::c_int) {
    TIMER_FIRED.store(true, Ordering::SeqCst);
}

/// Starts a process-wide `SIGALRM` timer that first fires after `after` and then every 10 ms
/// (so a tick that lands just before a blocking call is entered still interrupts it). Its
/// handler only sets the flag read by [`timer_fired`] and is installed without `SA_RESTART`, so
/// a blocking `flock(2)`/`fcntl(2)` wait returns EINTR when it fires.
pub fn start_timer(after: Duration) -> io::Result<()> {
    TIMER_FIRED.store(false, Ordering::SeqCst);
    // SAFETY: the handler only stores to an atomic (async-signal-safe); sigaction and
    // setitimer get valid pointers.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_timer as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = 0;
        libc::sigemptyset(&raw mut sa.sa_mask);
        cvt(libc::sigaction(
            libc::SIGALRM,
            &raw const sa,
            std::ptr::null_mut(),
        ))?;
        let tv = |d: Duration| libc::timeval {
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_usec: libc::suseconds_t::from(d.subsec_micros().cast_signed()),
        };
        let first = if after.is_zero() {
            Duration::from_micros(1)
        } else {
            after
        };
        let it = libc::itimerval {
            it_interval: tv(Duration::from_millis(10)),
            it_value: tv(first),
        };
        cvt(libc::setitimer(
            libc::ITIMER_REAL,
            &raw const it,
            std::ptr::null_mut(),
        ))?;
    }
    Ok(())
}

/// Stops the timer started by [`start_timer`] and restores `SIGALRM`'s default action.
pub fn stop_timer() {
    // SAFETY: a zero itimerval disarms the timer; SIG_DFL needs no handler.
    unsafe {
        let it: libc::itimerval = std::mem::zeroed();
        libc::setitimer(libc::ITIMER_REAL, &raw const it, std::ptr::null_mut());
        libc::signal(libc::SIGALRM, libc::SIG_DFL);
    }
}

/// True once the timer started by [`start_timer`] has fired.
pub fn timer_fired() -> bool {
    TIMER_FIRED.load(Ordering::SeqCst)
}

/// Re-raises `sig` with its default action (to die of it, as a wrapper should when its
/// command died of it or when it is told to stop).
pub fn raise_default(sig: libc::c_int) {
    ignore(sig, false);
    let set = SigSet::of(&[sig]);
    // SAFETY: unblocking a signal and raising it in the calling process.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &raw const set.0, std::ptr::null_mut());
        libc::raise(sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_signal_is_taken_synchronously() {
        // SIGUSR2 is blocked in a helper thread only, and sent to that thread.
        let t = std::thread::spawn(|| {
            let set = SigSet::of(&[libc::SIGUSR2]);
            block(&set).unwrap();
            // SAFETY: raise targets the calling thread.
            unsafe { libc::raise(libc::SIGUSR2) };
            wait_signal(&set, Some(Duration::from_secs(5))).unwrap()
        });
        let c = t.join().unwrap().unwrap();
        assert_eq!(c.signo, libc::SIGUSR2);
    }
}
