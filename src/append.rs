//! Appending whole lines to a shared log (JSONL or text) from many processes at once.
//!
//! ## What is guaranteed
//!
//! - **One line, one `write(2)`, under the lock.** A line is validated and encoded first
//!   ([`encode_json`] re-emits JSON compactly, [`encode_raw`] refuses newline, NUL and invalid
//!   UTF-8), then written with a single `write(2)` on an `O_APPEND | O_NOFOLLOW` descriptor while
//!   holding the sidecar lock (`F.lock`, see [`crate::sidecar`]), so concur writers never
//!   interleave.
//! - **An acknowledged line is always a whole line of its own**, whatever was killed before it.
//!   The kernel cuts a large `write(2)` short when its writer gets `SIGKILL` (between pages),
//!   leaving a fragment with no newline. Before writing, each appender records in the lock file
//!   where its write starts and how long it is; the next appender, under the same lock, cuts
//!   the bytes of a recorded write that did not complete (never acknowledged). A file that ends
//!   in an unterminated line nobody recorded (edited by hand, written by another tool) is kept:
//!   the new line is written after a newline. The lock is released before `fdatasync`, so
//!   appenders still sync in parallel.
//! - **Durable before success.** `fdatasync(2)` runs before [`AppendOptions::append`] returns
//!   (unless [`AppendOptions::fsync`] is off); a file this call created also has its directory
//!   fsynced.
//! - **Exactly one header.** With [`AppendOptions::header`], a missing file is created holding
//!   header and line in one step: a temporary file in the same directory is written, fsynced and
//!   `link(2)`ed to the name. Of two first writers exactly one link succeeds; the other appends
//!   its line normally.
//! - **Idempotent retries.** With [`AppendOptions::dedup_key`], under the sidecar lock, an entry
//!   whose key value already appears in the file is not written again ([`Appended::Duplicate`]).
//! - **No partial record after a full disk.** If the write comes up short (`ENOSPC` mid-line),
//!   the fragment is cut off again before the lock is released, and the call fails with the I/O
//!   error; a file that this call created is removed again (a failed first append leaves no empty
//!   file behind; its sidecar lock stays, as sidecars always do).
//!
//! ## What is not
//!
//! - A power loss can leave a torn tail: the lock-file record lives in the page cache only. The
//!   next appender then still starts its line on a fresh line, but the fragment stays (a line
//!   readers must skip).
//! - Writers that do not use concur (`echo >> F`) are not serialised unless they take `F.lock`
//!   too; on Linux a single `write(2)` to a local regular file is not interleaved with other
//!   writes anyway, but it is not cut-proof, and their fragments are not recorded.
//! - Dedup reads the whole file under the lock: it costs O(file size) per append.
//! - If `fdatasync` itself fails, the line may or may not be on disk; the call reports the error.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sidecar::{self, SidecarGuard};
use crate::sys;

/// `PIPE_BUF`: the longest write POSIX promises atomic for pipes. Appends used to skip the lock
/// up to this size; every append takes it now (see the module docs), the constant stays for
/// callers that size lines by it.
pub const PIPE_BUF: usize = 4096;

/// The default `--max-line`: 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// Validates `input` as one JSON value and re-emits it compactly (insignificant whitespace
/// removed, everything else byte-for-byte: key order and number spellings are kept), followed by
/// a newline.
///
/// # Errors
/// [`Error::Invalid`] when `input` is not exactly one valid JSON value in UTF-8.
///
/// # Examples
/// ```
/// let line = concur::append::encode_json(br#"{ "id": 1, "msg": "a b" }"#).unwrap();
/// assert_eq!(line, b"{\"id\":1,\"msg\":\"a b\"}\n");
/// assert!(concur::append::encode_json(b"{nope").is_err());
/// ```
pub fn encode_json(input: &[u8]) -> Result<Vec<u8>> {
    // JSON text is UTF-8 (RFC 8259); serde_json does not check the bytes of strings it skips.
    check_utf8(input, "invalid JSON")?;
    serde_json::from_slice::<serde::de::IgnoredAny>(input)
        .map_err(|e| Error::Invalid(format!("invalid JSON: {e}")))?;
    let mut out = Vec::with_capacity(input.len() + 1);
    let mut in_string = false;
    let mut escaped = false;
    for &b in input {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
    }
    out.push(b'\n');
    Ok(out)
}

