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
//! - **One flush per batch.** With ids, the batch's dedup record is written into zeros
//!   allocated ahead in the index and written out to the device (no flush) before the data is
//!   written; the data's single `fdatasync` flushes the disk cache after it, and appended bytes
//!   are visible after a crash only through that sync's journal commit, so the batch is never
//!   durable without its record. (On another filesystem than the index, or on one other than
//!   ext4 and XFS, the record is `fdatasync`ed itself.)
//! - **Retry ids, written once.** Before a batch's data is written, its ids and the batch's
//!   length and SHA-256 are written to a dedup index (in the home, one per file). At start-up
//!   the last index record is checked against the file (is a byte range with that hash at a
//!   line start at or after the recorded offset?), so a batch that a `kill -9` cut off before
//!   its write is forgotten and one that was written is remembered: a client retrying by id
//!   after a crash gets its line written exactly once.
//! - **Bounded memory.** Each file's queue holds at most [`QUEUE`] requests; a full queue blocks
//!   the connection thread, which stops reading its socket: back-pressure, not growth.
//!
//! ## Not guaranteed
//! - The one-flush path relies on Linux semantics: a disk cache flush makes every write the
//!   device completed before it durable, and a journaling filesystem publishes appended bytes
//!   only with the journal commit of their new size (ext4, XFS; other filesystems get a
//!   second `fdatasync`). On ext4 without a journal (or ext2, which shares its magic) a power loss between the data reaching the disk and the flush could keep the
//!   batch without its record (a retry of an unacknowledged id then writes it twice); acked
//!   appends are durable either way.
//! - The dedup window is the last [`WINDOW`] ids per file (and the index is keyed by path:
//!   replacing the file by another keeps the ids). An id retried after that many newer ids is
//!   written again.
//! - Power loss mid-write can leave a partial batch: the lock-file record that lets the next
//!   holder cut it (see [`crate::sidecar`]) covers killed processes, not crashes.
//!
//! If the disk fills mid-write, the batch fails and is cut back off under the lock. A batch
//! that `kill -9` cut off during its `write(2)` is cut by the next holder of the sidecar lock
//! (the restarted broker does it before its start-up check), so its ids are forgotten and the
//! retries write each line once.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::Read;
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

/// Index records no longer remembered (pushed out of the window) that the index file may hold
/// before it is compacted to the window.
const COMPACT_AFTER: usize = if cfg!(test) { 64 } else { 8192 };

/// The dedup index grows by this many zero bytes at a time (written and synced once), so that
/// writing a record is an overwrite inside the file: its `fdatasync` flushes one data block and
/// needs no journal commit (the size and the block map do not change).
const INDEX_CHUNK: u64 = 1 << 20;

/// How far past a record's offset the start-up check looks for its batch (other writers may
/// have appended between the broker's size check and its write).
const VERIFY_SLACK: u64 = 1 << 20;

/// The outcome of one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The id had been written before; nothing was written now.
    pub duplicate: bool,
}

/// The outcome of one queued append: acked (durable, or a duplicate) or refused.
pub type Outcome = std::result::Result<Ack, Failure>;

/// One queued append.
#[derive(Debug)]
pub struct Pending {
    /// The line without its newline.
    pub line: Vec<u8>,
    /// The retry id, if any.
    pub id: Option<String>,
    /// Sent back with the outcome, so that a sender with several appends in flight (on
    /// several files) can tell the answers apart.
    pub tag: u64,
    /// Where the outcome goes.
    pub reply: Sender<(u64, Outcome)>,
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
    /// `fdatasync` calls made (data, and the dedup index where its record is not carried by
    /// the data's sync).
    pub fsyncs: AtomicU64,
    /// Dedup index records written out to the device without a flush of their own (made
    /// durable by the batch's data `fdatasync`, see [`sys::fs::write_out`]).
    pub index_writes: AtomicU64,
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
    let lock = sidecar::lock(&sidecar::path_for(&index), Some(LOCK_WAIT))?;
    let mut w = Writer::open(file, index, lock, counters)?;
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let h = std::thread::Builder::new()
        .name("concur-broker-writer".into())
        .stack_size(256 << 10)
        .spawn(move || w.run(&rx))
        .map_err(Error::with("cannot spawn writer thread", Path::new("")))?;
    Ok((tx, h))
}

