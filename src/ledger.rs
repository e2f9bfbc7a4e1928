//! Hash-chained JSONL ledgers: an append-only file where every line commits to the one before.
//!
//! Each line is one JSON object: the caller's entry plus three reserved fields,
//!
//! - `seq` — 1 for the first line, then +1 per line;
//! - `prev` — the previous line's `hash` (64 `0`s for the first line);
//! - `hash` — lowercase hex SHA-256 of the bytes `prev ‖ canonical(line without "hash")`.
//!
//! **Canonical JSON** ([`canonical`]), so that any language can verify a ledger: no whitespace
//! anywhere; object keys sorted by their UTF-8 bytes; strings in double quotes with `"` and `\`
//! escaped as `\"` and `\\`, the control characters U+0008, U+0009, U+000A, U+000C, U+000D as
//! `\b`, `\t`, `\n`, `\f`, `\r`, every other character below U+0020 as `\u00XX` (lowercase
//! hex), and everything else (including `/` and non-ASCII) as its raw UTF-8; `true`, `false`,
//! `null`; integers in decimal; other numbers in their shortest round-trip decimal form (as
//! Rust's `serde_json` writes them: `1.5`, `1e100`). Each stored line is itself the canonical
//! form of the whole object (with `hash`), followed by `\n`.
//!
//! **Append** ([`append`]) holds the file's sidecar lock (`FILE.lock`, see [`crate::sidecar`])
//! while it reads the last line — seeking back from the end, so its cost does not grow with the
//! file — and writes the new line with one `write(2)` on `O_APPEND`, then `fdatasync`. When the
//! lock cannot be had in time it fails ([`Error::Timeout`]): it never writes unprotected.
//! A torn last line (no final newline) can only be a write that was cut short — its writer was
//! killed, so it was never acknowledged: append repairs it first, under the same lock, exactly
//! as [`repair`] does (a complete entry gets its newline, anything else is cut), reports what
//! it did in [`Appended::repaired`] (the CLI prints it on stderr), and goes on. Every concur
//! ledger writer also records its write in the lock file (see [`crate::sidecar`]), so the
//! next holder cuts what a killed one left even before looking at the tail. [`verify`] stays
//! strict: a torn tail is reported until someone appends or repairs.
//!
//! **Verify** ([`verify`]) names the first bad line and why. **Repair** ([`repair`]) only deals
//! with a final line that has no newline: a torn write is removed; an unterminated line that is
//! a complete, correctly chained entry gets its newline instead (a complete entry is never
//! removed). Nothing else is ever changed.
//!
//! Not guaranteed: the chain proves the order and content of the lines since the first one; it
//! does not prove who wrote them (no signatures), nor that lines were not cut off the end of a
//! file that ends with a newline (compare the head hash with a copy kept elsewhere for that).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::sidecar;
use crate::sys;

/// The `prev` of the first line: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The reserved fields an entry may not carry itself.
pub const RESERVED: [&str; 3] = ["seq", "prev", "hash"];

/// The canonical JSON text of `v` (see the module docs for the exact rules).
///
/// # Examples
/// ```
/// let v = serde_json::json!({"b": [1, "x\n"], "a": {"d": null, "c": true}});
/// assert_eq!(concur::ledger::canonical(&v), r#"{"a":{"c":true,"d":null},"b":[1,"x\n"]}"#);
/// ```
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The hash of a line: lowercase hex SHA-256 of `prev ‖ canonical(line without "hash")`.
pub fn line_hash(prev: &str, line_without_hash: &Map<String, Value>) -> String {
    let canon = canonical(&Value::Object(line_without_hash.clone()));
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canon.as_bytes());
    crate::hex::encode(&h.finalize())
}

/// What [`append`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Appended {
    /// The new line's sequence number.
    pub seq: u64,
    /// The previous line's hash.
    pub prev: String,
    /// The new line's hash (the ledger's new head).
    pub hash: String,
    /// A torn final line (never acknowledged: its writer was killed mid-write) that this
    /// append found and repaired before writing, as [`repair`] would have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired: Option<Repaired>,
}

