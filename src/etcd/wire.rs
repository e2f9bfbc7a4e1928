//! The gateway's JSON encoding: keys and values are base64, 64-bit integers are decimal strings,
//! and fields at their zero value are omitted (proto3), so a missing number reads as 0.

use serde_json::{Value, json};

pub(crate) use crate::base64::{decode as unb64, encode as b64};

/// An int64 field: a decimal string, a number, or absent (0).
pub(crate) fn int(v: &Value, field: &str) -> i64 {
    match v.get(field) {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// A bool field (absent = false).
pub(crate) fn flag(v: &Value, field: &str) -> bool {
    v.get(field).and_then(Value::as_bool).unwrap_or(false)
}

/// One key-value pair as etcd stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The revision that created the key (its fencing token when it is a holder key).
    pub create_revision: i64,
    /// The revision of the last change.
    pub mod_revision: i64,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
}

impl KeyValue {
    pub(crate) fn from_json(v: &Value) -> KeyValue {
        let bytes = |f: &str| {
            v.get(f)
                .and_then(Value::as_str)
                .and_then(unb64)
                .unwrap_or_default()
        };
        KeyValue {
            key: bytes("key"),
            value: bytes("value"),
            create_revision: int(v, "create_revision"),
            mod_revision: int(v, "mod_revision"),
            lease: int(v, "lease"),
        }
    }

    /// The value as UTF-8 text (lossy).
    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

/// The key-values of a range response.
pub(crate) fn kvs(range: &Value) -> Vec<KeyValue> {
    range
        .get("kvs")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(KeyValue::from_json).collect())
        .unwrap_or_default()
}

/// The end of the range holding every key that starts with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A transaction comparison.
#[derive(Debug, Clone)]
pub enum Compare {
    /// The key's create revision equals this (0: the key does not exist).
    CreateRevision(Vec<u8>, i64),
    /// The key's mod revision equals this.
    ModRevision(Vec<u8>, i64),
    /// The key's mod revision is greater than this (`> 0`: the key exists).
    ModRevisionAbove(Vec<u8>, i64),
    /// The key's value equals this.
    Value(Vec<u8>, Vec<u8>),
}

impl Compare {
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Compare::CreateRevision(k, r) => json!({
                "target": "CREATE", "result": "EQUAL", "key": b64(k), "create_revision": r.to_string()
            }),
            Compare::ModRevision(k, r) => json!({
                "target": "MOD", "result": "EQUAL", "key": b64(k), "mod_revision": r.to_string()
            }),
            Compare::ModRevisionAbove(k, r) => json!({
                "target": "MOD", "result": "GREATER", "key": b64(k), "mod_revision": r.to_string()
            }),
            Compare::Value(k, v) => json!({
                "target": "VALUE", "result": "EQUAL", "key": b64(k), "value": b64(v)
            }),
        }
    }
}

/// An operation inside a transaction.
#[derive(Debug, Clone)]
pub enum Op {
    /// Put a key, attached to a lease when the lease id is not 0.
    Put(Vec<u8>, Vec<u8>, i64),
    /// Read one key.
    Get(Vec<u8>),
    /// Delete one key.
    Delete(Vec<u8>),
    /// Read every key under a prefix, ordered by create revision.
    Prefix(Vec<u8>),
}

impl Op {
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Op::Put(k, v, lease) => {
                let mut p = json!({ "key": b64(k), "value": b64(v) });
                if *lease != 0 {
                    p["lease"] = json!(lease.to_string());
                }
                json!({ "request_put": p })
            }
            Op::Get(k) => json!({ "request_range": { "key": b64(k) } }),
            Op::Delete(k) => json!({ "request_delete_range": { "key": b64(k) } }),
            Op::Prefix(p) => json!({ "request_range": {
                "key": b64(p),
                "range_end": b64(&prefix_end(p)),
                "sort_order": "ASCEND",
                "sort_target": "CREATE",
            } }),
        }
    }
}

/// What a transaction returned.
#[derive(Debug, Clone)]
pub struct TxnResponse {
    /// Whether every comparison held (the success branch ran).
    pub succeeded: bool,
    /// The store revision after the transaction.
    pub revision: i64,
    /// For each `Get` or `Prefix` of the branch that ran, in order: the first key, if any.
    pub gets: Vec<Option<KeyValue>>,
    /// For each `Get` or `Prefix` of the branch that ran, in order: every key it read.
    pub ranges: Vec<Vec<KeyValue>>,
}

impl TxnResponse {
    pub(crate) fn from_json(v: &Value) -> TxnResponse {
        let ranges: Vec<Vec<KeyValue>> = v
            .get("responses")
            .and_then(Value::as_array)
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| r.get("response_range"))
                    .map(kvs)
                    .collect()
            })
            .unwrap_or_default();
        let gets = ranges.iter().map(|r| r.first().cloned()).collect();
        TxnResponse {
            ranges,
            succeeded: flag(v, "succeeded"),
            revision: v.get("header").map_or(0, |h| int(h, "revision")),
            gets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_every_length() {
        let data: Vec<u8> = (0..=255).collect();
        for n in 0..40 {
            assert_eq!(unb64(&b64(&data[..n])).unwrap(), &data[..n]);
        }
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(b"lk"), "bGs=");
        assert_eq!(unb64("bWU=").unwrap(), b"me");
        assert!(unb64("a b").is_none());
    }

    #[test]
    fn missing_fields_read_as_zero_and_strings_as_numbers() {
        let v = json!({ "create_revision": "12", "lease": 7 });
        assert_eq!(int(&v, "create_revision"), 12);
        assert_eq!(int(&v, "lease"), 7);
        assert_eq!(int(&v, "mod_revision"), 0);
        assert!(!flag(&v, "succeeded"));
    }

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
    }

    #[test]
    fn failed_txn_reports_the_holder() {
        let v = json!({"header":{"revision":"3"},"responses":[{"response_range":{"kvs":[
            {"key":"bGs=","create_revision":"3","mod_revision":"3","value":"bWU=","lease":"9"}]}}]});
        let t = TxnResponse::from_json(&v);
        assert!(!t.succeeded);
        assert_eq!(t.revision, 3);
        let kv = t.gets[0].clone().unwrap();
        assert_eq!(
            (kv.key.as_slice(), kv.create_revision, kv.lease),
            (&b"lk"[..], 3, 9)
        );
    }
}
