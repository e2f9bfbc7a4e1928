//! `--fence NAME:TOKEN` for `write` and `json`: parsing, the fencing a write of a local file
//! gets on the backend in effect ([`concur::backend::documents::Documents::fencing`]), and the
//! `--json` field.

use concur::fence::{Fence, Fencing};

use crate::ctx::Ctx;
use crate::exit::CliError;

/// Parses `--fence NAME:TOKEN` (a clap value parser: bad syntax is a usage error, exit 2).
pub fn parse(s: &str) -> Result<Fence, String> {
    s.parse::<Fence>().map_err(|e| e.to_string())
}

/// The fencing for a write of a local file on the backend in effect (the token record, plus
/// the holder check on etcd).
pub fn local(ctx: &Ctx, fence: Fence) -> Result<Fencing, CliError> {
    Ok(ctx.backend()?.documents().fencing(fence))
}

/// The `fence` field of `--json` output.
pub fn json(fence: Option<&Fence>) -> serde_json::Value {
    fence.map_or(
        serde_json::Value::Null,
        |f| serde_json::json!({ "lock": f.lock, "token": f.token }),
    )
}
