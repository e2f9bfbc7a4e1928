//! One etcd lease per holder, kept alive every TTL/3 by a background thread, with the holder's
//! own view of its validity.
//!
//! Guarantees: [`Lease::is_valid`] turns false no later than the server can let the lease expire.
//! The holder counts from the moment it *sent* the last keepalive that was acknowledged (not
//! when the answer arrived), adds the TTL the server granted, and subtracts a safety margin
//! (a tenth of the TTL, at least 250 ms) for clock-rate differences. It never compares its wall
//! clock with another machine's: only its own monotonic clock is used. Servers extend leases on
//! a leader change, so the server-side expiry can only come later than this bound.
//!
//! Not guaranteed: that a paused process notices in time. A holder stopped (SIGSTOP, swapped out,
//! a long GC pause) past its TTL loses the lease while it is not looking; that is why every
//! protected write carries a fencing token checked by etcd (see [`super::fence`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::client::Client;
use crate::error::{Error, Result};

#[derive(Debug)]
struct State {
    id: i64,
    ttl: Duration,
    valid_until: Mutex<Instant>,
    lost: AtomicBool,
}

impl State {
    fn margin(&self) -> Duration {
        (self.ttl / 10).max(Duration::from_millis(250))
    }

    fn acked(&self, sent: Instant, ttl: Duration) {
        let until = sent + ttl.saturating_sub(self.margin());
        let mut v = self
            .valid_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if until > *v {
            *v = until;
        }
    }

    fn valid_until(&self) -> Instant {
        *self
            .valid_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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
}

impl Lease {
    /// Grants a lease of at least `ttl` and starts keeping it alive.
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered.
    pub fn grant(client: &Client, ttl: Duration) -> Result<Lease> {
        let sent = Instant::now();
        let (id, granted) = client.grant(ttl)?;
        let state = Arc::new(State {
            id,
            ttl: granted,
            valid_until: Mutex::new(sent),
            lost: AtomicBool::new(false),
        });
        state.acked(sent, granted);
        let (tx, rx) = mpsc::channel();
        let thread = {
            let client = client.clone();
            let state = Arc::clone(&state);
            std::thread::Builder::new()
                .name(format!("etcd-lease-{id:x}"))
                .spawn(move || keep_alive(&client, &state, &rx))
                .map_err(|e| Error::io("cannot start lease keepalive thread", "etcd", e))?
        };
        Ok(Lease {
            client: client.same_conn(),
            state,
            stop: Some(tx),
            thread: Some(thread),
        })
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
        !self.state.lost.load(Ordering::Acquire) && Instant::now() < self.state.valid_until()
    }

    /// How long the lease is still valid for, by the holder's own bound.
    pub fn remaining(&self) -> Duration {
        if self.state.lost.load(Ordering::Acquire) {
            return Duration::ZERO;
        }
        self.state
            .valid_until()
            .saturating_duration_since(Instant::now())
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
        self.client.revoke(id)
    }

    /// Stops the keepalive and leaves the lease to expire after its TTL; returns its id.
    pub fn detach(mut self) -> i64 {
        self.stop_thread();
        self.state.lost.store(true, Ordering::Release);
        self.state.id
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_thread();
            if !self.state.lost.swap(true, Ordering::AcqRel) {
                let _ = self.client.revoke(self.state.id);
            }
        }
    }
}

/// The keepalive loop: every TTL/3, sooner after a failure, until stopped or the lease is gone.
fn keep_alive(client: &Client, state: &State, stop: &mpsc::Receiver<()>) {
    let period = (state.ttl / 3).max(Duration::from_millis(100));
    let mut wait = period;
    loop {
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let sent = Instant::now();
        // Give up on this round when the lease would be invalid anyway; try again promptly.
        let deadline = state.valid_until().max(sent + period);
        match client.keep_alive_once(state.id, deadline) {
            Ok(ttl) if ttl.is_zero() => {
                state.lost.store(true, Ordering::Release);
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
