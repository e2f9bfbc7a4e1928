//! The etcd client: endpoint rotation, require-leader, bounded retries, and the handful of
//! calls the coordination primitives need (range, txn, lease grant/keepalive/revoke, watch).
//!
//! Guarantees:
//! - every request carries etcd's require-leader metadata, so a member cut off from its cluster
//!   answers "no leader" at once instead of hanging until its own request timeout;
//! - on a connection failure, a timeout, or an Unavailable/DeadlineExceeded answer the client
//!   moves to the next endpoint and retries, backing off after a full round, until the call's
//!   deadline; the last working endpoint is remembered for the next call.
//!
//! Not guaranteed: exactly-once. A retried request that timed out may have been applied by the
//! cluster before the failure; the primitives built on this client recognise their own earlier
//! success (a holder key on their own lease, a taker nonce) instead of assuming failure.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::http::{Conn, Stream};
use super::wire::{self, Compare, KeyValue, Op, TxnResponse, b64, int};
use crate::error::{Error, Result};

/// Timeouts of a [`Client`].
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// One request on one endpoint: connect, send, and read the answer.
    pub request: Duration,
    /// A whole call, retries on other endpoints included.
    pub call: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            request: Duration::from_secs(2),
            call: Duration::from_secs(15),
        }
    }
}

#[derive(Debug)]
struct Shared {
    endpoints: Vec<String>,
    prefix: Vec<u8>,
    preferred: AtomicUsize,
    timeouts: Timeouts,
    /// Set once a write that may put a key failed in a way that leaves its outcome unknown (it
    /// may still be applied, even after a later answer): see [`Client::had_uncertain_write`].
    uncertain_write: AtomicBool,
}

/// A client for an etcd cluster, speaking its HTTP/JSON gateway.
///
/// Cloning is cheap and gives the clone its own connection (so a lease's keepalive thread never
/// queues behind a caller's request); clones share the endpoint list and the preferred member.
///
/// # Examples
///
/// ```no_run
/// let client = concur::etcd::Client::new("etcd://10.0.0.1:2379,10.0.0.2:2379")?;
/// let kv = client.get(b"concur/lock/deploy")?;
/// # Ok::<(), concur::Error>(())
/// ```
#[derive(Debug)]
pub struct Client {
    shared: Arc<Shared>,
    conn: Arc<Mutex<Option<(usize, Conn)>>>,
}

impl Clone for Client {
    fn clone(&self) -> Client {
        Client {
            shared: Arc::clone(&self.shared),
            conn: Arc::new(Mutex::new(None)),
        }
    }
}

/// Why one attempt failed.
struct Fail {
    retry: bool,
    /// Whether the request may have reached a member (false: the connection never opened).
    sent: bool,
    message: String,
    code: i64,
}

/// One member's view of the cluster, from `/v3/maintenance/status`.
#[derive(Debug, Clone)]
pub struct MemberStatus {
    /// The endpoint asked.
    pub endpoint: String,
    /// The member's id (0 when it did not answer).
    pub member_id: u64,
    /// The leader's id as this member sees it (0: none).
    pub leader: u64,
    /// The store revision this member has applied.
    pub revision: i64,
    /// The raft index this member has applied.
    pub raft_applied_index: i64,
    /// The error, when the member did not answer or reported one.
    pub error: Option<String>,
}

/// Parses `etcd://h1:2379,h2:2379[/prefix]` into endpoints and a key prefix (default `concur/`).
///
/// # Errors
/// [`Error::Invalid`] when the scheme is not `etcd://` or an endpoint is not `host:port`.
pub fn parse_url(url: &str) -> Result<(Vec<String>, String)> {
    let bad = |why: &str| Error::Invalid(format!("invalid backend url {url:?}: {why}"));
    let rest = url
        .strip_prefix("etcd://")
        .ok_or_else(|| bad("expected etcd://host:port[,host:port...]"))?;
    let (hosts, prefix) = match rest.split_once('/') {
        Some((h, p)) => (h, p.trim_matches('/')),
        None => (rest, ""),
    };
    let prefix = if prefix.is_empty() {
        "concur/".to_string()
    } else {
        format!("{prefix}/")
    };
    let mut endpoints = Vec::new();
    for h in hosts.split(',') {
        let h = h.trim();
        let Some((host, port)) = h.rsplit_once(':') else {
            return Err(bad("endpoint without a port"));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad("endpoint is not host:port"));
        }
        endpoints.push(h.to_string());
    }
    Ok((endpoints, prefix))
}

