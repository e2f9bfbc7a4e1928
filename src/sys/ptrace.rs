//! The raw calls of `diagnose --chaos`'s tracer: a seccomp filter that turns chosen system calls
//! into ptrace stops, the ptrace requests that drive those stops, and reads of a stopped
//! tracee's memory and descriptors.
//!
//! The tracee installs the filter itself (between fork and exec, after `PTRACE_TRACEME`), so
//! only the listed calls stop; every other call runs at full speed. The tracer sees each listed
//! call at entry (`PTRACE_EVENT_SECCOMP`, the call's index in the list as the event message),
//! may hold it there, and resumes it with `PTRACE_SYSCALL` to also see its result.

use std::io;
use std::path::PathBuf;

use super::cvt;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
/// Elsewhere no call is filtered (`diagnose --chaos` refuses to run).
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: u32 = 0;

/// Installs a seccomp filter in the calling process: each of `calls` (system call numbers)
/// stops for the tracer with its index in `calls` as the event message; everything else runs
/// untouched. Sets `no_new_privs` first (required for an unprivileged filter).
///
/// # Safety
/// Meant for `pre_exec` (between fork and exec): it only calls `prctl` and `seccomp`, and
/// allocates nothing (`filter` is built beforehand with [`filter`]).
pub unsafe fn install_filter(filter: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: u16::try_from(filter.len()).unwrap_or(u16::MAX),
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prctl with these arguments takes no pointers; the seccomp call reads `prog`,
    // which points at `filter`, alive for the call.
    unsafe {
        cvt(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        let r = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &raw const prog,
        );
        cvt(i32::try_from(r).unwrap_or(-1))?;
    }
    Ok(())
}

/// The classic-BPF program for [`install_filter`]: calls of another architecture are allowed;
/// call `calls[i]` returns `SECCOMP_RET_TRACE | i`.
#[allow(clippy::cast_possible_truncation)] // BPF opcodes are 16-bit by definition.
pub fn filter(calls: &[libc::c_long]) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    // seccomp_data: nr at offset 0, arch at offset 4.
    let mut p = vec![
        ins(LD_W_ABS, 0, 0, 4),
        ins(JEQ_K, 1, 0, AUDIT_ARCH),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        ins(LD_W_ABS, 0, 0, 0),
    ];
    for (i, &nr) in calls.iter().enumerate() {
        let i = u32::try_from(i).unwrap_or(0) & libc::SECCOMP_RET_DATA;
        p.push(ins(JEQ_K, 0, 1, u32::try_from(nr).unwrap_or(u32::MAX)));
        p.push(ins(RET_K, 0, 0, libc::SECCOMP_RET_TRACE | i));
    }
    p.push(ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW));
    p
}

/// `PTRACE_TRACEME`, for `pre_exec`: the parent becomes the tracer; the exec that follows stops
/// with SIGTRAP before the new program runs.
///
/// # Safety
/// Async-signal-safe; meant for `pre_exec`.
pub unsafe fn trace_me() -> io::Result<()> {
    // SAFETY: PTRACE_TRACEME takes no pointers.
    let r = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
    cvt(i32::try_from(r).unwrap_or(-1)).map(drop)
}

