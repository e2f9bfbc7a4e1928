//! `concur lock`: util-linux flock(1) options and exit codes, plus named locks, holder
//! records, a hold limit and signal forwarding. The same engine serves the `flock` multi-call
//! name (see `flock.rs`).
//!
//! Why a SIGALRM timer for `-w` rather than a helper thread: it is what flock(1) does, the
//! process stays single-threaded, and an interrupted `flock(2)`/`fcntl(2)` returns without the
//! lock — so a timed-out wait can never leave a lock behind, not even on an inherited
//! descriptor (`concur lock -w 5 9`), where a helper thread that got the lock just as the time
//! ran out could leave it held by the caller's shell.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use concur::child::{self, Supervise};
use concur::lock::{Api, Holder, LockFile, LockOptions, Mode, Range};
use concur::sys::supervise;
use concur::{Error, ErrorKind};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

const AFTER_HELP: &str = "\
Examples:
  concur lock ~/.agent/health.json.lock -- ./update-health.sh
  concur lock -n -E 75 --name nightly -c 'make release'     # busy -> exit 75
  exec 9>>state.lock; concur lock -w 10 9 && critical-work; concur lock -u 9

The lock file is created 0600 if missing; nothing is ever written into it (holder records
live in the runtime home). The command does not inherit the lock descriptor unless asked
with --fd N. If concur itself is killed, the command is killed too: it never runs unprotected.
Exit: the command's status (128+N if signal N killed it), 1 (or -E) when busy or timed out,
64-77 (sysexits, as flock(1)) when the lock file cannot be opened or locked.
Invoked through a link named flock (or lockf) the binary behaves exactly as that program.";

/// Run a command while holding a lock (util-linux flock(1) compatible).
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Take a shared lock
    #[arg(short = 's', long, conflicts_with_all = ["exclusive", "unlock"])]
    shared: bool,
    /// Take an exclusive lock (the default)
    #[arg(short = 'x', short_alias = 'e', long)]
    exclusive: bool,
    /// Remove a lock (FD form: release the lock held through an inherited descriptor)
    #[arg(short = 'u', long)]
    unlock: bool,
    /// Fail (exit 1 or -E) rather than wait
    #[arg(
        short = 'n',
        long = "nonblock",
        visible_alias = "nb",
        alias = "nonblocking"
    )]
    nonblock: bool,
    /// Wait at most SECS (fractions and units allowed: 1.5, 30s, 5m; 0 = -n) — a timer, not
    /// polling
    #[arg(
        short = 'w',
        long = "timeout",
        visible_alias = "wait",
        value_name = "SECS"
    )]
    timeout: Option<String>,
    /// Exit code when the lock is busy or the wait timed out (default 1)
    #[arg(short = 'E', long = "conflict-exit-code", value_name = "CODE",
          value_parser = clap::value_parser!(u8))]
    conflict_exit_code: Option<u8>,
    /// Accepted for flock(1) compatibility: the command never inherits the lock fd anyway
    #[arg(short = 'o', long)]
    close: bool,
    /// Exec the command in place of concur (it keeps the lock fd; no hold limit)
    #[arg(short = 'F', long = "no-fork", conflicts_with_all = ["close", "max_hold"])]
    no_fork: bool,
    /// Use an open-file-description lock, fcntl(F_OFD_SETLK), instead of flock(2)
    #[arg(long)]
    fcntl: bool,
    /// First byte of the locked range (implies --fcntl)
    #[arg(long, value_name = "OFFSET")]
    start: Option<u64>,
    /// Number of bytes to lock, 0 = to the end (implies --fcntl)
    #[arg(long, value_name = "BYTES")]
    length: Option<u64>,
    /// Say how long getting the lock took and what runs
    #[arg(long)]
    verbose: bool,
    /// Do not say who holds the lock when waiting or busy
    #[arg(short = 'q', long)]
    quiet: bool,
    /// A named lock in the runtime home (<home>/locks/NAME) instead of FILE
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Kill the command's process group after SECS (or 30s, 5m, ...) and release the lock
    #[arg(long, value_name = "SECS")]
    max_hold: Option<String>,
    /// Hand the lock to the command as descriptor N (the lock then lives as long as it does)
    #[arg(long = "fd", value_name = "N")]
    pass_fd: Option<i32>,
    /// Run CMD through the shell ($SHELL or /bin/sh) -c
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    command: Option<OsString>,
    /// FILE|DIRECTORY|FD [--] COMMAND [ARGS...]  (with --name: just the command)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    operands: Vec<OsString>,
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

