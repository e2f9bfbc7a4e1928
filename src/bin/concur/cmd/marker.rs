//! `concur marker set|check|clear|migrate`: session-scoped markers with a legacy fallback.

use concur::marker::{Found, Markers, Migrated, deprecation_warning};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Session-scoped markers instead of global /tmp files.
///
/// `check` exits 0 when the marker is set (printing its data), 3 when not. A marker declared in
/// concur.toml as `[legacy.NAME] path = "/tmp/NAME-{id}"` is also found at its legacy path; with
/// the section's `warn_flag` variable set to 1 (or `warn = true`) such a hit prints
/// `DEPRECATION WARN: ...` on stderr.
///
/// Example: `concur marker set mehanik-cleared --data '{"by":"review"}' && concur marker check mehanik-cleared`
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Set a marker for this session, optionally with JSON data
    ///
    /// Example: `concur marker set mehanik-cleared --data '{"verdict":"pass"}'`
    Set {
        /// Marker name ([A-Za-z0-9._-]{1,128})
        name: String,
        /// JSON data stored with the marker
        #[arg(long, value_name = "JSON", allow_hyphen_values = true)]
        data: Option<String>,
    },
    /// Exit 0 if this session's marker is set (printing its data), else 3
    ///
    /// Example: `concur marker check mehanik-cleared || exit 2`
    Check {
        /// Marker name
        name: String,
    },
    /// Clear this session's marker (and its legacy file, if any)
    ///
    /// Example: `concur marker clear mehanik-cleared`
    Clear {
        /// Marker name
        name: String,
    },
    /// Move legacy files of a marker into the session-scoped place (all sessions, or --session)
    ///
    /// Example: `concur marker migrate mehanik-cleared`
    Migrate {
        /// Marker name (must have a [legacy.NAME] section in concur.toml)
        name: String,
    },
}

/// Runs `concur marker`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let home = ctx.home()?;
    let config = ctx.config()?;
    let markers = Markers::new(home, config.legacy);
    match args.action {
        Action::Set { name, data } => {
            let session = ctx.require_session()?;
            if let Some(d) = &data {
                serde_json::from_str::<serde_json::Value>(d)
                    .map_err(|e| CliError::invalid(format!("--data is not JSON: {e}")))?;
            }
            let path = markers.set(&session, &name, data.as_deref())?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "name": name, "path": path }));
            }
        }
        Action::Check { name } => {
            let session = ctx.require_session()?;
            let found = markers.check(&session, &name)?;
            if let Some(Found::Legacy {
                path, warn: true, ..
            }) = &found
            {
                eprintln!("{}", deprecation_warning(&name, path));
            }
            let Some(found) = found else {
                if ctx.json {
                    ctx.print_json(&serde_json::json!({ "name": name, "set": false }));
                }
                return Ok(Exit::Precondition);
            };
            if ctx.json {
                ctx.print_json(&found.to_json(&name));
            } else if !found.data().is_empty() {
                print_line(found.data());
            }
        }
        Action::Clear { name } => {
            let session = ctx.require_session()?;
            let removed = markers.clear(&session, &name)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "name": name, "removed": removed }));
            }
        }
        Action::Migrate { name } => {
            let session = ctx.session()?;
            let moved = markers.migrate(&name, session.as_ref())?;
            if ctx.json {
                let v: Vec<_> = moved.iter().map(Migrated::to_json).collect();
                ctx.print_json(&serde_json::json!({ "name": name, "migrated": v }));
            } else if moved.is_empty() {
                print_line(&format!("{name}: no legacy files to migrate"));
            } else {
                for m in &moved {
                    print_line(&m.describe(&name));
                }
            }
        }
    }
    Ok(Exit::Ok)
}
