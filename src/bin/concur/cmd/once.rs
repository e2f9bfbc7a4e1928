//! `concur once KEY -- CMD`: single-flight across processes (the library's `concur::once`).

use std::ffi::OsString;
use std::io::Write;

use concur::child;
use concur::once::Role;

use crate::ctx::Ctx;
use crate::exit::{CliError, Exit};

const AFTER_HELP: &str = "\
Examples:
  # Every hook that starts at once refreshes the token once; all get the same output:
  concur once oauth-refresh --ttl 5m -- ./refresh-token.sh
  # Start the daemon if it is not running, once, however many sessions ask together:
  concur once start-indexer -c 'pgrep -x indexer >/dev/null || (indexer >indexer.log 2>&1 &)'
  concur once build-cache --json -- make cache

Of all callers of KEY that arrive while CMD runs, one runs it; the others wait (in the kernel,
no polling) and print its stdout and stderr and exit with its status, byte for byte. If that
runner is killed, exactly one waiter runs CMD instead. --ttl reuses a successful result
(exit 0) for that long. Results are kept 0600 in the concur home (once/KEY.result), or with
--backend etcd://... (or CONCUR_BACKEND) in etcd, shared by callers on every machine (output
up to 1 MiB; a killed runner is replaced once its 5 s lease runs out).
Exit: CMD's status (128+N for signal N); 2 usage; 4 bad KEY or --ttl; 69 CMD cannot start.";

/// Run a command once for every caller that asks at the same time (single-flight).
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Reuse a successful result for this long (30s, 5m, 2h, 1d)
    #[arg(long, value_name = "D")]
    ttl: Option<String>,
    /// Run CMD through the shell ($SHELL or /bin/sh) -c
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    command: Option<OsString>,
    /// The key: callers with the same key share one run ([A-Za-z0-9._-], up to 128)
    #[arg(value_name = "KEY")]
    key: String,
    /// The command and its arguments
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    operands: Vec<OsString>,
}

/// sysexits' EX_UNAVAILABLE, as `lock` uses when its command cannot start.
const EX_UNAVAILABLE: u8 = 69;

/// Runs `concur once`.
pub fn run(a: &Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let operands: Vec<OsString> = match a.operands.split_first() {
        Some((first, rest)) if first == "--" => rest.to_vec(),
        _ => a.operands.clone(),
    };
    if a.command.is_some() && !operands.is_empty() {
        return Err(CliError::usage(
            "give either -c CMD or -- COMMAND, not both",
        ));
    }
    let ttl = a
        .ttl
        .as_deref()
        .map(concur::duration::parse)
        .transpose()
        .map_err(|e| CliError::invalid(format!("--ttl: {e}")))?;
    let Some(cmd) = child::command_for(&operands, a.command.as_ref()) else {
        return Err(CliError::usage(
            "no command: concur once KEY -- COMMAND [ARGS]",
        ));
    };
    let backend = ctx.backend()?;
    let flight = backend
        .flights()?
        .run(&a.key, ttl, cmd, !ctx.json)
        .map_err(|e| match e {
            concur::Error::Io { action, .. } if action == concur::once::CANNOT_RUN => {
                CliError::new(Exit::Code(EX_UNAVAILABLE), "io", e.to_string())
            }
            e => e.into(),
        })?;
    let r = &flight.result;
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "key": a.key,
            "backend": backend.name(),
            "role": flight.role,
            "ran": matches!(flight.role, Role::Leader | Role::Takeover),
            "exit": r.exit_code(),
            "code": r.code,
            "signal": r.signal,
            "stdout": String::from_utf8_lossy(&r.stdout),
            "stderr": String::from_utf8_lossy(&r.stderr),
            "finished_ms": r.finished_ms,
            "leader_pid": r.leader_pid,
        }));
    } else if !matches!(flight.role, Role::Leader | Role::Takeover) {
        // A leader's output was copied as it came; a waiter prints the leader's now.
        let mut o = std::io::stdout().lock();
        o.write_all(&r.stdout)
            .and_then(|()| o.flush())
            .map_err(|e| CliError::new(Exit::Io, "io", format!("cannot write stdout: {e}")))?;
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(&r.stderr);
    }
    Ok(match r.exit_code() {
        0 => Exit::Ok,
        c => Exit::Code(c),
    })
}