impl Client {
    /// A client for `etcd://h1:2379,h2:2379[/prefix]`. Connects lazily, on the first call.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed URL.
    pub fn new(url: &str) -> Result<Client> {
        Client::with_timeouts(url, Timeouts::default())
    }

    /// Like [`Client::new`], with explicit timeouts.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed URL.
    pub fn with_timeouts(url: &str, timeouts: Timeouts) -> Result<Client> {
        let (endpoints, prefix) = parse_url(url)?;
        Ok(Client {
            shared: Arc::new(Shared {
                endpoints,
                prefix: prefix.into_bytes(),
                preferred: AtomicUsize::new(0),
                timeouts,
                uncertain_write: AtomicBool::new(false),
            }),
            conn: Arc::new(Mutex::new(None)),
        })
    }

    /// A handle on the same connection (for guards that release through their creator's
    /// connection instead of opening another).
    pub(crate) fn same_conn(&self) -> Client {
        Client {
            shared: Arc::clone(&self.shared),
            conn: Arc::clone(&self.conn),
        }
    }

    /// Whether a transaction or put through this client (or a clone) was retried after an
    /// attempt whose outcome is unknown: that attempt may still be applied, after later answers
    /// too, so a key it puts can appear on its lease at any time. A pooled lease is then revoked
    /// instead of put back (see [`super::pool`]).
    pub fn had_uncertain_write(&self) -> bool {
        self.shared.uncertain_write.load(Ordering::Relaxed)
    }

    /// The endpoints, in rotation order.
    pub fn endpoints(&self) -> &[String] {
        &self.shared.endpoints
    }

    /// The key prefix every primitive's keys start with (default `concur/`).
    pub fn prefix(&self) -> &[u8] {
        &self.shared.prefix
    }

