//! Single-flight on etcd (`concur once KEY -- CMD` with an etcd backend): of all the callers of
//! a key, on any machine, that arrive while its command runs, one runs it; the others wait and
//! get its stdout, stderr and exit status.
//!
//! Keys (under the client's prefix):
//! - `once/KEY` — the leader key, on the leader's own lease (granted for this flight, kept alive
//!   every TTL/3, never from the lease pool). Its create revision is the flight's token.
//! - `once-result/KEY` — the last result: the header line and bytes of [`crate::once`]'s format,
//!   on a lease of its own (the `--ttl`, at least [`HANDOFF_TTL`]).
//!
//! A caller arrives with one transaction: *if `once/KEY` does not exist, put it on my lease*;
//! else it reads the leader key and the result. The revision of that transaction is its
//! arrival.
//! - **Leader**: the put succeeded. It runs the command under its lease ([`super::hold::run`]:
//!   killed at once if the lease is lost, by `PR_SET_PDEATHSIG` if the leader dies, by a watchdog
//!   at the lease's bound if the leader is stopped), then commits in one transaction guarded by
//!   its token: put the result, delete the leader key. Waiters see the delete.
//! - **Waiter**: it watches the leader key from its arrival revision (no polling) and, when the
//!   key is deleted, tries again: *if there is no leader key and the result is the one I saw at
//!   arrival, put the leader key on my lease*. A result written after its arrival is the flight
//!   it waited for: returned as it is.
//! - **Takeover**: a leader killed without committing leaves no new result; its lease runs out
//!   (at most [`LEADER_TTL`] after its last renewal), etcd deletes the leader key, and the first
//!   waiter whose transaction commits is the new leader; the others wait for it.
//! - **TTL**: a successful result whose lease says it is younger than the caller's TTL is reused.
//!   Its age is the TTL its lease was granted minus what the server says is left: the server's
//!   clock, to the second, never a comparison of two machines' wall clocks.
//!
//! Guarantees: at most one leader key exists per key, so one leader at a time by etcd's account;
//! a leader's command never outlives its lease (see [`super::hold`]), so a waiter, which can only
//! take over once the lease is gone, never runs beside it. A result over [`RESULT_CAP`] bytes is
//! refused: the callers get an error saying so, and nothing reruns it.
//!
//! Not guaranteed: that processes the command started in the background die with the leader
//! (the local backend keeps the key taken while they hold its lock descriptor; etcd cannot see
//! them); a takeover sooner than the leader's lease TTL after its death.

use std::process::Command;
use std::time::Duration;

use super::client::Client;
use super::hold;
use super::lease::Lease;
use super::wire::{Compare, KeyValue, Op};
use crate::error::{Error, Result};
use crate::once::{self, CANNOT_RUN, Facts, Flight, Role, Stored};

/// The leader's lease: how long after a killed leader's last renewal a waiter takes over.
pub const LEADER_TTL: Duration = Duration::from_secs(5);

/// The shortest a result is kept (its lease): long enough for every waiter of its flight to
/// read it, also one whose watch broke and who re-checks late.
pub const HANDOFF_TTL: Duration = Duration::from_secs(60);

/// The most output (stdout and stderr together) a flight's result can carry on etcd: 1 MiB,
/// which base64-encoded in one request stays under etcd's default request limit (1.5 MiB).
pub const RESULT_CAP: usize = 1 << 20;

/// Single-flight for one key on etcd; see the module docs.
#[derive(Debug, Clone)]
pub struct EtcdOnce {
    client: Client,
    name: String,
    lead: Vec<u8>,
    result: Vec<u8>,
    ttl: Option<Duration>,
}

impl EtcdOnce {
    /// The single-flight for `key` (the same key rules as the local backend).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a key outside `[A-Za-z0-9._-]{1,128}`.
    pub fn new(client: &Client, key: &str, ttl: Option<Duration>) -> Result<EtcdOnce> {
        crate::lock::validate_name("once key", key)?;
        Ok(EtcdOnce {
            client: client.clone(),
            name: key.to_owned(),
            lead: client.key(&format!("once/{key}")),
            result: client.key(&format!("once-result/{key}")),
            ttl,
        })
    }

