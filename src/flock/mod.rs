//! The flock(1) engine: open a file (or take an inherited descriptor), lock it as flock(1)
//! does, run a command while holding it, with flock(1)'s messages and exit codes. It serves
//! `concur lock FILE|FD` and the `flock` multi-call name, which differ only in [`Dialect`].
//! Named locks (`concur lock --name`) go through [`crate::hold`] instead, on any backend.
//!
//! Why a SIGALRM timer for `-w` rather than a helper thread: it is what flock(1) does, the
//! process stays single-threaded, and an interrupted `flock(2)`/`fcntl(2)` returns without the
//! lock — so a timed-out wait can never leave a lock behind, not even on an inherited
//! descriptor (`concur lock -w 5 9`), where a helper thread that got the lock just as the time
//! ran out could leave it held by the caller's shell.

pub mod program;

use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::child::{self, Supervise};
use crate::error::{Error, ErrorKind};
use crate::lock::{Api, Holder, LockFile, LockOptions, Mode};
use crate::sys::supervise;

/// Prints one line on stdout; a closed pipe is not an error (the reader went away).
pub(crate) fn print_line(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

/// Which program's behaviour the engine follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `concur lock`: holder records, forwarding, messages `concur: lock: ...`.
    Concur,
    /// util-linux flock(1), exactly: messages `flock: ...`, lock fd inherited unless `-o`.
    Flock,
}

/// The lock target.
#[derive(Debug, Clone)]
pub enum Target {
    /// A file or directory path.
    Path(PathBuf),
    /// An inherited descriptor.
    Fd(i32),
}

/// What `concur lock`'s operands name: the target, the command's arguments and its `-c CMD`.
#[derive(Debug, Clone)]
pub struct Operands {
    /// The file, directory or descriptor.
    pub target: Target,
    /// The command and its arguments (empty for the descriptor form or `-c`).
    pub argv: Vec<OsString>,
    /// `-c CMD`, given before the target or right after it.
    pub shell_command: Option<OsString>,
}

impl Operands {
    /// Parses `FILE|DIR [--] CMD ARGS...`, `FILE -c CMD` and `FD` (a lone number: the
    /// descriptor form). `Err` is the usage message.
    ///
    /// # Errors
    /// A message for no target, a lone operand that is not a descriptor number, `-c` without
    /// exactly one argument, or both `-c CMD` and a command.
    pub fn parse(
        mut rest: Vec<OsString>,
        mut shell_command: Option<OsString>,
    ) -> std::result::Result<Operands, String> {
        if rest.is_empty() {
            return Err("requires a file, directory, descriptor number or --name NAME".into());
        }
        let first = rest.remove(0);
        if rest.first().is_some_and(|a| a == "-c" || a == "--command") {
            if rest.len() != 2 {
                return Err("-c requires exactly one command argument".into());
            }
            shell_command = rest.pop();
            rest.clear();
        }
        let target = if rest.is_empty() && shell_command.is_none() {
            let s = first.to_string_lossy();
            match s.parse::<i32>() {
                Ok(fd) if fd >= 0 => Target::Fd(fd),
                _ => {
                    return Err(format!(
                        "{s:?} is not a descriptor number; a file needs a command to run"
                    ));
                }
            }
        } else {
            Target::Path(PathBuf::from(first))
        };
        if rest.first().is_some_and(|a| a == "--") {
            rest.remove(0);
        }
        if shell_command.is_some() && !rest.is_empty() {
            return Err("give either -c CMD or a command, not both".into());
        }
        Ok(Operands {
            target,
            argv: rest,
            shell_command,
        })
    }
}

/// Everything a lock run needs, parsed from either dialect's arguments.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Whose behaviour and messages.
    pub dialect: Dialect,
    /// What to lock.
    pub target: Target,
    /// Shared or exclusive; `None` unlocks (`-u`).
    pub mode: Option<Mode>,
    /// `flock(2)` or an open-file-description range lock.
    pub api: Api,
    /// `-n`: fail rather than wait.
    pub nonblock: bool,
    /// `-w`: wait at most this long (zero: as `-n`).
    pub timeout: Option<Duration>,
    /// The exit code when busy or timed out (`-E`).
    pub conflict_code: u8,
    /// `-o`: the command does not inherit the lock descriptor (flock dialect).
    pub close: bool,
    /// `-F`: exec the command in place of this process.
    pub no_fork: bool,
    /// Say how long getting the lock took and what runs.
    pub verbose: bool,
    /// Do not name the holders when busy or waiting.
    pub quiet: bool,
    /// The command and its arguments (empty: the FD form, or `-c`).
    pub argv: Vec<OsString>,
    /// A command line for `$SHELL -c`.
    pub shell_command: Option<OsString>,
    /// Kill the command's process group after this long.
    pub max_hold: Option<Duration>,
    /// Hand the lock to the command as this descriptor number.
    pub pass_fd: Option<i32>,
    /// Print a JSON result line on stdout.
    pub json: bool,
    /// The holder's session, for its holder record.
    pub session: Option<String>,
}