/// Options for [`append`] and [`repair`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How long to wait for the sidecar lock (`None`: as long as it takes).
    pub wait: Option<Duration>,
    /// `fdatasync` the file before returning (default true).
    pub fsync: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            wait: Some(Duration::from_secs(10)),
            fsync: true,
        }
    }
}

/// Checks that `entry` is a JSON object without the reserved fields.
///
/// # Errors
/// [`Error::Invalid`] saying what is wrong.
pub fn check_entry(entry: &Value) -> Result<&Map<String, Value>> {
    let Value::Object(m) = entry else {
        return Err(Error::Invalid(
            "a ledger entry must be a JSON object".into(),
        ));
    };
    if let Some(k) = RESERVED.iter().find(|k| m.contains_key(**k)) {
        return Err(Error::Invalid(format!(
            "a ledger entry may not carry the reserved field {k:?} (seq, prev and hash are added by concur)"
        )));
    }
    Ok(m)
}

/// Builds the stored line (canonical JSON with `seq`, `prev`, `hash`, and a final newline).
fn build_line(entry: &Map<String, Value>, seq: u64, prev: &str) -> (String, String) {
    let mut m = entry.clone();
    m.insert("seq".into(), Value::from(seq));
    m.insert("prev".into(), Value::from(prev));
    let hash = line_hash(prev, &m);
    m.insert("hash".into(), Value::from(hash.clone()));
    let mut line = canonical(&Value::Object(m));
    line.push('\n');
    (line, hash)
}

/// Appends `entry` to the ledger at `path` (created 0600 if missing).
///
/// # Errors
/// [`Error::Invalid`] for an entry that is not an object or carries a reserved field (nothing
/// written); [`Error::Timeout`] when the lock was not had in time (nothing written);
/// [`Error::Precondition`] when the file's last line is torn or not a ledger line;
/// [`Error::Io`] on a failed write (a short write is cut back off).
///
/// # Examples
/// ```
/// # let d = tempfile::tempdir().unwrap();
/// use concur::ledger::{append, verify, Options};
/// let f = d.path().join("verdicts.jsonl");
/// let a = append(&f, &serde_json::json!({"verdict": "pass"}), Options::default()).unwrap();
/// let b = append(&f, &serde_json::json!({"verdict": "fail"}), Options::default()).unwrap();
/// assert_eq!((a.seq, b.seq), (1, 2));
/// assert_eq!(b.prev, a.hash);
/// assert!(verify(&f).unwrap().problem.is_none());
/// ```
pub fn append(path: &Path, entry: &Value, opts: Options) -> Result<Appended> {
    let entry = check_entry(entry)?;
    let guard = sidecar::lock(&sidecar::path_for(path), opts.wait)?;
    let how = sys::fs::Open {
        read: true,
        ..sys::fs::Open::append(sys::fs::DEFAULT_MODE)
    };
    let file = sys::fs::open(path, how)
        .map_err(|e| crate::append::open_error("cannot open ledger", path, e))?;
    crate::append::refuse_read_only(&file, path)?;
    guard.cut_torn_append(&file, path)?;
    let mut len = file
        .metadata()
        .map_err(Error::with("cannot stat", path))?
        .len();
    let mut tail = last_line(&file, len, path)?;
    let mut repaired = None;
    if let Tail::Torn(start) = tail {
        let r = fix_torn_tail(&file, path, len, start, opts.fsync)?;
        sys::fileio::set_append(&file, true).map_err(Error::with("cannot reopen", path))?;
        len = file
            .metadata()
            .map_err(Error::with("cannot stat", path))?
            .len();
        tail = last_line(&file, len, path)?;
        repaired = Some(r);
    }
    let (seq, prev) = match tail {
        Tail::Empty => (1, GENESIS.to_owned()),
        Tail::Torn(_) => unreachable!("a torn tail was just repaired"),
        Tail::Line(bytes) => {
            let (seq, hash) = head_of(&bytes).ok_or_else(|| {
                Error::Precondition(format!(
                    "{}: the last line is not a ledger line (no seq/hash); run `concur ledger verify {}`",
                    path.display(),
                    path.display()
                ))
            })?;
            (seq + 1, hash)
        }
    };
    let (line, hash) = build_line(entry, seq, &prev);
    guard.write_append(&file, path, len, line.as_bytes())?;
    drop(guard);
    if opts.fsync {
        sys::fs::sync_data(&file).map_err(Error::with("cannot sync", path))?;
        if len == 0 {
            let dir = sys::fs::parent_dir(path);
            sys::fs::sync_dir(dir).map_err(Error::with("cannot sync directory", dir))?;
        }
    }
    Ok(Appended {
        seq,
        prev,
        hash,
        repaired,
    })
}