fn request(req: libc::c_uint, pid: i32, addr: usize, data: usize) -> io::Result<libc::c_long> {
    // SAFETY: the requests used here (SETOPTIONS, CONT, SYSCALL, GETEVENTMSG,
    // GET_SYSCALL_INFO) take `data`/`addr` as plain values or as pointers the callers below
    // make valid for the call.
    let r = unsafe { libc::ptrace(req, pid, addr, data) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Sets the tracer options on a stopped tracee: seccomp stops, the tracee's children and
/// threads traced as well, exec and system-call stops told apart from signals.
pub fn set_options(pid: i32) -> io::Result<()> {
    let opts = libc::PTRACE_O_TRACESECCOMP
        | libc::PTRACE_O_TRACEFORK
        | libc::PTRACE_O_TRACEVFORK
        | libc::PTRACE_O_TRACECLONE
        | libc::PTRACE_O_TRACEEXEC
        | libc::PTRACE_O_TRACESYSGOOD;
    request(
        libc::PTRACE_SETOPTIONS,
        pid,
        0,
        usize::try_from(opts).unwrap_or(0),
    )
    .map(drop)
}

/// Resumes a stopped tracee, delivering `sig` (0: none).
pub fn cont(pid: i32, sig: i32) -> io::Result<()> {
    request(libc::PTRACE_CONT, pid, 0, usize::try_from(sig).unwrap_or(0)).map(drop)
}

/// Resumes a stopped tracee until its next system-call stop (here: the exit of the call it is
/// stopped in), delivering `sig` (0: none).
pub fn cont_to_exit(pid: i32, sig: i32) -> io::Result<()> {
    request(
        libc::PTRACE_SYSCALL,
        pid,
        0,
        usize::try_from(sig).unwrap_or(0),
    )
    .map(drop)
}

/// The event message of the last ptrace event stop (the filter's data for a seccomp stop, the
/// new pid for a fork).
pub fn event_msg(pid: i32) -> io::Result<u64> {
    let mut msg: libc::c_ulong = 0;
    request(libc::PTRACE_GETEVENTMSG, pid, 0, (&raw mut msg) as usize)?;
    Ok(msg)
}

/// True when a tracee stopped with a stop signal is in a group-stop (the signal was already
/// delivered), not in the signal's delivery stop: `PTRACE_GETSIGINFO` fails with EINVAL then.
pub fn in_group_stop(pid: i32) -> bool {
    // SAFETY: an all-zero siginfo_t is a valid value to be overwritten.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    request(libc::PTRACE_GETSIGINFO, pid, 0, (&raw mut info) as usize)
        .is_err_and(|e| e.raw_os_error() == Some(libc::EINVAL))
}

/// A stopped call's arguments (at a seccomp stop) or result (at a syscall-exit stop).
#[derive(Debug, Clone, Copy)]
pub enum CallInfo {
    /// At entry: the six arguments.
    Entry([u64; 6]),
    /// At exit: the return value (negative errno on failure).
    Exit(i64),
    /// Anything else.
    Other,
}

/// `PTRACE_GET_SYSCALL_INFO` on a stopped tracee.
pub fn call_info(pid: i32) -> io::Result<CallInfo> {
    // SAFETY: an all-zero ptrace_syscall_info is a valid value to be overwritten.
    let mut info: libc::ptrace_syscall_info = unsafe { std::mem::zeroed() };
    request(
        libc::PTRACE_GET_SYSCALL_INFO,
        pid,
        std::mem::size_of::<libc::ptrace_syscall_info>(),
        (&raw mut info) as usize,
    )?;
    // SAFETY: `op` says which member of the union the kernel filled in.
    Ok(unsafe {
        match info.op {
            libc::PTRACE_SYSCALL_INFO_SECCOMP => CallInfo::Entry(info.u.seccomp.args),
            libc::PTRACE_SYSCALL_INFO_EXIT => CallInfo::Exit(info.u.exit.sval),
            _ => CallInfo::Other,
        }
    })
}

/// Reads a NUL-terminated string of at most `max` bytes at `addr` in a stopped tracee.
pub fn read_cstr(pid: i32, addr: u64, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; max];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: max,
    };
    let remote = libc::iovec {
        iov_base: usize::try_from(addr).unwrap_or(0) as *mut libc::c_void,
        iov_len: max,
    };
    // SAFETY: `local` points at `buf` (max bytes); the kernel checks `remote` against the
    // tracee's address space. A read across the end of a mapping returns what it could read.
    let n = unsafe { libc::process_vm_readv(pid, &raw const local, 1, &raw const remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(usize::try_from(n).unwrap_or(0));
    if let Some(end) = buf.iter().position(|&b| b == 0) {
        buf.truncate(end);
    }
    Ok(buf)
}

/// What a tracee's descriptor (or `cwd` for `None`) names, from `/proc/PID/fd/N`.
pub fn fd_path(pid: i32, fd: Option<i32>) -> Option<PathBuf> {
    let link = match fd {
        Some(fd) => format!("/proc/{pid}/fd/{fd}"),
        None => format!("/proc/{pid}/cwd"),
    };
    std::fs::read_link(link).ok()
}

/// A descriptor that becomes readable when SIGCHLD is pending (SIGCHLD is blocked in the
/// calling thread first, so it is only ever taken from here).
pub fn sigchld_fd() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let set = super::supervise::SigSet::of(&[libc::SIGCHLD]);
    super::supervise::block(&set)?;
    // SAFETY: an all-zero sigset_t is valid for sigemptyset; signalfd reads the set.
    let fd = unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut s);
        libc::sigaddset(&raw mut s, libc::SIGCHLD);
        cvt(libc::signalfd(
            -1,
            &raw const s,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        ))?
    };
    // SAFETY: signalfd returned a fresh descriptor we own.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Empties a [`sigchld_fd`] (the signals it reports coalesce; the caller then reaps with
/// [`wait_any`] until nothing is left).
pub fn drain(fd: impl std::os::fd::AsFd) {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 128 * 8];
    // SAFETY: buf is valid for its length; the descriptor is non-blocking.
    while unsafe { libc::read(fd.as_fd().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// `waitpid(-1, WNOHANG | __WALL)`: the next tracee or child with news, with its raw status.
pub fn wait_any() -> io::Result<Option<(i32, i32)>> {
    let mut status = 0;
    // SAFETY: status is valid for the call.
    let pid = unsafe { libc::waitpid(-1, &raw mut status, libc::WNOHANG | libc::__WALL) };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        p => Ok(Some((p, status))),
    }
}

/// Polls `fds` (descriptor, wanted events) for up to `timeout` (`None`: forever); returns each
/// one's returned events. EINTR counts as nothing ready.
pub fn poll(
    fds: &[(std::os::fd::BorrowedFd<'_>, i16)],
    timeout: Option<std::time::Duration>,
) -> io::Result<Vec<i16>> {
    use std::os::fd::AsRawFd;
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        })
        .collect();
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(d.subsec_nanos()),
    });
    let tsp = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: p is a valid array of p.len() pollfds; tsp is null or points at ts; a null
    // signal mask leaves the mask alone.
    let r = unsafe {
        libc::ppoll(
            p.as_mut_ptr(),
            p.len() as libc::nfds_t,
            tsp,
            std::ptr::null(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(p.iter().map(|x| x.revents).collect())
}
