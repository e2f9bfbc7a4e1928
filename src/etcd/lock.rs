//! A named mutual-exclusion lock on etcd, with a fencing token.
//!
//! Acquire is one transaction: *if the lock key does not exist (create revision 0), put it on my
//! own lease; otherwise return the holder*. Never get-then-put. The fencing token is the key's
//! create revision: etcd's revision counter only grows, so every later holder of the same name
//! has a larger token. A waiter watches the holder's key from the revision it saw and retries
//! when it is deleted (released, revoked, or expired with its lease): no polling.
//!
//! Guarantees: at most one key exists per name, so at most one holder at a time *by etcd's
//! account*. A holder that stops renewing (paused, partitioned) loses the key when its lease
//! expires; it may not notice in time, which is why writes it makes under the lock should be
//! fenced ([`LockGuard::check`], [`super::fence`]). A retried acquire whose first attempt
//! committed but timed out recognises its own key (its lease id) and takes it.
//!
//! Not guaranteed: fairness. Waiters race for the key when it is deleted.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::Client;
use super::lease::Lease;
use super::pool::Pool;
use super::wire::{Compare, KeyValue, Op};
use super::{Wait, owner_value};
use crate::error::{Error, Result};

/// Who holds a lock (or slot, or lease) on etcd.
#[derive(Debug, Clone)]
pub struct Holder {
    /// The holder's fencing token (its key's create revision).
    pub token: i64,
    /// The holder's etcd lease id.
    pub lease: i64,
    /// What the holder wrote about itself: pid, session, host, since.
    pub info: Value,
}

impl Holder {
    pub(crate) fn from_kv(kv: &KeyValue) -> Holder {
        Holder {
            token: kv.create_revision,
            lease: kv.lease,
            info: serde_json::from_slice(&kv.value).unwrap_or(Value::Null),
        }
    }

    /// What the holder says about itself, as every backend describes a holder.
    pub fn holder(&self) -> crate::lock::Holder {
        serde_json::from_value(self.info.clone()).unwrap_or_default()
    }

    /// A one-line description: `pid P (session S, 3 s) on HOST, token T`.
    pub fn describe(&self) -> String {
        format!("{}, token {}", self.holder().describe(), self.token)
    }
}

/// A held etcd lock. Dropping it releases the lock (best effort); [`LockGuard::unlock`] reports.
#[derive(Debug)]
pub struct LockGuard {
    name: String,
    key: Vec<u8>,
    token: i64,
    lease: Option<Lease>,
}

impl LockGuard {
    /// The fencing token: larger than every earlier holder's token for this name.
    pub fn token(&self) -> i64 {
        self.token
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lease the lock is held on.
    pub fn lease(&self) -> &Lease {
        self.lease.as_ref().expect("lease present until unlock")
    }

    /// `Ok` while this holder may still act (its lease bound has not passed).
    ///
    /// # Errors
    /// [`Error::Precondition`] once the lease may have expired.
    pub fn check(&self) -> Result<()> {
        self.lease().check()
    }

    /// Releases the lock in one request: revokes the holder's own lease, which deletes the key
    /// with it, or, for a pooled lease, deletes the key if it still has this holder's token and
    /// puts the lease back (see [`Lease::release_key`]). Nobody else's key is touched.
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered (the lease then expires after its TTL).
    pub fn unlock(mut self) -> Result<()> {
        let lease = self.lease.take().expect("lease present until unlock");
        lease.release_key(&self.key, self.token)
    }

    /// Leaves the lock held after this process exits, until the lease's TTL runs out unrenewed.
    /// Returns the token and lease id.
    pub fn detach(mut self) -> (i64, i64) {
        let lease = self.lease.take().expect("lease present until unlock");
        (self.token, lease.detach())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Revoking the lease deletes the key with it.
        drop(self.lease.take());
    }
}

/// The lock key for `name`.
pub(crate) fn key(client: &Client, name: &str) -> Vec<u8> {
    client.key(&format!("lock/{name}"))
}

/// The current holder of lock `name`, if any.
///
/// # Errors
/// [`Error::Io`] when no member answered.
pub fn holder(client: &Client, name: &str) -> Result<Option<Holder>> {
    Ok(client
        .get(&key(client, name))?
        .map(|kv| Holder::from_kv(&kv)))
}

/// Acquires lock `name` with a lease of `ttl` (from `pool` when given, see [`super::pool`]),
/// waiting as `wait` says.
///
/// `Ok(None)`: busy and `wait` was [`Wait::No`]. `me` is recorded for other callers to see.
///
/// # Errors
/// [`Error::Timeout`] when a timed wait ran out; [`Error::Io`] when no member answered.
///
/// # Examples
///
/// ```no_run
/// use concur::etcd::{Client, Wait, lock};
/// let c = Client::new("etcd://127.0.0.1:2379")?;
/// let me = concur::lock::Holder::me(None, None);
/// let ttl = std::time::Duration::from_secs(10);
/// let g = lock::lock(&c, None, "deploy", ttl, Wait::Forever, &me)?.expect("waited");
/// println!("token {}", g.token());
/// g.unlock()?;
/// # Ok::<(), concur::Error>(())
/// ```
pub fn lock(
    client: &Client,
    pool: Option<&Pool>,
    name: &str,
    ttl: Duration,
    wait: Wait,
    me: &crate::lock::Holder,
) -> Result<Option<LockGuard>> {
    super::check_name("lock", name)?;
    let started = Instant::now();
    let deadline = wait.deadline(started);
    let key = key(client, name);
    let mut lease = super::pool::take(pool, client, ttl)?;
    let value = owner_value(me);
    loop {
        lease.check()?; // stopped while waiting past the TTL: the lease is gone
        let t = Lease::known(&mut lease, client, |lease| {
            client.txn(
                &[Compare::CreateRevision(key.clone(), 0)],
                &[
                    Op::Put(key.clone(), value.clone(), lease.id()),
                    Op::Get(key.clone()),
                ],
                &[Op::Get(key.clone())],
            )
        })?;
        let held = t.gets.first().cloned().flatten();
        match held {
            Some(kv) if kv.lease == lease.id() => {
                // Won now, or an earlier attempt that timed out had committed: our own key.
                return Ok(Some(LockGuard {
                    name: name.to_string(),
                    key,
                    token: kv.create_revision,
                    lease: Some(lease),
                }));
            }
            // Not ours: nothing was put on the lease, which can go back as it is.
            Some(_) if matches!(wait, Wait::No) => {
                lease.put_back();
                return Ok(None);
            }
            Some(_) => {
                let woke = super::wait_for_delete(
                    client,
                    &key,
                    None,
                    t.revision + 1,
                    deadline,
                    super::RECHECK,
                );
                if woke.is_err() {
                    lease.put_back();
                    return Err(timeout("etcd lock", name, started));
                }
            }
            // Deleted between the compare and the read: try again at once.
            None => {}
        }
    }
}

pub(crate) fn timeout(what: &'static str, name: &str, started: Instant) -> Error {
    Error::Timeout {
        what,
        path: name.into(),
        secs: started.elapsed().as_secs_f64(),
    }
}
