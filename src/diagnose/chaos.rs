//! `concur diagnose --chaos`: widen check-then-act windows by delaying the writers' file-system
//! calls, at random from a seed, and report the schedule that broke an invariant.
//!
//! Every writer process runs under its own tracer (`concur diagnose-chaos SPEC -- concur
//! diagnose-writer ...`): the tracer starts the writer with a seccomp filter that makes the
//! listed calls (open/openat, stat/access, read, write, rename, link, unlink, mkdir,
//! flock and their `*at` forms) stop for it; children and threads are traced too. At each stop
//! it draws a delay from the seed and holds the call that long before letting it run, and at
//! the call's exit records what it did to a file under the round's directory (the shared
//! state) as a `call` event on the writer's event stream. Other calls run untouched.
//!
//! ## Why seccomp-filtered ptrace
//!
//! - Only the listed calls stop (the filter decides in the kernel); an `mmap` or a `futex`
//!   costs nothing, unlike plain `PTRACE_SYSCALL` tracing, which stops at every call.
//! - Each call gets its own delay from the seed, decided when it is seen, with its path known —
//!   so calls on the shared files can be delayed more than a dynamic loader's opens. strace's
//!   `--inject=…:delay_enter=` applies one fixed delay to a chosen call number (`when=`), so a
//!   random delay per call would take one rule per call, and strace would have to be installed
//!   wherever `concur` is.
//! - The tracer holds a stopped call without blocking the others: one event loop per writer
//!   (`signalfd` for the stops, a deadline heap for the delays), never a sleep per call.
//! - Seccomp user notification would have to perform the call on the tracee's behalf (or
//!   re-issue it), which changes what the call sees (descriptors, cwd); a ptrace stop lets the
//!   tracee's own call run.
//!
//! Delays start when the writers are released (the tracer watches the barrier pipe), so start-up
//! is not slowed. A call on the round's directory is delayed with probability 1/2 by up to
//! [`HOT_MAX_US`]; any other listed call with probability 1/8 by up to [`COLD_MAX_US`] (this
//! jitters start-up of the writers' children, such as the shell of a `--cmd`). The draw is a
//! hash of (seed, round, writer, process, call number), so `--seed` replays the same
//! perturbation; the kernel's own scheduling still varies, so a replay usually, not always,
//! breaks the same way.
//!
//! Limits: x86-64 and aarch64 only; `no_new_privs` is set for the writers (a setuid program in a
//! writer does not gain privileges); a writer's background child keeps its round open until it
//! exits (it is traced, and an untraced filtered call would fail with `ENOSYS`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Events, Mark, WriterRun, now_us};
use crate::error::{Error, Result};
use crate::sys::ptrace::{self, CallInfo};

/// Longest delay for a call on the round's directory, in microseconds.
pub const HOT_MAX_US: u64 = 4000;
/// Longest delay for any other listed call, in microseconds.
pub const COLD_MAX_US: u64 = 1000;

/// Where a call's path argument is.
#[derive(Debug, Clone, Copy)]
enum Arg {
    /// `args[i]` is a path (relative to the cwd).
    Path(usize),
    /// `args[i]` is a directory descriptor, `args[i + 1]` a path relative to it.
    At(usize),
    /// `args[i]` is a descriptor.
    Fd(usize),
}

/// One perturbed call: its number, name and where its file is.
#[derive(Debug, Clone, Copy)]
struct Sys {
    nr: libc::c_long,
    name: &'static str,
    arg: Arg,
}

const fn sys(nr: libc::c_long, name: &'static str, arg: Arg) -> Sys {
    Sys { nr, name, arg }
}

/// The perturbed calls both supported architectures have (the `*at` forms, descriptors,
/// `flock`).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const AT_CALLS: &[Sys] = &[
    sys(libc::SYS_openat, "openat", Arg::At(0)),
    sys(libc::SYS_openat2, "openat2", Arg::At(0)),
    sys(libc::SYS_newfstatat, "newfstatat", Arg::At(0)),
    sys(libc::SYS_statx, "statx", Arg::At(0)),
    sys(libc::SYS_faccessat, "faccessat", Arg::At(0)),
    sys(libc::SYS_faccessat2, "faccessat2", Arg::At(0)),
    sys(libc::SYS_read, "read", Arg::Fd(0)),
    sys(libc::SYS_pread64, "pread64", Arg::Fd(0)),
    sys(libc::SYS_write, "write", Arg::Fd(0)),
    sys(libc::SYS_pwrite64, "pwrite64", Arg::Fd(0)),
    sys(libc::SYS_renameat, "renameat", Arg::At(0)),
    sys(libc::SYS_renameat2, "renameat2", Arg::At(0)),
    sys(libc::SYS_linkat, "linkat", Arg::At(0)),
    sys(libc::SYS_unlinkat, "unlinkat", Arg::At(0)),
    sys(libc::SYS_mkdirat, "mkdirat", Arg::At(0)),
    sys(libc::SYS_flock, "flock", Arg::Fd(0)),
];

