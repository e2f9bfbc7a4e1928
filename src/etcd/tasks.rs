//! Task leases on etcd: the [`crate::lease::Store`] trait over etcd leases and transactions.
//!
//! Keys: `task/TASK` holds the holder's record (session, pid, cwd, host, boot id, times) on an
//! etcd lease of the requested TTL; `task-done/TASK` holds the completion of a build-once task.
//!
//! - **One live holder.** Acquire is one transaction: *if neither key exists, put the holder
//!   record on my new lease; otherwise return both*. Never get-then-put.
//! - **Fencing token** = the holder key's create revision: etcd's revision only grows, for every
//!   key, across restarts of any member. A re-acquire or renew by the holder re-attaches the
//!   record to a fresh lease with a put that keeps the key (so the token stays).
//! - **A retried acquire** whose first attempt committed but lost its answer finds the key on
//!   its own lease and takes it as granted.
//! - **Expiry** is etcd's: the key is deleted when its lease runs out unrenewed (`concur lease
//!   renew`). No clock is compared between machines. Unlike the `SQLite` store, a holder whose
//!   process is alive but does not renew *does* lose the task at expiry: no machine can see
//!   another machine's processes. Use a TTL longer than the work between renewals, and fence
//!   the work's writes with the token.
//! - **Dead holders** on the same machine (same boot id) whose session the local registry knows
//!   dead are reclaimed at once (their etcd lease is revoked, then the acquire retried).
//! - **Build-once.** `complete` of a `--once` lease deletes the holder key and writes the
//!   completion in one transaction; acquire's compare then always fails.
//! - **Waiting** (`acquire_wait`, `lease acquire -w`) watches the holder key from the revision
//!   the failed acquire saw and tries again when the key is deleted — the same watch as the lock
//!   and slot waiters (`wait_for_delete`), never polling. A quiet watch is re-checked after 5 s
//!   (a member that silently fell behind), or after 1 s while the holder is a live session of
//!   this machine (its death frees the lease but shows only in the local registry).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::client::Client;
use super::wire::{Compare, KeyValue, Op, TxnResponse};
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::lease::{AcquireRequest, Acquired, Completion, Lease, Store, TaskState, check_task};
use crate::session::{Liveness, Registry};
use crate::sys::proc::boot_clock;
use crate::time::now_unix_ms;

/// The etcd lease store.
#[derive(Debug)]
pub struct EtcdStore {
    client: Client,
    registry: Option<Registry>,
    boot_id: String,
}

/// A holder record as stored.
struct Record {
    kv: KeyValue,
    v: Value,
}

impl Record {
    fn from(kv: KeyValue) -> Record {
        let v = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        Record { kv, v }
    }

