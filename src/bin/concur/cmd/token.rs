//! `concur token issue|take`: one-time tokens with exactly one taker.

use std::io::Write;
use std::path::PathBuf;

use concur::token::{self, Taken};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Issue and take one-time tokens: exactly one taker wins, every take is audited
///
/// `issue NAME` puts a token in the runtime home ($CONCUR_HOME/tokens/NAME). `take NAME`
/// renames it to a unique consumed name: of any number of concurrent takers exactly one wins
/// (exit 0, prints the token's --data payload), the others exit 1. A token past its --ttl is
/// consumed by the take that finds it but is refused (exit 3). `take --path P` takes any
/// existing file the same way (legacy tokens such as /tmp/opus-override-token) and prints its
/// content. Every take (won, lost, expired) is appended to $CONCUR_HOME/audit.jsonl with pid,
/// session and time.
///
/// Exit codes: 0 issued / won, 1 lost (or issue: already issued), 3 expired,
/// 4 invalid name or data, 74 I/O error, 77 unsafe home or symlinked token.
///
/// Examples:
///   concur token issue opus-override --ttl 10m --data '{"by":"alice","reason":"release"}'
///   if concur token take opus-override >/dev/null; then use_opus; fi
///   concur token take --path /tmp/opus-override-token
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

/// `token` sub-verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Issue token NAME (fails with exit 1 if it exists and was not taken, unless --replace)
    Issue {
        /// Token name: letters, digits, '.', '_', '-'
        name: String,
        /// Expire after this long (e.g. 30s, 5m, 2h, 1d; wall-clock)
        #[arg(long, value_name = "DURATION", value_parser = super::value::duration)]
        ttl: Option<std::time::Duration>,
        /// JSON payload the winner receives
        #[arg(long, value_name = "JSON", allow_hyphen_values = true)]
        data: Option<String>,
        /// Re-issue over an existing untaken token
        #[arg(long)]
        replace: bool,
    },
    /// Take token NAME (or the file --path P); exactly one concurrent taker wins
    Take {
        /// Token name
        #[arg(required_unless_present = "path", conflicts_with = "path")]
        name: Option<String>,
        /// Take this existing file instead of a named token
        #[arg(long, value_name = "P")]
        path: Option<PathBuf>,
    },
}

/// Runs `concur token`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    // With a backend, named tokens live there; `take --path` is a local file and stays local.
    #[cfg(feature = "etcd")]
    if !matches!(args.action, Action::Take { path: Some(_), .. })
        && let Some(client) = ctx.etcd()?
    {
        return super::on_etcd::token(&client, args.action, ctx);
    }
    #[cfg(not(feature = "etcd"))]
    ctx.etcd()?;
    match args.action {
        Action::Issue {
            name,
            ttl,
            data,
            replace,
        } => {
            token::check_name(&name)?;
            let session = ctx.session()?;
            let home = ctx.home()?;
            let p = token::issue(home, &name, ttl, data.as_deref(), session.as_ref(), replace)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({
                    "token": name,
                    "path": p,
                    "ttl_ms": ttl.map(|t| t.as_millis()),
                }));
            }
            Ok(Exit::Ok)
        }
        Action::Take { name, path } => {
            let session = ctx.session()?;
            if let Some(n) = &name {
                token::check_name(n)?;
            }
            let home = ctx.home()?;
            let (label, taken) = match (&name, &path) {
                (Some(n), _) => (n.clone(), token::take(home, n)?),
                (None, Some(p)) => (p.display().to_string(), token::take_path(p)?),
                (None, None) => return Err(CliError::usage("take needs NAME or --path P")),
            };
            token::audit(home, &label, taken.outcome(), session.as_ref())?;
            report(ctx, &label, &taken)
        }
    }
}

fn report(ctx: &Ctx, label: &str, taken: &Taken) -> Result<Exit, CliError> {
    match taken {
        Taken::Won { payload, consumed } => {
            if ctx.json {
                let mut v = serde_json::json!({
                    "token": label, "outcome": "won", "consumed": consumed,
                });
                match serde_json::from_slice::<serde_json::Value>(payload) {
                    Ok(p) => v["payload"] = p,
                    Err(_) => v["payload_text"] = String::from_utf8_lossy(payload).into(),
                }
                ctx.print_json(&v);
            } else if payload.ends_with(b"\n") || payload.is_empty() {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(payload);
                let _ = out.flush();
            } else {
                print_line(&String::from_utf8_lossy(payload));
            }
            Ok(Exit::Ok)
        }
        Taken::Lost => Err(CliError::new(
            Exit::Conflict,
            "conflict",
            format!("token {label} is gone: taken by another process (or never issued)"),
        )),
        Taken::Expired { expired_at, .. } => Err(CliError::new(
            Exit::Precondition,
            "precondition",
            format!(
                "token {label} expired at {} (consumed, not usable)",
                token::iso8601(*expired_at)
            ),
        )),
    }
}