/// The older path-only calls x86-64 still has.
#[cfg(target_arch = "x86_64")]
const PATH_CALLS: &[Sys] = &[
    sys(libc::SYS_open, "open", Arg::Path(0)),
    sys(libc::SYS_creat, "creat", Arg::Path(0)),
    sys(libc::SYS_stat, "stat", Arg::Path(0)),
    sys(libc::SYS_lstat, "lstat", Arg::Path(0)),
    sys(libc::SYS_access, "access", Arg::Path(0)),
    sys(libc::SYS_rename, "rename", Arg::Path(0)),
    sys(libc::SYS_link, "link", Arg::Path(0)),
    sys(libc::SYS_unlink, "unlink", Arg::Path(0)),
    sys(libc::SYS_mkdir, "mkdir", Arg::Path(0)),
];
#[cfg(not(target_arch = "x86_64"))]
const PATH_CALLS: &[Sys] = &[];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AT_CALLS: &[Sys] = &[];

/// The perturbed calls on this architecture (none where the filter's architecture check is not
/// written).
fn calls() -> Vec<Sys> {
    AT_CALLS.iter().chain(PATH_CALLS).copied().collect()
}

/// What one tracer is told: the seed, which writer of which round it traces, and the round's
/// directory (calls on files under it are the ones delayed most and reported).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceSpec {
    /// The run's seed.
    pub seed: u64,
    /// The round.
    pub round: usize,
    /// The writer.
    pub writer: usize,
    /// The round's state directory.
    pub dir: PathBuf,
}

/// A command that runs `exe diagnose-writer …` (the caller adds those arguments) under a
/// tracer: `exe diagnose-chaos SPEC -- exe`.
pub fn wrap(exe: &Path, spec: &TraceSpec) -> Command {
    let mut c = Command::new(exe);
    c.arg("diagnose-chaos")
        .arg(serde_json::to_string(spec).unwrap_or_default())
        .arg("--")
        .arg(exe);
    c
}

/// A fresh seed for a run not given one (`--seed` replays it).
pub fn fresh_seed() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        return now_us() ^ u64::from(std::process::id());
    }
    // Keep seeds short enough to type.
    u64::from_le_bytes(b) % 1_000_000
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The delay in microseconds for call number `call` of process `proc` (in the order the tracer
/// met them) of `writer` in `round`; `hot`: the call is on the round's directory.
pub fn delay_us(seed: u64, round: usize, writer: usize, proc: usize, call: u64, hot: bool) -> u64 {
    let h = [round as u64, writer as u64, proc as u64, call]
        .iter()
        .fold(mix(seed), |h, &x| mix(h ^ x));
    let (one_in, max) = if hot {
        (2, HOT_MAX_US)
    } else {
        (8, COLD_MAX_US)
    };
    if h % one_in == 0 {
        (h >> 16) % (max + 1)
    } else {
        0
    }
}

/// A call in flight: seen at entry, maybe held, waiting for its exit.
struct InFlight {
    sys: Sys,
    path: Option<String>,
    delay: u64,
    started: u64,
}

struct Tracee {
    proc: usize,
    calls: u64,
    call: Option<InFlight>,
}

/// How the traced writer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

/// The tracer: runs `argv` under the seccomp filter, delays its calls as the module docs say,
/// and reports each call on the round's directory as a `call` event on stdout (the writer's
/// event stream). Returns how the writer ended, once it and every traced child have.
///
/// # Errors
/// When the architecture is not supported, or the writer cannot be started or traced.
pub fn trace(spec: &TraceSpec, argv: &[OsString]) -> Result<Ended> {
    let calls = calls();
    if calls.is_empty() {
        return Err(Error::Invalid(
            "--chaos is supported on x86-64 and aarch64 only".into(),
        ));
    }
    let Some((prog, args)) = argv.split_first() else {
        return Err(Error::Invalid("diagnose-chaos: no command".into()));
    };
    let dir = std::fs::canonicalize(&spec.dir).unwrap_or_else(|_| spec.dir.clone());
    let nrs: Vec<libc::c_long> = calls.iter().map(|s| s.nr).collect();
    let filter = ptrace::filter(&nrs);
    let sigfd = ptrace::sigchld_fd().map_err(Error::with("cannot watch children", &dir))?;
    let mut cmd = Command::new(prog);
    cmd.args(args);
    // SAFETY: the closure only makes async-signal-safe calls (sigprocmask, signal, ptrace,
    // prctl, seccomp) on data prepared before fork.
    unsafe {
        cmd.pre_exec(move || {
            crate::sys::signal::child_reset_signals()?;
            ptrace::trace_me()?;
            ptrace::install_filter(&filter)
        });
    }
    let child = cmd
        .spawn()
        .map_err(Error::with("cannot start traced writer", Path::new(prog)))?;
    let mut t = Tracer {
        spec,
        dir,
        main: i32::try_from(child.id()).unwrap_or(-1),
        calls,
        tracees: HashMap::new(),
        procs: 0,
        armed: false,
        due: BinaryHeap::new(),
        clock: Instant::now(),
        events: Events::stdout(),
        ended: None,
    };
    drop(child);
    t.run(&sigfd)
}

struct Tracer<'a> {
    spec: &'a TraceSpec,
    dir: PathBuf,
    main: i32,
    /// The filtered calls; a seccomp stop's event message is an index into it.
    calls: Vec<Sys>,
    tracees: HashMap<i32, Tracee>,
    procs: usize,
    armed: bool,
    /// Held calls: (when to let it run, µs on `clock`; pid).
    due: BinaryHeap<Reverse<(u64, i32)>>,
    clock: Instant,
    events: Events,
    ended: Option<Ended>,
}

