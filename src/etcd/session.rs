//! Session liveness on etcd: a session is live while its key `session/ID`, attached to the
//! session's own kept-alive lease, exists.
//!
//! A crashed or partitioned session stops renewing; etcd deletes its key when the lease runs
//! out, with no clock comparison anywhere. Anything else attached to the same lease (locks,
//! slots taken with it) goes at the same moment.

use std::time::Duration;

use serde_json::Value;

use super::client::Client;
use super::lease::Lease;
use crate::error::Result;
use crate::id::SessionId;

/// A registered session; it stays live while this value lives (keepalive thread).
#[derive(Debug)]
pub struct Registration {
    lease: Lease,
}

impl Registration {
    /// The session's lease.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Ends the session now: its key (and everything on its lease) is deleted.
    ///
    /// # Errors
    /// [`crate::Error::Io`] when no member answered (the key then expires with the lease).
    pub fn end(self) -> Result<()> {
        self.lease.revoke()
    }

    /// Leaves the session registered after this process exits, until its TTL runs out
    /// unrenewed; returns the lease id.
    pub fn detach(self) -> i64 {
        self.lease.detach()
    }
}

/// Registers session `id` with `info` (pid, cwd, agent, ...) on a new lease of `ttl`.
///
/// # Errors
/// [`crate::Error::Io`] when no member answered.
pub fn register(
    client: &Client,
    id: &SessionId,
    info: &Value,
    ttl: Duration,
) -> Result<Registration> {
    let lease = Lease::grant(client, ttl)?;
    client.put(
        &client.key(&format!("session/{}", id.as_str())),
        info.to_string().as_bytes(),
        lease.id(),
    )?;
    Ok(Registration { lease })
}

/// The live sessions: id and info, oldest first.
///
/// # Errors
/// [`crate::Error::Io`] when no member answered.
pub fn list(client: &Client) -> Result<Vec<(String, Value)>> {
    let prefix = client.key("session/");
    let (kvs, _) = client.range_prefix(&prefix)?;
    Ok(kvs
        .into_iter()
        .map(|kv| {
            let id = String::from_utf8_lossy(&kv.key[prefix.len()..]).into_owned();
            (id, serde_json::from_slice(&kv.value).unwrap_or(Value::Null))
        })
        .collect())
}

/// Whether session `id` is live.
///
/// # Errors
/// [`crate::Error::Io`] when no member answered.
pub fn is_live(client: &Client, id: &SessionId) -> Result<bool> {
    Ok(client
        .get(&client.key(&format!("session/{}", id.as_str())))?
        .is_some())
}