/// Appends `line` (without its newline) to `file` directly, in this process, with the
/// broker's exactly-once retry ids: the same dedup index (`index`, see [`index_path`]), the
/// same record-before-data order and start-up check. `concur append --broker --fallback
/// direct` uses it while no broker runs, so a client that retries the same id against a down
/// broker, then a restarted one, gets its line written once.
///
/// # Errors
/// [`Error::Timeout`] when a broker (or another direct appender) holds the index longer than
/// [`LOCK_WAIT`]; [`Error::Io`] as a broker batch would fail.
pub fn append_direct(file: &Path, index: &Path, line: &[u8], id: Option<&str>) -> Result<Ack> {
    let lock = sidecar::lock(&sidecar::path_for(index), Some(LOCK_WAIT))?;
    let mut w = Writer::open(
        file.to_path_buf(),
        index.to_path_buf(),
        lock,
        Arc::new(Counters::default()),
    )?;
    if id.is_some_and(|id| w.seen.contains(id)) {
        return Ok(Ack { duplicate: true });
    }
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line);
    buf.push(b'\n');
    let ids: Vec<String> = id.into_iter().map(str::to_owned).collect();
    w.write_batch(&buf, &ids)?;
    Ok(Ack { duplicate: false })
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
    /// Held while this writer lives: the lock beside the index (`<index>.lock`), so that a
    /// direct appender with retry ids ([`append_direct`]) and a broker never use one index at
    /// once.
    _index_lock: sidecar::SidecarGuard,
    index_path: PathBuf,
    index: File,
    /// Where the next index record goes: just past the last valid one.
    index_end: u64,
    /// The index's filesystem (`st_dev`).
    index_dev: u64,
    /// False on a filesystem where a record written out without a flush is not made durable
    /// by the data's `fdatasync` (only ext4 and XFS qualify), or once `sync_file_range` was
    /// refused.
    write_out_works: bool,
    /// The index file's size: zeros from `index_end` up to here.
    index_alloc: u64,
    records: VecDeque<Record>,
    seen: HashSet<String>,
    seen_count: usize,
    records_written: usize,
    counters: Arc<Counters>,
}

impl Writer {
    fn open(
        file: PathBuf,
        index_path: PathBuf,
        index_lock: sidecar::SidecarGuard,
        counters: Arc<Counters>,
    ) -> Result<Writer> {
        let index = sys::fs::open(&index_path, sys::fs::Open::read_write(0o600))
            .map_err(Error::with("cannot open dedup index", &index_path))?;
        let mut bytes = Vec::new();
        (&index)
            .read_to_end(&mut bytes)
            .map_err(Error::with("cannot read dedup index", &index_path))?;
        // The valid records are the complete JSON lines from the start; the first line that is
        // not one (zeros allocated ahead, or a record torn by a crash mid-write, whose batch
        // was never written because data is written only after its record is durable) ends
        // them.
        let mut records = VecDeque::new();
        let mut end = 0;
        while let Some(nl) = memchr_newline(&bytes[end..]) {
            match serde_json::from_slice::<Record>(&bytes[end..end + nl]) {
                Ok(r) => records.push_back(r),
                Err(_) => break,
            }
            end += nl + 1;
        }
        let lines = records.len();
        let torn_tail = bytes[end..].iter().any(|&b| b != 0);
        let index_dev = std::os::unix::fs::MetadataExt::dev(
            &index
                .metadata()
                .map_err(Error::with("cannot stat", &index_path))?,
        );
        let mut w = Writer {
            file,
            _index_lock: index_lock,
            index_path,
            index_end: end as u64,
            index_dev,
            write_out_works: sys::fs::journals_appends(&index).unwrap_or(false),
            index_alloc: bytes.len() as u64,
            index,
            records: VecDeque::new(),
            seen: HashSet::new(),
            seen_count: 0,
            records_written: lines,
            counters,
        };
        let last_ok = match records.back() {
            Some(r) => {
                // Under the file's lock, after cutting what a killed writer tore: a batch cut
                // off mid-write is then not in the file, and its ids are forgotten.
                let _guard = w.cut_torn()?;
                w.verify(r)?
            }
            None => true,
        };
        if !last_ok {
            records.pop_back();
        }
        for r in records {
            w.remember(r);
        }
        if !last_ok || torn_tail || lines > w.records.len() + COMPACT_AFTER {
            w.compact()?;
        }
        Ok(w)
    }

