//! Appending whole lines to a shared log (JSONL or text) from many processes at once.
//!
//! ## What is guaranteed
//!
//! - **One line, one `write(2)`.** A line is validated and encoded first ([`encode_json`] re-emits
//!   JSON compactly, [`encode_raw`] refuses newline, NUL and invalid UTF-8), then written with a
//!   single `write(2)` on an `O_APPEND | O_NOFOLLOW` descriptor. Lines of at most `PIPE_BUF`
//!   (4096) bytes need no lock; longer lines take the sidecar lock (`F.lock`, see
//!   [`crate::sidecar`]) so that concur writers never interleave them.
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
//!   the fragment is removed under the sidecar lock: if it is still the end of the file the file
//!   is truncated back to where the line began; if other lines were appended after it, the
//!   fragment is overwritten in place with spaces ending in a newline, leaving a blank line (a
//!   line of spaces) instead of a torn record. The call then fails with the I/O error.
//!
//! ## What is not
//!
//! - A crash (power loss, `kill -9`) between a short write and its clean-up leaves the fragment.
//! - Writers that do not use concur (`echo >> F`) are not serialised with long lines unless they
//!   take `F.lock` too; on Linux a single `write(2)` to a local regular file is not interleaved
//!   with other writes anyway, but POSIX promises that only up to `PIPE_BUF` bytes for pipes.
//! - Dedup reads the whole file under the lock: it costs O(file size) per append.
//! - If `fdatasync` itself fails, the line may or may not be on disk; the call reports the error.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sidecar::{self, SidecarGuard};
use crate::sys;

/// Lines longer than this (in bytes, newline included) take the sidecar lock.
pub const PIPE_BUF: usize = 4096;

