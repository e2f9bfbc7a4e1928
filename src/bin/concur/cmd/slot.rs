//! `concur slot`: run a command in one of N slots (a counting semaphore), and
//! `concur slot status NAME`.

use std::ffi::OsString;
use std::time::Instant;

use concur::child::{self, Supervise};
use concur::lock::Holder;
use concur::slot::Slot;

use super::lock::wait_limits;
use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

const AFTER_HELP: &str = "\
Examples:
  concur slot lightrag --max 2 -- curl -X POST localhost:9621/ingest -d @doc.json
  concur slot builds --max 4 -n -E 75 -c 'make -j2'    # all busy -> exit 75
  concur slot status lightrag --json

A killed holder frees its slot at once (kernel locks); waiters wake without polling.
The first use records --max for NAME; a different --max later exits 4.
Exit: the command's status (128+N for signal N), 1 (or -E) when busy (-n) or timed out (-w).";

/// Run a command in one of N slots: at most N run at once, across processes.
#[derive(Debug, clap::Args)]
#[command(
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Args {
    #[command(subcommand)]
    sub: Option<Sub>,
    /// How many may hold the slot at once (1-1024); required to run a command
    #[arg(long, value_name = "N")]
    max: Option<u32>,
    /// Fail (exit 1 or -E) rather than wait
    #[arg(short = 'n', long = "nonblock")]
    nonblock: bool,
    /// Wait at most SECS (fractions and units allowed: 1.5, 30s, 5m)
    #[arg(short = 'w', long = "timeout", value_name = "SECS")]
    timeout: Option<String>,
    /// Exit code when no slot is free (-n) or the wait timed out (default 1)
    #[arg(short = 'E', long = "conflict-exit-code", value_name = "CODE",
          value_parser = clap::value_parser!(u8))]
    conflict_exit_code: Option<u8>,
    /// Do not say who holds the slots when waiting
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Kill the command's process group after SECS (or 30s, 5m, ...) and free the slot
    #[arg(long, value_name = "SECS")]
    max_hold: Option<String>,
    /// Run CMD through the shell ($SHELL or /bin/sh) -c
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    command: Option<OsString>,
    /// The slot's name
    #[arg(value_name = "NAME", required = true)]
    name: Option<String>,
    /// The command and its arguments
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    operands: Vec<OsString>,
}

/// `concur slot status NAME`.
#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// List a slot's holders (pid, session, since)
    Status {
        /// The slot's name
        name: String,
    },
}

/// Runs `concur slot`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    if let Some(Sub::Status { name }) = &args.sub {
        return status(name, ctx);
    }
    let (max, start) = checked(&args)?;
    if let Some(exit) = on_etcd(&args, max, &args.operands[start..], ctx)? {
        return Ok(exit);
    }
    let mut rest = args.operands;
    rest.drain(..start);
    let name = args.name.unwrap_or_default();
    let (timeout, max_hold) = wait_limits(args.timeout.as_deref(), args.max_hold.as_deref())?;
    let session = ctx.session()?.map(|s| s.to_string());
    let slot = Slot::open(ctx.home()?, &name, max)?;
    let conflict = |what: &str| {
        CliError::new(
            Exit::Code(args.conflict_exit_code.unwrap_or(1)),
            "conflict",
            format!("{what} for slot {name} (all {max} held)"),
        )
    };
    let started = Instant::now();
    let permit = match slot.try_acquire()? {
        Some(p) => p,
        None if args.nonblock || timeout.is_some_and(|d| d.is_zero()) => {
            return Err(conflict("no free slot"));
        }
        None => {
            if !args.quiet {
                eprintln!(
                    "concur: slot: waiting for a slot of {name} ({})",
                    holders(&slot)
                );
            }
            let got = match timeout {
                Some(d) => slot.acquire_timeout(d)?,
                None => Some(slot.acquire()?),
            };
            got.ok_or_else(|| conflict("timed out waiting"))?
        }
    };
    let waited = started.elapsed();
    let describe = child::describe(&rest, args.command.as_ref());
    permit.record(&Holder::new(std::process::id(), session, Some(describe)))?;
    let cmd = child::command_for(&rest, args.command.as_ref()).expect("checked above");
    let program = cmd.get_program().to_string_lossy().into_owned();
    let how = Supervise {
        max_hold,
        die_with_parent: true,
        pass_fds: Vec::new(),
    };
    let ended = child::run(cmd, &how).map_err(|e| {
        let why = e.to_string();
        let why = why.split(" (os error").next().unwrap_or(&why).to_owned();
        CliError::new(
            Exit::Code(69),
            "io",
            format!("failed to execute {program}: {why}"),
        )
    })?;
    if ended.over_limit {
        eprintln!(
            "concur: slot: {program} held slot {name} longer than --max-hold; killed its process group"
        );
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "slot": name,
            "index": permit.index(),
            "waited_ms": waited.as_millis(),
            "status": ended.code(),
            "over_limit": ended.over_limit,
        }));
    }
    drop(permit);
    Ok(Exit::Code(ended.code()))
}

