//! `concur release [PATH|GLOB...]`: give back this session's reservations.

use concur::reserve::{Reservations, Target, report};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Release this session's edit reservations: the named ones, or all of them.
///
/// A PATH|GLOB must name a reservation exactly as it was made (after resolution); with none
/// given, every reservation of the session goes. Exit 1 when named reservations were not held.
///
/// Example: `concur release 'src/parser/**'` or just `concur release`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reservations to release (default: all of this session's)
    #[arg(value_name = "PATH|GLOB")]
    paths: Vec<String>,
}

/// Runs `concur release`.
pub fn run(args: &Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let session = ctx.require_session()?;
    let cwd = crate::ctx::cwd()?;
    let targets = args
        .paths
        .iter()
        .map(|p| Target::resolve(p, &cwd))
        .collect::<Result<Vec<_>, _>>()?;
    let r = Reservations::open(ctx.home()?)?;
    let named = !targets.is_empty();
    let gone = r.release(&session, named.then_some(targets.as_slice()))?;
    let names = report::not_held(&targets, &gone);
    let message = format!(
        "session {session} holds no reservation of {}",
        names.join(", ")
    );
    if ctx.json {
        let mut v =
            serde_json::json!({ "ok": names.is_empty(), "released": gone, "not_held": names });
        if !names.is_empty() {
            eprintln!("concur: release: {message}");
            v["error"] = serde_json::json!({ "kind": "conflict", "message": message, "exit": 1 });
        }
        print_line(&v.to_string());
    } else {
        for g in &gone {
            print_line(&format!("released {}", g.path));
        }
        if !names.is_empty() {
            return Err(CliError::new(Exit::Conflict, "conflict", message));
        }
    }
    Ok(if names.is_empty() {
        Exit::Ok
    } else {
        Exit::Conflict
    })
}
