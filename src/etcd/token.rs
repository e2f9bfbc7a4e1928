//! One-time tokens on etcd: issue = create-if-absent, take = delete with a compare on the
//! token's mod revision, so exactly one taker wins.
//!
//! Keys: `token/NAME` holds the live token (on a lease of the token's TTL when it has one, so
//! etcd itself expires it — no wall-clock comparison across machines); `token-issued/NAME` is a
//! copy without a lease, written with it; `token-taken/NAME` records the last take (who, session,
//! nonce). A take deletes the token and writes the record in one transaction. With the token key
//! gone, the two revisions tell what happened: an issue newer than the last take means it
//! *expired* untaken (exit 3), otherwise it was *taken* (exit 1). A taker whose transaction
//! timed out and was retried finds its own nonce in the record and reports its win.

use std::time::Duration;

use serde_json::{Value, json};

use super::client::Client;
use super::wire::{Compare, KeyValue, Op};
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

/// Issues token `name` carrying `data`, expiring after `ttl` if given; with `replace`, over a
/// live one.
///
/// # Errors
/// [`Error::Conflict`] when a token of that name is live (and not `replace`); [`Error::Io`]
/// when no member answered.
pub fn issue(
    client: &Client,
    name: &str,
    data: &Value,
    ttl: Option<Duration>,
    session: Option<&str>,
    replace: bool,
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
    let absent = [Compare::CreateRevision(live.clone(), 0)];
    let t = client.txn(
        if replace { &[] } else { &absent },
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
/// One transaction: *if the token key exists (mod revision > 0), read it, delete it and record
/// the taker; otherwise read the last take record and the issue record*. Transactions are
/// serialised, so of concurrent takers exactly one sees the key.
///
/// # Errors
/// [`Error::Conflict`] when there is no live token (someone else took it, or none was issued);
/// [`Error::Precondition`] when it expired untaken; [`Error::Io`] when no member answered.
pub fn take(client: &Client, name: &str, session: Option<&str>) -> Result<Taken> {
    super::check_name("token", name)?;
    let (live, issued, taken) = keys(client, name);
    let nonce = super::nonce();
    let record = json!({ "pid": std::process::id(), "session": session, "nonce": nonce });
    let t = client.txn(
        &[Compare::ModRevisionAbove(live.clone(), 0)],
        &[
            Op::Get(live.clone()),
            Op::Delete(live),
            Op::Put(taken.clone(), record.to_string().into_bytes(), 0),
        ],
        &[Op::Get(taken), Op::Get(issued)],
    )?;
    let data = |kv: &KeyValue| {
        serde_json::from_slice::<Value>(&kv.value)
            .ok()
            .and_then(|v| v.get("data").cloned())
            .unwrap_or(Value::Null)
    };
    if t.succeeded {
        let kv = t.gets.first().cloned().flatten();
        return Ok(Taken {
            data: kv.as_ref().map_or(Value::Null, data),
            revision: t.revision,
        });
    }
    let last = t.gets.first().cloned().flatten();
    let issue = t.gets.get(1).cloned().flatten();
    let taken_rev = last.as_ref().map_or(0, |kv| kv.mod_revision);
    match (&last, &issue) {
        // Our earlier attempt committed before its answer was lost.
        (Some(l), Some(i)) if taken_rev > i.mod_revision && is_ours(l, &nonce) => Ok(Taken {
            data: data(i),
            revision: l.mod_revision,
        }),
        (_, Some(i)) if i.mod_revision > taken_rev => {
            Err(Error::Precondition(format!("token {name} expired")))
        }
        (Some(_), _) => Err(Error::Conflict(format!(
            "token {name} was taken by another caller"
        ))),
        _ => Err(Error::Conflict(format!("token {name} was never issued"))),
    }
}

fn is_ours(kv: &KeyValue, nonce: &str) -> bool {
    serde_json::from_slice::<Value>(&kv.value)
        .ok()
        .is_some_and(|v| v.get("nonce").and_then(Value::as_str) == Some(nonce))
}
