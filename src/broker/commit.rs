//! Group commit: one writer thread per file turns whatever is queued into one `write(2)` and
//! one `fdatasync(2)`, then acknowledges every request of the batch.
//!
//! ## Guarantees
//! - **Acked = durable.** A request is acknowledged only after the batch holding its line was
//!   written in full and `fdatasync`ed (and, for batches with retry ids, after the dedup index
//!   was too).
//! - **Order.** Requests are written in queue order; a connection sends one request at a time
//!   (or pipelines them in order), so each client's lines appear in the order it sent them.
//! - **Whole lines.** A batch is one `O_APPEND` write of complete lines, taken under the file's
//!   sidecar lock (`F.lock`, the same lock direct `concur append` writers take), so it never
//!   interleaves with a locked writer; with unlocked `O_APPEND` writers the kernel orders whole
//!   writes.
//! - **Retry ids, written once.** Before a batch's data is written, its ids and the batch's
//!   length and SHA-256 are appended to a dedup index (in the home, one per file). At start-up
//!   the last index record is checked against the file (is a byte range with that hash at a
//!   line start at or after the recorded offset?), so a batch that a `kill -9` cut off before
//!   its write is forgotten and one that was written is remembered: a client retrying by id
//!   after a crash gets its line written exactly once.
//! - **Bounded memory.** Each file's queue holds at most [`QUEUE`] requests; a full queue blocks
//!   the connection thread, which stops reading its socket: back-pressure, not growth.
//!
//! ## Not guaranteed
//! - The dedup window is the last [`WINDOW`] ids per file (and the index is keyed by path:
//!   replacing the file by another keeps the ids). An id retried after that many newer ids is
//!   written again.
//! - If the disk fills mid-write, the batch fails; the broker cuts the file back to its length
//!   before the write when no one else appended meanwhile, otherwise a partial line may remain.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::protocol::Failure;
use crate::error::{Error, Result};
use crate::sidecar;
use crate::sys;

/// Requests a file's queue holds before senders block.
pub const QUEUE: usize = 4096;

/// The most requests written in one batch.
pub const MAX_BATCH: usize = 1024;

/// The most bytes written in one batch (a batch always takes at least one request).
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// Retry ids remembered per file.
pub const WINDOW: usize = 65_536;

/// How long a batch waits for the sidecar lock before it fails (nothing is written then).
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Index records written before the index file is compacted to the window.
const COMPACT_AFTER: usize = 8192;

/// How far past a record's offset the start-up check looks for its batch (other writers may
/// have appended between the broker's size check and its write).
const VERIFY_SLACK: u64 = 1 << 20;

/// The outcome of one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The id had been written before; nothing was written now.
    pub duplicate: bool,
}

/// One queued append.
#[derive(Debug)]
pub struct Pending {
    /// The line without its newline.
    pub line: Vec<u8>,
    /// The retry id, if any.
    pub id: Option<String>,
    /// Where the outcome goes.
    pub reply: Sender<std::result::Result<Ack, Failure>>,
}

/// Counters shared by every writer of a broker.
#[derive(Debug, Default)]
pub struct Counters {
    /// Appends acknowledged (written or duplicate).
    pub appends: AtomicU64,
    /// Appends recognised as retries and not written again.
    pub duplicates: AtomicU64,
    /// Batches written.
    pub batches: AtomicU64,
    /// `fdatasync` calls made (data and index).
    pub fsyncs: AtomicU64,
    /// Appends that failed.
    pub failures: AtomicU64,
}

/// Starts the writer thread for `file` (already checked against the roots) and returns its
/// queue. The thread ends when every sender is dropped and the queue is drained.
///
/// # Errors
/// [`Error::Io`] when the dedup index cannot be opened or read.
pub fn spawn(
    file: PathBuf,
    index: PathBuf,
    counters: Arc<Counters>,
) -> Result<(SyncSender<Pending>, std::thread::JoinHandle<()>)> {
    let mut w = Writer::open(file, index, counters)?;
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let h = std::thread::Builder::new()
        .name("concur-broker-writer".into())
        .stack_size(256 << 10)
        .spawn(move || w.run(&rx))
        .map_err(Error::with("cannot spawn writer thread", Path::new("")))?;
    Ok((tx, h))
}