    /// Runs `cmd` once for every caller of this key that arrives while it runs (or reuses a
    /// result younger than the TTL); see [`crate::once::Once::run`].
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered or the command cannot start (action
    /// [`CANNOT_RUN`]; nothing is stored and the next waiter tries itself);
    /// [`Error::Invalid`] when the flight's output was over [`RESULT_CAP`];
    /// [`Error::Precondition`] when the leader lost its lease while the command ran.
    pub fn run(&self, cmd: Command, tee: bool) -> Result<Flight> {
        if let Some(outcome) = self.fresh()? {
            return Ok(Flight {
                role: Role::Cached,
                result: outcome,
            });
        }
        let lease = Lease::grant(&self.client, LEADER_TTL)?;
        let value = super::owner_value(&crate::lock::Holder::me(None, None));
        let put = Op::Put(self.lead.clone(), value.clone(), lease.id());
        let t = self.client.txn(
            &[Compare::CreateRevision(self.lead.clone(), 0)],
            &[put.clone(), Op::Get(self.lead.clone())],
            &[Op::Get(self.lead.clone()), Op::Get(self.result.clone())],
        )?;
        if let Some(token) = ours(t.gets.first(), &lease) {
            return self.lead(cmd, tee, lease, token, Role::Leader);
        }
        // Someone leads: wait for that flight, from this revision on.
        let mut seen = t
            .gets
            .get(1)
            .cloned()
            .flatten()
            .map_or(0, |kv| kv.mod_revision);
        let mut leader = t.gets.first().cloned().flatten();
        let mut from = t.revision + 1;
        loop {
            if leader.is_some() {
                // Returns when the key is deleted, or to re-check (a broken watch).
                let _ = super::wait_for_delete(
                    &self.client,
                    &self.lead,
                    None,
                    from,
                    None,
                    super::RECHECK,
                );
            }
            lease.check()?;
            let t = self.client.txn(
                &[
                    Compare::CreateRevision(self.lead.clone(), 0),
                    Compare::ModRevision(self.result.clone(), seen),
                ],
                &[put.clone(), Op::Get(self.lead.clone())],
                &[Op::Get(self.lead.clone()), Op::Get(self.result.clone())],
            )?;
            if let Some(token) = ours(t.gets.first(), &lease) {
                // Nobody leads and no result came since arrival: the leader died without one.
                return self.lead(cmd, tee, lease, token, Role::Takeover);
            }
            match t.gets.get(1).cloned().flatten() {
                Some(kv) if kv.mod_revision != seen => {
                    lease.put_back();
                    return Ok(Flight {
                        role: Role::Waiter,
                        result: self.decode(&kv)?.outcome,
                    });
                }
                // The result seen at arrival expired (its lease) since: compare with its
                // absence from now on.
                None => seen = 0,
                Some(_) => {}
            }
            leader = t.gets.first().cloned().flatten();
            from = t.revision + 1;
        }
    }

    /// The leader's part: run the command under `lease`, commit the result if the leader key
    /// still has `token`.
    fn lead(
        &self,
        cmd: Command,
        tee: bool,
        lease: Lease,
        token: i64,
        role: Role,
    ) -> Result<Flight> {
        let (held, outcome) = once::capture(cmd, tee, |cmd| {
            let program = std::path::PathBuf::from(cmd.get_program());
            hold::run(&lease, cmd, &crate::child::Supervise::default())?
                .map_err(|e| Error::io(CANNOT_RUN, &program, e))
        })?;
        if held.lost {
            return Err(Error::Precondition(format!(
                "once {}: the leader's etcd lease was lost while the command ran; the command \
                 was killed (status {}) and no result is stored",
                self.name,
                held.code()
            )));
        }
        let status = held.status;
        let outcome = outcome(status);
        let size = outcome.stdout.len() + outcome.stderr.len();
        let oversize = (size > RESULT_CAP).then_some(size);
        let keep = match self.ttl {
            Some(ttl) if outcome.success() && oversize.is_none() => ttl.max(HANDOFF_TTL),
            _ => HANDOFF_TTL,
        };
        let (result_lease, granted) = self.client.grant(keep)?;
        let facts = Facts {
            flight: Some(token),
            lease_s: Some(granted.as_secs()),
            oversize,
            ..Facts::default()
        };
        let value = once::encode(&outcome, &facts);
        let t = self.client.txn(
            &[Compare::CreateRevision(self.lead.clone(), token)],
            &[
                Op::Get(self.result.clone()),
                Op::Put(self.result.clone(), value, result_lease),
                Op::Delete(self.lead.clone()),
            ],
            &[Op::Get(self.result.clone())],
        )?;
        let previous = t.gets.first().cloned().flatten();
        let committed = t.succeeded
            || previous
                .as_ref()
                .and_then(|kv| once::decode(&kv.value))
                .is_some_and(|s| s.facts.flight == Some(token));
        if t.succeeded
            && let Some(old) = previous.filter(|kv| kv.lease != 0 && kv.lease != result_lease)
        {
            // Best effort: the old result moved off its lease, which would otherwise linger.
            let _ = self.client.revoke(old.lease);
        }
        if !committed {
            let _ = self.client.revoke(result_lease);
        }
        // Revoking our lease deletes the leader key if the commit did not.
        drop(lease);
        if let Some(n) = oversize {
            return Err(self.too_large(n));
        }
        Ok(Flight {
            role,
            result: outcome,
        })
    }

    /// A successful stored result younger than the TTL.
    fn fresh(&self) -> Result<Option<once::Outcome>> {
        let Some(ttl) = self.ttl else { return Ok(None) };
        let Some(kv) = self.client.get(&self.result)? else {
            return Ok(None);
        };
        let Some(s) = once::decode(&kv.value) else {
            return Ok(None);
        };
        if !s.outcome.success() || s.facts.oversize.is_some() || kv.lease == 0 {
            return Ok(None);
        }
        let left = self.client.time_to_live(kv.lease)?;
        let age = Duration::from_secs(s.facts.lease_s.unwrap_or(0)).saturating_sub(left);
        Ok((!left.is_zero() && age < ttl).then_some(s.outcome))
    }

    /// The result in `kv`, or the error its flight had.
    fn decode(&self, kv: &KeyValue) -> Result<Stored> {
        let s = once::decode(&kv.value).ok_or_else(|| {
            Error::Precondition(format!(
                "once {}: the stored result is not in concur's format",
                self.name
            ))
        })?;
        match s.facts.oversize {
            Some(n) => Err(self.too_large(n)),
            None => Ok(s),
        }
    }

    fn too_large(&self, n: usize) -> Error {
        Error::Invalid(format!(
            "once {}: the command's output was {n} bytes, over the etcd backend's cap of {} \
             bytes (stdout and stderr together); make it print less or run it on the local \
             backend",
            self.name, RESULT_CAP
        ))
    }
}

/// The token of the leader key `kv` if it is on `lease` (won now, or by an earlier attempt
/// whose answer was lost).
fn ours(kv: Option<&Option<KeyValue>>, lease: &Lease) -> Option<i64> {
    kv.cloned()
        .flatten()
        .filter(|kv| kv.lease == lease.id())
        .map(|kv| kv.create_revision)
}