    /// Takes the file's sidecar lock and cuts a torn write a killed holder left (see
    /// [`crate::sidecar`]); `None` when the file does not exist.
    fn cut_torn(&self) -> Result<Option<sidecar::SidecarGuard>> {
        let guard = sidecar::lock(&sidecar::path_for(&self.file), Some(LOCK_WAIT))?;
        let how = sys::fs::Open {
            read: true,
            write: true,
            ..sys::fs::Open::READ
        };
        match sys::fs::open(&self.file, how) {
            Ok(f) => {
                guard.cut_torn_append(&f, &self.file)?;
                Ok(Some(guard))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("cannot open", &self.file, e)),
        }
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
            if crate::hex::encode(&Sha256::digest(&region[start..start + len])) == r.sha {
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

    /// Rewrites the index to just the remembered records (atomic replace), followed by zeros
    /// up to the next [`INDEX_CHUNK`] boundary.
    fn compact(&mut self) -> Result<()> {
        let mut buf = Vec::new();
        for r in &self.records {
            serde_json::to_writer(&mut buf, r).map_err(|e| Error::Invalid(e.to_string()))?;
            buf.push(b'\n');
        }
        let end = buf.len() as u64;
        let alloc = (end / INDEX_CHUNK + 1) * INDEX_CHUNK;
        buf.resize(usize::try_from(alloc).unwrap_or(usize::MAX), 0);
        let staged = sys::fs::stage(&self.index_path, &buf, &sys::fs::Atomic::new("dedup"))?;
        let file = staged
            .file()
            .try_clone()
            .map_err(Error::with("cannot open dedup index", staged.path()))?;
        let unsynced = match staged.commit() {
            Ok(()) => None,
            Err(e) if e.step == sys::fs::Step::SyncDir => Some(e),
            Err(e) => return Err(e.into()),
        };
        // From here on the new file is the index, whatever happens to the directory sync.
        self.index = file;
        self.index_end = end;
        self.index_alloc = alloc;
        self.records_written = self.records.len();
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        unsynced.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Writes `line` (a record with its newline) at the end of the valid records, into the
    /// zeros allocated ahead (when they run out, the next [`INDEX_CHUNK`] of zeros is written
    /// and synced first: one journal commit per chunk, not per record).
    ///
    /// With `flushed_later` (the data file is on the index's filesystem and its `fdatasync`
    /// follows) the record is only written out to the device and waited for
    /// ([`sys::fs::write_out`]): the data's `fdatasync` flushes the disk cache after that, and
    /// the appended bytes only become visible after a crash through that `fdatasync`'s journal
    /// commit, so the record is durable whenever the batch is. Otherwise it is `fdatasync`ed.
    fn write_record(&mut self, line: &[u8], flushed_later: bool) -> Result<()> {
        let need = self.index_end + line.len() as u64;
        if need > self.index_alloc {
            let alloc = (need / INDEX_CHUNK + 1) * INDEX_CHUNK;
            let zeros = vec![0u8; usize::try_from(alloc - self.index_alloc).unwrap_or(0)];
            self.index
                .write_all_at(&zeros, self.index_alloc)
                .and_then(|()| sys::fs::sync_data(&self.index))
                .map_err(Error::with("cannot grow dedup index", &self.index_path))?;
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.index_alloc = alloc;
        }
        self.index
            .write_all_at(line, self.index_end)
            .map_err(Error::with("cannot write dedup index", &self.index_path))?;
        let written_out = flushed_later
            && self.write_out_works
            && match sys::fs::write_out(&self.index, self.index_end, line.len() as u64) {
                Ok(()) => true,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                    // Not supported here: fdatasync the index from now on.
                    self.write_out_works = false;
                    false
                }
                Err(e) => return Err(Error::io("cannot write dedup index", &self.index_path, e)),
            };
        if written_out {
            self.counters.index_writes.fetch_add(1, Ordering::Relaxed);
        } else {
            sys::fs::sync_data(&self.index)
                .map_err(Error::with("cannot sync dedup index", &self.index_path))?;
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        self.index_end = need;
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
                    let _ = p.reply.send((p.tag, Ok(Ack { duplicate })));
                }
            }
            Err(e) => {
                let f = Failure::from_error(&e);
                self.counters
                    .failures
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                for p in batch {
                    let _ = p.reply.send((p.tag, Err(f.clone())));
                }
            }
        }
    }