/// A failure with the exit code the dialect gives it.
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// The error kind's name, as `--json` errors give it.
    pub kind: &'static str,
    /// The message (empty: flock(1) says nothing).
    pub message: String,
}

/// sysexits(3) codes, as flock(1) and lockf(1) use them.
pub mod sysexits {
    /// A lock call failed.
    pub const EX_DATAERR: u8 = 65;
    /// The lock file cannot be opened.
    pub const EX_NOINPUT: u8 = 66;
    /// The command cannot be executed (lockf: `-n` and no file).
    pub const EX_UNAVAILABLE: u8 = 69;
    /// Out of memory or descriptors.
    pub const EX_OSERR: u8 = 71;
    /// Read-only filesystem, disk full: the lock file cannot be created.
    pub const EX_CANTCREAT: u8 = 73;
    /// A refused path (concur's addition).
    pub const EX_NOPERM: u8 = 77;
}
use sysexits::{EX_CANTCREAT, EX_DATAERR, EX_NOINPUT, EX_NOPERM, EX_OSERR, EX_UNAVAILABLE};

fn fail(code: u8, kind: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        code,
        kind,
        message: message.into(),
    }
}

/// Exit code for a failed open, as flock(1) chooses it (concur adds 77 for refusals).
fn open_failure(plan: &Plan, e: &Error) -> Failure {
    let errno = match e {
        Error::Io { source, .. } => source.raw_os_error(),
        _ => None,
    };
    let code = match errno {
        Some(libc::ENOMEM | libc::EMFILE | libc::ENFILE) => EX_OSERR,
        Some(libc::EROFS | libc::ENOSPC) => EX_CANTCREAT,
        _ if plan.dialect == Dialect::Concur && e.kind() == ErrorKind::Permission => EX_NOPERM,
        _ => EX_NOINPUT,
    };
    fail(code, "io", message(plan, e))
}

/// The message for an error in the dialect's words.
fn message(plan: &Plan, e: &Error) -> String {
    match (plan.dialect, e) {
        (
            Dialect::Flock,
            Error::Io {
                action,
                path,
                source,
            },
        ) => {
            let why = std::io::Error::from_raw_os_error(source.raw_os_error().unwrap_or(0));
            let why = why.to_string();
            let why = why.split(" (os error").next().unwrap_or(&why).to_owned();
            if *action == "cannot lock" {
                format!("{}: {why}", path.display())
            } else {
                format!("{action} {}: {why}", path.display())
            }
        }
        _ => e.to_string(),
    }
}

fn target_name(plan: &Plan) -> String {
    match &plan.target {
        Target::Path(p) => p.display().to_string(),
        Target::Fd(fd) => format!("fd {fd}"),
    }
}

fn say(plan: &Plan, msg: &str) {
    match plan.dialect {
        Dialect::Flock => eprintln!("flock: {msg}"),
        Dialect::Concur => eprintln!("concur: lock: {msg}"),
    }
}

/// Verbose progress: flock(1) prints it on stdout; concur keeps stdout for results.
fn verbose(plan: &Plan, msg: &str) {
    match plan.dialect {
        Dialect::Flock => print_line(&format!("flock: {msg}")),
        Dialect::Concur => eprintln!("concur: lock: {msg}"),
    }
}

fn holders_text(file: &LockFile, home: Option<&crate::home::Home>) -> Option<String> {
    let hs = file.holders(home).ok()?;
    let first = hs.first()?;
    let more = if hs.len() > 1 {
        format!(" and {} more", hs.len() - 1)
    } else {
        String::new()
    };
    Some(format!("held by {}{more}", first.describe()))
}

