//! Fenced writes and compare-and-swap updates of values on etcd.
//!
//! A fenced write names the lock it was made under and that lock's fencing token; etcd applies it
//! only if the lock key still exists *with that create revision* — checked inside the same
//! transaction as the write, so a holder that was paused past its lease and replaced can no
//! longer write, however late its request arrives. [`update`] is a read-modify-write loop that
//! commits only if the value's mod revision is still the one it read (optionally fenced too):
//! concurrent updaters never lose each other's changes, and a retried write that had committed
//! is recognised (a nonce in the side key `KEY.cas-writer`), so `f` is never applied twice.

use super::client::Client;
use super::wire::{Compare, KeyValue, Op};
use crate::error::{Error, Result};

/// A lock name and the token it was acquired with.
#[derive(Debug, Clone)]
pub struct Fence {
    /// The lock's name.
    pub lock: String,
    /// The fencing token the writer holds.
    pub token: i64,
}

impl Fence {
    fn compare(&self, client: &Client) -> Compare {
        Compare::CreateRevision(super::lock::key(client, &self.lock), self.token)
    }

    fn stale(&self, client: &Client) -> Error {
        let now = super::lock::holder(client, &self.lock)
            .ok()
            .flatten()
            .map_or_else(
                || "nobody holds it now".to_string(),
                |h| format!("now held with token {}", h.token),
            );
        Error::Precondition(format!(
            "fencing token {} is stale for lock {} ({now}); write refused",
            self.token, self.lock
        ))
    }
}

/// Puts `key` = `value` only while lock `fence.lock` is still held with `fence.token`.
///
/// # Errors
/// [`Error::Precondition`] when the token is stale (nothing written); [`Error::Io`] when no
/// member answered.
pub fn put(client: &Client, fence: &Fence, key: &[u8], value: &[u8]) -> Result<i64> {
    let t = client.txn(
        &[fence.compare(client)],
        &[Op::Put(key.to_vec(), value.to_vec(), 0)],
        &[],
    )?;
    if t.succeeded {
        Ok(t.revision)
    } else {
        Err(fence.stale(client))
    }
}

/// Reads `key`, computes its new value with `f` (given the current value, `None` if absent), and
/// writes it only if nobody changed the key in between (and, with a fence, only while the lock is
/// still held with that token); retries on a concurrent change. Returns the value written.
///
/// # Errors
/// Whatever `f` returns (nothing written); [`Error::Precondition`] when the fence is stale;
/// [`Error::Io`] when no member answered.
pub fn update(
    client: &Client,
    key: &[u8],
    fence: Option<&Fence>,
    mut f: impl FnMut(Option<&[u8]>) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    // Each write also records a nonce in a side key, in the same transaction: a retry whose
    // first attempt committed but lost its answer finds its own nonce there (with the key's
    // mod revision) and reports success instead of applying `f` a second time.
    let mut side = key.to_vec();
    side.extend_from_slice(b".cas-writer");
    loop {
        let current: Option<KeyValue> = client.get(key)?;
        let new = f(current.as_ref().map(|kv| kv.value.as_slice()))?;
        let mut cmp = vec![match &current {
            Some(kv) => Compare::ModRevision(key.to_vec(), kv.mod_revision),
            None => Compare::CreateRevision(key.to_vec(), 0),
        }];
        if let Some(fe) = fence {
            cmp.push(fe.compare(client));
        }
        let nonce = super::nonce();
        let t = client.txn(
            &cmp,
            &[
                Op::Put(key.to_vec(), new.clone(), 0),
                Op::Put(side.clone(), nonce.clone().into_bytes(), 0),
            ],
            &[Op::Get(key.to_vec()), Op::Get(side.clone())],
        )?;
        if t.succeeded {
            return Ok(new);
        }
        if let (Some(Some(now)), Some(Some(w))) = (t.gets.first(), t.gets.get(1))
            && w.value == nonce.as_bytes()
            && w.mod_revision == now.mod_revision
        {
            return Ok(new); // our own earlier attempt committed
        }
        if let Some(fe) = fence {
            let still = super::lock::holder(client, &fe.lock)?.is_some_and(|h| h.token == fe.token);
            if !still {
                return Err(fe.stale(client));
            }
        }
        // Someone else changed the value: read it again and re-apply `f`.
    }
}