    /// Writes one batch under the sidecar lock: with ids, the index record first (on the
    /// device before any of the batch's data is written), then the data in one `write(2)` and
    /// one `fdatasync(2)`, which also makes the record durable (see
    /// [`write_record`](Writer::write_record)).
    fn write_batch(&mut self, buf: &[u8], ids: &[String]) -> Result<()> {
        let lock_path = sidecar::path_for(&self.file);
        let guard = sidecar::lock(&lock_path, Some(LOCK_WAIT))?;
        let how = sys::fs::Open {
            read: true,
            ..sys::fs::Open::append(sys::fs::DEFAULT_MODE)
        };
        let f = sys::fs::open(&self.file, how).map_err(Error::with("cannot open", &self.file))?;
        // What a killed writer (this broker before a restart, or a direct appender) tore is
        // cut first; a file ending in a line nobody recorded gets a newline before the batch.
        let (before, fresh_line) = guard.prepare_append(&f, &self.file)?;
        let joined;
        let buf = if fresh_line {
            joined = [b"\n", buf].concat();
            &joined[..]
        } else {
            buf
        };
        let md = f
            .metadata()
            .map_err(Error::with("cannot stat", &self.file))?;
        let same_fs = std::os::unix::fs::MetadataExt::dev(&md) == self.index_dev;
        let record = (!ids.is_empty()).then(|| Record {
            ids: ids.to_vec(),
            off: before,
            len: buf.len() as u64,
            sha: crate::hex::encode(&Sha256::digest(buf)),
        });
        let record_at = self.index_end;
        if let Some(r) = &record {
            let mut line = serde_json::to_vec(r).map_err(|e| Error::Invalid(e.to_string()))?;
            line.push(b'\n');
            self.write_record(&line, same_fs)?;
        }
        if let Err(e) = self.write_data(&guard, &f, buf, before) {
            if record.is_some() {
                // The batch is not in the file: take its record back, so that a later
                // record never makes its ids look written. Zeros end the valid records
                // there; the next record overwrites them anyway.
                let len = usize::try_from(self.index_end - record_at).unwrap_or(0);
                let _ = self.index.write_all_at(&vec![0; len], record_at);
                self.index_end = record_at;
            }
            return Err(e);
        }
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = record {
            self.remember(r);
            self.records_written += 1;
            // Compact once the index holds COMPACT_AFTER forgotten records: counting all its
            // records instead would compact after every batch once the window itself holds
            // more than COMPACT_AFTER records (up to WINDOW single-id batches).
            if self.records_written > self.records.len() + COMPACT_AFTER {
                // The batch is durable and acked either way; a failed compaction only leaves
                // the index longer.
                if let Err(e) = self.compact() {
                    eprintln!("concur: broker: cannot compact dedup index: {e}");
                }
            }
        }
        Ok(())
    }

