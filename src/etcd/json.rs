//! JSON documents stored in etcd, updated with a jq filter by compare-and-swap.
//!
//! `concur --backend etcd://… json --key NAME FILTER` is the cluster-wide `concur json FILE
//! FILTER`: the document lives in the key `PREFIX/json/NAME` (compact JSON), the filter runs on
//! the value read, and the result is committed by [`super::fence::cas`] only if the key's mod
//! revision is still the one read; on a concurrent change the value is read again and the
//! filter re-run. Concurrent updates never lose each other's changes.
//!
//! Guarantees, as for files ([`crate::json`]): the filter is compiled before etcd is contacted; a
//! filter that fails, or yields no value or several, writes nothing; a missing key starts from
//! the init value (without one: [`Error::Invalid`]); a result equal to the stored value writes
//! nothing (`.` is a linearizable read). With a fence, the lock's (or task lease's) create
//! revision is compared in the same transaction as the write: a stale holder's update is
//! refused by etcd itself, with no window. A retried transaction that had committed is recognised by a nonce in
//! `PREFIX/json-writer/NAME`, so the filter's effect is never applied twice.
//!
//! Not guaranteed: the filter runs once per attempt, so under contention it may run several
//! times (its side effects, if any, e.g. `now`, are those of the attempt that committed).

use super::client::Client;
use super::fence::{self, Fence};
use crate::error::{Error, Result};
use crate::json::Program;

/// What [`update`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// The document now, as compact JSON.
    pub value: String,
    /// The key's mod revision now.
    pub revision: i64,
    /// The key did not exist and was created from the init value.
    pub created: bool,
    /// The value was written (false when the filter left it as it was).
    pub changed: bool,
}

/// The etcd key of document `name`.
pub fn key(client: &Client, name: &str) -> Vec<u8> {
    client.key(&format!("json/{name}"))
}

/// Runs `program` on document `name` and commits the result by compare-and-swap (fenced when
/// `fence` is given).
///
/// # Errors
/// [`Error::Invalid`] for a bad name, a stored value that is not JSON, a failing filter, or a
/// missing document without an init value (nothing written); [`Error::Precondition`] when the
/// fence is stale; [`Error::Io`] when no member answered.
///
/// # Examples
/// ```no_run
/// use concur::etcd::{Client, json};
/// use concur::json::JsonUpdate;
/// let c = Client::new("etcd://127.0.0.1:2379")?;
/// let p = JsonUpdate::new(".n += 1").init(r#"{"n":0}"#)?.compile()?;
/// let done = json::update(&c, "counter", None, &p)?;
/// println!("{} at revision {}", done.value, done.revision);
/// # Ok::<(), concur::Error>(())
/// ```
pub fn update(
    client: &Client,
    name: &str,
    fence: Option<&Fence>,
    program: &Program,
) -> Result<Updated> {
    super::check_name("json document", name)?;
    let key = key(client, name);
    let side = client.key(&format!("json-writer/{name}"));
    let what = format!("stored value of etcd json document {name}");
    let mut last = None;
    let done = fence::cas(client, &key, &side, fence, |kv| {
        let out = program
            .run(kv.map(|kv| kv.value.as_slice()), &what)?
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "etcd json document {name} does not exist (pass --init JSON to start from a \
                     value)"
                ))
            })?;
        let bytes = out.value.clone().into_bytes();
        last = Some(out);
        Ok(Some(bytes))
    })?;
    let out = last.expect("the filter ran at least once");
    Ok(Updated {
        value: out.value,
        revision: done.revision,
        created: out.created && done.changed,
        changed: done.changed,
    })
}