/// Refuses bytes that are not UTF-8: `Error::Invalid("<what>: not UTF-8 (at byte N)")`.
pub(crate) fn check_utf8(input: &[u8], what: &str) -> Result<()> {
    std::str::from_utf8(input)
        .map(drop)
        .map_err(|e| Error::Invalid(format!("{what}: not UTF-8 (at byte {})", e.valid_up_to())))
}

/// Validates `input` as one raw text line (UTF-8, no newline, no NUL) and appends the newline.
///
/// # Errors
/// [`Error::Invalid`] naming what is wrong.
///
/// # Examples
/// ```
/// assert_eq!(concur::append::encode_raw(b"hello").unwrap(), b"hello\n");
/// assert!(concur::append::encode_raw(b"two\nlines").is_err());
/// ```
pub fn encode_raw(input: &[u8]) -> Result<Vec<u8>> {
    if let Some(i) = input.iter().position(|&b| b == b'\n' || b == b'\r') {
        let what = if input[i] == b'\n' {
            "newline"
        } else {
            "carriage return"
        };
        return Err(Error::Invalid(format!(
            "raw line contains a {what} at byte {i}: one call appends one line"
        )));
    }
    if let Some(i) = input.iter().position(|&b| b == 0) {
        return Err(Error::Invalid(format!(
            "raw line contains a NUL byte at byte {i}"
        )));
    }
    if let Err(e) = std::str::from_utf8(input) {
        return Err(Error::Invalid(format!(
            "raw line is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        )));
    }
    let mut out = Vec::with_capacity(input.len() + 1);
    out.extend_from_slice(input);
    out.push(b'\n');
    Ok(out)
}

/// The value of `field` in an encoded JSON line: what [`AppendOptions::dedup_key`] compares.
///
/// # Errors
/// [`Error::Invalid`] when the line is not a JSON object or has no such field.
pub fn dedup_value(line: &[u8], field: &str) -> Result<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| Error::Invalid(format!("--dedup-key needs a JSON line: {e}")))?;
    match v {
        serde_json::Value::Object(mut m) => m.remove(field).ok_or_else(|| {
            Error::Invalid(format!("entry has no field {field:?} to deduplicate on"))
        }),
        _ => Err(Error::Invalid(
            "--dedup-key needs a JSON object entry".into(),
        )),
    }
}

/// True when some line of `log` is a JSON object whose `field` equals `value`.
///
/// Lines that are not JSON objects (a header, a blank line left by a disk-full clean-up) are
/// skipped. Only lines containing the field name are parsed.
pub fn contains_entry(log: &[u8], field: &str, value: &serde_json::Value) -> bool {
    let needle = serde_json::to_vec(field).unwrap_or_default();
    log.split(|&b| b == b'\n')
        .filter(|l| memmem(l, &needle))
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .any(|v| v.get(field) == Some(value))
}

/// Maps an open error: a FIFO, directory or device where a regular file belongs (planted to hang
/// or misdirect writers) is refused as an unsafe path; anything else is an I/O error.
pub(crate) fn open_error(action: &'static str, path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::InvalidInput && e.raw_os_error().is_none() {
        Error::unsafe_path("refusing", path, e.to_string())
    } else if e.raw_os_error() == Some(libc::EISDIR) {
        Error::unsafe_path("refusing", path, "is a directory, not a regular file")
    } else if e.raw_os_error() == Some(libc::ENXIO) {
        // A non-blocking write-open of a FIFO without a reader (or of a missing device).
        Error::unsafe_path("refusing", path, "is a FIFO or device, not a regular file")
    } else {
        Error::io(action, path, e)
    }
}

/// Refuses an open target that has no write bit at all (`0444`, `0400`): concur honours the
/// mode bits for every user, root included (root's open succeeds regardless).
pub(crate) fn refuse_read_only(file: &File, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .map_err(Error::with("cannot stat", path))?
        .permissions()
        .mode();
    if mode & 0o222 == 0 {
        return Err(Error::unsafe_path(
            "refusing",
            path,
            format!("is read-only (mode {:o}), for every user", mode & 0o7777),
        ));
    }
    Ok(())
}

