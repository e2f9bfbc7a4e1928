//! The wire protocol: newline-delimited JSON, one request per line, one response line per
//! request, in order, on a Unix stream socket. docs/PROTOCOL.md is the user-facing reference.
//!
//! Requests:
//! - `{"op":"append","file":"/abs/path","line":"{\"k\":1}","id":"retry-id"}` — append the JSON
//!   document in the string `line` as one compact line (whitespace removed, key order and
//!   number spellings kept); or `"text":"raw line"` for a raw text line (no newline); or
//!   `"json":VALUE` for a JSON value the broker re-serialises (keys then come out sorted).
//!   `id` is optional: a request repeated with the same `id` for the same file is written once.
//! - `{"op":"ledger","file":"/abs/path","json":{...}}` — a hash-chained ledger append
//!   ([`crate::ledger`]); answered with `seq`, `prev`, `hash`.
//! - `{"op":"ping"}` — liveness; `{"op":"status"}` — counters.
//!
//! Responses: `{"ok":true,"id":...,"duplicate":false}` for an append (sent only after the
//! line is durable), `{"ok":true,...}` with fields for ping/status, and
//! `{"ok":false,"id":...,"error":{"kind":"invalid","message":"..."}}` on failure.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// The largest request line the broker reads (1 MiB); longer lines are refused.
pub const MAX_REQUEST: usize = 1 << 20;

/// The largest appended line (before its newline), in bytes.
pub const MAX_LINE: usize = MAX_REQUEST - 4096;

/// The longest accepted retry id, in bytes.
pub const MAX_ID: usize = 256;

/// A request, as sent on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
#[non_exhaustive]
pub enum Request {
    /// Append one line to a file.
    Append {
        /// The target file: absolute, under one of the broker's roots.
        file: PathBuf,
        /// A JSON document as text, written compact with key order kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<String>,
        /// A JSON value, re-serialised as one compact line (keys sorted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        json: Option<serde_json::Value>,
        /// A raw text line (no newline), instead of `json`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// Retry id: the same id for the same file is written once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Append one entry to a hash-chained ledger ([`crate::ledger`]): the broker runs the
    /// ledger append (under the file's sidecar lock, fdatasync'ed) and answers with `seq`,
    /// `prev` and `hash`. Not group-committed, not deduplicated by id.
    Ledger {
        /// The ledger file: absolute, under one of the broker's roots.
        file: PathBuf,
        /// The entry: a JSON object without `seq`/`prev`/`hash`.
        json: serde_json::Value,
    },
    /// Is the broker alive?
    Ping,
    /// The broker's counters.
    Status,
}

/// What to append.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A JSON document as text: validated and written compact, key order kept.
    JsonText(String),
    /// A JSON value: written as compact JSON (object keys sorted).
    Json(serde_json::Value),
    /// Written as is; must be UTF-8 without newline or NUL.
    Text(String),
}

impl Line {
    /// The bytes of the line without its trailing newline, validated.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a text line with a newline or NUL, or a line over [`MAX_LINE`].
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let bytes = match self {
            Line::Json(v) => serde_json::to_vec(v)
                .map_err(|e| Error::Invalid(format!("cannot encode JSON line: {e}")))?,
            Line::JsonText(s) => strip_newline(crate::append::encode_json(s.as_bytes())?),
            Line::Text(s) => strip_newline(crate::append::encode_raw(s.as_bytes())?),
        };
        if bytes.len() > MAX_LINE {
            return Err(Error::Invalid(format!(
                "line of {} bytes is over the broker's limit of {MAX_LINE}",
                bytes.len()
            )));
        }
        Ok(bytes)
    }
}

fn strip_newline(mut v: Vec<u8>) -> Vec<u8> {
    if v.last() == Some(&b'\n') {
        v.pop();
    }
    v
}

/// Validates a retry id: 1..=256 bytes, no control characters.
///
/// # Errors
/// [`Error::Invalid`] naming what is wrong.
pub fn check_id(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > MAX_ID {
        return Err(Error::Invalid(format!(
            "retry id must be 1 to {MAX_ID} bytes long"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "retry id may not contain control characters".into(),
        ));
    }
    Ok(())
}

/// The error object of a failed response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// `conflict`, `precondition`, `invalid`, `io` or `permission` (as [`ErrorKind::name`]).
    pub kind: String,
    /// One line saying what went wrong.
    pub message: String,
}

impl Failure {
    /// A failure from a library error.
    pub fn from_error(e: &Error) -> Failure {
        Failure {
            kind: e.kind().name().to_owned(),
            message: e.to_string(),
        }
    }

    /// A failure of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind: kind.name().to_owned(),
            message: message.into(),
        }
    }

    /// Turns the failure back into a library error of the same kind; `file` is the request's
    /// target, named in permission and I/O errors.
    pub fn into_error(self, file: &std::path::Path) -> Error {
        // The broker's message already names the path; keep only its reason for those kinds.
        let why = self
            .message
            .split_once("): ")
            .map_or(self.message.as_str(), |(_, w)| w)
            .to_owned();
        match self.kind.as_str() {
            "conflict" => Error::Conflict(self.message),
            "precondition" => Error::Precondition(self.message),
            "invalid" => Error::Invalid(self.message),
            "permission" => Error::unsafe_path("refused by the broker", file, why),
            _ => Error::io(
                "the broker could not append to",
                file,
                std::io::Error::other(why),
            ),
        }
    }
}

/// A response line. Fields beyond `ok`, `id`, `duplicate` and `error` (status counters) are
/// kept in `extra`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded (for an append: the line is durable).
    pub ok: bool,
    /// The request's retry id, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// For an append: the id had already been written, so nothing was written now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// Other fields (ping and status answers).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Response {
    /// A failed response.
    pub fn failed(id: Option<String>, failure: Failure) -> Response {
        Response {
            ok: false,
            id,
            error: Some(failure),
            ..Response::default()
        }
    }

    /// The response as one line, with its newline.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_from_their_documented_shapes() {
        let r: Request =
            serde_json::from_str(r#"{"op":"append","file":"/a/b","json":{"x":1},"id":"k1"}"#)
                .unwrap();
        match r {
            Request::Append { file, json, id, .. } => {
                assert_eq!(file, PathBuf::from("/a/b"));
                assert_eq!(json.unwrap()["x"], 1);
                assert_eq!(id.as_deref(), Some("k1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            serde_json::from_str::<Request>(r#"{"op":"ping"}"#).unwrap(),
            Request::Ping
        ));
        assert!(serde_json::from_str::<Request>(r#"{"op":"append","fil":"/a"}"#).is_err());
    }

    #[test]
    fn raw_lines_with_newlines_are_refused() {
        assert!(Line::Text("a\nb".into()).encode().is_err());
        assert_eq!(
            Line::Json(serde_json::json!({"a": [1, 2]}))
                .encode()
                .unwrap(),
            br#"{"a":[1,2]}"#
        );
    }

    #[test]
    fn responses_round_trip_with_extra_fields() {
        let mut r = Response {
            ok: true,
            id: Some("x".into()),
            ..Response::default()
        };
        r.extra.insert("pid".into(), 7.into());
        let line = r.to_line();
        let back: Response = serde_json::from_slice(&line).unwrap();
        assert!(back.ok);
        assert_eq!(back.extra["pid"], 7);
        assert!(!String::from_utf8(line).unwrap().contains("duplicate"));
    }
}
