//! `concur isolate`: run a per-session instance of a would-be singleton as a transparent stdio
//! wrapper; `concur isolate gc` removes dead sessions' directories.

use concur::isolate;

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Run a per-session instance of a would-be singleton (transparent stdio, no orphans)
///
/// One instance per session of a server that would otherwise be shared (a browser MCP
/// server, a dev server): placeholders {session}, {session_dir} and {port} are substituted,
/// stdio passes through untouched, and the command's whole process group is killed when stdin
/// closes, on SIGINT/SIGTERM/SIGHUP, or when concur's parent dies. Exits with the command's
/// status. With no session id (--session, the environment, or a registered session above it)
/// the instance is the agent process's: the nearest ancestor that is not a shell or wrapper.
///
/// Example (.mcp.json "command": "concur", "args": [...]):
///   concur isolate -- npx @playwright/mcp --user-data-dir {session_dir}/browser --port {port}
///   concur isolate --exclusive browser -- npx @playwright/mcp
///   concur isolate gc
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Share one instance called NAME instead: held by one session at a time (on every machine
    /// of the backend, with --backend/CONCUR_BACKEND), others fail at once naming the holder
    #[arg(long, value_name = "NAME")]
    exclusive: Option<String>,
    /// The command and its arguments, after `--`
    #[arg(last = true, value_name = "CMD")]
    cmd: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Remove the per-session directories of sessions whose agent process is gone
    Gc,
}

/// Runs `concur isolate`.
#[allow(clippy::needless_pass_by_value)] // every verb's run takes its Args by value
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let home = ctx.home()?;
    if let Some(Action::Gc) = &args.action {
        let removed = isolate::gc(home)?;
        if ctx.json {
            ctx.print_json(&serde_json::json!({ "removed": removed }));
        } else {
            for r in removed {
                print_line(&format!("removed {}", r.display()));
            }
        }
        return Ok(Exit::Ok);
    }
    if args.cmd.is_empty() {
        return Err(CliError::usage(
            "no command: concur isolate [--exclusive NAME] -- CMD ARGS...",
        ));
    }
    // No id given or registered (Gemini CLI and Codex start MCP servers before SessionStart,
    // without an id): one instance per agent process.
    let session = match ctx.session()? {
        Some(s) => s,
        None => isolate::agent_session()?,
    };
    // Only a shared instance needs the lease store (and so the backend).
    let exclusive = match args.exclusive.as_deref() {
        Some(name) => Some((name, ctx.lease_store()?)),
        None => None,
    };
    let prepared = isolate::prepare(home, &session, exclusive, &args.cmd)?;
    // Nothing is printed on stdout: it belongs to the command (an MCP server's JSON-RPC).
    let status = isolate::run(&prepared)?;
    Ok(Exit::from_status(status))
}
