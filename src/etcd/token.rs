//! One-time tokens on etcd: issue = create-if-absent, take = delete with a compare on the
//! token's mod revision, so exactly one taker wins.
//!
//! Keys: `token/NAME` holds the live token (on a lease of the token's TTL when it has one, so
//! etcd itself expires it — no wall-clock comparison across machines); `token-issued/NAME`
//! remembers that it was issued (no lease), so a take after expiry can say *expired* (exit 3)
//! rather than *no such token*; `token-taken/NAME` records the last take (who, session, nonce).
//! A take deletes the token and the issued marker and writes the record in one transaction. A
//! taker whose transaction timed out and was retried finds its own nonce in the record and
//! reports its win.

use std::time::Duration;

use serde_json::{Value, json};

use super::client::Client;
use super::wire::{Compare, Op};
use crate::error::{Error, Result};

/// A taken token.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The data given at issue.
    pub data: Value,
    /// The revision at which it was taken.
    pub revision: i64,
}

fn keys(client: &Client, name: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    (
        client.key(&format!("token/{name}")),
        client.key(&format!("token-issued/{name}")),
        client.key(&format!("token-taken/{name}")),
    )
}

/// Issues token `name` carrying `data`, expiring after `ttl` if given.
///
/// # Errors
/// [`Error::Conflict`] when a token of that name is live; [`Error::Io`] when no member answered.
pub fn issue(
    client: &Client,
    name: &str,
    data: &Value,
    ttl: Option<Duration>,
    session: Option<&str>,
) -> Result<i64> {
    super::check_name("token", name)?;
    let (live, issued, _) = keys(client, name);
    let lease = match ttl {
        Some(t) => client.grant(t)?.0,
        None => 0,
    };
    let nonce = super::nonce();
    let value = json!({
        "data": data,
        "issuer": { "pid": std::process::id(), "session": session },
        "nonce": nonce,
    })
    .to_string()
    .into_bytes();
    let t = client.txn(
        &[Compare::CreateRevision(live.clone(), 0)],
        &[
            Op::Put(live.clone(), value.clone(), lease),
            Op::Put(issued, value, 0),
        ],
        &[Op::Get(live)],
    )?;
    if t.succeeded {
        return Ok(t.revision);
    }
    let existing = t.gets.first().cloned().flatten();
    if let Some(kv) = existing {
        let v: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        if v.get("nonce").and_then(Value::as_str) == Some(nonce.as_str()) {
            return Ok(kv.create_revision); // our own earlier attempt committed
        }
    }
    if lease != 0 {
        let _ = client.revoke(lease);
    }
    Err(Error::Conflict(format!("token {name} is already issued")))
}

/// Takes token `name`: exactly one caller wins and gets its data.
///
/// # Errors
/// [`Error::Conflict`] when there is no live token (someone else took it, or none was issued);
/// [`Error::Precondition`] when it expired untaken; [`Error::Io`] when no member answered.
pub fn take(client: &Client, name: &str, session: Option<&str>) -> Result<Taken> {
    super::check_name("token", name)?;
    let (live, issued, taken) = keys(client, name);
    let nonce = super::nonce();
    let record = json!({ "pid": std::process::id(), "session": session, "nonce": nonce });
    loop {
        let Some(kv) = client.get(&live)? else {
            return Err(match client.get(&issued)? {
                Some(_) => Error::Precondition(format!("token {name} expired")),
                None => Error::Conflict(format!(
                    "token {name} is not available (taken or never issued)"
                )),
            });
        };
        let mut rec = record.clone();
        rec["token"] = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        let t = client.txn(
            &[Compare::ModRevision(live.clone(), kv.mod_revision)],
            &[
                Op::Delete(live.clone()),
                Op::Delete(issued.clone()),
                Op::Put(taken.clone(), rec.to_string().into_bytes(), 0),
            ],
            &[Op::Get(taken.clone()), Op::Get(live.clone())],
        )?;
        let data = |v: &Value| v.get("data").cloned().unwrap_or(Value::Null);
        if t.succeeded {
            return Ok(Taken {
                data: data(&rec["token"]),
                revision: t.revision,
            });
        }
        if let Some(Some(last)) = t.gets.first() {
            let v: Value = serde_json::from_slice(&last.value).unwrap_or(Value::Null);
            if v.get("nonce").and_then(Value::as_str) == Some(nonce.as_str()) {
                // Our earlier attempt committed before its answer was lost.
                return Ok(Taken {
                    data: data(&v["token"]),
                    revision: last.mod_revision,
                });
            }
        }
        match t.gets.get(1) {
            // Re-issued (or updated) in between: try again on the new version.
            Some(Some(_)) => {}
            _ => {
                return Err(Error::Conflict(format!(
                    "token {name} was taken by another caller"
                )));
            }
        }
    }
}