/// Everything a lock run needs, parsed from either dialect's arguments.
#[derive(Debug, Clone)]
pub struct Plan {
    pub dialect: Dialect,
    pub target: Target,
    pub mode: Option<Mode>,
    pub api: Api,
    pub nonblock: bool,
    pub timeout: Option<Duration>,
    pub conflict_code: u8,
    pub close: bool,
    pub no_fork: bool,
    pub verbose: bool,
    pub quiet: bool,
    pub argv: Vec<OsString>,
    pub shell_command: Option<OsString>,
    pub max_hold: Option<Duration>,
    pub pass_fd: Option<i32>,
    pub json: bool,
    pub session: Option<String>,
    /// `--name NAME` on the local backend: the command gets `NAME:TOKEN` in `$CONCUR_FENCE`.
    pub fence_name: Option<String>,
}

/// A failure with the exit code the dialect gives it.
pub struct Failure {
    pub code: u8,
    pub kind: &'static str,
    pub message: String,
}

const EX_DATAERR: u8 = 65;
const EX_NOINPUT: u8 = 66;
const EX_UNAVAILABLE: u8 = 69;
const EX_OSERR: u8 = 71;
const EX_CANTCREAT: u8 = 73;
const EX_NOPERM: u8 = 77;

/// Parses `-w` and `--max-hold` of `concur lock` and `concur slot` (a zero hold limit is
/// refused), as usage errors. Both take every duration spelling (`90`, `1.5s`, `5m`); flock(1)'s
/// decimal seconds are one of them. The `flock`/`lockf` programs keep their seconds-only
/// syntax ([`parse_secs`]).
pub fn wait_limits(
    timeout: Option<&str>,
    max_hold: Option<&str>,
) -> Result<(Option<Duration>, Option<Duration>), CliError> {
    let any = |s: &str| super::value::duration(s).ok();
    let timeout = timeout
        .map(|s| any(s).ok_or_else(|| CliError::usage(format!("invalid timeout value: '{s}'"))))
        .transpose()?;
    let max_hold = max_hold
        .map(|s| {
            any(s)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| CliError::usage(format!("invalid --max-hold value: '{s}'")))
        })
        .transpose()?;
    Ok((timeout, max_hold))
}

/// Parses flock(1)'s `-w`: a non-negative decimal number of seconds.
pub fn parse_secs(s: &str) -> Option<Duration> {
    let v: f64 = s.trim().parse().ok()?;
    (v.is_finite() && (0.0..1e12).contains(&v)).then(|| Duration::from_secs_f64(v))
}