/// The `seq` and `hash` of a ledger line.
fn head_of(line: &[u8]) -> Option<(u64, String)> {
    let v: Value = serde_json::from_slice(line).ok()?;
    Some((v.get("seq")?.as_u64()?, v.get("hash")?.as_str()?.to_owned()))
}

/// The end of a file, read backwards.
enum Tail {
    Empty,
    /// The last complete line (without its newline).
    Line(Vec<u8>),
    /// Bytes after the last newline (the file does not end with one); with the offset they
    /// start at.
    Torn(u64),
}

/// Finds the last line by reading backwards from `len` in 4 KiB chunks.
fn last_line(file: &File, len: u64, path: &Path) -> Result<Tail> {
    if len == 0 {
        return Ok(Tail::Empty);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)
        .map_err(Error::with("cannot read", path))?;
    let terminated = last[0] == b'\n';
    let end = if terminated { len - 1 } else { len };
    // Scan back from `end` for the previous newline.
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = end;
    let start = loop {
        if pos == 0 {
            break 0;
        }
        let chunk = pos.min(4096);
        let mut tmp = vec![0u8; usize::try_from(chunk).expect("chunk fits")];
        file.read_exact_at(&mut tmp, pos - chunk)
            .map_err(Error::with("cannot read", path))?;
        pos -= chunk;
        if let Some(i) = tmp.iter().rposition(|&b| b == b'\n') {
            tmp.drain(..=i);
            tmp.extend_from_slice(&buf);
            buf = tmp;
            break pos + i as u64 + 1;
        }
        tmp.extend_from_slice(&buf);
        buf = tmp;
    };
    if terminated {
        Ok(Tail::Line(buf))
    } else {
        Ok(Tail::Torn(start))
    }
}

/// Why a line failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The final line has no newline: a write was cut off.
    Torn,
    /// The line is not a JSON object.
    NotJson,
    /// `seq`, `prev` or `hash` is missing or of the wrong type.
    MissingField,
    /// `seq` is not the previous line's plus one.
    SeqGap,
    /// `prev` is not the previous line's `hash`.
    BrokenLink,
    /// `hash` does not match the line's content.
    BadHash,
}

impl Fault {
    /// A short human name.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Torn => "torn line",
            Fault::NotJson => "not JSON",
            Fault::MissingField => "missing field",
            Fault::SeqGap => "seq gap",
            Fault::BrokenLink => "broken link",
            Fault::BadHash => "bad hash",
        }
    }
}

/// The first bad line [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong.
    pub fault: Fault,
    /// Details (expected vs found).
    pub detail: String,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The file.
    pub path: PathBuf,
    /// Lines that verified.
    pub entries: u64,
    /// The hash of the last good line (the head), if any.
    pub head: Option<String>,
    /// The first bad line, if any.
    pub problem: Option<Problem>,
}

/// Verifies the whole chain of the ledger at `path`, stopping at the first bad line.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read. A broken chain is not an error: it is
/// [`Report::problem`].
pub fn verify(path: &Path) -> Result<Report> {
    let file = sys::fs::open(path, sys::fs::Open::READ)
        .map_err(|e| crate::append::open_error("cannot open", path, e))?;
    let mut r = BufReader::new(file);
    let mut report = Report {
        path: path.to_path_buf(),
        entries: 0,
        head: None,
        problem: None,
    };
    let mut prev = GENESIS.to_owned();
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        buf.clear();
        let got = r
            .read_until(b'\n', &mut buf)
            .map_err(Error::with("cannot read", path))?;
        if got == 0 {
            return Ok(report);
        }
        n += 1;
        let bad = |fault, detail: String| Problem {
            line: n,
            fault,
            detail,
        };
        if buf.last() != Some(&b'\n') {
            report.problem = Some(bad(
                Fault::Torn,
                format!("{} bytes without a final newline", buf.len()),
            ));
            return Ok(report);
        }
        let problem = match check_line(&buf[..buf.len() - 1], n, &prev) {
            Ok(hash) => {
                prev.clone_from(&hash);
                report.entries = n;
                report.head = Some(hash);
                continue;
            }
            Err((fault, detail)) => bad(fault, detail),
        };
        report.problem = Some(problem);
        return Ok(report);
    }
}