impl Tracer<'_> {
    fn mono_us(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn run(&mut self, sigfd: &std::os::fd::OwnedFd) -> Result<Ended> {
        let stdin = std::io::stdin();
        let stdin = stdin.as_fd();
        loop {
            ptrace::drain(sigfd);
            loop {
                match ptrace::wait_any() {
                    Ok(Some((pid, status))) => self.on_status(pid, status),
                    Ok(None) => break,
                    Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                        return Ok(self.ended.unwrap_or(Ended::Code(1)));
                    }
                    Err(e) => return Err(Error::with("cannot wait for writer", &self.dir)(e)),
                }
            }
            if self.tracees.is_empty() && self.ended.is_some() {
                return Ok(self.ended.unwrap_or(Ended::Code(1)));
            }
            let now = self.mono_us();
            while let Some(&Reverse((at, pid))) = self.due.peek() {
                if at > now {
                    break;
                }
                self.due.pop();
                self.resume_call(pid);
            }
            let timeout = self
                .due
                .peek()
                .map(|&Reverse((at, _))| Duration::from_micros(at.saturating_sub(now)));
            let mut fds = vec![(sigfd.as_fd(), libc::POLLIN)];
            if !self.armed {
                fds.push((stdin, libc::POLLIN));
            }
            let rev = ptrace::poll(&fds, timeout)
                .map_err(Error::with("cannot poll for writer", &self.dir))?;
            if !self.armed && rev.get(1).is_some_and(|&r| r != 0) {
                // The barrier pipe closed: the writers are released.
                self.armed = true;
            }
        }
    }

    fn on_status(&mut self, pid: i32, status: i32) {
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            self.tracees.remove(&pid);
            if pid == self.main {
                self.ended = Some(if libc::WIFEXITED(status) {
                    Ended::Code(libc::WEXITSTATUS(status))
                } else {
                    Ended::Signal(libc::WTERMSIG(status))
                });
            }
            return;
        }
        if !libc::WIFSTOPPED(status) {
            return;
        }
        let sig = libc::WSTOPSIG(status);
        let event = status >> 16;
        if !self.tracees.contains_key(&pid) {
            // A tracee's first stop: the writer's exec (SIGTRAP), or a new child's or
            // thread's attach stop. Neither signal is delivered.
            if pid == self.main {
                let _ = ptrace::set_options(pid);
            }
            self.tracees.insert(
                pid,
                Tracee {
                    proc: self.procs,
                    calls: 0,
                    call: None,
                },
            );
            self.procs += 1;
            let _ = ptrace::cont(pid, 0);
            return;
        }
        if event == libc::PTRACE_EVENT_SECCOMP {
            self.on_entry(pid);
        } else if sig == (libc::SIGTRAP | 0x80) {
            self.on_exit(pid);
        } else if event != 0 {
            // fork/clone/exec events and group stops: carry on.
            let _ = ptrace::cont(pid, 0);
        } else if matches!(
            sig,
            libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
        ) && ptrace::in_group_stop(pid)
        {
            // A group-stop of a stop signal already delivered: resume without sending it again.
            let _ = ptrace::cont(pid, 0);
        } else if self.tracees.get(&pid).is_some_and(|t| t.call.is_some()) {
            let _ = ptrace::cont_to_exit(pid, sig);
        } else {
            let _ = ptrace::cont(pid, sig);
        }
    }

    fn on_entry(&mut self, pid: i32) {
        let idx = ptrace::event_msg(pid).unwrap_or(u64::MAX);
        let Some(&sys) = usize::try_from(idx).ok().and_then(|i| self.calls.get(i)) else {
            let _ = ptrace::cont(pid, 0);
            return;
        };
        let path = match ptrace::call_info(pid) {
            Ok(CallInfo::Entry(args)) => self.shared_path(pid, sys.arg, &args),
            _ => None,
        };
        let Some(t) = self.tracees.get_mut(&pid) else {
            return;
        };
        t.calls += 1;
        let delay = if self.armed {
            delay_us(
                self.spec.seed,
                self.spec.round,
                self.spec.writer,
                t.proc,
                t.calls,
                path.is_some(),
            )
        } else {
            0
        };
        t.call = Some(InFlight {
            sys,
            path,
            delay,
            started: 0,
        });
        if delay == 0 {
            self.resume_call(pid);
        } else {
            let at = self.mono_us() + delay;
            self.due.push(Reverse((at, pid)));
        }
    }

    /// Lets a held call run, to its exit stop.
    fn resume_call(&mut self, pid: i32) {
        if let Some(c) = self.tracees.get_mut(&pid).and_then(|t| t.call.as_mut()) {
            c.started = now_us();
        }
        let _ = ptrace::cont_to_exit(pid, 0);
    }

    fn on_exit(&mut self, pid: i32) {
        let ret = match ptrace::call_info(pid) {
            Ok(CallInfo::Exit(v)) => Some(v),
            _ => None,
        };
        let call = self.tracees.get_mut(&pid).and_then(|t| t.call.take());
        let _ = ptrace::cont(pid, 0);
        let Some(c) = call else { return };
        let Some(path) = c.path else { return };
        self.events.emit(
            "call",
            c.started,
            now_us(),
            json!({
                "pid": pid,
                "call": c.sys.name,
                "path": path,
                "ret": ret.map(describe_ret),
                "delay_us": c.delay,
            }),
        );
    }

    /// The call's file relative to the round's directory, if it is under it.
    fn shared_path(&self, pid: i32, arg: Arg, args: &[u64; 6]) -> Option<String> {
        let full = match arg {
            Arg::Fd(i) => ptrace::fd_path(pid, Some(int_arg(args[i])))?,
            Arg::Path(i) => Self::resolve(pid, None, args[i])?,
            Arg::At(i) => {
                let dirfd = int_arg(args[i]);
                let base = (dirfd != libc::AT_FDCWD).then_some(dirfd);
                Self::resolve(pid, base, args[i + 1])?
            }
        };
        let rel = full.strip_prefix(&self.dir).ok()?;
        Some(if rel.as_os_str().is_empty() {
            ".".to_owned()
        } else {
            rel.to_string_lossy().into_owned()
        })
    }

    fn resolve(pid: i32, dirfd: Option<i32>, addr: u64) -> Option<PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        let raw = ptrace::read_cstr(pid, addr, 4096).ok()?;
        let p = Path::new(std::ffi::OsStr::from_bytes(&raw));
        if p.is_absolute() {
            return Some(p.to_path_buf());
        }
        let base = ptrace::fd_path(pid, dirfd)?;
        Some(base.join(p))
    }
}