    fn str(&self, k: &str) -> String {
        self.v
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    fn u(&self, k: &str) -> u64 {
        self.v.get(k).and_then(Value::as_u64).unwrap_or(0)
    }

    fn token(&self) -> u64 {
        u64::try_from(self.kv.create_revision).unwrap_or(0)
    }

    fn lease(&self, task: &str, expires_in_ms: u64) -> Lease {
        Lease {
            task: task.to_string(),
            session: self.str("session"),
            token: self.token(),
            once: self.v.get("once").and_then(Value::as_bool).unwrap_or(false),
            pid: self
                .v
                .get("pid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
            cwd: self.str("cwd"),
            acquired_at: self.u("acquired_at"),
            renewed_at: self.u("renewed_at"),
            ttl_ms: self.u("ttl_ms"),
            expires_in_ms,
        }
    }
}

fn completion(kv: &KeyValue) -> Option<Completion> {
    let v: Value = serde_json::from_slice(&kv.value).ok()?;
    Some(Completion {
        task: v.get("task")?.as_str()?.to_string(),
        session: v.get("session")?.as_str()?.to_string(),
        at: v.get("at")?.as_u64()?,
        token: v.get("token")?.as_u64()?,
    })
}

impl EtcdStore {
    /// A store on `client`'s cluster. With a `registry`, holders on this machine whose session
    /// it knows dead are reclaimed at once.
    pub fn new(client: Client, registry: Option<Registry>) -> EtcdStore {
        EtcdStore {
            client,
            registry,
            boot_id: crate::sys::proc::boot_id().unwrap_or_default(),
        }
    }

    fn holder_key(&self, task: &str) -> Vec<u8> {
        self.client.key(&format!("task/{task}"))
    }

    fn done_key(&self, task: &str) -> Vec<u8> {
        self.client.key(&format!("task-done/{task}"))
    }

    fn record(&self, req: &AcquireRequest, acquired_at: u64, once: bool) -> Vec<u8> {
        let pid = self
            .registry
            .as_ref()
            .and_then(|r| r.get(&req.session).ok().flatten())
            .map(|s| s.pid);
        json!({
            "session": req.session.as_str(),
            "pid": pid,
            "cwd": req.cwd,
            "host": hostname(),
            "boot_id": self.boot_id,
            "once": once,
            "acquired_at": acquired_at,
            "renewed_at": now_unix_ms(),
            "ttl_ms": u64::try_from(req.ttl.as_millis()).unwrap_or(u64::MAX / 4),
        })
        .to_string()
        .into_bytes()
    }

    /// What the local registry knows about a holder: only for holders on this machine.
    fn liveness(&self, r: &Record) -> Option<Liveness> {
        if r.str("boot_id") != self.boot_id || self.boot_id.is_empty() {
            return None;
        }
        let reg = self.registry.as_ref()?;
        Some(
            SessionId::new(&r.str("session"))
                .map_or(Liveness::Unregistered, |id| reg.liveness(&id)),
        )
    }

    /// Milliseconds left on a record's etcd lease, as the server counts them.
    fn expires_in(&self, r: &Record) -> u64 {
        if r.kv.lease == 0 {
            return 0;
        }
        self.client
            .time_to_live(r.kv.lease)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
    }

    fn get(&self, task: &str) -> Result<Option<Record>> {
        Ok(self.client.get(&self.holder_key(task))?.map(Record::from))
    }

    /// Re-attaches the holder's record to a fresh lease of `ttl` (token unchanged).
    fn extend(&self, task: &str, r: &Record, ttl: Duration, body: Vec<u8>) -> Result<Lease> {
        let key = self.holder_key(task);
        let sent = boot_clock();
        let (id, granted) = self.client.grant(ttl)?;
        let t = self.client.txn(
            &[Compare::CreateRevision(key.clone(), r.kv.create_revision)],
            &[Op::Put(key.clone(), body, id), Op::Get(key)],
            &[],
        )?;
        if !t.succeeded {
            let _ = self.client.revoke(id);
            return Err(Error::Conflict(format!(
                "lease on {task} was lost before it could be renewed"
            )));
        }
        if r.kv.lease != 0 && r.kv.lease != id {
            let _ = self.client.revoke(r.kv.lease);
        }
        let now = Record::from(t.gets.first().cloned().flatten().expect("read in txn"));
        Ok(now.lease(task, left_since(sent, granted)))
    }
}

/// Milliseconds left on a lease granted for `granted` by a request sent at `sent` (boot clock):
/// the server counts the TTL from the grant, so every later step (the transaction that attaches
/// the record, a slow network, a paused process) is time already spent.
fn left_since(sent: Duration, granted: Duration) -> u64 {
    let spent = boot_clock().saturating_sub(sent);
    u64::try_from(granted.saturating_sub(spent).as_millis()).unwrap_or(u64::MAX / 4)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn not_holder(task: &str, session: &SessionId, r: Option<&Record>) -> Error {
    match r {
        Some(r) => Error::Conflict(format!(
            "session {} does not hold {task} (held by session {})",
            session.as_str(),
            r.str("session")
        )),
        None => Error::Conflict(format!(
            "session {} does not hold {task} (nobody does)",
            session.as_str()
        )),
    }
}

/// How often a waiter re-checks a quiet watch while the holder is a live session of this
/// machine: its death shows in the local registry, not in etcd.
const LOCAL_RECHECK: Duration = Duration::from_secs(1);

/// One acquire attempt: the answer, the revision its transaction saw, and whether the holder
/// (when held) is a live session of this machine.
struct Try {
    got: Acquired,
    revision: i64,
    local_alive: bool,
}

impl Try {
    fn new(got: Acquired, t: &TxnResponse) -> Try {
        Try {
            got,
            revision: t.revision,
            local_alive: false,
        }
    }
}

impl EtcdStore {
    /// One acquire: a transaction that grants or returns the holder (see the module docs).
    fn try_acquire(&self, req: &AcquireRequest) -> Result<Try> {
        check_task(&req.task)?;
        let key = self.holder_key(&req.task);
        let done = self.done_key(&req.task);
        for _ in 0..3 {
            let sent = boot_clock();
            let (id, granted) = self.client.grant(req.ttl)?;
            let t = self.client.txn(
                &[
                    Compare::CreateRevision(key.clone(), 0),
                    Compare::CreateRevision(done.clone(), 0),
                ],
                &[
                    Op::Put(key.clone(), self.record(req, now_unix_ms(), req.once), id),
                    Op::Get(key.clone()),
                ],
                &[Op::Get(key.clone()), Op::Get(done.clone())],
            )?;
            let held = t.gets.first().cloned().flatten().map(Record::from);
            if let Some(c) = t.gets.get(1).cloned().flatten() {
                let _ = self.client.revoke(id);
                let got = completion(&c).map(Acquired::Completed).ok_or_else(|| {
                    Error::Invalid(format!("unreadable completion record for {}", req.task))
                })?;
                return Ok(Try::new(got, &t));
            }
            let Some(r) = held else {
                let _ = self.client.revoke(id);
                continue; // released between compare and read: try again
            };
            if r.kv.lease == id {
                // Won now, or an earlier attempt that lost its answer had committed.
                let left = left_since(sent, granted);
                return Ok(Try::new(Acquired::Granted(r.lease(&req.task, left)), &t));
            }
            let _ = self.client.revoke(id);
            if r.str("session") == req.session.as_str() {
                let once = req.once || r.v.get("once").and_then(Value::as_bool) == Some(true);
                let body = self.record(req, r.u("acquired_at"), once);
                let got = Acquired::Granted(self.extend(&req.task, &r, req.ttl, body)?);
                return Ok(Try::new(got, &t));
            }
            let live = self.liveness(&r);
            if live == Some(Liveness::Dead) {
                // Its holder's session is dead on this very machine: end its lease now.
                self.client.revoke(r.kv.lease)?;
                continue;
            }
            let held = Acquired::Held(r.lease(&req.task, self.expires_in(&r)));
            return Ok(Try {
                local_alive: live == Some(Liveness::Alive),
                ..Try::new(held, &t)
            });
        }
        Err(Error::Conflict(format!(
            "lease on {} changed hands too often to acquire; try again",
            req.task
        )))
    }
}

impl Store for EtcdStore {
    fn acquire(&self, req: &AcquireRequest) -> Result<Acquired> {
        Ok(self.try_acquire(req)?.got)
    }

    /// Waits by watching the holder's key from the revision the failed acquire saw, and tries
    /// again when it is deleted (released, completed, expired with its lease, revoked): no
    /// polling. Quiet watches are re-checked every 5 s, or every second while the holder is a
    /// live session of this machine, whose death (seen in the local registry, not in etcd) frees
    /// the lease at once.
    fn acquire_wait(&self, req: &AcquireRequest, wait: Duration) -> Result<Acquired> {
        let deadline = Instant::now() + wait;
        let key = self.holder_key(&req.task);
        loop {
            let t = self.try_acquire(req)?;
            if !matches!(t.got, Acquired::Held(_)) {
                return Ok(t.got);
            }
            let recheck = if t.local_alive {
                LOCAL_RECHECK
            } else {
                super::RECHECK
            };
            let next = t.revision + 1;
            if super::wait_for_delete(&self.client, &key, None, next, Some(deadline), recheck)
                .is_err()
            {
                return Ok(t.got);
            }
        }
    }

    fn renew(&self, task: &str, session: &SessionId, ttl: Duration) -> Result<Lease> {
        check_task(task)?;
        let r = self.get(task)?;
        match r {
            Some(r) if r.str("session") == session.as_str() => {
                let mut v = r.v.clone();
                v["renewed_at"] = json!(now_unix_ms());
                v["ttl_ms"] = json!(u64::try_from(ttl.as_millis()).unwrap_or(0));
                self.extend(task, &r, ttl, v.to_string().into_bytes())
            }
            other => Err(not_holder(task, session, other.as_ref())),
        }
    }

    fn release(&self, task: &str, session: &SessionId) -> Result<Option<Lease>> {
        check_task(task)?;
        let Some(r) = self
            .get(task)?
            .filter(|r| r.str("session") == session.as_str())
        else {
            return Ok(None);
        };
        let key = self.holder_key(task);
        let t = self.client.txn(
            &[Compare::CreateRevision(key.clone(), r.kv.create_revision)],
            &[Op::Delete(key.clone())],
            &[Op::Get(key)],
        )?;
        if r.kv.lease != 0 {
            let _ = self.client.revoke(r.kv.lease);
        }
        // Failed compare with the key gone: a retry of our own committed delete (or its expiry).
        let gone = !t.succeeded && t.gets.first().is_some_and(Option::is_none);
        Ok((t.succeeded || gone).then(|| r.lease(task, 0)))
    }

    fn complete(&self, task: &str, session: &SessionId) -> Result<Completion> {
        check_task(task)?;
        let r = self.get(task)?;
        let Some(r) = r.filter(|r| r.str("session") == session.as_str()) else {
            return Err(not_holder(task, session, self.get(task)?.as_ref()));
        };
        let c = Completion {
            task: task.to_string(),
            session: session.as_str().to_string(),
            at: now_unix_ms(),
            token: r.token(),
        };
        let key = self.holder_key(task);
        let mut ops = vec![Op::Delete(key.clone())];
        if r.v.get("once").and_then(Value::as_bool) == Some(true) {
            let body = serde_json::to_vec(&c).unwrap_or_default();
            ops.push(Op::Put(self.done_key(task), body, 0));
        }
        let t = self.client.txn(
            &[Compare::CreateRevision(key.clone(), r.kv.create_revision)],
            &ops,
            &[Op::Get(key), Op::Get(self.done_key(task))],
        )?;
        // A retry of our own committed transaction: the key is gone, and a build-once task's
        // completion carries our token.
        let ours = !t.succeeded
            && t.gets.first().is_some_and(Option::is_none)
            && match t.gets.get(1).cloned().flatten() {
                Some(d) => completion(&d).is_some_and(|d| d.token == c.token),
                None => r.v.get("once").and_then(Value::as_bool) != Some(true),
            };
        if !t.succeeded && !ours {
            return Err(Error::Conflict(format!(
                "lease on {task} was lost before it could be completed"
            )));
        }
        if r.kv.lease != 0 {
            let _ = self.client.revoke(r.kv.lease);
        }
        Ok(c)
    }

    fn show(&self, task: &str) -> Result<TaskState> {
        check_task(task)?;
        let held = self.get(task)?;
        let done = self.client.get(&self.done_key(task))?;
        Ok(self.state(task, held.as_ref(), done.as_ref()))
    }

    fn list(&self) -> Result<Vec<TaskState>> {
        let hp = self.client.key("task/");
        let dp = self.client.key("task-done/");
        let (held, _) = self.client.range_prefix(&hp)?;
        let (done, _) = self.client.range_prefix(&dp)?;
        let mut tasks: std::collections::BTreeMap<String, (Option<Record>, Option<KeyValue>)> =
            std::collections::BTreeMap::new();
        for kv in held {
            let t = String::from_utf8_lossy(&kv.key[hp.len()..]).into_owned();
            tasks.entry(t).or_default().0 = Some(Record::from(kv));
        }
        for kv in done {
            let t = String::from_utf8_lossy(&kv.key[dp.len()..]).into_owned();
            tasks.entry(t).or_default().1 = Some(kv);
        }
        Ok(tasks
            .iter()
            .map(|(t, (h, d))| self.state(t, h.as_ref(), d.as_ref()))
            .collect())
    }

    fn release_session(&self, session: &SessionId) -> Result<Vec<String>> {
        let hp = self.client.key("task/");
        let (held, _) = self.client.range_prefix(&hp)?;
        let mut out = Vec::new();
        for kv in held {
            let r = Record::from(kv);
            if r.str("session") != session.as_str() {
                continue;
            }
            let task = String::from_utf8_lossy(&r.kv.key[hp.len()..]).into_owned();
            if self.release(&task, session)?.is_some() {
                out.push(task);
            }
        }
        Ok(out)
    }
}

impl EtcdStore {
    fn state(&self, task: &str, held: Option<&Record>, done: Option<&KeyValue>) -> TaskState {
        let live = held.map(|r| self.liveness(r));
        TaskState {
            task: task.to_string(),
            lease: held.map(|r| r.lease(task, self.expires_in(r))),
            holder: live.map(|l| l.map_or("remote", Liveness::name)),
            reclaimable: held.is_none_or(|_| live.flatten() == Some(Liveness::Dead))
                && done.is_none(),
            completed: done.and_then(completion),
        }
    }
}