/// Checks one line against the expected seq and prev; returns its hash.
fn check_line(line: &[u8], seq: u64, prev: &str) -> std::result::Result<String, (Fault, String)> {
    let v: Value = serde_json::from_slice(line).map_err(|e| (Fault::NotJson, e.to_string()))?;
    let Value::Object(mut m) = v else {
        return Err((Fault::NotJson, "not a JSON object".into()));
    };
    let got_seq = m.get("seq").and_then(Value::as_u64);
    let got_prev = m.get("prev").and_then(Value::as_str).map(str::to_owned);
    let got_hash = m.get("hash").and_then(Value::as_str).map(str::to_owned);
    let (Some(got_seq), Some(got_prev), Some(got_hash)) = (got_seq, got_prev, got_hash) else {
        return Err((
            Fault::MissingField,
            "seq, prev and hash must all be present".into(),
        ));
    };
    if got_seq != seq {
        return Err((
            Fault::SeqGap,
            format!("expected seq {seq}, found {got_seq}"),
        ));
    }
    if got_prev != prev {
        return Err((
            Fault::BrokenLink,
            format!("prev {got_prev} is not the previous hash {prev}"),
        ));
    }
    m.remove("hash");
    let want = line_hash(prev, &m);
    if want != got_hash {
        return Err((
            Fault::BadHash,
            format!("hash {got_hash} does not match the content ({want})"),
        ));
    }
    Ok(got_hash)
}

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repaired {
    /// The torn bytes removed (lossy UTF-8), if any.
    pub removed: Option<String>,
    /// Number of bytes removed.
    pub removed_bytes: u64,
    /// True when the final line was a complete entry missing only its newline, which was added.
    pub terminated: bool,
}

/// Repairs a torn final line of the ledger at `path`, under its sidecar lock: removes it, or —
/// if it is a complete entry that chains correctly — adds its missing newline. Never touches a
/// complete line.
///
/// # Errors
/// [`Error::Timeout`] when the lock was not had in time; [`Error::Io`] on failure.
///
/// # Examples
/// ```
/// # let d = tempfile::tempdir().unwrap();
/// use std::io::Write;
/// use concur::ledger::{append, repair, verify, Options};
/// let f = d.path().join("l.jsonl");
/// append(&f, &serde_json::json!({"n": 1}), Options::default()).unwrap();
/// std::fs::OpenOptions::new().append(true).open(&f).unwrap().write_all(b"{\"n\":2,").unwrap();
/// assert!(verify(&f).unwrap().problem.is_some());
/// let r = repair(&f, Options::default()).unwrap();
/// assert_eq!(r.removed.as_deref(), Some("{\"n\":2,"));
/// assert!(verify(&f).unwrap().problem.is_none());
/// ```
pub fn repair(path: &Path, opts: Options) -> Result<Repaired> {
    let _guard = sidecar::lock(&sidecar::path_for(path), opts.wait)?;
    let how = sys::fs::Open {
        read: true,
        write: true,
        ..sys::fs::Open::READ
    };
    let file = sys::fs::open(path, how)
        .map_err(|e| crate::append::open_error("cannot open ledger", path, e))?;
    let len = file
        .metadata()
        .map_err(Error::with("cannot stat", path))?
        .len();
    let Tail::Torn(start) = last_line(&file, len, path)? else {
        return Ok(Repaired {
            removed: None,
            removed_bytes: 0,
            terminated: false,
        });
    };
    fix_torn_tail(&file, path, len, start, opts.fsync)
}

