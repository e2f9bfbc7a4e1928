//! The `concur` binary: argument parsing, error printing and exit codes around the library.
//!
//! Invoked through a link named `flock` or `lockf` it behaves as those programs (multi-call).

// Doc comments on clap items are --help text, read by people in a terminal, not rustdoc.
#![allow(clippy::doc_markdown)]

use std::process::ExitCode;

use clap::Parser;

mod cmd;
mod ctx;
mod exit;

use ctx::Ctx;
use exit::{CliError, Exit};

/// Collision-free shared state for concurrent sessions, hooks and scripts.
///
/// Exit codes: 0 done, 1 conflict (busy, lost, timeout), 2 usage, 3 precondition failed,
/// 4 invalid input (nothing written), 74 I/O error, 77 permission or unsafe path;
/// verbs that run a command exit with its status.
#[derive(Debug, Parser)]
#[command(
    name = "concur",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// Machine-readable JSON on stdout (errors too: {"ok":false,"error":{...}})
    #[arg(long, global = true)]
    json: bool,
    /// Session id (default: $CONCUR_SESSION, $CLAUDE_CODE_SESSION_ID, $CLAUDE_SESSION_ID)
    #[arg(long, global = true, value_name = "ID")]
    session: Option<String>,
    /// Configuration file (default: $CONCUR_HOME/concur.toml)
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Coordination backend, e.g. etcd://h1:2379,h2:2379 (default: $CONCUR_BACKEND, the
    /// config's [backend] url, else local files). Moves lock --name, slot, token, lease and
    /// session onto etcd; file verbs (append, write, ledger) always stay local
    #[arg(long, global = true, value_name = "URL")]
    backend: Option<String>,
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    reset_sigpipe();
    if let Some(code) = cmd::multicall() {
        return code;
    }
    let cli = parse_args();
    let mut ctx = Ctx::new(cli.json, cli.session, cli.config);
    ctx.backend_flag = cli.backend;
    let verb = cli.command.verb();
    match cli.command.run(&ctx) {
        Ok(exit) => exit.into(),
        Err(e) => report(verb, &ctx, &e).into(),
    }
}

/// Parses the command line, exiting with clap's usage error (2) or help (0) as `Cli::parse` does.
///
/// The clap command tree and matches are leaked instead of dropped: freeing them took about a
/// quarter of the binary's start-up instructions (callgrind), and hooks run concur hundreds of
/// times a minute. The process ends soon after; the memory is returned then.
fn parse_args() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let mut command = Cli::command();
    let mut matches = command.get_matches_mut();
    let cli = Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit());
    std::mem::forget(matches);
    std::mem::forget(command);
    cli
}

/// Prints a verb's error as one line on stderr (and as JSON on stdout with `--json`).
fn report(verb: &str, ctx: &Ctx, e: &CliError) -> Exit {
    eprintln!("concur: {verb}: {}", e.message);
    if ctx.json {
        let v = serde_json::json!({
            "ok": false,
            "error": { "kind": e.kind, "message": e.message, "exit": e.exit.code() },
        });
        ctx::print_line(&v.to_string());
    }
    e.exit
}

/// Restores the default SIGPIPE action so that `concur ... | head` ends quietly, as a
/// command-line tool should, instead of panicking on a write error.
fn reset_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
