//! Fenced writes and compare-and-swap updates of values on etcd.
//!
//! A fenced write names the lock it was made under and that lock's fencing token; etcd applies it
//! only if the lock key still exists *with that create revision* — checked inside the same
//! transaction as the write, so a holder that was paused past its lease and replaced can no
//! longer write, however late its request arrives. [`update`] is a read-modify-write loop that
//! commits only if the value's mod revision is still the one it read (optionally fenced too):
//! concurrent updaters never lose each other's changes, and a retried write that had committed
//! is recognised (a nonce in a side key), so `f` is never applied twice. [`check`] is the
//! one-read holder check that fenced writes of local files run under their sidecar lock.

use super::client::Client;
use super::lock::Holder;
use super::wire::{Compare, KeyValue, Op};
use crate::error::{Error, Result};

pub use crate::fence::Fence;

impl Fence {
    fn compare(&self, client: &Client) -> Compare {
        Compare::CreateRevision(super::lock::key(client, &self.lock), self.token)
    }

    fn stale(&self, client: &Client) -> Error {
        self.stale_given(
            super::lock::holder(client, &self.lock)
                .ok()
                .flatten()
                .as_ref(),
        )
    }

    fn stale_given(&self, now: Option<&Holder>) -> Error {
        let now = now.map_or_else(
            || "nobody holds it now".to_string(),
            |h| format!("now held with token {}", h.token),
        );
        Error::Precondition(format!(
            "fencing token {} is stale for lock {} ({now}); write refused",
            self.token, self.lock
        ))
    }
}

/// `Ok` if lock `fence.lock` is held with `fence.token` right now (one linearizable read).
///
/// # Errors
/// [`Error::Precondition`] naming the current token (or that nobody holds the lock);
/// [`Error::Io`] when no member answered.
pub fn check(client: &Client, fence: &Fence) -> Result<()> {
    let now = super::lock::holder(client, &fence.lock)?;
    if now.as_ref().is_some_and(|h| h.token == fence.token) {
        Ok(())
    } else {
        Err(fence.stale_given(now.as_ref()))
    }
}

/// [`check`] for a fenced write of a local file, which also accepts the token of a task lease
/// (`concur lease acquire`, [`super::tasks`]): `Ok` if lock `fence.lock` is held with
/// `fence.token`, or task `fence.lock` is (its holder key's create revision, which is the token
/// `lease acquire` prints). A revision names one creation, so the two cannot be confused.
///
/// # Errors
/// As [`check`].
pub fn check_holder(client: &Client, fence: &Fence) -> Result<()> {
    proof(client, fence).map(drop)
}

/// The comparison that proves `fence` in a transaction: the create revision of lock NAME's key
/// when that lock is held with the token now, else of task NAME's holder key when that task is
/// (see [`check_holder`]).
fn proof(client: &Client, fence: &Fence) -> Result<Compare> {
    let lock = super::lock::holder(client, &fence.lock)?;
    if lock.as_ref().is_some_and(|h| h.token == fence.token) {
        return Ok(fence.compare(client));
    }
    let key = client.key(&format!("task/{}", fence.lock));
    let task = client.get(&key)?.map(|kv| Holder::from_kv(&kv));
    if task.as_ref().is_some_and(|h| h.token == fence.token) {
        return Ok(Compare::CreateRevision(key, fence.token));
    }
    Err(fence.stale_given(lock.as_ref().or(task.as_ref())))
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
    let mut side = key.to_vec();
    side.extend_from_slice(b".cas-writer");
    let done = cas(client, key, &side, fence, |kv| {
        f(kv.map(|kv| kv.value.as_slice())).map(Some)
    })?;
    Ok(done.value.unwrap_or_default())
}

/// What [`cas`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cas {
    /// The key's value now (`None`: absent, and `f` left it so).
    pub value: Option<Vec<u8>>,
    /// The key's mod revision now (0: absent).
    pub revision: i64,
    /// The key was written (`f` returned a value different from the current one).
    pub changed: bool,
}

/// The compare-and-swap loop behind [`update`], with the side key for the writer's nonce named
/// by the caller, and `f` able to leave the value as it is (`Ok(None)`): then nothing is written
/// (with a fence, the fence is still checked in a transaction with the value's mod revision).
///
/// Every write also puts a fresh nonce into `side` in the same transaction. A retry whose first
/// attempt committed but lost its answer finds its own nonce there, at the key's mod revision,
/// and reports success instead of applying `f` a second time.
///
/// # Errors
/// Whatever `f` returns (nothing written); [`Error::Precondition`] when the fence is stale;
/// [`Error::Io`] when no member answered.
pub fn cas(
    client: &Client,
    key: &[u8],
    side: &[u8],
    fence: Option<&Fence>,
    mut f: impl FnMut(Option<&KeyValue>) -> Result<Option<Vec<u8>>>,
) -> Result<Cas> {
    // The lock's key first (no extra read); a task lease's once a failed compare shows the
    // token is that task's (see `proof`).
    let mut fenced = fence.map(|fe| fe.compare(client));
    loop {
        let current: Option<KeyValue> = client.get(key)?;
        let new = f(current.as_ref())?.filter(|n| current.as_ref().is_none_or(|kv| kv.value != *n));
        let mut cmp = vec![match &current {
            Some(kv) => Compare::ModRevision(key.to_vec(), kv.mod_revision),
            None => Compare::CreateRevision(key.to_vec(), 0),
        }];
        let Some(new) = new else {
            let unchanged = Cas {
                value: current.as_ref().map(|kv| kv.value.clone()),
                revision: current.as_ref().map_or(0, |kv| kv.mod_revision),
                changed: false,
            };
            let Some(fe) = fence else {
                return Ok(unchanged);
            };
            // A fenced no-op still proves the fence, at the revision the value was read.
            cmp.extend(fenced.clone());
            if client.txn(&cmp, &[], &[])?.succeeded {
                return Ok(unchanged);
            }
            fenced = Some(proof(client, fe)?);
            continue; // the value changed under us: re-read and re-apply `f`
        };
        cmp.extend(fenced.clone());
        let nonce = super::nonce();
        let t = client.txn(
            &cmp,
            &[
                Op::Put(key.to_vec(), new.clone(), 0),
                Op::Put(side.to_vec(), nonce.clone().into_bytes(), 0),
            ],
            &[Op::Get(key.to_vec()), Op::Get(side.to_vec())],
        )?;
        if t.succeeded {
            return Ok(Cas {
                value: Some(new),
                revision: t.revision,
                changed: true,
            });
        }
        if let (Some(Some(now)), Some(Some(w))) = (t.gets.first(), t.gets.get(1))
            && w.value == nonce.as_bytes()
            && w.mod_revision == now.mod_revision
        {
            // Our own earlier attempt committed.
            return Ok(Cas {
                value: Some(new),
                revision: now.mod_revision,
                changed: true,
            });
        }
        if let Some(fe) = fence {
            fenced = Some(proof(client, fe)?);
        }
        // Someone else changed the value: read it again and re-apply `f`.
    }
}
