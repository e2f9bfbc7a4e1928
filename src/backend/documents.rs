//! Named JSON documents and fenced writes on a backend: one trait, [`Documents`], for
//! `concur json --key NAME FILTER` and for the fence a write of a local file gets.
//!
//! A document is a JSON value with a name, updated by a jq filter ([`JsonUpdate`]) so that
//! concurrent updates never lose each other: locally the file `HOME/json/NAME.json`, updated
//! under its sidecar lock by [`JsonUpdate::apply`] exactly as `concur json FILE` does; on etcd
//! the key `PREFIX/json/NAME`, updated by compare-and-swap ([`crate::etcd::json`]). Both start a
//! missing document from the init value (without one: invalid, nothing written), write nothing
//! when the filter leaves the value as it was, and refuse a stale `--fence` (nothing written).
//!
//! Fences differ in strength, as the backends do. Locally a fence is checked against the
//! document's record of the highest token accepted per lock (`NAME.json.fence`, see
//! [`crate::fence`]): a lower token is refused. On etcd the lock (or task lease) must be held
//! with that token, checked by etcd in the write's own transaction. [`Documents::fencing`] is
//! the fence a write of a *local file* (`write --fence`, `json FILE --fence`) gets: the token
//! record alone locally; with etcd, also a holder check under the file's lock.

use serde_json::Value;

use super::{Backend, Kind};
use crate::error::Result;
use crate::fence::{Fence, Fencing};
use crate::home::Home;
use crate::json::JsonUpdate;

/// What an update of a document did, on any backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// The document's name.
    pub key: String,
    /// The document now, as compact JSON.
    pub value: String,
    /// The etag of the stored content ([`crate::replace::etag`]): changes whenever it does.
    pub etag: String,
    /// On etcd, the key's mod revision now; `None` locally.
    pub revision: Option<i64>,
    /// The document did not exist and was created from the init value.
    pub created: bool,
    /// The value was written (false when the filter left it as it was).
    pub changed: bool,
}

impl Updated {
    /// The `--json` fields every backend gives: `key`, `value`, `etag`, `revision`, `created`,
    /// `changed`.
    #[must_use]
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "key": self.key,
            "value": serde_json::from_str::<Value>(&self.value).unwrap_or(Value::Null),
            "etag": self.etag,
            "revision": self.revision,
            "created": self.created,
            "changed": self.changed,
        })
    }
}

/// Named JSON documents and the fencing of local files on a backend.
pub trait Documents {
    /// Runs `update`'s filter on document `name` and stores the result, fenced by `fence` when
    /// given.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] for a bad name or filter, a stored value that is not JSON, a
    /// failing filter or a missing document without an init value (nothing written);
    /// [`crate::Error::Precondition`] for a stale fence; I/O errors (etcd unreachable).
    fn update(&self, name: &str, fence: Option<&Fence>, update: &JsonUpdate) -> Result<Updated>;

    /// The fencing a write of a local file under `fence` gets on this backend.
    fn fencing(&self, fence: Fence) -> Fencing;
}

/// Documents as files in the home.
struct Local<'a> {
    home: Option<&'a Home>,
}

impl Documents for Local<'_> {
    fn update(&self, name: &str, fence: Option<&Fence>, update: &JsonUpdate) -> Result<Updated> {
        crate::id::check_name("json document", name)?;
        update.compile()?;
        let home = self.home.ok_or_else(|| {
            crate::Error::Invalid("no runtime home for local json documents".into())
        })?;
        let path = home.subdir("json")?.join(format!("{name}.json"));
        let mut opts = crate::replace::ReplaceOptions::new();
        if let Some(f) = fence {
            opts = opts.fence(self.fencing(f.clone()));
        }
        let done = update.clone().replace_options(opts).apply(&path)?;
        Ok(Updated {
            key: name.to_string(),
            value: done.value,
            etag: done.etag,
            revision: None,
            created: done.created,
            changed: done.changed,
        })
    }

    fn fencing(&self, fence: Fence) -> Fencing {
        Fencing::new(fence)
    }
}

/// Documents as etcd keys.
#[cfg(feature = "etcd")]
struct Etcd<'a> {
    client: &'a crate::etcd::Client,
}

#[cfg(feature = "etcd")]
impl Documents for Etcd<'_> {
    fn update(&self, name: &str, fence: Option<&Fence>, update: &JsonUpdate) -> Result<Updated> {
        let done = crate::etcd::json::update(self.client, name, fence, &update.compile()?)?;
        Ok(Updated {
            key: name.to_string(),
            etag: crate::replace::etag(done.value.as_bytes()),
            value: done.value,
            revision: Some(done.revision),
            created: done.created,
            changed: done.changed,
        })
    }

    fn fencing(&self, fence: Fence) -> Fencing {
        let client = self.client.clone();
        Fencing::new(fence).check(move |f| crate::etcd::fence::check_holder(&client, f))
    }
}

impl Backend {
    /// The named JSON documents (and local-file fencing) of this backend.
    #[must_use]
    pub fn documents(&self) -> Box<dyn Documents + '_> {
        match &self.kind {
            Kind::Local => Box::new(Local {
                home: self.home.as_ref(),
            }),
            #[cfg(feature = "etcd")]
            Kind::Etcd { client, .. } => Box::new(Etcd { client }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_document_is_a_file_in_the_home() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path().join("h")).unwrap();
        let b = Backend::local(home.clone());
        let up = JsonUpdate::new(".n += 1").init(r#"{"n":0}"#).unwrap();
        let first = b.documents().update("count", None, &up).unwrap();
        assert!(first.created && first.changed);
        let second = b.documents().update("count", None, &up).unwrap();
        assert_eq!(second.value, r#"{"n":2}"#);
        assert!(!second.created);
        let on_disk = std::fs::read(home.join("json/count.json")).unwrap();
        assert_eq!(second.etag, crate::replace::etag(&on_disk));
        for bad in ["../x", "a/b", ""] {
            let e = b.documents().update(bad, None, &up).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Invalid, "{bad:?}: {e}");
        }
    }
}