/// Opens, locks and runs; returns the exit code or a failure.
#[allow(clippy::too_many_lines)] // flock(1)'s sequence, kept in its order to be checkable
pub fn execute(plan: &Plan, home: Option<&crate::home::Home>) -> Result<u8, Failure> {
    let lock_mode = plan.mode.unwrap_or(Mode::Exclusive);
    let file = match &plan.target {
        Target::Path(p) => {
            let opts = LockOptions::new(p)
                .shared(lock_mode == Mode::Shared)
                .follow_symlinks(plan.dialect == Dialect::Flock)
                .create_mode(if plan.dialect == Dialect::Flock {
                    0o666
                } else {
                    0o600
                });
            let opts = match plan.api {
                Api::Flock => opts,
                Api::Ofd(r) => opts.range(r),
            };
            opts.open().map_err(|e| open_failure(plan, &e))?
        }
        Target::Fd(fd) => match crate::sys::fd::inherited(*fd) {
            Ok(borrowed) => LockFile::from_fd(borrowed, lock_mode, plan.api),
            Err(e) => {
                let msg = match plan.dialect {
                    Dialect::Flock => format!("{fd}: Bad file descriptor"),
                    Dialect::Concur => {
                        Error::io("cannot use descriptor", format!("fd {fd}"), e).to_string()
                    }
                };
                return Err(fail(EX_DATAERR, "io", msg));
            }
        },
    };
    let lock_error = |e: &Error| {
        let errno = match e {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        };
        let code = if matches!(errno, Some(libc::ENOLCK | libc::ENOMEM)) {
            EX_OSERR
        } else {
            EX_DATAERR
        };
        fail(code, "io", message(plan, e))
    };

    if plan.mode.is_none() {
        file.release().map_err(|e| lock_error(&e))?;
        if let (Some(h), Target::Fd(_)) = (home, &plan.target)
            && let Ok((dev, ino)) = file.identity()
        {
            let parent = std::os::unix::process::parent_id();
            let _ = crate::sys::fs::remove_if_exists(&h.join("holders").join(format!(
                "{}.{}.{ino}.{parent}",
                libc::major(dev),
                libc::minor(dev)
            )));
        }
        return run_command(plan, None, Duration::ZERO);
    }

    let started = Instant::now();
    let nonblock = plan.nonblock || plan.timeout.is_some_and(|d| d.is_zero());
    let got = file.try_acquire().map_err(|e| lock_error(&e))?;
    if !got {
        let who = if plan.dialect == Dialect::Concur && !plan.quiet {
            holders_text(&file, home)
        } else {
            None
        };
        let conflict = |what: &str| {
            if plan.dialect == Dialect::Flock && plan.verbose {
                say(plan, what);
            }
            let msg = match (&who, plan.dialect) {
                (_, Dialect::Flock) => String::new(),
                (Some(w), _) => format!("{what} on {}: {w}", target_name(plan)),
                (None, _) => format!("{what} on {}", target_name(plan)),
            };
            fail(plan.conflict_code, "conflict", msg)
        };
        if nonblock {
            return Err(conflict("failed to get lock"));
        }
        if plan.dialect == Dialect::Concur && !plan.quiet {
            match &who {
                Some(w) => say(
                    plan,
                    &format!("waiting for lock on {} {w}", target_name(plan)),
                ),
                None => say(plan, &format!("waiting for lock on {}", target_name(plan))),
            }
        }
        if let Some(d) = plan.timeout {
            supervise::start_timer(d)
                .map_err(|e| fail(EX_OSERR, "io", format!("cannot set up timer: {e}")))?;
            let r = file.acquire_interruptible(&supervise::timer_fired);
            supervise::stop_timer();
            if !r.map_err(|e| lock_error(&e))? {
                return Err(conflict("timeout while waiting to get lock"));
            }
        } else {
            file.acquire().map_err(|e| lock_error(&e))?;
        }
    }
    let waited = started.elapsed();
    if plan.verbose {
        verbose(
            plan,
            &format!(
                "getting lock took {}.{:06} seconds",
                waited.as_secs(),
                waited.subsec_micros()
            ),
        );
    }
    let mut guard = file.into_guard();
    if plan.argv.is_empty() && plan.shell_command.is_none() {
        // FD form: the lock stays with the caller's open file description.
        if plan.dialect == Dialect::Concur
            && let Some(h) = home
        {
            let holder = Holder::new(
                std::os::unix::process::parent_id(),
                plan.session.clone(),
                None,
            );
            let _ = guard.record(h, &holder);
        }
        guard.keep();
        if plan.json {
            print_line(
                &serde_json::json!({"ok": true, "locked": target_name(plan), "waited_ms": waited.as_millis()})
                    .to_string(),
            );
        }
        return Ok(0);
    }
    if plan.dialect == Dialect::Concur
        && let Some(h) = home
    {
        let holder = Holder::new(
            std::process::id(),
            plan.session.clone(),
            Some(child::describe(&plan.argv, plan.shell_command.as_ref())),
        );
        guard
            .record(h, &holder)
            .map_err(|e| fail(74, "io", e.to_string()))?;
    }
    let code = run_command(plan, Some(&mut guard), waited)?;
    drop(guard);
    Ok(code)
}