/// An `int` argument (a descriptor, `AT_FDCWD`): the register's low 32 bits.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
fn int_arg(reg: u64) -> i32 {
    reg as u32 as i32
}

/// A call's result for the schedule: `0`, `3`, or an errno name (`ENOENT`).
fn describe_ret(v: i64) -> String {
    if v >= 0 {
        return v.to_string();
    }
    let errno = i32::try_from(-v).unwrap_or(0);
    let name = match errno {
        libc::ENOENT => "ENOENT",
        libc::EEXIST => "EEXIST",
        libc::EAGAIN => "EAGAIN",
        libc::EACCES => "EACCES",
        libc::EBADF => "EBADF",
        libc::EINTR => "EINTR",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        _ => return format!("-{errno}"),
    };
    name.to_owned()
}

/// A chaos run's account of the first round that broke: the seed to replay it and the calls on
/// the shared files, in the order they ran.
#[derive(Debug, Clone, Serialize)]
pub struct Broke {
    /// The seed (`--seed` replays the perturbation).
    pub seed: u64,
    /// The first round that broke.
    pub round: usize,
    /// The calls on the round's files up to where it broke (the last [`SCHEDULE_CALLS`]).
    pub schedule: Vec<ScheduledCall>,
    /// How many earlier calls of the round are not shown.
    pub earlier: usize,
}