/// Runs `concur lock`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    // Validate the session id before any file is touched.
    let session = ctx.session()?.map(|s| s.to_string());
    let mut rest = args.operands;
    let mut shell_command = args.command;
    let target = if let Some(name) = &args.name {
        let opts = LockOptions::named(ctx.home()?, name)?;
        Target::Path(opts.path().to_path_buf())
    } else {
        if rest.is_empty() {
            return Err(CliError::usage(
                "requires a file, directory, descriptor number or --name NAME",
            ));
        }
        let first = rest.remove(0);
        if rest.first().is_some_and(|a| a == "-c" || a == "--command") {
            if rest.len() != 2 {
                return Err(CliError::usage("-c requires exactly one command argument"));
            }
            shell_command = Some(rest.pop().expect("checked length"));
            rest.clear();
        }
        if rest.is_empty() && shell_command.is_none() {
            let s = first.to_string_lossy();
            match s.parse::<i32>() {
                Ok(fd) if fd >= 0 => Target::Fd(fd),
                _ => {
                    return Err(CliError::usage(format!(
                        "{s:?} is not a descriptor number; a file needs a command to run"
                    )));
                }
            }
        } else {
            Target::Path(PathBuf::from(first))
        }
    };
    if rest.first().is_some_and(|a| a == "--") {
        rest.remove(0);
    }
    if args.name.is_some() && rest.is_empty() && shell_command.is_none() {
        return Err(CliError::usage("--name needs a command to run (or -c CMD)"));
    }
    if shell_command.is_some() && !rest.is_empty() {
        return Err(CliError::usage("give either -c CMD or a command, not both"));
    }
    let (timeout, max_hold) = wait_limits(args.timeout.as_deref(), args.max_hold.as_deref())?;
    if matches!(target, Target::Fd(_)) && (max_hold.is_some() || args.pass_fd.is_some()) {
        return Err(CliError::usage("--max-hold and --fd need a command to run"));
    }
    let api = if args.fcntl || args.start.is_some() || args.length.is_some() {
        Api::Ofd(Range {
            start: args.start.unwrap_or(0),
            len: args.length.unwrap_or(0),
        })
    } else {
        Api::Flock
    };
    let mode = if args.unlock {
        None
    } else if args.shared {
        Some(Mode::Shared)
    } else {
        Some(Mode::Exclusive)
    };
    let plan = Plan {
        dialect: Dialect::Concur,
        target,
        mode,
        api,
        nonblock: args.nonblock,
        timeout,
        conflict_code: args.conflict_exit_code.unwrap_or(1),
        close: args.close,
        no_fork: args.no_fork,
        verbose: args.verbose,
        quiet: args.quiet,
        argv: rest,
        shell_command,
        max_hold,
        pass_fd: args.pass_fd,
        json: ctx.json,
        session,
        fence_name: args.name.clone(),
    };
    dispatch(ctx, args.name.as_deref(), &plan)
}

/// Runs the plan: a named lock on the etcd backend when one is set, else locally.
fn dispatch(ctx: &Ctx, name: Option<&str>, plan: &Plan) -> Result<Exit, CliError> {
    #[cfg(feature = "etcd")]
    if let Some(exit) = super::on_etcd::named_lock(ctx, name, plan)? {
        return Ok(exit);
    }
    #[cfg(not(feature = "etcd"))]
    if name.is_some() {
        ctx.etcd()?;
    }
    let home = ctx.home().ok().cloned();
    match execute(plan, home.as_ref()) {
        Ok(code) => Ok(Exit::Code(code)),
        Err(f) => Err(CliError::new(Exit::Code(f.code), f.kind, f.message)),
    }
}

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

fn holders_text(file: &LockFile, home: Option<&concur::Home>) -> Option<String> {
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
pub fn execute(plan: &Plan, home: Option<&concur::Home>) -> Result<u8, Failure> {
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
        Target::Fd(fd) => match concur::sys::fd::inherited(*fd) {
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
            let _ = concur::sys::fs::remove_if_exists(&h.join("holders").join(format!(
                "{}.{}.{ino}.{parent}",
                libc::major(dev),
                libc::minor(dev)
            )));
        }
        return run_command(plan, None, home, Duration::ZERO);
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
            crate::ctx::print_line(
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
    let code = run_command(plan, Some(&mut guard), home, waited)?;
    drop(guard);
    Ok(code)
}

fn run_command(
    plan: &Plan,
    guard: Option<&mut concur::lock::LockGuard>,
    home: Option<&concur::Home>,
    waited: Duration,
) -> Result<u8, Failure> {
    let Some(mut cmd) = child::command_for(&plan.argv, plan.shell_command.as_ref()) else {
        return Ok(0);
    };
    // The command can fence its own writes: concur write --fence "$CONCUR_FENCE" ...
    if let (Some(name), Some(home), Some(g)) = (&plan.fence_name, home, guard.as_deref()) {
        let fence = concur::fence::next_local(home, name, g).map_err(|e| {
            let code = crate::exit::Exit::from_kind(e.kind()).code();
            fail(code, e.kind().name(), e.to_string())
        })?;
        cmd.env("CONCUR_FENCE", fence.to_string());
    }
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
        crate::ctx::print_line(
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