fn run_command(
    plan: &Plan,
    guard: Option<&mut crate::lock::LockGuard>,
    waited: Duration,
) -> Result<u8, Failure> {
    let Some(cmd) = child::command_for(&plan.argv, plan.shell_command.as_ref()) else {
        return Ok(0);
    };
    let program = cmd.get_program().to_string_lossy().into_owned();
    if plan.verbose {
        verbose(plan, &format!("executing {program}"));
    }
    let exec_failure = |e: &std::io::Error| {
        let why = e.to_string();
        let why = why.split(" (os error").next().unwrap_or(&why).to_owned();
        let code = if e.raw_os_error() == Some(libc::ENOMEM) {
            EX_OSERR
        } else {
            EX_UNAVAILABLE
        };
        fail(code, "io", format!("failed to execute {program}: {why}"))
    };
    if plan.no_fork {
        if let Some(g) = guard {
            g.keep_record();
            let e = child::exec(cmd, &[g.lock_file().as_fd()]);
            return Err(exec_failure(&e));
        }
        let e = child::exec(cmd, &[]);
        return Err(exec_failure(&e));
    }
    let lock_fd = guard.as_deref().map(|g| g.lock_file().as_fd());
    let ended = match plan.dialect {
        Dialect::Flock => {
            let how = Supervise {
                pass_fds: match (lock_fd, plan.close) {
                    (Some(fd), false) => vec![(fd, fd.as_raw_fd())],
                    _ => Vec::new(),
                },
                ..Supervise::default()
            };
            return run_plain(cmd, &how).map_err(|e| exec_failure(&e));
        }
        Dialect::Concur => {
            let how = Supervise {
                max_hold: plan.max_hold,
                die_with_parent: plan.pass_fd.is_none(),
                pass_fds: match (lock_fd, plan.pass_fd) {
                    (Some(ours), Some(theirs)) => vec![(ours, theirs)],
                    _ => Vec::new(),
                },
            };
            child::run(cmd, &how).map_err(|e| exec_failure(&e))?
        }
    };
    if ended.over_limit {
        say(
            plan,
            &format!(
                "{program} held the lock on {} longer than --max-hold; killed its process group",
                target_name(plan)
            ),
        );
    }
    if plan.json {
        print_line(
            &serde_json::json!({
                "ok": true,
                "locked": target_name(plan),
                "waited_ms": waited.as_millis(),
                "status": ended.code(),
                "over_limit": ended.over_limit,
            })
            .to_string(),
        );
    }
    Ok(ended.code())
}

/// flock(1)'s own child handling: fork, wait, nothing forwarded (its default signal actions
/// apply), the lock fd inherited unless `-o`.
fn run_plain(mut cmd: std::process::Command, how: &Supervise<'_>) -> std::io::Result<u8> {
    use std::os::unix::process::CommandExt;
    let fds: Vec<(RawFd, RawFd)> = how
        .pass_fds
        .iter()
        .map(|&(ours, theirs)| (ours.as_raw_fd(), theirs))
        .collect();
    // SAFETY: only fcntl/dup2, async-signal-safe. The closure runs only in the child of the
    // spawn below, while `how` still lends the descriptors; `cmd` is dropped when this returns.
    unsafe {
        cmd.pre_exec(move || {
            for &(ours, theirs) in &fds {
                // borrow_raw: `ours` is open in the child (a copy of this process's table taken
                // while `how` lent it). dup_to's contract: in the child between fork and exec;
                // `theirs` is the descriptor number the user asked the command to get (`--fd N`).
                supervise::dup_to(BorrowedFd::borrow_raw(ours), theirs)?;
            }
            Ok(())
        });
    }
    supervise::ignore(libc::SIGCHLD, false);
    let status = cmd.status()?;
    Ok(child::status_code(status))
}

/// Parses flock(1)'s `-w`: a non-negative decimal number of seconds.
pub fn parse_secs(s: &str) -> Option<Duration> {
    let v: f64 = s.trim().parse().ok()?;
    (v.is_finite() && (0.0..1e12).contains(&v)).then(|| Duration::from_secs_f64(v))
}