/// `2 of 2 held: pid 12 (session a, 3 s), pid 13`.
fn holders(slot: &Slot) -> String {
    let Ok(states) = slot.status() else {
        return format!("{} held", slot.max());
    };
    let held: Vec<String> = states
        .iter()
        .filter_map(|s| s.holder.as_ref())
        .map(|h| {
            h.as_ref()
                .map_or_else(|| "starting".to_owned(), Holder::describe)
        })
        .collect();
    format!("{} of {} held: {}", held.len(), slot.max(), held.join(", "))
}

fn status(name: &str, ctx: &Ctx) -> Result<Exit, CliError> {
    #[cfg(feature = "etcd")]
    if let Some(client) = ctx.etcd()? {
        return super::on_etcd::slot_status(&client, name, ctx);
    }
    let Some(slot) = Slot::existing(ctx.home()?, name)? else {
        if ctx.json {
            ctx.print_json(
                &serde_json::json!({ "slot": name, "max": null, "held": 0, "holders": [] }),
            );
        } else {
            print_line(&format!("{name}: unused"));
        }
        return Ok(Exit::Ok);
    };
    let states = slot.status()?;
    let held: Vec<_> = states.iter().filter(|s| s.holder.is_some()).collect();
    if ctx.json {
        let list: Vec<_> = held
            .iter()
            .map(|s| {
                let h = s.holder.clone().flatten().unwrap_or_default();
                serde_json::json!({
                    "index": s.index,
                    "pid": (h.pid != 0).then_some(h.pid),
                    "session": h.session,
                    "cmd": h.cmd,
                    "since": h.since,
                    "held_secs": h.held_secs(),
                })
            })
            .collect();
        ctx.print_json(&serde_json::json!({
            "slot": name,
            "max": slot.max(),
            "held": held.len(),
            "holders": list,
        }));
    } else {
        print_line(&format!("{name}: {} of {} held", held.len(), slot.max()));
        for s in held {
            let text = s
                .holder
                .as_ref()
                .and_then(|h| h.as_ref().map(Holder::describe))
                .unwrap_or_else(|| "starting".into());
            print_line(&format!("  slot {}: {text}", s.index));
        }
    }
    Ok(Exit::Ok)
}

/// The checks every backend makes of a command line: `--max` given, and exactly one of a
/// command (after an optional `--`) or `-c`. Returns the maximum and where the command starts.
fn checked(args: &Args) -> Result<(u32, usize), CliError> {
    let Some(max) = args.max else {
        return Err(CliError::usage(
            "--max N is required to run a command in a slot",
        ));
    };
    let start = usize::from(args.operands.first().is_some_and(|a| a == "--"));
    if (args.operands.len() == start) == args.command.is_none() {
        return Err(CliError::usage(
            "give a command to run (after --) or -c CMD, not both",
        ));
    }
    Ok((max, start))
}

/// With an etcd backend, runs the slot there (same checks as the local path); `None`: local.
#[cfg(feature = "etcd")]
fn on_etcd(args: &Args, max: u32, rest: &[OsString], ctx: &Ctx) -> Result<Option<Exit>, CliError> {
    let Some(client) = ctx.etcd()? else {
        return Ok(None);
    };
    let (timeout, max_hold) = wait_limits(args.timeout.as_deref(), args.max_hold.as_deref())?;
    let session = ctx.session()?.map(|s| s.to_string());
    super::on_etcd::slot(
        &client,
        &super::on_etcd::SlotRun {
            name: args.name.as_deref().unwrap_or_default(),
            max,
            nonblock: args.nonblock,
            timeout,
            conflict_code: args.conflict_exit_code.unwrap_or(1),
            quiet: args.quiet,
            max_hold,
            argv: rest,
            shell_command: args.command.as_ref(),
            json: ctx.json,
            session: session.as_deref(),
            home: ctx.home().ok(),
        },
    )
    .map(Some)
}

/// This build has no etcd support: refuses a configured backend, else runs locally.
#[cfg(not(feature = "etcd"))]
fn on_etcd(
    _args: &Args,
    _max: u32,
    _rest: &[OsString],
    ctx: &Ctx,
) -> Result<Option<Exit>, CliError> {
    ctx.etcd()?;
    Ok(None)
}