/// One line of the dedup index.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// Ids written in the batch.
    ids: Vec<String>,
    /// File length just before the batch was written.
    off: u64,
    /// The batch's length in bytes.
    len: u64,
    /// SHA-256 of the batch, hex.
    sha: String,
}

struct Writer {
    file: PathBuf,
    index_path: PathBuf,
    index: File,
    records: VecDeque<Record>,
    seen: HashSet<String>,
    seen_count: usize,
    records_written: usize,
    counters: Arc<Counters>,
}

impl Writer {
    fn open(file: PathBuf, index_path: PathBuf, counters: Arc<Counters>) -> Result<Writer> {
        let index = sys::fs::open(&index_path, sys::fs::Open::read_write(0o600))
            .map_err(Error::with("cannot open dedup index", &index_path))?;
        let mut records = VecDeque::new();
        let mut lines = 0usize;
        for line in BufReader::new(&index).lines() {
            let line = line.map_err(Error::with("cannot read dedup index", &index_path))?;
            lines += 1;
            // A torn last record (killed mid-write) does not parse: its batch was never
            // written, because data is written only after the index record is complete.
            if let Ok(r) = serde_json::from_str::<Record>(&line) {
                records.push_back(r);
            }
        }
        let mut w = Writer {
            file,
            index_path,
            index,
            records: VecDeque::new(),
            seen: HashSet::new(),
            seen_count: 0,
            records_written: lines,
            counters,
        };
        let last_ok = match records.back() {
            Some(r) => w.verify(r)?,
            None => true,
        };
        if !last_ok {
            records.pop_back();
        }
        for r in records {
            w.remember(r);
        }
        if !last_ok || lines > COMPACT_AFTER {
            w.compact()?;
        }
        Ok(w)
    }

