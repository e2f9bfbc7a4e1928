//! A counting semaphore (slots) on etcd: N holder keys ranked by create revision.
//!
//! Each contender puts `slot/NAME/h/LEASE` on its own lease, then reads all holder keys sorted by
//! create revision: rank < N holds. Keys created later rank after every existing one, so a
//! contender's rank only ever falls (as earlier keys go); hence the contenders that believe they
//! hold are always among the first N live keys — never more than N. A waiter watches the holder
//! prefix and re-ranks on each delete. The slot count is stored once in `slot/NAME/max`
//! (create-if-absent); a different `max` for the same name is invalid input.
//!
//! The fencing token of a permit is its key's create revision.
//!
//! Not guaranteed: a holder that stops renewing past its TTL loses its slot without noticing in
//! time (see [`super::lease`]); fairness beyond first-come ranking.

use std::time::{Duration, Instant};

use super::client::Client;
use super::lease::Lease;
use super::lock::{Holder, timeout};
use super::pool::Pool;
use super::wire::{Compare, Op, prefix_end};
use super::{Wait, owner_value};
use crate::error::{Error, Result};

/// A held slot. Dropping it frees the slot (best effort); [`Permit::release`] reports.
#[derive(Debug)]
pub struct Permit {
    key: Vec<u8>,
    token: i64,
    rank: usize,
    lease: Option<Lease>,
}

impl Permit {
    /// The permit's fencing token (its key's create revision).
    pub fn token(&self) -> i64 {
        self.token
    }

    /// The slot index this permit got (0-based rank when acquired).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The lease the slot is held on.
    pub fn lease(&self) -> &Lease {
        self.lease.as_ref().expect("lease present until release")
    }

    /// Frees the slot in one request (see [`Lease::release_key`]): the holder key goes, with
    /// the lease or on its own when the lease is pooled.
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered (the lease then expires after its TTL).
    pub fn release(mut self) -> Result<()> {
        let lease = self.lease.take().expect("lease present until release");
        lease.release_key(&self.key, self.token)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        drop(self.lease.take());
    }
}

fn prefix(client: &Client, name: &str) -> Vec<u8> {
    client.key(&format!("slot/{name}/h/"))
}

/// The current holders of slot `name` (the first `max` live keys) and the recorded `max`.
///
/// # Errors
/// [`Error::Io`] when no member answered.
pub fn holders(client: &Client, name: &str) -> Result<(Vec<Holder>, Option<usize>)> {
    super::check_name("slot", name)?;
    let max = client
        .get(&client.key(&format!("slot/{name}/max")))?
        .and_then(|kv| kv.value_str().parse::<usize>().ok());
    let (kvs, _) = client.range_prefix(&prefix(client, name))?;
    let n = max.unwrap_or(kvs.len());
    Ok((kvs.iter().take(n).map(Holder::from_kv).collect(), max))
}

/// Takes one of `max` slots of `name` on a lease of `ttl` (from `pool` when given), waiting as
/// `wait` says; `me` is recorded for [`holders`]. `Ok(None)`: all busy, no wait.
///
/// # Errors
/// [`Error::Invalid`] when `max` is 0 or differs from the count recorded for `name`;
/// [`Error::Timeout`] when a timed wait ran out; [`Error::Io`] when no member answered.
pub fn acquire(
    client: &Client,
    pool: Option<&Pool>,
    name: &str,
    max: usize,
    ttl: Duration,
    wait: Wait,
    me: &crate::lock::Holder,
) -> Result<Option<Permit>> {
    super::check_name("slot", name)?;
    if max == 0 {
        return Err(Error::Invalid("--max must be at least 1".into()));
    }
    let started = Instant::now();
    let deadline = wait.deadline(started);
    let max_key = client.key(&format!("slot/{name}/max"));
    let pfx = prefix(client, name);
    let end = prefix_end(&pfx);
    let mut lease = super::pool::take(pool, client, ttl)?;
    let holder_key = |lease: &Lease| {
        let mut key = pfx.clone();
        key.extend_from_slice(format!("{:016x}", lease.id()).as_bytes());
        key
    };
    // One transaction: record `max` if this is the first claim, put our holder key (on our own
    // lease: a retry after a lost answer rewrites the same key, keeping its create revision),
    // and read the recorded `max` and the ranking.
    let t = Lease::known(&mut lease, client, |lease| {
        let me = Op::Put(holder_key(lease), owner_value(me), lease.id());
        client.txn(
            &[Compare::CreateRevision(max_key.clone(), 0)],
            &[
                Op::Put(max_key.clone(), max.to_string().into_bytes(), 0),
                me.clone(),
                Op::Get(max_key.clone()),
                Op::Prefix(pfx.clone()),
            ],
            &[me, Op::Get(max_key.clone()), Op::Prefix(pfx.clone())],
        )
    })?;
    let key = holder_key(&lease);
    let recorded = t.gets.first().cloned().flatten().map(|kv| kv.value_str());
    if recorded.as_deref() != Some(max.to_string().as_str()) {
        let _ = lease.revoke();
        return Err(Error::Invalid(format!(
            "slot {name} has --max {}, not {max}",
            recorded.unwrap_or_default()
        )));
    }
    let mut first = Some((t.ranges.get(1).cloned().unwrap_or_default(), t.revision));
    loop {
        lease.check()?;
        let (kvs, rev) = match first.take() {
            Some(r) => r,
            None => client.range_prefix(&pfx)?,
        };
        let Some(rank) = kvs.iter().position(|kv| kv.key == key) else {
            return Err(Error::Precondition(format!(
                "slot {name}: our claim vanished (lease expired while waiting)"
            )));
        };
        let token = kvs[rank].create_revision;
        if rank < max {
            return Ok(Some(Permit {
                key,
                token,
                rank,
                lease: Some(lease),
            }));
        }
        if matches!(wait, Wait::No) {
            lease.release_key(&key, token)?;
            return Ok(None);
        }
        if super::wait_for_delete(client, &pfx, Some(&end), rev + 1, deadline, super::RECHECK)
            .is_err()
        {
            let _ = lease.release_key(&key, token);
            return Err(timeout("etcd slot", name, started));
        }
    }
}
