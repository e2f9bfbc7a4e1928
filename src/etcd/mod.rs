//! The coordination primitives on etcd, for sessions spread over several machines.
//!
//! `--backend etcd://h1:2379,h2:2379,h3:2379[/prefix]` (or `CONCUR_BACKEND`, or `[backend] url`
//! in `concur.toml`) names the cluster. Everything lives under one key prefix (default
//! `concur/`):
//!
//! | primitive | keys | rule |
//! |---|---|---|
//! | [`lock`] | `lock/NAME` on the holder's lease | acquire = one txn: create revision 0 → put, else return the holder; token = create revision |
//! | [`semaphore`] | `slot/NAME/max`, `slot/NAME/h/LEASE` | N holder keys ranked by create revision; rank < N holds |
//! | [`token`] | `token/NAME`, `token-issued/NAME`, `token-taken/NAME` | issue = create-if-absent; take = delete with compare on mod revision, exactly one winner |
//! | [`session`] | `session/ID` on the session's lease | live while its lease is kept alive |
//! | [`fence`] | any key | a write commits only while the lock key still has the writer's token |
//! | [`json`] | `json/NAME`, `json-writer/NAME` | jq update committed by CAS on mod revision; nonce recognises a retried commit |
//! | [`once`] | `once/KEY` on the leader's lease, `once-result/KEY` on a lease of the TTL | leader = create-if-absent; result committed with the leader key's delete, guarded by its create revision; waiters watch the delete |
//! | [`tasks`] | `task/TASK` on the holder's lease, `task-done/TASK` | the lease [`crate::lease::Store`]: acquire = one txn, token = create revision |
//!
//! The client speaks etcd's HTTP/JSON gateway (`/v3/...`) with a small built-in HTTP/1.1 client:
//! no gRPC stack, no `protoc`, no new dependency, and a process that makes one call pays for
//! one TCP connection. It rotates endpoints itself on failures and sends etcd's require-leader
//! metadata with every request (see [`client`]).
//!
//! Not guaranteed: anything across a cluster that has lost its quorum (calls fail with exit 74
//! after the call deadline; nothing is written unprotected); clock-based expiry across machines
//! (none is used: leases are the server's, the holder's bound is its own boot clock).

pub mod client;
pub mod fence;
pub mod hold;
mod http;
pub mod json;
pub mod lease;
pub mod lock;
pub mod once;
pub mod pool;
pub mod semaphore;
pub mod session;
pub mod tasks;
pub mod token;
mod wire;

use std::time::{Duration, Instant};

pub use client::{Client, MemberStatus, Timeouts, parse_url};
pub use lease::Lease;
pub use lock::{Holder, LockGuard};
pub use pool::Pool;
pub use semaphore::Permit;
pub use wire::{Compare, KeyValue, Op, TxnResponse};

use crate::error::Result;
use client::Seen;

pub use crate::wait::Wait;

/// Names of locks, slots, tokens: the session-id alphabet, so they stay one path segment.
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    crate::id::check_name(what, name)
}

/// What a holder writes about itself into its key: its record ([`crate::lock::Holder`]: pid,
/// session, command, since) naming this machine (display only).
pub(crate) fn owner_value(holder: &crate::lock::Holder) -> Vec<u8> {
    serde_json::to_vec(&holder.clone().with_host()).unwrap_or_default()
}

/// A random 64-bit nonce (recognises one's own committed-but-timed-out transaction).
pub(crate) fn nonce() -> String {
    use std::io::Read;
    let mut b = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        b = ((u64::from(std::process::id()) << 32) | u64::from(t)).to_le_bytes();
    }
    format!("{:016x}", u64::from_le_bytes(b))
}

/// How long a waiter watches without news before it re-checks anyway: a safety net against a
/// watch on a member that silently fell behind.
pub(crate) const RECHECK: Duration = Duration::from_secs(5);

/// Waits until a key (or a key in `[key, range_end)`) is deleted at or after `from_revision`,
/// the watch breaks, or `recheck` passes without news (then the caller re-checks: see
/// [`RECHECK`]; a shorter one suits a holder that can vanish without its key going, such as a
/// task lease whose holder's death is seen in the local registry). `Err(())` when `deadline`
/// passed. Shared by every waiter (lock, slot, task lease): none of them polls.
pub(crate) fn wait_for_delete(
    client: &Client,
    key: &[u8],
    range_end: Option<&[u8]>,
    from_revision: i64,
    deadline: Option<Instant>,
    recheck: Duration,
) -> std::result::Result<(), ()> {
    let left = |d: Option<Instant>| d.map(|d| d.saturating_duration_since(Instant::now()));
    if left(deadline) == Some(Duration::ZERO) {
        return Err(());
    }
    let Ok(mut w) = client.watch(key, range_end, from_revision) else {
        // No member accepted a watch: let the caller's next transaction (which retries with
        // back-off) find a working member.
        std::thread::sleep(left(deadline).map_or(Duration::from_millis(100), |l| {
            l.min(Duration::from_millis(100))
        }));
        return Ok(());
    };
    loop {
        let wait = left(deadline).map_or(recheck, |l| l.min(recheck));
        match w.wait(wait) {
            Seen::Put => {}
            Seen::Quiet if left(deadline) == Some(Duration::ZERO) => return Err(()),
            Seen::Deleted | Seen::Broken | Seen::Quiet => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_safe_segment() {
        for ok in ["a", "deploy-1", "x.y_z"] {
            assert!(check_name("lock", ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ü"] {
            assert!(check_name("lock", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce(), nonce());
    }
}
