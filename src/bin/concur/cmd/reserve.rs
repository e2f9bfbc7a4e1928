//! `concur reserve PATH|GLOB...` and `concur reserve check PATH`: edit reservations.

use concur::duration::parse as parse_duration;
use concur::reserve::{Claim, ClaimRequest, Mode, Reservations, Target, report};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Reserve files (or globs) for this session's edits; other sessions' edits are refused.
///
/// Paths are resolved (symlinks, `..`; a new file through its nearest existing directory) and
/// stored relative to the git repository root. Globs use `*`, `?` and `**`; a directory means
/// everything under it. A claim is all or nothing: on any conflict nothing is reserved and every
/// conflicting holder is named (exit 1). Reservations last until `concur release`, `concur
/// session end`, or the death of the session's process; --ttl only frees them once the session is
/// not known alive.
///
/// Example: `concur reserve 'src/parser/**' README.md --reason "parser rewrite"`
///
/// Example: `concur reserve check src/parser/lex.rs --session other-session` (exit 1: denied)
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    check: Option<Sub>,
    /// Paths or globs to reserve (quote globs so the shell leaves them alone)
    #[arg(value_name = "PATH|GLOB")]
    paths: Vec<String>,
    /// Shared: other sessions may reserve it shared too; nobody may take it exclusively
    #[arg(long)]
    shared: bool,
    /// Time to live once the session is not known alive (30s, 10m, 2h)
    #[arg(long, value_name = "D", default_value = "1h")]
    ttl: String,
    /// Why, shown to sessions that run into the reservation
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    reason: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// May this session write PATH? Exit 0 allowed, 1 denied (holders named)
    ///
    /// Example: `concur reserve check src/main.rs --session s2 || echo "ask first"`
    Check {
        /// The path to check
        #[arg(value_name = "PATH")]
        path: String,
    },
}

/// Runs `concur reserve`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let cwd = crate::ctx::cwd()?;
    if let Some(Sub::Check { path }) = args.check {
        let target = Target::resolve(&path, &cwd)?;
        let session = ctx.session()?;
        let access = Reservations::open(ctx.home()?)?.check(session.as_ref(), &target)?;
        if ctx.json {
            ctx.print_json(&access.to_json(&target));
        } else {
            access.lines(&target).iter().for_each(|l| print_line(l));
        }
        return Ok(if access.holders().is_empty() {
            Exit::Ok
        } else {
            Exit::Conflict
        });
    }
    if args.paths.is_empty() {
        return Err(CliError::usage(
            "nothing to reserve: give PATH|GLOB... (see concur reserve --help)",
        ));
    }
    let session = ctx.require_session()?;
    let ttl = parse_duration(&args.ttl)?;
    let targets = args
        .paths
        .iter()
        .map(|p| Target::resolve(p, &cwd))
        .collect::<Result<Vec<_>, _>>()?;
    let req = ClaimRequest {
        session,
        targets,
        mode: if args.shared {
            Mode::Shared
        } else {
            Mode::Exclusive
        },
        ttl,
        reason: args.reason,
        cwd: cwd.display().to_string(),
    };
    let r = Reservations::open(ctx.home()?)?;
    match r.claim(&req)? {
        Claim::Granted(got) => {
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "reserved": got }));
            } else {
                for g in &got {
                    print_line(&format!("reserved {} ({})", g.path, g.mode.name()));
                }
            }
            Ok(Exit::Ok)
        }
        Claim::Refused(conflicts) => {
            let message = report::refusal(&conflicts);
            if ctx.json {
                // One JSON document: the error and the structured conflicts together.
                eprintln!("concur: reserve: {message}");
                print_line(
                    &serde_json::json!({
                        "ok": false,
                        "error": { "kind": "conflict", "message": message, "exit": 1 },
                        "conflicts": conflicts,
                    })
                    .to_string(),
                );
                return Ok(Exit::Conflict);
            }
            Err(CliError::new(Exit::Conflict, "conflict", message))
        }
    }
}