    /// This client's timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.shared.timeouts
    }

    /// `prefix + rest` as a key.
    pub(crate) fn key(&self, rest: &str) -> Vec<u8> {
        let mut k = self.shared.prefix.clone();
        k.extend_from_slice(rest.as_bytes());
        k
    }

    fn url_path(&self) -> PathBuf {
        PathBuf::from(format!("etcd://{}", self.shared.endpoints.join(",")))
    }

    /// One attempt on endpoint `idx`, reusing this client's connection when it points there.
    fn attempt(&self, idx: usize, path: &str, body: &[u8]) -> std::result::Result<Value, Fail> {
        let t = self.shared.timeouts.request;
        let mut slot = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let reuse = matches!(&*slot, Some((i, c)) if *i == idx && c.is_reusable());
        if !reuse {
            *slot = None;
            let c = Conn::connect(&self.shared.endpoints[idx], t).map_err(|e| Fail {
                retry: true,
                sent: false,
                message: e.to_string(),
                code: 14,
            })?;
            *slot = Some((idx, c));
        }
        let (_, conn) = slot.as_mut().expect("connection just set");
        let mut sent = conn.post(path, body);
        if sent.is_err() && reuse {
            // A kept-alive connection the server closed while idle: once more on a fresh one.
            *slot = None;
            let c = Conn::connect(&self.shared.endpoints[idx], t).map_err(|e| Fail {
                retry: true,
                sent: true, // the first send on the old connection may have arrived
                message: e.to_string(),
                code: 14,
            })?;
            let (_, conn) = slot.insert((idx, c));
            sent = conn.post(path, body);
        }
        let (status, resp) = match sent {
            Ok(r) => r,
            Err(e) => {
                *slot = None;
                return Err(Fail {
                    retry: true,
                    sent: true,
                    message: e.to_string(),
                    code: 14,
                });
            }
        };
        let v: Value = serde_json::from_slice(&resp).map_err(|e| Fail {
            retry: true,
            sent: true,
            message: format!("unreadable answer: {e}"),
            code: 14,
        })?;
        if status == 200 {
            return Ok(v);
        }
        let code = int(&v, "code");
        let message = v
            .get("message")
            .or_else(|| v.get("error"))
            .and_then(Value::as_str)
            .map_or_else(|| format!("HTTP status {status}"), str::to_string);
        // 14 Unavailable (no leader, leader changed, request timed out), 4 DeadlineExceeded
        let retry = matches!(code, 4 | 14) || matches!(status, 502..=504);
        if retry {
            *slot = None;
        }
        Err(Fail {
            retry,
            sent: true,
            message,
            code,
        })
    }

    /// Calls `path` with `body`, rotating endpoints and retrying until `deadline`.
    fn call_until(&self, path: &str, body: &Value, deadline: Instant) -> Result<Value> {
        let body = body.to_string().into_bytes();
        let n = self.shared.endpoints.len();
        let mut backoff = Duration::from_millis(20);
        let mut tried = 0;
        loop {
            let idx = self.shared.preferred.load(Ordering::Relaxed) % n;
            let answer = self.attempt(idx, path, &body);
            if matches!(&answer, Err(f) if f.retry && f.sent)
                && matches!(path, "/v3/kv/txn" | "/v3/kv/put")
            {
                self.shared.uncertain_write.store(true, Ordering::Relaxed);
            }
            match answer {
                Ok(v) => return Ok(v),
                Err(f) if f.retry && Instant::now() < deadline => {
                    // Another thread may have moved on already; only advance from where we were.
                    let _ = self.shared.preferred.compare_exchange(
                        idx,
                        (idx + 1) % n,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    tried += 1;
                    if tried % n == 0 {
                        // A full round failed (election in progress, all unreachable): back off.
                        let left = deadline.saturating_duration_since(Instant::now());
                        std::thread::sleep(backoff.min(left));
                        backoff = (backoff * 2).min(Duration::from_millis(500));
                    }
                }
                Err(f) => return Err(self.fail_error(path, &f)),
            }
        }
    }

    fn fail_error(&self, path: &str, f: &Fail) -> Error {
        let kind = if f.retry {
            std::io::ErrorKind::TimedOut
        } else {
            std::io::ErrorKind::Other
        };
        let message = if f.retry {
            format!("no member answered ({})", f.message)
        } else {
            format!("{} (code {})", f.message, f.code)
        };
        let action = match path {
            "/v3/kv/txn" => "etcd transaction failed",
            "/v3/kv/range" => "etcd read failed",
            p if p.starts_with("/v3/lease") => "etcd lease call failed",
            _ => "etcd call failed",
        };
        Error::io(action, self.url_path(), std::io::Error::new(kind, message))
    }

    /// Calls `path` with the client's call deadline.
    pub(crate) fn call(&self, path: &str, body: &Value) -> Result<Value> {
        self.call_until(path, body, Instant::now() + self.shared.timeouts.call)
    }

    /// Reads one key (linearizable).
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered before the call deadline.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        let v = self.call("/v3/kv/range", &json!({ "key": b64(key) }))?;
        Ok(wire::kvs(&v).into_iter().next())
    }

    /// Reads every key under `prefix`, ordered by create revision, and the store revision.
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered before the call deadline.
    pub fn range_prefix(&self, prefix: &[u8]) -> Result<(Vec<KeyValue>, i64)> {
        let v = self.call(
            "/v3/kv/range",
            &json!({
                "key": b64(prefix),
                "range_end": b64(&wire::prefix_end(prefix)),
                "sort_order": "ASCEND",
                "sort_target": "CREATE",
            }),
        )?;
        let rev = v.get("header").map_or(0, |h| int(h, "revision"));
        Ok((wire::kvs(&v), rev))
    }

    /// Puts a key (attached to `lease` unless 0); returns the new revision.
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered before the call deadline.
    pub fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<i64> {
        let mut body = json!({ "key": b64(key), "value": b64(value) });
        if lease != 0 {
            body["lease"] = json!(lease.to_string());
        }
        let v = self.call("/v3/kv/put", &body)?;
        Ok(v.get("header").map_or(0, |h| int(h, "revision")))
    }

    /// Deletes a key; returns whether it existed.
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered before the call deadline.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        let v = self.call("/v3/kv/deleterange", &json!({ "key": b64(key) }))?;
        Ok(int(&v, "deleted") > 0)
    }

    /// One transaction: if every comparison holds, `success` runs, else `failure`.
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered before the call deadline. A retried transaction
    /// may have been applied once already: design comparisons so the caller can tell.
    pub fn txn(&self, compare: &[Compare], success: &[Op], failure: &[Op]) -> Result<TxnResponse> {
        let body = json!({
            "compare": compare.iter().map(Compare::to_json).collect::<Vec<_>>(),
            "success": success.iter().map(Op::to_json).collect::<Vec<_>>(),
            "failure": failure.iter().map(Op::to_json).collect::<Vec<_>>(),
        });
        Ok(TxnResponse::from_json(&self.call("/v3/kv/txn", &body)?))
    }

    /// Grants a lease of `ttl` (the server may raise it to its minimum); returns id and TTL.
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered before the call deadline.
    pub fn grant(&self, ttl: Duration) -> Result<(i64, Duration)> {
        let secs = ttl.as_secs().max(1);
        let v = self.call("/v3/lease/grant", &json!({ "TTL": secs.to_string() }))?;
        if let Some(e) = v
            .get("error")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
        {
            return Err(Error::io(
                "etcd lease grant failed",
                self.url_path(),
                std::io::Error::other(e.to_string()),
            ));
        }
        let granted = u64::try_from(int(&v, "TTL")).unwrap_or(secs);
        Ok((int(&v, "ID"), Duration::from_secs(granted)))
    }

    /// Renews a lease once; returns the TTL it now has (zero: the lease no longer exists).
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered before `deadline`.
    pub fn keep_alive_once(&self, id: i64, deadline: Instant) -> Result<Duration> {
        let v = self.call_until(
            "/v3/lease/keepalive",
            &json!({ "ID": id.to_string() }),
            deadline,
        )?;
        let r = v.get("result").unwrap_or(&v);
        Ok(Duration::from_secs(
            u64::try_from(int(r, "TTL")).unwrap_or(0),
        ))
    }

    /// The TTL a lease has left, as the server counts it (zero when it no longer exists).
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered.
    pub fn time_to_live(&self, id: i64) -> Result<Duration> {
        let v = self.call("/v3/lease/timetolive", &json!({ "ID": id.to_string() }))?;
        Ok(Duration::from_secs(
            u64::try_from(int(&v, "TTL")).unwrap_or(0),
        ))
    }

    /// The ids of every lease the cluster has.
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered.
    pub fn leases(&self) -> Result<Vec<i64>> {
        let v = self.call("/v3/lease/leases", &json!({}))?;
        Ok(v.get("leases")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|l| int(l, "ID")).collect())
            .unwrap_or_default())
    }

    /// Revokes a lease: every key attached to it is deleted at once.
    ///
    /// # Errors
    /// [`Error::Io`] when no member answered; a lease that no longer exists is not an error.
    pub fn revoke(&self, id: i64) -> Result<()> {
        match self.call("/v3/lease/revoke", &json!({ "ID": id.to_string() })) {
            Ok(_) => Ok(()),
            Err(Error::Io { source, .. }) if source.to_string().contains("not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Asks every endpoint for its status (no retries; unreachable members carry an error).
    pub fn status(&self) -> Vec<MemberStatus> {
        (0..self.shared.endpoints.len())
            .map(|i| {
                let endpoint = self.shared.endpoints[i].clone();
                let one = self.clone();
                match one.attempt(i, "/v3/maintenance/status", b"{}") {
                    Ok(v) => {
                        let errors = v
                            .get("errors")
                            .and_then(Value::as_array)
                            .and_then(|a| a.first())
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        let header = v.get("header").cloned().unwrap_or(Value::Null);
                        MemberStatus {
                            endpoint,
                            member_id: id_u64(&header, "member_id"),
                            leader: id_u64(&v, "leader"),
                            revision: int(&header, "revision"),
                            raft_applied_index: int(&v, "raftAppliedIndex"),
                            error: errors,
                        }
                    }
                    Err(f) => MemberStatus {
                        endpoint,
                        member_id: 0,
                        leader: 0,
                        revision: 0,
                        raft_applied_index: 0,
                        error: Some(f.message),
                    },
                }
            })
            .collect()
    }

    /// Opens a watch on `key` (or the range up to `range_end`) from `start_revision`, on its own
    /// connection to the preferred member (rotating past unreachable ones once).
    ///
    /// # Errors
    /// [`Error::Io`] when no member accepted the watch.
    pub(crate) fn watch(
        &self,
        key: &[u8],
        range_end: Option<&[u8]>,
        start_revision: i64,
    ) -> Result<Watch> {
        let mut req = json!({ "key": b64(key), "start_revision": start_revision.to_string() });
        if let Some(end) = range_end {
            req["range_end"] = json!(b64(end));
        }
        let body = json!({ "create_request": req }).to_string().into_bytes();
        let n = self.shared.endpoints.len();
        let mut last = String::new();
        for _ in 0..n {
            let idx = self.shared.preferred.load(Ordering::Relaxed) % n;
            let opened = Conn::connect(&self.shared.endpoints[idx], self.shared.timeouts.request)
                .and_then(|c| c.post_stream("/v3/watch", &body));
            match opened {
                Ok(mut s) if s.status == 200 => match s.next_message() {
                    Ok(Some(first)) if created(&first) => return Ok(Watch { stream: s }),
                    Ok(other) => {
                        last = other.map_or_else(
                            || "watch ended at once".into(),
                            |m| String::from_utf8_lossy(&m).into_owned(),
                        );
                    }
                    Err(e) => last = e.to_string(),
                },
                Ok(s) => last = format!("watch refused with HTTP status {}", s.status),
                Err(e) => last = e.to_string(),
            }
            let _ = self.shared.preferred.compare_exchange(
                idx,
                (idx + 1) % n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        Err(Error::io(
            "etcd watch failed",
            self.url_path(),
            std::io::Error::other(last),
        ))
    }
}

fn created(msg: &[u8]) -> bool {
    serde_json::from_slice::<Value>(msg)
        .ok()
        .and_then(|v| v.get("result").map(|r| wire::flag(r, "created")))
        .unwrap_or(false)
}

fn id_u64(v: &Value, field: &str) -> u64 {
    match v.get(field) {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

/// What a watch saw.
#[derive(Debug)]
pub(crate) enum Seen {
    /// At least one key under the watch was deleted.
    Deleted,
    /// Only puts happened.
    Put,
    /// The stream ended or failed (member lost, no leader, compaction): re-check and re-watch.
    Broken,
    /// Nothing happened before the timeout.
    Quiet,
}

/// An open watch stream.
#[derive(Debug)]
pub(crate) struct Watch {
    stream: Stream,
}

impl Watch {
    /// Waits up to `timeout` for the next events.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Seen {
        if self
            .stream
            .set_read_timeout(timeout.max(Duration::from_millis(1)))
            .is_err()
        {
            return Seen::Broken;
        }
        match self.stream.next_message() {
            Ok(Some(msg)) => {
                let Ok(v) = serde_json::from_slice::<Value>(&msg) else {
                    return Seen::Broken;
                };
                let Some(r) = v.get("result") else {
                    return Seen::Broken;
                };
                if wire::flag(r, "canceled") || int(r, "compact_revision") != 0 {
                    return Seen::Broken;
                }
                let events = r.get("events").and_then(Value::as_array);
                match events {
                    Some(evs) if evs.iter().any(|e| e.get("type") == Some(&json!("DELETE"))) => {
                        Seen::Deleted
                    }
                    _ => Seen::Put,
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Seen::Quiet
            }
            Ok(None) | Err(_) => Seen::Broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_gives_endpoints_and_prefix() {
        let (e, p) = parse_url("etcd://a:2379,b:2380").unwrap();
        assert_eq!(e, ["a:2379", "b:2380"]);
        assert_eq!(p, "concur/");
        let (e, p) = parse_url("etcd://127.0.0.1:1/team/x/").unwrap();
        assert_eq!(e, ["127.0.0.1:1"]);
        assert_eq!(p, "team/x/");
    }

    #[test]
    fn malformed_urls_are_invalid_input() {
        for u in [
            "http://a:1",
            "etcd://a",
            "etcd://a:x",
            "etcd://:1",
            "etcd://a:1,,b:2",
        ] {
            let e = parse_url(u).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Invalid, "{u}");
        }
    }
}
