//! `concur home`: print the runtime home after checking it.

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Print the runtime home (created 0700 and checked on first use)
///
/// The home is $CONCUR_HOME (an absolute path), else $XDG_STATE_HOME/concur, else
/// ~/.local/state/concur; it is refused if it is a symlink, foreign-owned or group/world-writable.
///
/// Example: `ls "$(concur home)"`
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `concur home`.
pub fn run(_args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let home = ctx.home()?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "home": home.path() }));
    } else {
        print_line(&home.path().display().to_string());
    }
    Ok(Exit::Ok)
}