/// The default `--max-line`: 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// Validates `input` as one JSON value and re-emits it compactly (insignificant whitespace
/// removed, everything else byte-for-byte: key order and number spellings are kept), followed by
/// a newline.
///
/// # Errors
/// [`Error::Invalid`] when `input` is not exactly one valid JSON value.
///
/// # Examples
/// ```
/// let line = concur::append::encode_json(br#"{ "id": 1, "msg": "a b" }"#).unwrap();
/// assert_eq!(line, b"{\"id\":1,\"msg\":\"a b\"}\n");
/// assert!(concur::append::encode_json(b"{nope").is_err());
/// ```
pub fn encode_json(input: &[u8]) -> Result<Vec<u8>> {
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
        let needs_lock = self.dedup_key.is_some() || line.len() > PIPE_BUF;
        let guard = if needs_lock {
            Some(self.lock(path)?)
        } else {
            None
        };
        if let Some(field) = &self.dedup_key {
            let value = dedup_value(&line[..line.len() - 1], field)?;
            if let Some(existing) = read_existing(path)?
                && contains_entry(&existing, field, &value)
            {
                return Ok(Appended::Duplicate);
            }
        }
        loop {
            if let Some(header) = &self.header {
                if self.create_with_header(path, header, line)? {
                    return Ok(Appended::Written {
                        created: true,
                        header: true,
                    });
                }
                // Someone else created it: append to theirs, but never create one without the
                // header (if it vanished again, go back and try the link).
                let how = sys::fs::Open {
                    create: None,
                    ..sys::fs::Open::append(self.mode)
                };
                match sys::fs::open(path, how) {
                    Ok(file) => return self.write_line(path, &file, line, guard, false),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(open_error("cannot open", path, e)),
                }
            } else {
                let existed = std::fs::symlink_metadata(path).is_ok();
                let file = sys::fs::open(path, sys::fs::Open::append(self.mode))
                    .map_err(|e| open_error("cannot open", path, e))?;
                return self.write_line(path, &file, line, guard, !existed);
            }
        }
    }

    /// Creates `path` holding `header` + `line` (temp + fsync + link); `Ok(false)` if it exists.
    fn create_with_header(&self, path: &Path, header: &[u8], line: &[u8]) -> Result<bool> {
        if std::fs::symlink_metadata(path).is_ok() {
            return Ok(false);
        }
        let dir = sys::fs::parent_dir(path);
        let stem = path
            .file_name()
            .map_or_else(|| "append".into(), |n| n.to_string_lossy().into_owned());
        let mut tmp = sys::fs::TempFile::new_in(dir, &stem, self.mode)
            .map_err(Error::with("cannot create temporary file in", dir))?;
        let mut both = Vec::with_capacity(header.len() + line.len());
        both.extend_from_slice(header);
        both.extend_from_slice(line);
        tmp.write_durable(&both, self.fsync)
            .map_err(Error::with("cannot write temporary file", tmp.path()))?;
        match sys::fs::link(tmp.path(), path) {
            Ok(()) => {
                if self.fsync {
                    sys::fs::sync_dir(dir).map_err(Error::with("cannot fsync directory", dir))?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io("cannot link", path, e)),
        }
    }

    fn write_line(
        &self,
        path: &Path,
        file: &File,
        line: &[u8],
        mut guard: Option<SidecarGuard>,
        created: bool,
    ) -> Result<Appended> {
        match sys::fs::write_once(file, line) {
            Ok(n) if n == line.len() => {}
            Ok(n) => {
                let end = sys::fileio::position(file)
                    .map_err(Error::with("cannot find write position", path))?;
                if guard.is_none() {
                    guard = Some(self.lock(path)?);
                }
                remove_fragment(file, end - n as u64, end)
                    .map_err(Error::with("cannot remove partial line", path))?;
                drop(guard);
                return Err(Error::io(
                    "cannot append",
                    path,
                    std::io::Error::from_raw_os_error(libc::ENOSPC),
                ));
            }
            Err(e) => return Err(Error::io("cannot append", path, e)),
        }
        if self.fsync {
            sys::fs::sync_data(file).map_err(Error::with("cannot fsync", path))?;
            if created {
                let dir = sys::fs::parent_dir(path);
                sys::fs::sync_dir(dir).map_err(Error::with("cannot fsync directory", dir))?;
            }
        }
        drop(guard);
        Ok(Appended::Written {
            created,
            header: false,
        })
    }
}

/// Removes the fragment `start..end` of a short append (called with the sidecar lock held):
/// truncates it away if it is still the end of the file, else blanks it into a line of spaces.
fn remove_fragment(file: &File, start: u64, end: u64) -> std::io::Result<()> {
    if sys::fileio::size(file)? == end {
        sys::fileio::truncate(file, start)?;
    } else {
        sys::fileio::set_append(file, false)?;
        let len = usize::try_from(end - start).unwrap_or(0);
        let mut blank = vec![b' '; len];
        if let Some(last) = blank.last_mut() {
            *last = b'\n';
        }
        sys::fileio::write_all_at(file, &blank, start)?;
    }
    sys::fs::sync_data(file)
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
    fn fragment_is_truncated_at_the_end_and_blanked_in_the_middle() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let f = sys::fs::open(&p, sys::fs::Open::append(0o600)).unwrap();
        sys::fs::write_once(&f, b"ok\npart").unwrap();
        remove_fragment(&f, 3, 7).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"ok\n");
        let f = sys::fs::open(&p, sys::fs::Open::append(0o600)).unwrap();
        sys::fs::write_once(&f, b"frag{\"x\":1}\n").unwrap();
        remove_fragment(&f, 3, 7).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"ok\n   \n{\"x\":1}\n");
    }

    #[test]
    fn dedup_matches_values_not_substrings() {
        let log = b"# header\n{\"id\":\"a1\"}\n{\"id\":12}\n";
        assert!(contains_entry(log, "id", &serde_json::json!("a1")));
        assert!(contains_entry(log, "id", &serde_json::json!(12)));
        assert!(!contains_entry(log, "id", &serde_json::json!("a")));
    }
}