/// How many calls a schedule shows at most.
pub const SCHEDULE_CALLS: usize = 40;

/// One call in a schedule.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduledCall {
    /// Microseconds after the round's first shown call started.
    pub at_us: u64,
    /// The writer that made it (its process or one of its children).
    pub writer: usize,
    /// The process.
    pub pid: i64,
    /// The call (`openat`, `newfstatat`, ...).
    pub call: String,
    /// The file, relative to the round's directory.
    pub path: String,
    /// Its result: a count, or an errno name.
    pub ret: String,
    /// How long it was held before it ran, in microseconds.
    pub delay_us: u64,
}

/// The schedule of a broken round: the calls of every writer on the round's files, in the order
/// they started, up to the first mark (where it broke) or the end of the round.
pub fn schedule(seed: u64, round: usize, runs: &[WriterRun], marks: &[Mark]) -> Broke {
    let until = marks.iter().map(|m| m.at).min().unwrap_or(u64::MAX);
    let mut calls: Vec<(u64, ScheduledCall)> = runs
        .iter()
        .flat_map(|r| {
            r.events_of("call").map(move |e| {
                (
                    e.start,
                    ScheduledCall {
                        at_us: 0,
                        writer: r.writer,
                        pid: e.data["pid"].as_i64().unwrap_or(0),
                        call: e.data["call"].as_str().unwrap_or("?").to_owned(),
                        path: e.data["path"].as_str().unwrap_or("?").to_owned(),
                        ret: e.data["ret"].as_str().unwrap_or("?").to_owned(),
                        delay_us: e.data["delay_us"].as_u64().unwrap_or(0),
                    },
                )
            })
        })
        .filter(|(start, _)| *start <= until)
        .collect();
    calls.sort_by_key(|(start, c)| (*start, c.writer));
    let earlier = calls.len().saturating_sub(SCHEDULE_CALLS);
    let shown = &calls[earlier..];
    let t0 = shown.first().map_or(0, |(s, _)| *s);
    let schedule = shown
        .iter()
        .map(|(s, c)| ScheduledCall {
            at_us: s - t0,
            ..c.clone()
        })
        .collect();
    Broke {
        seed,
        round,
        schedule,
        earlier,
    }
}

#[allow(clippy::cast_precision_loss)] // microseconds shown in ms: far below 2^52.
/// The schedule as text lines (`  +1.234 ms  w2  openat(log) = ENOENT  [held 0.8 ms]`).
pub fn render(b: &Broke) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if b.earlier > 0 {
        let _ = writeln!(s, "  ({} earlier calls of the round not shown)", b.earlier);
    }
    for c in &b.schedule {
        let held = if c.delay_us > 0 {
            format!("  [held {:.1} ms]", c.delay_us as f64 / 1000.0)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "  +{:>8.3} ms  w{} pid {:<7} {}({}) = {}{held}",
            c.at_us as f64 / 1000.0,
            c.writer,
            c.pid,
            c.call,
            c.path,
            c.ret
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_delays_and_another_seed_others() {
        let a: Vec<u64> = (0..200).map(|c| delay_us(7, 1, 2, 0, c, true)).collect();
        let b: Vec<u64> = (0..200).map(|c| delay_us(7, 1, 2, 0, c, true)).collect();
        let c: Vec<u64> = (0..200).map(|c| delay_us(8, 1, 2, 0, c, true)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|&d| d <= HOT_MAX_US));
        let held = a.iter().filter(|&&d| d > 0).count();
        assert!((60..140).contains(&held), "{held} of 200 held");
    }

    #[test]
    fn cold_calls_are_held_less_often_and_less_long() {
        let cold: Vec<u64> = (0..800).map(|c| delay_us(3, 0, 0, 1, c, false)).collect();
        let held = cold.iter().filter(|&&d| d > 0).count();
        assert!((50..160).contains(&held), "{held} of 800 held");
        assert!(cold.iter().all(|&d| d <= COLD_MAX_US));
    }

    #[test]
    fn errno_results_are_named() {
        assert_eq!(describe_ret(-2), "ENOENT");
        assert_eq!(describe_ret(5), "5");
        assert_eq!(describe_ret(-9999), "-9999");
    }
}
