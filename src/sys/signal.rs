//! The sigwait-style signal handling the broker and `isolate` use (sending signals is
//! `sys::supervise::kill` / `kill_group`).
//!
//! Signals are handled the sigwait way: the signals of interest are blocked in every thread
//! (block them before spawning any) and one thread waits for them synchronously. No handler
//! runs at an arbitrary point, so nothing here needs to be async-signal-safe beyond the
//! `pre_exec` helpers, which call only `sigprocmask`, `signal` and `setsid`.

use std::io;

use super::cvt;

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is a valid value to pass to sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t; the signal numbers are plain ints.
    unsafe {
        libc::sigemptyset(&raw mut set);
        for &s in signals {
            libc::sigaddset(&raw mut set, s);
        }
    }
    set
}

/// Blocks `signals` in the calling thread; threads spawned afterwards inherit the mask.
pub fn block(signals: &[i32]) -> io::Result<()> {
    let set = sigset(signals);
    // SAFETY: set is a valid sigset_t; a null old-set pointer is allowed.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// Waits until one of `signals` (which must be blocked) is pending, and returns it.
pub fn wait(signals: &[i32]) -> io::Result<i32> {
    let set = sigset(signals);
    let mut sig: libc::c_int = 0;
    // SAFETY: set and sig are valid for the call.
    let r = unsafe { libc::sigwait(&raw const set, &raw mut sig) };
    if r == 0 {
        Ok(sig)
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// For `pre_exec`: unblocks every signal and restores SIGPIPE's default action, so a child
/// inherits neither the parent's sigwait mask nor an ignored SIGPIPE.
///
/// # Safety
/// Call only between `fork` and `exec` (it is async-signal-safe).
pub unsafe fn child_reset_signals() -> io::Result<()> {
    // SAFETY: an all-zero sigset_t is a valid empty set; sigprocmask and signal are
    // async-signal-safe.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        cvt(libc::sigprocmask(
            libc::SIG_SETMASK,
            &raw const set,
            std::ptr::null_mut(),
        ))?;
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    Ok(())
}

/// Ignores SIGPIPE in this process: a write to a closed pipe then fails with EPIPE instead of
/// killing the writer.
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// For `pre_exec`: starts a new session (detaches from the controlling terminal and group).
///
/// # Safety
/// Call only between `fork` and `exec` (it is async-signal-safe).
pub unsafe fn child_setsid() -> io::Result<()> {
    // SAFETY: setsid is async-signal-safe and takes no arguments.
    cvt(unsafe { libc::setsid() }).map(drop)
}

/// A pipe with both ends close-on-exec: `(read, write)`.
pub fn pipe() -> io::Result<(std::fs::File, std::fs::File)> {
    use std::os::unix::io::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints for pipe2 to fill.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    })
}

/// The message and exit code [`exit_on_stack_overflow`]'s handler uses (set before it is
/// installed; read only by the handler).
static OVERFLOW_MSG: std::sync::OnceLock<(Vec<u8>, i32)> = std::sync::OnceLock::new();

extern "C" fn on_overflow(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    if let Some((msg, code)) = OVERFLOW_MSG.get() {
        // SAFETY: write(2) and _exit(2) are async-signal-safe; `msg` is a static buffer set
        // before the handler was installed and never changed.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(*code);
        }
    }
    // SAFETY: as above.
    unsafe { libc::_exit(134) }
}

/// Makes a stack overflow in the calling thread (SIGSEGV or SIGBUS on its guard page, caught on
/// an alternate signal stack set up here) end the process at once with exit code
/// `code`, after writing `msg` (one line) to stderr, instead of an abort. For verbs that run
/// code whose recursion they cannot bound (a jq filter) before anything is written: the kernel
/// releases their locks, and nothing half-done is left. Call at most once per process.
///
/// # Errors
/// When `sigaction` fails.
pub fn exit_on_stack_overflow(msg: &str, code: i32) -> io::Result<()> {
    let mut line = msg.as_bytes().to_vec();
    line.push(b'\n');
    let _ = OVERFLOW_MSG.set((line, code));
    // The handler needs a stack of its own: the thread's is exhausted when it runs. Leaked on
    // purpose: it must live as long as the thread.
    let alt: &'static mut [u8] = Box::leak(vec![0u8; 64 << 10].into_boxed_slice());
    let ss = libc::stack_t {
        ss_sp: alt.as_mut_ptr().cast(),
        ss_flags: 0,
        ss_size: alt.len(),
    };
    // SAFETY: `ss` describes a live, leaked buffer; a null old-stack pointer is allowed.
    cvt(unsafe { libc::sigaltstack(&raw const ss, std::ptr::null_mut()) })?;
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: an all-zero sigaction is valid to fill in; the handler is an extern "C" fn
        // that only calls async-signal-safe functions.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_overflow as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&raw mut sa.sa_mask);
            cvt(libc::sigaction(sig, &raw const sa, std::ptr::null_mut()))?;
        }
    }
    Ok(())
}
