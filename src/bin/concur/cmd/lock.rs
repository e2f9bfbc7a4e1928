//! `concur lock`: util-linux flock(1) options and exit codes on a FILE or FD (the engine is
//! [`concur::flock`], shared with the `flock` multi-call name), and named locks on any backend
//! (`--name`, through [`concur::hold`], shared with `concur slot`).

use std::ffi::OsString;
use std::time::Duration;

use concur::backend::Wait;
use concur::flock::{Dialect, Operands, Plan, Target, execute};
use concur::hold::{Claim, Hold, Outcome};
use concur::lock::{Api, Mode, Range};

use crate::ctx::Ctx;
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

/// Runs `concur lock`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    // Validate the session id before any file is touched.
    let session = ctx.session()?.map(|s| s.to_string());
    if args.name.is_some() {
        return named(args, session, ctx);
    }
    let Operands {
        target,
        argv: rest,
        shell_command,
    } = Operands::parse(args.operands, args.command).map_err(CliError::usage)?;
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
    };
    let home = ctx.home().ok().cloned();
    match execute(&plan, home.as_ref()) {
        Ok(code) => Ok(Exit::Code(code)),
        Err(f) => Err(CliError::new(Exit::Code(f.code), f.kind, f.message)),
    }
}

/// `concur lock --name NAME CMD`: a named lock on the backend in effect.
fn named(args: Args, session: Option<String>, ctx: &Ctx) -> Result<Exit, CliError> {
    let file_only = [
        (args.shared, "-s/--shared"),
        (args.unlock, "-u/--unlock"),
        (
            args.fcntl || args.start.is_some() || args.length.is_some(),
            "--fcntl/--start/--length",
        ),
        (args.no_fork, "--no-fork"),
        (args.pass_fd.is_some(), "--fd"),
    ];
    if let Some((_, what)) = file_only.iter().find(|(given, _)| *given) {
        return Err(CliError::usage(format!(
            "{what} locks a FILE or FD; a --name lock is exclusive and held by concur"
        )));
    }
    let argv = one_command(args.operands, args.command.as_ref())?;
    let (timeout, max_hold) = wait_limits(args.timeout.as_deref(), args.max_hold.as_deref())?;
    let h = Hold {
        claim: Claim::Lock(args.name.unwrap_or_default()),
        wait: Wait::from_options(args.nonblock, timeout),
        session,
        argv,
        shell_command: args.command,
        max_hold,
        quiet: args.quiet,
        verbose: args.verbose,
    };
    held(ctx, "lock", &h, args.conflict_exit_code)
}

/// The command of `lock --name` and `slot`: the operands after an optional `--`, or `-c CMD`;
/// exactly one of them.
pub fn one_command(
    mut operands: Vec<OsString>,
    shell_command: Option<&OsString>,
) -> Result<Vec<OsString>, CliError> {
    if operands.first().is_some_and(|a| a == "--") {
        operands.remove(0);
    }
    if operands.is_empty() == shell_command.is_none() {
        return Err(CliError::usage(
            "give a command to run (after --) or -c CMD, not both",
        ));
    }
    Ok(operands)
}

/// Runs `h` on the backend in effect (`lock --name`, `slot`) and reports: the command's status,
/// or `conflict` (exit `-E`, else 1) when busy, 69 when the command could not start.
pub fn held(ctx: &Ctx, verb: &str, h: &Hold, conflict: Option<u8>) -> Result<Exit, CliError> {
    let backend = ctx.backend()?;
    let mut say = |m: &str| eprintln!("concur: {verb}: {m}");
    match concur::hold::run(&backend, h, &mut say)? {
        Outcome::Busy(m) => Err(CliError::new(
            Exit::Code(conflict.unwrap_or(1)),
            "conflict",
            m,
        )),
        Outcome::NotRun(m) => Err(CliError::new(Exit::Code(69), "io", m)),
        Outcome::Ran(r) => {
            if let Some(n) = r.notice() {
                say(&n);
            }
            if ctx.json {
                ctx.print_json(&r.to_json());
            }
            Ok(Exit::Code(r.status()))
        }
    }
}

/// Parses `-w` and `--max-hold` of `concur lock` and `concur slot` (a zero hold limit is
/// refused), as usage errors. Both take every duration spelling (`90`, `1.5s`, `5m`); flock(1)'s
/// decimal seconds are one of them. The `flock`/`lockf` programs keep their seconds-only
/// syntax ([`concur::flock::parse_secs`]).
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
