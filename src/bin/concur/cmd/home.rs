//! `concur home`: print the runtime home after checking it.

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Print the runtime home ($CONCUR_HOME, else $XDG_STATE_HOME/concur, else
/// ~/.local/state/concur), creating it 0700 and refusing it if unsafe.
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
