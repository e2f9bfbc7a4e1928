//! One-time tokens on etcd: issue = create-if-absent, take = delete with a compare on the
//! token's mod revision, so exactly one taker wins; every take is recorded in the taker's audit
//! ledger.
//!
//! Keys: `token/NAME` holds the live token (on a lease of the token's TTL when it has one, so
//! etcd itself expires it — no wall-clock comparison across machines); `token-issued/NAME` is a
//! copy without a lease, written with it; `token-taken/NAME` records the last take (who, session,
//! nonce). A take deletes the token and writes the record in one transaction. With the token key
//! gone, the two revisions tell what happened: an issue newer than the last take means it
//! *expired* untaken (exit 3), a take record means it was *taken* (exit 1), neither that it was
//! never issued (exit 1). A taker whose transaction timed out and was retried finds its own
//! nonce in the record and reports its win.
//!
//! ## The audit
//!
//! Every take, won or not, is appended to the audit ledger of the taker's home
//! (`HOME/audit.jsonl`, [`crate::token::audit`]) with `"backend":"etcd"` and the revision — the
//! same record, in the same place, as a local take. Not an etcd key per take: etcd keeps its
//! whole keyspace in memory and under a size quota, and takes (losers included) would grow it
//! without bound, while the question an audit answers — who on this machine tried to take what,
//! when — is asked on the machine. What must hold cluster-wide, that the winner is known, holds
//! in etcd: `token-taken/NAME` names the winner (pid, session, host) and is written in the very
//! transaction that deletes the token. A won take whose local record cannot be written puts the
//! token back (on its lease, if that has not run out) and fails, as locally: all or nothing.

use std::time::Duration;

use serde_json::{Value, json};

