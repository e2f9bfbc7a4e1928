//! One etcd lease per holder, kept alive every TTL/3 by a background thread, with the holder's
//! own view of its validity.
//!
//! Guarantees: [`Lease::is_valid`] turns false no later than the server can let the lease expire.
//! The holder counts from the moment it *sent* the last keepalive that was acknowledged (not
//! when the answer arrived), adds the TTL the server granted, and subtracts a safety margin
//! (a tenth of the TTL, at least 250 ms) for clock-rate differences. It never compares its wall
//! clock with another machine's: only its own boot clock (`CLOCK_BOOTTIME`) is used, which —
//! unlike `Instant` — keeps counting while the machine is suspended, as the TTL does on the
//! servers: a laptop that wakes after its TTL finds its lease invalid, not valid for the time it
//! had left when it went to sleep. Servers extend leases on a leader change, so the server-side
//! expiry can only come later than this bound.
//!
//! Not guaranteed: that a paused process notices in time. A holder stopped (SIGSTOP, swapped out,
//! a long GC pause) past its TTL loses the lease while it is not looking; that is why every
//! protected write carries a fencing token checked by etcd (see [`super::fence`]).

use std::fs::File;
use std::os::fd::{AsFd as _, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::client::Client;
use super::wire::{Compare, Op};
use crate::error::{Error, Result};
use crate::sys::proc::boot_clock;

#[derive(Debug)]
struct State {
    id: i64,
    ttl: Duration,
    /// The holder's bound, a point on the boot clock ([`boot_clock`]).
    valid_until: Mutex<Duration>,
    lost: AtomicBool,
    /// A pipe's read end that hangs up once the server said the lease is gone ([`Lease::gone`]),
    /// made on first use; set only under `tell`.
    gone: OnceLock<File>,
    /// Its write end, closed by the keepalive thread when it finds the lease gone.
    tell: Mutex<Option<File>>,
}

/// The safety margin the holder subtracts from a lease's TTL (clock-rate differences).
fn margin(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_millis(250))
}

/// How often a lease of `ttl` is renewed.
fn period(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(100))
}

impl State {
    /// A keepalive sent at `sent` (boot clock) was answered with `ttl`.
    fn acked(&self, sent: Duration, ttl: Duration) {
        let until = sent + ttl.saturating_sub(margin(self.ttl));
        let mut v = self
            .valid_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if until > *v {
            *v = until;
        }
    }