    /// Is the batch of `r` in the file? Checks line starts from `r.off` on for a byte range of
    /// `r.len` bytes with hash `r.sha`. If it is there, it is made durable before the ids are
    /// trusted (the broker may have died between its write and its fdatasync).
    fn verify(&self, r: &Record) -> Result<bool> {
        let f = match sys::fs::open(&self.file, sys::fs::Open::READ) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("cannot open", &self.file, e)),
        };
        let size = f
            .metadata()
            .map_err(Error::with("cannot stat", &self.file))?
            .len();
        if size < r.off.saturating_add(r.len) {
            return Ok(false);
        }
        let end = size.min(r.off + r.len + VERIFY_SLACK);
        let mut region = vec![0; usize::try_from(end - r.off).unwrap_or(0)];
        f.read_exact_at(&mut region, r.off)
            .map_err(Error::with("cannot read", &self.file))?;
        let len = usize::try_from(r.len).unwrap_or(usize::MAX);
        let mut start = 0;
        while start + len <= region.len() {
            if hex(&Sha256::digest(&region[start..start + len])) == r.sha {
                sys::fs::sync_data(&f).map_err(Error::with("cannot sync", &self.file))?;
                self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
                return Ok(true);
            }
            match memchr_newline(&region[start..]) {
                Some(i) => start += i + 1,
                None => break,
            }
        }
        Ok(false)
    }

    fn remember(&mut self, r: Record) {
        for id in &r.ids {
            self.seen.insert(id.clone());
        }
        self.seen_count += r.ids.len();
        self.records.push_back(r);
        while self.seen_count > WINDOW {
            let Some(old) = self.records.pop_front() else {
                break;
            };
            self.seen_count -= old.ids.len();
            for id in &old.ids {
                self.seen.remove(id);
            }
        }
    }

    /// Rewrites the index to just the remembered records (atomic replace).
    fn compact(&mut self) -> Result<()> {
        let dir = sys::fs::parent_dir(&self.index_path).to_path_buf();
        let mut tmp = sys::fs::TempFile::new_in(&dir, "dedup", 0o600)
            .map_err(Error::with("cannot create temporary file in", &dir))?;
        let mut buf = Vec::new();
        for r in &self.records {
            serde_json::to_writer(&mut buf, r).map_err(|e| Error::Invalid(e.to_string()))?;
            buf.push(b'\n');
        }
        tmp.write_durable(&buf, true)
            .map_err(Error::with("cannot write", tmp.path()))?;
        sys::fs::rename(tmp.path(), &self.index_path)
            .map_err(Error::with("cannot replace dedup index", &self.index_path))?;
        tmp.keep();
        sys::fs::sync_dir(&dir).map_err(Error::with("cannot sync directory", &dir))?;
        let mut f = sys::fs::open(&self.index_path, sys::fs::Open::read_write(0o600))
            .map_err(Error::with("cannot open dedup index", &self.index_path))?;
        f.seek(SeekFrom::End(0))
            .map_err(Error::with("cannot seek", &self.index_path))?;
        self.index = f;
        self.records_written = self.records.len();
        Ok(())
    }

    fn run(&mut self, rx: &Receiver<Pending>) {
        while let Ok(first) = rx.recv() {
            let mut bytes = first.line.len() + 1;
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(p) => {
                        bytes += p.line.len() + 1;
                        batch.push(p);
                    }
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    fn commit(&mut self, batch: Vec<Pending>) {
        let mut dup = vec![false; batch.len()];
        let mut ids = Vec::new();
        let mut in_batch = HashSet::new();
        let mut buf = Vec::new();
        for (i, p) in batch.iter().enumerate() {
            if let Some(id) = &p.id {
                if self.seen.contains(id) || !in_batch.insert(id.as_str()) {
                    dup[i] = true;
                    continue;
                }
                ids.push(id.clone());
            }
            buf.extend_from_slice(&p.line);
            buf.push(b'\n');
        }
        let outcome = if buf.is_empty() {
            Ok(())
        } else {
            self.write_batch(&buf, &ids)
        };
        match outcome {
            Ok(()) => {
                let n = batch.len() as u64;
                let d = dup.iter().filter(|d| **d).count() as u64;
                self.counters.appends.fetch_add(n, Ordering::Relaxed);
                self.counters.duplicates.fetch_add(d, Ordering::Relaxed);
                for (p, duplicate) in batch.into_iter().zip(dup) {
                    let _ = p.reply.send(Ok(Ack { duplicate }));
                }
            }
            Err(e) => {
                let f = Failure::from_error(&e);
                self.counters
                    .failures
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                for p in batch {
                    let _ = p.reply.send(Err(f.clone()));
                }
            }
        }
    }

    /// Writes one batch under the sidecar lock: index record, data, fdatasync both.
    fn write_batch(&mut self, buf: &[u8], ids: &[String]) -> Result<()> {
        let lock_path = sidecar::path_for(&self.file);
        let _guard = sidecar::lock(&lock_path, Some(LOCK_WAIT))?;
        let f = sys::fs::open(&self.file, sys::fs::Open::append(sys::fs::DEFAULT_MODE))
            .map_err(Error::with("cannot open", &self.file))?;
        let before = f
            .metadata()
            .map_err(Error::with("cannot stat", &self.file))?
            .len();
        let record = (!ids.is_empty()).then(|| Record {
            ids: ids.to_vec(),
            off: before,
            len: buf.len() as u64,
            sha: hex(&Sha256::digest(buf)),
        });
        if let Some(r) = &record {
            let mut line = serde_json::to_vec(r).map_err(|e| Error::Invalid(e.to_string()))?;
            line.push(b'\n');
            (&self.index)
                .write_all(&line)
                .map_err(Error::with("cannot write dedup index", &self.index_path))?;
        }
        let n = sys::fs::write_once(&f, buf).map_err(Error::with("cannot append to", &self.file));
        match n {
            Ok(n) if n == buf.len() => {}
            other => {
                // Cut a partial batch back off, but only if nobody appended after it.
                if let Ok(md) = f.metadata() {
                    let written = other.as_ref().map_or(0, |n| *n as u64);
                    if md.len() == before + written && written > 0 {
                        let _ = f.set_len(before);
                    }
                }
                return Err(other.err().unwrap_or_else(|| {
                    Error::io(
                        "short write appending to",
                        &self.file,
                        std::io::Error::from_raw_os_error(libc::ENOSPC),
                    )
                }));
            }
        }
        // With ids, the index is fdatasync'ed at the same time as the data, from a helper
        // thread: the filesystem can fold both into one journal commit, so the second sync
        // costs little extra latency. Both finish before anything is acked.
        let index_sync = std::thread::scope(|scope| {
            let idx = record
                .as_ref()
                .map(|_| scope.spawn(|| sys::fs::sync_data(&self.index)));
            let data = sys::fs::sync_data(&f);
            let idx = idx.map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("sync thread panicked")))
            });
            (data, idx)
        });
        index_sync
            .0
            .map_err(Error::with("cannot sync", &self.file))?;
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = index_sync.1 {
            r.map_err(Error::with("cannot sync dedup index", &self.index_path))?;
        }
        if before == 0 {
            // A file the batch created: make its directory entry durable too.
            let dir = sys::fs::parent_dir(&self.file);
            sys::fs::sync_dir(dir).map_err(Error::with("cannot sync directory", dir))?;
        }
        if let Some(r) = record {
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.counters.batches.fetch_add(1, Ordering::Relaxed);
            self.remember(r);
            self.records_written += 1;
            if self.records_written > COMPACT_AFTER {
                self.compact()?;
            }
        } else {
            self.counters.batches.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The dedup index file for `file` inside `dir`: named by a hash of the path.
pub fn index_path(dir: &Path, file: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let h = Sha256::digest(file.as_os_str().as_bytes());
    dir.join(format!("{}.idx", &hex(&h)[..32]))
}

/// Reads a whole file.
#[cfg(test)]
fn read_all(p: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut v = Vec::new();
    sys::fs::open(p, sys::fs::Open::READ)?.read_to_end(&mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(tx: &SyncSender<Pending>, line: &str, id: Option<&str>) -> Ack {
        let (rtx, rrx) = mpsc::channel();
        tx.send(Pending {
            line: line.as_bytes().to_vec(),
            id: id.map(str::to_owned),
            reply: rtx,
        })
        .unwrap();
        rrx.recv().unwrap().unwrap()
    }

    #[test]
    fn a_retried_id_is_written_once_even_after_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f.jsonl");
        let idx = d.path().join("f.idx");
        let c = Arc::new(Counters::default());
        let (tx, h) = spawn(file.clone(), idx.clone(), Arc::clone(&c)).unwrap();
        assert!(!append(&tx, "a", Some("1")).duplicate);
        assert!(append(&tx, "a", Some("1")).duplicate);
        assert!(!append(&tx, "b", None).duplicate);
        drop(tx);
        h.join().unwrap();
        let (tx, h) = spawn(file.clone(), idx, c).unwrap();
        assert!(append(&tx, "a", Some("1")).duplicate);
        assert!(!append(&tx, "c", Some("2")).duplicate);
        drop(tx);
        h.join().unwrap();
        assert_eq!(read_all(&file).unwrap(), b"a\nb\nc\n");
    }

    #[test]
    fn an_index_record_whose_batch_never_landed_is_forgotten() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f.jsonl");
        let idx = d.path().join("f.idx");
        // The broker died after writing the index record, before the data.
        let r = Record {
            ids: vec!["9".into()],
            off: 0,
            len: 2,
            sha: hex(&Sha256::digest(b"x\n")),
        };
        let mut line = serde_json::to_vec(&r).unwrap();
        line.push(b'\n');
        let mut f = std::fs::File::create(&idx).unwrap();
        f.write_all(&line).unwrap();
        let c = Arc::new(Counters::default());
        let (tx, h) = spawn(file.clone(), idx.clone(), Arc::clone(&c)).unwrap();
        assert!(!append(&tx, "x", Some("9")).duplicate);
        drop(tx);
        h.join().unwrap();
        // ...and one whose batch did land is remembered.
        let (tx, h) = spawn(file.clone(), idx, c).unwrap();
        assert!(append(&tx, "x", Some("9")).duplicate);
        drop(tx);
        h.join().unwrap();
        assert_eq!(read_all(&file).unwrap(), b"x\n");
    }
}
