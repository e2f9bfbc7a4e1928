//! `concur pointer set|get|clear|list`: one value per session under a shared name.

use concur::marker::{Pointers, escape_controls};
use concur::session::Registry;

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Session-scoped pointers ("my active task") instead of one global file.
///
/// Each session has its own value; `get` reads this session's (or, with --session S, session S's:
/// another session's value is only read when asked for by id); `list` shows every live session's.
/// `get` exits 3 when the value is not set.
///
/// Example: `concur pointer set active-task T-42 && concur pointer list active-task`
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Set this session's value
    ///
    /// Example: `concur pointer set active-task T-42`
    Set {
        /// Pointer name ([A-Za-z0-9._-]{1,128})
        name: String,
        /// The value
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Print this session's value (or session S's with --session S); exit 3 when unset
    ///
    /// Example: `task=$(concur pointer get active-task)`
    Get {
        /// Pointer name
        name: String,
    },
    /// Clear this session's value
    ///
    /// Example: `concur pointer clear active-task`
    Clear {
        /// Pointer name
        name: String,
    },
    /// Every live session's value (sessions known dead are left out)
    ///
    /// Example: `concur pointer list active-task --json`
    List {
        /// Pointer name
        name: String,
    },
}

/// Runs `concur pointer`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let home = ctx.home()?;
    let pointers = Pointers::new(home);
    match args.action {
        Action::Set { name, value } => {
            let session = ctx.require_session()?;
            pointers.set(&session, &name, &value)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "name": name, "session": session.as_str(), "value": value }));
            }
        }
        Action::Get { name } => {
            let session = ctx.require_session()?;
            let v = pointers.get(&session, &name)?;
            if ctx.json {
                ctx.print_json(
                    &serde_json::json!({ "name": name, "session": session.as_str(), "value": v }),
                );
            } else if let Some(v) = &v {
                print_line(&escape_controls(v));
            }
            if v.is_none() {
                return Ok(Exit::Precondition);
            }
        }
        Action::Clear { name } => {
            let session = ctx.require_session()?;
            let was = pointers.clear(&session, &name)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "name": name, "cleared": was }));
            }
        }
        Action::List { name } => {
            let reg = Registry::open(home)?;
            let values = pointers.list(&name, &reg)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "name": name, "values": values }));
            } else {
                for v in &values {
                    print_line(&v.line());
                }
            }
        }
    }
    Ok(Exit::Ok)
}
