//! `concur token issue|take`: one-time tokens with exactly one taker.

use std::io::Write;
use std::path::{Path, PathBuf};

use concur::SessionId;
use concur::backend::tokens::Issue;
use concur::token;

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Issue and take one-time tokens: exactly one taker wins, every take is audited
///
/// `issue NAME` puts a token in the runtime home ($CONCUR_HOME/tokens/NAME), or with a backend
/// (--backend, $CONCUR_BACKEND, the config) in etcd. `take NAME` consumes it: of any number of
/// concurrent takers, on any machine sharing the backend, exactly one wins (exit 0, prints the
/// token's --data payload, `null` without one); the others exit 1 (taken, or never issued). A
/// token past its --ttl is refused to every taker (exit 3). `take --path P` takes any existing
/// local file the same way (legacy tokens such as /tmp/opus-override-token) and prints its
/// content. Every take (won, taken, absent, expired) is appended to $CONCUR_HOME/audit.jsonl
/// with pid, session, time and backend; a won take whose record cannot be written is put back.
///
/// Exit codes: 0 issued / won, 1 taken or never issued (or issue: already issued),
/// 3 expired, 4 invalid name or data, 74 I/O error (etcd unreachable), 77 unsafe home or
/// symlinked token.
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
    let session = ctx.session()?;
    match args.action {
        Action::Issue {
            name,
            ttl,
            data,
            replace,
        } => {
            token::check_name(&name)?;
            let data = token::parse_data(data.as_deref())?;
            let backend = ctx.backend()?;
            let issue = Issue {
                ttl,
                data: &data,
                issuer: session.as_ref(),
                replace,
            };
            let done = backend.tokens()?.issue(&name, &issue)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({
                    "token": name,
                    "backend": backend.name(),
                    "ttl_ms": ttl.map(|t| t.as_millis()),
                    "expires_at": done.expires_at,
                    "revision": done.revision,
                    "path": done.path,
                }));
            }
            Ok(Exit::Ok)
        }
        Action::Take {
            name: Some(name), ..
        } => {
            token::check_name(&name)?;
            let backend = ctx.backend()?;
            let take = backend.tokens()?.take(&name, session.as_ref())?;
            if let Some(refused) = take.refusal() {
                return Err(refused.into());
            }
            if ctx.json {
                ctx.print_json(&serde_json::json!({
                    "token": name,
                    "backend": backend.name(),
                    "outcome": take.outcome.name(),
                    "payload": take.payload,
                    "revision": take.revision,
                    "consumed": take.consumed,
                }));
            } else {
                print_line(&take.payload.to_string());
            }
            Ok(Exit::Ok)
        }
        // A file is local by nature, whatever the backend.
        Action::Take {
            name: None,
            path: Some(p),
        } => take_file(ctx, &p, session.as_ref()),
        Action::Take { .. } => Err(CliError::usage("take needs NAME or --path P")),
    }
}

/// `concur token take --path P`: the file's content is the payload, printed as it is.
fn take_file(ctx: &Ctx, p: &Path, session: Option<&SessionId>) -> Result<Exit, CliError> {
    let taken = token::take_file(ctx.home()?, p, session)?;
    let (payload, consumed) = taken.into_won(&p.display().to_string())?;
    if ctx.json {
        let mut v = serde_json::json!({
            "token": p, "backend": "local", "outcome": "won", "revision": null,
            "consumed": consumed,
        });
        match serde_json::from_slice::<serde_json::Value>(&payload) {
            Ok(p) => v["payload"] = p,
            Err(_) => v["payload_text"] = String::from_utf8_lossy(&payload).into(),
        }
        ctx.print_json(&v);
    } else if payload.ends_with(b"\n") || payload.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&payload);
        let _ = out.flush();
    } else {
        print_line(&String::from_utf8_lossy(&payload));
    }
    Ok(Exit::Ok)
}