fn memmem(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The line was written (and is durable unless fsync was turned off).
    Written {
        /// This call created the file.
        created: bool,
        /// This call wrote the header (it created the file with `header`).
        header: bool,
    },
    /// An entry with the same dedup key value was already present; nothing was written.
    Duplicate,
}

impl Appended {
    /// The `--json` fields of an append of the `bytes`-byte line to `file`: `outcome`
    /// (`written` or `duplicate`), the bytes written, whether the file and its header were
    /// created.
    pub fn to_json(&self, file: &Path, bytes: usize) -> serde_json::Value {
        let (word, created, header, bytes) = match *self {
            Appended::Written { created, header } => ("written", created, header, bytes),
            Appended::Duplicate => ("duplicate", false, false, 0),
        };
        serde_json::json!({
            "file": file,
            "outcome": word,
            "bytes": bytes,
            "created": created,
            "header": header,
        })
    }
}

/// How to append; build with [`AppendOptions::new`], then call [`AppendOptions::append`].
///
/// # Examples
/// ```
/// use concur::append::{encode_json, AppendOptions, Appended};
/// let dir = tempfile::tempdir().unwrap();
/// let log = dir.path().join("events.jsonl");
/// let line = encode_json(br#"{"id":"a1","event":"start"}"#).unwrap();
/// let opts = AppendOptions::new().dedup_key("id");
/// assert!(matches!(opts.append(&log, &line).unwrap(), Appended::Written { .. }));
/// assert_eq!(opts.append(&log, &line).unwrap(), Appended::Duplicate);
/// ```
#[derive(Debug, Clone)]
pub struct AppendOptions {
    header: Option<Vec<u8>>,
    dedup_key: Option<String>,
    fsync: bool,
    mode: u32,
    lock_file: Option<PathBuf>,
    wait: Option<Duration>,
    max_line: usize,
}

impl Default for AppendOptions {
    fn default() -> Self {
        AppendOptions::new()
    }
}

impl AppendOptions {
    /// Defaults: no header, no dedup, fsync on, mode 0600, sidecar `F.lock`, wait for the lock
    /// as long as it takes, lines up to 1 MiB.
    pub fn new() -> AppendOptions {
        AppendOptions {
            header: None,
            dedup_key: None,
            fsync: true,
            mode: sys::fs::DEFAULT_MODE,
            lock_file: None,
            wait: None,
            max_line: DEFAULT_MAX_LINE,
        }
    }

    /// A header line written once, when this append creates the file (no newline inside; one is
    /// added).
    #[must_use]
    pub fn header(mut self, text: impl Into<String>) -> Self {
        let mut h = text.into().into_bytes();
        h.push(b'\n');
        self.header = Some(h);
        self
    }

    /// Skip the line if an entry with the same value of `field` is already in the file.
    #[must_use]
    pub fn dedup_key(mut self, field: impl Into<String>) -> Self {
        self.dedup_key = Some(field.into());
        self
    }

