//! `concur reservations`: who holds what.

use concur::reserve::{Reservations, report};
use concur::time::now_unix_ms;

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// List the edit reservations still held: session, pid, cwd, path, mode, since, expiry, reason.
///
/// Reservations of dead sessions (and expired ones of unregistered sessions) are left out: they
/// no longer hold. Paths are relative to the repository root shown in --json (`root`).
///
/// One tab-separated line per reservation: path, mode, session, pid, holder state, age, expiry,
/// cwd, reason; on a terminal a header line first. None held: "no reservations held" on
/// stderr, nothing on stdout.
///
/// Example: `concur reservations --json | jq '.reservations[] | select(.mode == "exclusive")'`
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `concur reservations`.
pub fn run(_args: &Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let r = Reservations::open(ctx.home()?)?;
    let all = r.list()?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "reservations": all }));
        return Ok(Exit::Ok);
    }
    if all.is_empty() {
        eprintln!("no reservations held");
        return Ok(Exit::Ok);
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        print_line(report::LIST_HEADING);
    }
    let now = now_unix_ms();
    for h in &all {
        print_line(&h.list_line(now));
    }
    Ok(Exit::Ok)
}