    /// The holder's bound on the boot clock.
    fn valid_until(&self) -> Duration {
        *self
            .valid_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where a reusable lease goes when its holder is done with it: a pool's slot (see
/// [`super::pool`]). A lease knows only this, not the pool, so the pool depends on leases and
/// not the other way round.
pub(crate) trait Return: std::fmt::Debug + Send + Sync {
    /// Records that lease `id` has no key attached and is valid until `until` (boot clock).
    fn put_back(self: Box<Self>, id: i64, ttl: Duration, until: Duration);
    /// Records that there is no lease to reuse (it was revoked or may be gone).
    fn clear(self: Box<Self>);
}

/// A granted etcd lease, kept alive while this value lives.
///
/// Dropping it stops the keepalive and revokes the lease (best effort: a failed revoke leaves
/// the lease to expire after its TTL). [`Lease::revoke`] reports the error instead;
/// [`Lease::detach`] stops the keepalive but leaves the lease to run out (a CLI holder that
/// exits while its claim should persist until renewed or expired).
#[derive(Debug)]
pub struct Lease {
    client: Client,
    state: Arc<State>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The pool slot this lease came from or goes back to (see [`super::pool`]).
    slot: Option<Box<dyn Return>>,
}

impl Lease {
    /// Grants a lease of at least `ttl` and starts keeping it alive.
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered.
    pub fn grant(client: &Client, ttl: Duration) -> Result<Lease> {
        let sent = boot_clock();
        let (id, granted) = client.grant(ttl)?;
        let until = sent + granted.saturating_sub(margin(granted));
        Lease::keep(client, id, granted, until, period(granted))
    }

    /// Takes over pooled lease `id`, which its last holder could count on until `until` (boot
    /// clock).
    pub(crate) fn adopt(
        client: &Client,
        id: i64,
        ttl: Duration,
        until: Duration,
        slot: Box<dyn Return>,
    ) -> Result<Lease> {
        // Renew at once when the last renewal is older than a keepalive period.
        let left = until.saturating_sub(boot_clock());
        let first = if left + period(ttl) < ttl {
            Duration::ZERO
        } else {
            period(ttl)
        };
        Ok(Lease::keep(client, id, ttl, until, first)?.with_slot(slot))
    }

    pub(crate) fn with_slot(mut self, slot: Box<dyn Return>) -> Lease {
        self.slot = Some(slot);
        self
    }

    /// Starts keeping lease `id` alive (first renewal after `first`), valid until `until` (boot
    /// clock).
    fn keep(
        client: &Client,
        id: i64,
        ttl: Duration,
        until: Duration,
        first: Duration,
    ) -> Result<Lease> {
        let state = Arc::new(State {
            id,
            ttl,
            valid_until: Mutex::new(until),
            lost: AtomicBool::new(false),
            gone: OnceLock::new(),
            tell: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel();
        let thread = {
            let client = client.clone();
            let state = Arc::clone(&state);
            std::thread::Builder::new()
                .name(format!("etcd-lease-{id:x}"))
                .spawn(move || keep_alive(&client, &state, &rx, first))
                .map_err(|e| Error::io("cannot start lease keepalive thread", "etcd", e))?
        };
        Ok(Lease {
            client: client.same_conn(),
            state,
            stop: Some(tx),
            thread: Some(thread),
            slot: None,
        })
    }

    /// Runs `attempt` (a transaction that puts a key on this lease). If the cluster does not
    /// know a pooled lease (revoked by someone else, or another cluster now answers on these
    /// endpoints), the lease is dropped from the pool and `attempt` runs once more on a freshly
    /// granted one.
    ///
    /// # Errors
    /// `attempt`'s error; [`Error::Io`] when the grant finds no member.
    pub(crate) fn known<T>(
        lease: &mut Lease,
        client: &Client,
        mut attempt: impl FnMut(&Lease) -> Result<T>,
    ) -> Result<T> {
        match attempt(lease) {
            Err(Error::Io { source, .. })
                if lease.is_pooled() && source.to_string().contains("lease not found") =>
            {
                let ttl = lease.ttl();
                let stale = std::mem::replace(lease, Lease::grant(client, ttl)?);
                let _ = stale.detach();
                attempt(lease)
            }
            r => r,
        }
    }

    /// Whether this lease came from a pool (it is reused after [`Lease::release_key`]).
    pub fn is_pooled(&self) -> bool {
        self.slot.is_some()
    }

    /// The lease id.
    pub fn id(&self) -> i64 {
        self.state.id
    }

    /// The TTL the server granted.
    pub fn ttl(&self) -> Duration {
        self.state.ttl
    }

    /// Whether the holder may still act on this lease (see the module docs for the bound).
    pub fn is_valid(&self) -> bool {
        !self.state.lost.load(Ordering::Acquire) && boot_clock() < self.state.valid_until()
    }

    /// How long the lease is still valid for, by the holder's own bound.
    pub fn remaining(&self) -> Duration {
        if self.state.lost.load(Ordering::Acquire) {
            return Duration::ZERO;
        }
        self.state.valid_until().saturating_sub(boot_clock())
    }

    /// The holder's bound as a point on the boot clock (`CLOCK_BOOTTIME`, see
    /// [`crate::sys::timer::BootTimer`]); zero once the server said the lease is gone.
    pub fn valid_until(&self) -> Duration {
        if self.state.lost.load(Ordering::Acquire) {
            return Duration::ZERO;
        }
        self.state.valid_until()
    }

    /// A descriptor that turns readable (hangs up) once a keepalive finds the lease gone, so a
    /// waiter (`hold::run`) acts at once instead of at its bound. Check [`Lease::is_valid`] after
    /// taking it: a lease found gone before stays unnoticed by the descriptor.
    pub(crate) fn gone(&self) -> std::io::Result<BorrowedFd<'_>> {
        let mut tell = self
            .state
            .tell
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.state.gone.get().is_none() {
            let (gone, w) = crate::sys::signal::pipe()?;
            *tell = Some(w);
            let _ = self.state.gone.set(gone);
        }
        drop(tell);
        self.state
            .gone
            .get()
            .map(File::as_fd)
            .ok_or_else(|| std::io::Error::other("lease notice pipe missing"))
    }

    /// `Ok` while valid; a precondition error once the holder must consider itself expired.
    ///
    /// # Errors
    /// [`Error::Precondition`] when the lease is (or may be) gone.
    pub fn check(&self) -> Result<()> {
        if self.is_valid() {
            Ok(())
        } else {
            Err(Error::Precondition(format!(
                "etcd lease {:x} expired (not renewed within its {} s TTL)",
                self.state.id,
                self.state.ttl.as_secs()
            )))
        }
    }

    fn stop_thread(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops the keepalive and revokes the lease: every key on it is deleted at once.
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered (the lease then expires after its TTL).
    pub fn revoke(mut self) -> Result<()> {
        self.stop_thread();
        let id = self.state.id;
        self.state.lost.store(true, Ordering::Release);
        self.client.revoke(id)?;
        if let Some(slot) = self.slot.take() {
            slot.clear();
        }
        Ok(())
    }

    /// Stops the keepalive and leaves the lease to expire after its TTL; returns its id. A
    /// pooled lease is not reused (its keys stay attached).
    pub fn detach(mut self) -> i64 {
        self.stop_thread();
        self.state.lost.store(true, Ordering::Release);
        self.state.id
    }

    /// Releases the one key this holder put on the lease (`key`, created at revision `token`).
    /// A pooled lease: one transaction deletes the key if it is still that one, and the lease
    /// goes back to the pool (see [`super::pool`]); if the delete gets no answer the lease is
    /// revoked instead. A lease of its own: revoked, which deletes the key with it.
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered (the key then goes when the lease expires).
    pub fn release_key(self, key: &[u8], token: i64) -> Result<()> {
        if self.slot.is_none() {
            return self.revoke();
        }
        let deleted = self.client.txn(
            &[Compare::CreateRevision(key.to_vec(), token)],
            &[Op::Delete(key.to_vec())],
            &[],
        );
        match deleted {
            // Deleted now, or already gone (expired, revoked): nothing of ours is on the lease.
            Ok(_) => {
                self.put_back();
                Ok(())
            }
            Err(_) => self.revoke(),
        }
    }

    /// Gives back a lease that has no key attached: a pooled one returns to the pool with its
    /// validity, a lease of its own is revoked (best effort).
    pub fn put_back(mut self) {
        if self.slot.is_none() || self.client.had_uncertain_write() {
            // Not pooled, or a retried write may yet put a key on it: revoke (best effort).
            let _ = self.revoke();
            return;
        }
        let Some(slot) = self.slot.take() else {
            return;
        };
        self.stop_thread();
        if self.state.lost.swap(true, Ordering::AcqRel) {
            // The server said it is gone: keyless either way.
            slot.clear();
        } else {
            slot.put_back(self.state.id, self.state.ttl, self.state.valid_until());
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_thread();
            if !self.state.lost.swap(true, Ordering::AcqRel)
                && self.client.revoke(self.state.id).is_ok()
                && let Some(slot) = self.slot.take()
            {
                slot.clear();
            }
        }
    }
}

/// The keepalive loop: every TTL/3, sooner after a failure, until stopped or the lease is gone.
fn keep_alive(client: &Client, state: &State, stop: &mpsc::Receiver<()>, first: Duration) {
    let period = period(state.ttl);
    let mut wait = first;
    loop {
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let sent = boot_clock();
        // Give up on this round when the lease would be invalid anyway; try again promptly.
        let left = state.valid_until().saturating_sub(sent);
        let deadline = Instant::now() + left.max(period);
        match client.keep_alive_once(state.id, deadline) {
            Ok(ttl) if ttl.is_zero() => {
                state.lost.store(true, Ordering::Release);
                // Wakes a waiter on `Lease::gone` (after the store: taking the lock orders them).
                drop(
                    state
                        .tell
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take(),
                );
                return;
            }
            Ok(ttl) => {
                state.acked(sent, ttl);
                wait = period;
            }
            Err(_) => wait = Duration::from_millis(100).min(period),
        }
    }
}