    /// Whether to `fdatasync` before returning (default true).
    #[must_use]
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// Permission bits for a file this append creates (default 0600, subject to the umask).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Use this lock file instead of `F.lock`.
    #[must_use]
    pub fn lock_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.lock_file = Some(path.into());
        self
    }

    /// Wait at most this long for the sidecar lock (default: as long as it takes).
    #[must_use]
    pub fn wait(mut self, d: Option<Duration>) -> Self {
        self.wait = d;
        self
    }

    /// Refuse lines longer than `bytes` (newline not counted; default 1 MiB).
    #[must_use]
    pub fn max_line(mut self, bytes: usize) -> Self {
        self.max_line = bytes;
        self
    }

    fn lock_path(&self, path: &Path) -> PathBuf {
        self.lock_file
            .clone()
            .unwrap_or_else(|| sidecar::path_for(path))
    }

    fn lock(&self, path: &Path) -> Result<SidecarGuard> {
        sidecar::lock(&self.lock_path(path), self.wait)
    }

    /// Checks an encoded line (ending in one newline) against these options without writing:
    /// size, the header's validity, and the dedup field's presence.
    ///
    /// # Errors
    /// [`Error::Invalid`] as [`AppendOptions::append`] would report it.
    pub fn check(&self, line: &[u8]) -> Result<()> {
        let body = line
            .strip_suffix(b"\n")
            .ok_or_else(|| Error::Invalid("an encoded line must end with a newline".into()))?;
        if body.contains(&b'\n') {
            return Err(Error::Invalid("an encoded line holds a newline".into()));
        }
        if body.len() > self.max_line {
            return Err(Error::Invalid(format!(
                "line is {} bytes, over the {}-byte limit (--max-line)",
                body.len(),
                self.max_line
            )));
        }
        if let Some(h) = &self.header {
            encode_raw(&h[..h.len() - 1]).map_err(|e| Error::Invalid(format!("header: {e}")))?;
        }
        if let Some(field) = &self.dedup_key {
            dedup_value(body, field)?;
        }
        Ok(())
    }

    /// Appends one encoded line (from [`encode_json`] or [`encode_raw`]) to `path`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a line that fails [`AppendOptions::check`] (nothing written);
    /// [`Error::Timeout`] when the sidecar lock was not had in time (nothing written);
    /// [`Error::Io`] for a failed open or write, after removing any partial line; a permission
    /// error for a symlinked target or sidecar.
    pub fn append(&self, path: &Path, line: &[u8]) -> Result<Appended> {
        self.check(line)?;
        let guard = self.lock(path)?;
        if let Some(field) = &self.dedup_key {
            let value = dedup_value(&line[..line.len() - 1], field)?;
            if let Some(existing) = read_existing(path)?
                && contains_entry(&existing, field, &value)
            {
                return Ok(Appended::Duplicate);
            }
        }
        if let Some(header) = &self.header
            && self.create_with_header(path, header, line)?
        {
            return Ok(Appended::Written {
                created: true,
                header: true,
            });
        }
        // With a header the file exists now (it was created with one, under this lock or
        // before): never create it without the header.
        let existed = self.header.is_some() || std::fs::symlink_metadata(path).is_ok();
        let how = sys::fs::Open {
            read: true,
            create: if self.header.is_some() {
                None
            } else {
                Some(self.mode)
            },
            ..sys::fs::Open::append(self.mode)
        };
        let file = sys::fs::open(path, how).map_err(|e| open_error("cannot open", path, e))?;
        if existed {
            refuse_read_only(&file, path)?;
        }
        let created = !existed;
        let mut guard = Some(guard);
        let r = self.write_line(path, &file, line, &mut guard, created);
        if r.is_err()
            && guard.is_some()
            && created
            && sys::fileio::size(&file).is_ok_and(|n| n == 0)
        {
            // A failed first append (disk full) leaves nothing behind; still under the lock,
            // so no other appender has opened the file meanwhile.
            let _ = sys::fs::remove_if_exists(path);
        }
        r
    }

    /// Creates `path` holding `header` + `line` (temp + fsync + link); `Ok(false)` if it exists.
    fn create_with_header(&self, path: &Path, header: &[u8], line: &[u8]) -> Result<bool> {
        if std::fs::symlink_metadata(path).is_ok() {
            return Ok(false);
        }
        let stem = path
            .file_name()
            .map_or_else(|| "append".into(), |n| n.to_string_lossy().into_owned());
        let mut both = Vec::with_capacity(header.len() + line.len());
        both.extend_from_slice(header);
        both.extend_from_slice(line);
        let how = sys::fs::Atomic::new(&stem)
            .mode(self.mode)
            .place(sys::fs::Place::Link)
            .fsync(self.fsync);
        match sys::fs::write_atomic(path, &both, &how) {
            Ok(()) => Ok(true),
            Err(e) if e.target_exists() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `line` at the end of `file` under the sidecar lock `guard` (see
    /// [`SidecarGuard::prepare_append`]), then syncs it after releasing the lock.
    fn write_line(
        &self,
        path: &Path,
        file: &File,
        line: &[u8],
        guard: &mut Option<SidecarGuard>,
        created: bool,
    ) -> Result<Appended> {
        let g = guard.as_ref().expect("write_line runs under the lock");
        let (start, fresh_line) = g.prepare_append(file, path)?;
        if fresh_line {
            g.write_append(file, path, start, &[b"\n", line].concat())?;
        } else {
            g.write_append(file, path, start, line)?;
        }
        // Other appenders may write while this one syncs (their fdatasync flushes this line too).
        drop(guard.take());
        if self.fsync {
            sys::fs::sync_data(file).map_err(Error::with("cannot fsync", path))?;
            if created {
                let dir = sys::fs::parent_dir(path);
                sys::fs::sync_dir(dir).map_err(Error::with("cannot fsync directory", dir))?;
            }
        }
        Ok(Appended::Written {
            created,
            header: false,
        })
    }
}

/// The whole file, or `None` if it does not exist (symlinks refused).
fn read_existing(path: &Path) -> Result<Option<Vec<u8>>> {
    match sys::fs::open(path, sys::fs::Open::READ) {
        Ok(mut f) => {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)
                .map_err(Error::with("cannot read", path))?;
            Ok(Some(buf))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(open_error("cannot open", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_encoding_keeps_strings_and_order() {
        let line = encode_json(b" {\"b\" : \"x \\\" y\",\n \"a\": [1, 2.50] } ").unwrap();
        assert_eq!(line, b"{\"b\":\"x \\\" y\",\"a\":[1,2.50]}\n");
    }

    #[test]
    fn raw_rejects_newline_nul_and_bad_utf8() {
        assert!(encode_raw(b"a\nb").is_err());
        assert!(encode_raw(b"a\0b").is_err());
        assert!(encode_raw(b"a\xffb").is_err());
        assert!(encode_raw("é ok".as_bytes()).is_ok());
    }

    #[test]
    fn header_is_written_once_then_lines_follow() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log.md");
        let o = AppendOptions::new().header("# log");
        assert_eq!(
            o.append(&p, b"one\n").unwrap(),
            Appended::Written {
                created: true,
                header: true
            }
        );
        assert_eq!(
            o.append(&p, b"two\n").unwrap(),
            Appended::Written {
                created: false,
                header: false
            }
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"# log\none\ntwo\n");
    }

    #[test]
    fn oversize_line_is_refused_before_anything_is_written() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let e = AppendOptions::new()
            .max_line(3)
            .append(&p, b"abcd\n")
            .unwrap_err();
        assert!(matches!(e, Error::Invalid(_)));
        assert!(!p.exists());
    }

    #[test]
    fn a_torn_append_left_by_a_killed_writer_is_cut_before_the_next_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let o = AppendOptions::new();
        o.append(&p, b"{\"a\":1}\n").unwrap();
        // A writer that died mid-write: its record says 100 bytes at offset 8, 5 landed.
        {
            let g = o.lock(&p).unwrap();
            let f = sys::fs::open(&p, sys::fs::Open::append(0o600)).unwrap();
            g.begin_append(&f, &p, 8, 100).unwrap();
            sys::fs::write_once(&f, b"{\"b\":").unwrap();
        }
        o.append(&p, b"{\"c\":3}\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"a\":1}\n{\"c\":3}\n");
    }

    #[test]
    fn an_unterminated_line_nobody_recorded_is_kept_and_the_next_line_starts_fresh() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("notes.md");
        let f = sys::fs::open(&p, sys::fs::Open::append(0o600)).unwrap();
        sys::fs::write_once(&f, b"edited by hand").unwrap();
        AppendOptions::new().append(&p, b"appended\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"edited by hand\nappended\n");
    }

    #[test]
    fn dedup_matches_values_not_substrings() {
        let log = b"# header\n{\"id\":\"a1\"}\n{\"id\":12}\n";
        assert!(contains_entry(log, "id", &serde_json::json!("a1")));
        assert!(contains_entry(log, "id", &serde_json::json!(12)));
        assert!(!contains_entry(log, "id", &serde_json::json!("a")));
    }
}
