//! The verbs' etcd paths, taken when a backend is set (`--backend`, `CONCUR_BACKEND`, or the
//! config's `[backend] url`): `token issue|take`. Same options, output and exit codes as the
//! local paths. (`lock --name` and `slot` go through `concur::hold` on every backend.)

use concur::etcd::{Client, token};

use super::token::Action;
use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// `concur token issue|take NAME` on etcd.
pub fn token(client: &Client, action: Action, ctx: &Ctx) -> Result<Exit, CliError> {
    let session = ctx.session()?.map(|s| s.to_string());
    match action {
        Action::Issue {
            name,
            ttl,
            data,
            replace,
        } => {
            let data = match data {
                Some(d) => serde_json::from_str(&d)
                    .map_err(|e| CliError::invalid(format!("--data is not JSON: {e}")))?,
                None => serde_json::Value::Null,
            };
            let rev = token::issue(client, &name, &data, ttl, session.as_deref(), replace)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({
                    "token": name, "backend": "etcd", "revision": rev,
                    "ttl_ms": ttl.map(|t| t.as_millis()),
                }));
            }
            Ok(Exit::Ok)
        }
        Action::Take {
            name: Some(name), ..
        } => {
            let t = token::take(client, &name, session.as_deref())?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({
                    "token": name, "backend": "etcd", "outcome": "won",
                    "revision": t.revision, "payload": t.data,
                }));
            } else if !t.data.is_null() {
                print_line(&t.data.to_string());
            }
            Ok(Exit::Ok)
        }
        Action::Take { name: None, .. } => Err(CliError::usage("take needs NAME")),
    }
}
