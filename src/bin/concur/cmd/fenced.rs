//! `--fence NAME:TOKEN` for `write` and `json`: parsing, and the checks a fenced write of a
//! local file runs under its sidecar lock (the file's token record; with an etcd backend, also
//! that the lock, or the task lease, is held with that token now).

use concur::fence::{Fence, Fencing};

use crate::ctx::Ctx;
use crate::exit::CliError;

/// Parses `--fence NAME:TOKEN` (a clap value parser: bad syntax is a usage error, exit 2).
pub fn parse(s: &str) -> Result<Fence, String> {
    s.parse::<Fence>().map_err(|e| e.to_string())
}

/// The fencing for a write of a local file: the token record, plus the holder check on etcd
/// when a backend is in effect.
pub fn local(ctx: &Ctx, fence: Fence) -> Result<Fencing, CliError> {
    let fencing = Fencing::new(fence);
    #[cfg(feature = "etcd")]
    if let Some(client) = ctx.etcd()? {
        return Ok(fencing.check(move |f| concur::etcd::fence::check_holder(&client, f)));
    }
    #[cfg(not(feature = "etcd"))]
    ctx.etcd()?;
    Ok(fencing)
}

/// The `fence` field of `--json` output.
pub fn json(fence: Option<&Fence>) -> serde_json::Value {
    fence.map_or(
        serde_json::Value::Null,
        |f| serde_json::json!({ "lock": f.lock, "token": f.token }),
    )
}