/// Repairs the torn tail `start..len` of the ledger open (read, write or append) as `file`,
/// under its sidecar lock: a complete entry chaining from the line before gets its newline,
/// anything else is cut.
fn fix_torn_tail(file: &File, path: &Path, len: u64, start: u64, fsync: bool) -> Result<Repaired> {
    let mut torn = vec![0u8; usize::try_from(len - start).expect("fits")];
    file.read_exact_at(&mut torn, start)
        .map_err(Error::with("cannot read", path))?;
    // A complete entry missing only its newline is kept: check it chains from the line before.
    let (want_seq, want_prev) = if start == 0 {
        (1, GENESIS.to_owned())
    } else {
        match last_line(file, start, path)? {
            Tail::Line(b) => head_of(&b).map_or((0, String::new()), |(s, h)| (s + 1, h)),
            _ => (0, String::new()),
        }
    };
    let terminated = want_seq > 0 && check_line(&torn, want_seq, &want_prev).is_ok();
    if terminated {
        sys::fileio::set_append(file, false)
            .and_then(|()| sys::fileio::write_all_at(file, b"\n", len))
            .map_err(Error::with("cannot write", path))?;
    } else {
        file.set_len(start)
            .map_err(Error::with("cannot truncate", path))?;
    }
    if fsync {
        sys::fs::sync_data(file).map_err(Error::with("cannot sync", path))?;
    }
    Ok(Repaired {
        removed: (!terminated).then(|| String::from_utf8_lossy(&torn).into_owned()),
        removed_bytes: if terminated { 0 } else { len - start },
        terminated,
    })
}

impl Report {
    /// The report of a chain that holds; a broken one as an error naming the file, the first
    /// bad line, its fault and the details.
    ///
    /// # Errors
    /// [`Error::Precondition`] when [`Report::problem`] is set.
    pub fn holds(self) -> Result<Report> {
        match &self.problem {
            Some(p) => Err(Error::Precondition(format!(
                "{}: line {}: {}: {}",
                self.path.display(),
                p.line,
                p.fault.name(),
                p.detail
            ))),
            None => Ok(self),
        }
    }
}

impl std::fmt::Display for Report {
    /// `FILE: ok, N entries, head HASH` (`-` for an empty ledger).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: ok, {} entries, head {}",
            self.path.display(),
            self.entries,
            self.head.as_deref().unwrap_or("-")
        )
    }
}

impl Repaired {
    /// What the repair of `file` did, in one line: the torn line cut, or the newline added.
    pub fn describe(&self, file: &Path) -> String {
        match &self.removed {
            Some(torn) => format!(
                "{}: cut a torn final line ({} bytes, never acknowledged): {}",
                file.display(),
                self.removed_bytes,
                torn.escape_debug()
            ),
            None => format!(
                "{}: the final entry was complete; added its missing newline",
                file.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_escapes_controls_and_sorts_by_bytes() {
        let v = serde_json::json!({"é": 1, "Z": "a\u{1}\"\\/", "a": 1.5});
        assert_eq!(
            canonical(&v),
            "{\"Z\":\"a\\u0001\\\"\\\\/\",\"a\":1.5,\"é\":1}"
        );
    }

    #[test]
    fn tail_is_found_across_chunk_boundaries() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("l");
        let big = "x".repeat(10_000);
        for i in 0..3 {
            append(
                &f,
                &serde_json::json!({"i": i, "pad": big}),
                Options::default(),
            )
            .unwrap();
        }
        let r = verify(&f).unwrap();
        assert_eq!(r.entries, 3);
        assert!(r.problem.is_none());
    }

    #[test]
    fn a_tampered_line_is_named() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("l");
        for i in 0..3 {
            append(&f, &serde_json::json!({"i": i}), Options::default()).unwrap();
        }
        let text = std::fs::read_to_string(&f)
            .unwrap()
            .replace("\"i\":1", "\"i\":7");
        let p = d.path().join("l2");
        std::fs::File::create(&p).unwrap();
        let file = sys::fs::open(&p, sys::fs::Open::append(0o600)).unwrap();
        sys::fs::write_once(&file, text.as_bytes()).unwrap();
        let r = verify(&p).unwrap();
        let prob = r.problem.unwrap();
        assert_eq!((prob.line, prob.fault), (2, Fault::BadHash));
    }

    #[test]
    fn reserved_fields_are_refused() {
        assert!(check_entry(&serde_json::json!({"seq": 1})).is_err());
        assert!(check_entry(&serde_json::json!([1])).is_err());
    }
}
