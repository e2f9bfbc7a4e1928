//! `concur slot`: run a command in one of N slots (a counting semaphore), and
//! `concur slot status NAME`.

use std::ffi::OsString;

use concur::backend::Wait;
use concur::hold::{Claim, Hold};

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
    let Some(max) = args.max else {
        return Err(CliError::usage(
            "--max N is required to run a command in a slot",
        ));
    };
    let argv = super::lock::one_command(args.operands, args.command.as_ref())?;
    let (timeout, max_hold) = wait_limits(args.timeout.as_deref(), args.max_hold.as_deref())?;
    let h = Hold {
        claim: Claim::Slot {
            name: args.name.unwrap_or_default(),
            max,
        },
        wait: Wait::from_options(args.nonblock, timeout),
        session: ctx.session()?.map(|s| s.to_string()),
        argv,
        shell_command: args.command,
        max_hold,
        quiet: args.quiet,
        verbose: false,
    };
    super::lock::held(ctx, "slot", &h, args.conflict_exit_code)
}

fn status(name: &str, ctx: &Ctx) -> Result<Exit, CliError> {
    let backend = ctx.backend()?;
    let st = backend.slots()?.status(name)?;
    if ctx.json {
        let list: Vec<_> = st
            .held
            .iter()
            .map(|s| {
                let h = s.holder.clone().unwrap_or_default();
                serde_json::json!({
                    "index": s.index,
                    "token": s.token,
                    "pid": (h.pid != 0).then_some(h.pid),
                    "session": h.session,
                    "host": h.host,
                    "cmd": h.cmd,
                    "since": h.since,
                    "held_secs": h.held_secs(),
                })
            })
            .collect();
        ctx.print_json(&serde_json::json!({
            "slot": name,
            "backend": backend.name(),
            "max": st.max,
            "held": st.held.len(),
            "holders": list,
        }));
    } else if let Some(max) = st.max {
        print_line(&format!("{name}: {} of {max} held", st.held.len()));
        for s in &st.held {
            print_line(&format!("  slot {}: {}", s.index, s.describe()));
        }
    } else {
        print_line(&format!("{name}: unused"));
    }
    Ok(Exit::Ok)
}