use super::client::Client;
use super::wire::{Compare, KeyValue, Op};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::SessionId;
use crate::token::{Audit, Issued, Outcome, Take};

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
    issuer: Option<&SessionId>,
    replace: bool,
) -> Result<Issued> {
    crate::token::check_name(name)?;
    let (live, issued, _) = keys(client, name);
    let lease = match ttl {
        Some(t) => client.grant(t)?.0,
        None => 0,
    };
    let nonce = super::nonce();
    let expires_at = crate::token::expiry(crate::time::now_unix_ms(), ttl);
    let value = json!({
        "data": data,
        "issuer": { "pid": std::process::id(), "session": issuer.map(SessionId::as_str) },
        "expires_at": expires_at,
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
    let done = |revision| Issued {
        token: name.to_string(),
        expires_at,
        revision: Some(revision),
        path: None,
    };
    if t.succeeded {
        return Ok(done(t.revision));
    }
    if let Some(kv) = t.gets.first().cloned().flatten()
        && is_ours(&kv, &nonce)
    {
        return Ok(done(kv.create_revision)); // our own earlier attempt committed
    }
    if lease != 0 {
        let _ = client.revoke(lease);
    }
    Err(Error::Conflict(format!(
        "token {name} is already issued and not yet taken (pass --replace to re-issue)"
    )))
}

/// Takes token `name` and records the take in `home`'s audit ledger: exactly one of any number
/// of concurrent callers (on any machine) gets [`Outcome::Won`] and the token's data.
///
/// # Errors
/// [`Error::Invalid`] for a bad name; [`Error::Io`] when no member answered; the audit's error
/// when the record cannot be written (a won token is put back first).
pub fn take(client: &Client, home: &Home, name: &str, session: Option<&SessionId>) -> Result<Take> {
    let (take, live) = attempt(client, name, session)?;
    let record = Audit {
        token: name,
        outcome: take.outcome.name(),
        session,
        backend: "etcd",
        revision: take.revision,
    };
    crate::token::recorded(home, &record, || match &live {
        Some(kv) => put_back(client, name, kv),
        None => Ok(()),
    })?;
    Ok(take)
}

/// One take, unrecorded (for [`take`], and for `concur diagnose`'s races, which are not real
/// takes): the outcome, and for a win the token's key as it was (to put it back).
///
/// One transaction: *if the token key exists (mod revision > 0), read it, delete it and record
/// the taker; otherwise read the last take record and the issue record*. Transactions are
/// serialised, so of concurrent takers exactly one sees the key.
///
/// # Errors
/// [`Error::Invalid`] for a bad name; [`Error::Io`] when no member answered.
pub(crate) fn attempt(
    client: &Client,
    name: &str,
    session: Option<&SessionId>,
) -> Result<(Take, Option<KeyValue>)> {
    crate::token::check_name(name)?;
    let (live, issued, taken) = keys(client, name);
    let nonce = super::nonce();
    let record = super::owner_value(&crate::lock::Holder::me(
        session.map(|s| s.as_str().to_string()),
        None,
    ));
    let mut record: Value = serde_json::from_slice(&record).unwrap_or_else(|_| json!({}));
    record["nonce"] = Value::String(nonce.clone());
    let t = client.txn(
        &[Compare::ModRevisionAbove(live.clone(), 0)],
        &[
            Op::Get(live.clone()),
            Op::Delete(live),
            Op::Put(taken.clone(), record.to_string().into_bytes(), 0),
        ],
        &[Op::Get(taken), Op::Get(issued)],
    )?;
    let field = |kv: &KeyValue, f: &str| {
        serde_json::from_slice::<Value>(&kv.value)
            .ok()
            .and_then(|v| v.get(f).cloned())
            .unwrap_or(Value::Null)
    };
    let take = |outcome, revision| Take {
        token: name.to_string(),
        outcome,
        payload: Value::Null,
        expired_at: None,
        revision: Some(revision),
        consumed: None,
    };
    if t.succeeded {
        let kv = t.gets.first().cloned().flatten();
        let won = Take {
            payload: kv.as_ref().map_or(Value::Null, |kv| field(kv, "data")),
            ..take(Outcome::Won, t.revision)
        };
        return Ok((won, kv));
    }
    let last = t.gets.first().cloned().flatten();
    let issue = t.gets.get(1).cloned().flatten();
    let taken_rev = last.as_ref().map_or(0, |kv| kv.mod_revision);
    Ok(match (&last, &issue) {
        // Our earlier attempt committed before its answer was lost (nothing to put back: the
        // token's key as it was is not known any more).
        (Some(l), Some(i)) if taken_rev > i.mod_revision && is_ours(l, &nonce) => (
            Take {
                payload: field(i, "data"),
                ..take(Outcome::Won, l.mod_revision)
            },
            None,
        ),
        (_, Some(i)) if i.mod_revision > taken_rev => (
            Take {
                expired_at: field(i, "expires_at").as_u64(),
                ..take(Outcome::Expired, i.mod_revision)
            },
            None,
        ),
        (Some(_), _) => (take(Outcome::Taken, taken_rev), None),
        _ => (take(Outcome::Absent, t.revision), None),
    })
}

/// Puts a token this caller won back as it was (`kv`): the live key on its lease, and a fresh
/// issue record so that a later expiry reads as expired; refused if a token of that name was
/// issued meanwhile.
fn put_back(client: &Client, name: &str, kv: &KeyValue) -> Result<()> {
    let (live, issued, _) = keys(client, name);
    let t = client.txn(
        &[Compare::CreateRevision(live.clone(), 0)],
        &[
            Op::Put(live, kv.value.clone(), kv.lease),
            Op::Put(issued, kv.value.clone(), 0),
        ],
        &[],
    )?;
    if t.succeeded {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "token {name} was issued again meanwhile"
        )))
    }
}

fn is_ours(kv: &KeyValue, nonce: &str) -> bool {
    serde_json::from_slice::<Value>(&kv.value)
        .ok()
        .is_some_and(|v| v.get("nonce").and_then(Value::as_str) == Some(nonce))
}