    /// Appends `buf` to the open file `f` (of length `before`) with one `write(2)` under the
    /// sidecar lock `guard` and makes it durable; a file the batch created gets its directory
    /// entry synced too.
    fn write_data(
        &self,
        guard: &sidecar::SidecarGuard,
        f: &File,
        buf: &[u8],
        before: u64,
    ) -> Result<()> {
        // Recorded in the lock file while it runs: if the broker is killed mid-write, the next
        // holder (this broker restarted, or a direct appender) cuts the partial batch, and the
        // start-up check then forgets its ids, so retries write each line exactly once.
        guard.write_append(f, &self.file, before, buf)?;
        sys::fs::sync_data(f).map_err(Error::with("cannot sync", &self.file))?;
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        if before == 0 {
            // A file the batch created: make its directory entry durable too.
            let dir = sys::fs::parent_dir(&self.file);
            sys::fs::sync_dir(dir).map_err(Error::with("cannot sync directory", dir))?;
        }
        Ok(())
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// The dedup index file for `file` inside `dir`: named by a hash of the path.
pub fn index_path(dir: &Path, file: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let h = Sha256::digest(file.as_os_str().as_bytes());
    dir.join(format!("{}.idx", &crate::hex::encode(&h)[..32]))
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

    /// A data file and its index in a fresh directory, and the counters the writers share.
    struct Files {
        _dir: tempfile::TempDir,
        file: PathBuf,
        idx: PathBuf,
        counters: Arc<Counters>,
    }

    impl Files {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            Files {
                file: dir.path().join("f.jsonl"),
                idx: dir.path().join("f.idx"),
                counters: Arc::new(Counters::default()),
                _dir: dir,
            }
        }

        /// One writer's lifetime (as one broker's): sends each `(line, id)` in order, waits for
        /// its ack, stops the writer; returns whether each append was a duplicate.
        fn writer(&self, appends: &[(&str, Option<&str>)]) -> Vec<bool> {
            let (tx, h) = spawn(
                self.file.clone(),
                self.idx.clone(),
                Arc::clone(&self.counters),
            )
            .unwrap();
            let dups = appends
                .iter()
                .map(|&(line, id)| append(&tx, line, id).duplicate)
                .collect();
            drop(tx);
            h.join().unwrap();
            dups
        }
    }

    fn append(tx: &SyncSender<Pending>, line: &str, id: Option<&str>) -> Ack {
        let (rtx, rrx) = mpsc::channel();
        tx.send(Pending {
            line: line.as_bytes().to_vec(),
            id: id.map(str::to_owned),
            tag: 7,
            reply: rtx,
        })
        .unwrap();
        let (tag, outcome) = rrx.recv().unwrap();
        assert_eq!(tag, 7);
        outcome.unwrap()
    }

    #[test]
    fn a_retried_id_is_written_once_even_after_a_restart() {
        let f = Files::new();
        let first = f.writer(&[("a", Some("1")), ("a", Some("1")), ("b", None)]);
        assert_eq!(first, [false, true, false]);
        let second = f.writer(&[("a", Some("1")), ("c", Some("2"))]);
        assert_eq!(second, [true, false]);
        assert_eq!(read_all(&f.file).unwrap(), b"a\nb\nc\n");
    }

    #[test]
    fn a_batch_cut_off_mid_write_by_a_kill_is_cut_and_its_ids_written_once_on_retry() {
        let f = Files::new();
        assert_eq!(f.writer(&[("a", Some("1"))]), [false]);
        // The broker died mid-write of a two-line batch: record and lock-file record written,
        // the first line and part of the second landed.
        let batch = b"b\nccc\n";
        let r = Record {
            ids: vec!["2".into(), "3".into()],
            off: 2,
            len: batch.len() as u64,
            sha: crate::hex::encode(&Sha256::digest(batch)),
        };
        let mut line = serde_json::to_vec(&r).unwrap();
        line.push(b'\n');
        let idx = std::fs::OpenOptions::new()
            .write(true)
            .open(&f.idx)
            .unwrap();
        let end = read_all(&f.idx)
            .unwrap()
            .iter()
            .position(|&b| b == 0)
            .unwrap();
        idx.write_all_at(&line, end as u64).unwrap();
        drop(idx);
        {
            let g = sidecar::lock(&sidecar::path_for(&f.file), None).unwrap();
            let data = sys::fs::open(&f.file, sys::fs::Open::append(0o600)).unwrap();
            g.begin_append(&data, &f.file, 2, batch.len() as u64)
                .unwrap();
            sys::fs::write_once(&data, &batch[..4]).unwrap();
        }
        // Restarted, the clients retry both ids: each line once, nothing torn.
        assert_eq!(
            f.writer(&[("b", Some("2")), ("ccc", Some("3"))]),
            [false, false]
        );
        assert_eq!(read_all(&f.file).unwrap(), b"a\nb\nccc\n");
    }

    #[test]
    fn a_direct_append_shares_the_ids_with_the_broker() {
        let f = Files::new();
        assert!(
            !append_direct(&f.file, &f.idx, b"a", Some("1"))
                .unwrap()
                .duplicate
        );
        assert!(
            append_direct(&f.file, &f.idx, b"a", Some("1"))
                .unwrap()
                .duplicate
        );
        assert_eq!(
            f.writer(&[("a", Some("1")), ("b", Some("2"))]),
            [true, false]
        );
        assert!(
            append_direct(&f.file, &f.idx, b"b", Some("2"))
                .unwrap()
                .duplicate
        );
        assert_eq!(read_all(&f.file).unwrap(), b"a\nb\n");
    }

    #[test]
    fn an_index_record_whose_batch_never_landed_is_forgotten() {
        let f = Files::new();
        // The broker died after writing the index record, before the data.
        let r = Record {
            ids: vec!["9".into()],
            off: 0,
            len: 2,
            sha: crate::hex::encode(&Sha256::digest(b"x\n")),
        };
        let mut line = serde_json::to_vec(&r).unwrap();
        line.push(b'\n');
        let mut idx = std::fs::File::create(&f.idx).unwrap();
        std::io::Write::write_all(&mut idx, &line).unwrap();
        drop(idx);
        assert_eq!(f.writer(&[("x", Some("9"))]), [false]);
        // ...and one whose batch did land is remembered.
        assert_eq!(f.writer(&[("x", Some("9"))]), [true]);
        assert_eq!(read_all(&f.file).unwrap(), b"x\n");
    }

    #[test]
    fn the_index_is_compacted_once_per_compact_after_forgotten_records_not_per_batch() {
        use std::os::unix::fs::MetadataExt;
        let f = Files::new();
        let (tx, h) = spawn(f.file.clone(), f.idx.clone(), Arc::clone(&f.counters)).unwrap();
        // One id per batch: the window holds far more than COMPACT_AFTER records, none is
        // forgotten, so nothing needs compacting. Each compaction replaces the index file.
        let mut inode = None;
        let mut replaced = 0;
        for n in 0..4 * COMPACT_AFTER {
            assert!(!append(&tx, "x", Some(&format!("id-{n}"))).duplicate);
            let now = std::fs::metadata(&f.idx).unwrap().ino();
            if inode.is_some_and(|i| i != now) {
                replaced += 1;
            }
            inode = Some(now);
        }
        drop(tx);
        h.join().unwrap();
        assert_eq!(replaced, 0, "the index was rewritten {replaced} times");
        assert_eq!(
            f.writer(&[("x", Some("id-0"))]),
            [true],
            "ids still remembered"
        );
    }

    #[test]
    fn the_dedup_record_gets_its_own_fdatasync_off_ext4_and_xfs() {
        // tmpfs stands in for btrfs, ZFS, NFS: filesystems where the data's fdatasync does not
        // carry a record written out without a flush.
        let shm = Path::new("/dev/shm");
        let tmpfs = std::fs::File::open(shm)
            .ok()
            .is_some_and(|d| !sys::fs::journals_appends(&d).unwrap());
        if !tmpfs {
            eprintln!("skipped: no /dev/shm off ext4/XFS");
            return;
        }
        let dir = tempfile::tempdir_in(shm).unwrap();
        let f = Files {
            file: dir.path().join("f.jsonl"),
            idx: dir.path().join("f.idx"),
            counters: Arc::new(Counters::default()),
            _dir: dir,
        };
        assert_eq!(f.writer(&[("a", Some("1"))]), [false]);
        assert_eq!(f.counters.index_writes.load(Ordering::Relaxed), 0);
        // The index grown by a chunk (1), the record (1), the data (1).
        assert_eq!(f.counters.fsyncs.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_torn_record_after_the_valid_ones_is_cleared_and_the_index_is_padded() {
        let f = Files::new();
        assert_eq!(f.writer(&[("a", Some("1"))]), [false]);
        let grown = read_all(&f.idx).unwrap();
        assert_eq!(grown.len() as u64, INDEX_CHUNK, "allocated ahead in zeros");
        // A crash mid-write left half a record (and a stray newline further on) in the zeros.
        let end = grown.iter().position(|&b| b == 0).unwrap();
        let idx = std::fs::OpenOptions::new()
            .write(true)
            .open(&f.idx)
            .unwrap();
        idx.write_all_at(br#"{"ids":["2"],"off":2,"le"#, end as u64)
            .unwrap();
        idx.write_all_at(b"x\n", end as u64 + 100).unwrap();
        drop(idx);
        assert_eq!(
            f.writer(&[("a", Some("1")), ("b", Some("2"))]),
            [true, false],
            "the valid record survives, the torn one is forgotten"
        );
        let again = read_all(&f.idx).unwrap();
        assert!(!again.windows(2).any(|w| w == b"x\n"), "torn tail cleared");
        assert_eq!(f.writer(&[("b", Some("2"))]), [true]);
        assert_eq!(read_all(&f.file).unwrap(), b"a\nb\n");
    }
}
