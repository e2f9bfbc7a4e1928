//! Counting semaphores across processes: at most N holders of a named slot at once.
//!
//! A slot `NAME` with `--max N` is the directory `<home>/slots/NAME/` holding N slot files
//! `0 .. N-1`, a `max` record and a `queue` lock file. A [`Permit`] is an exclusive
//! open-file-description lock (`F_OFD_SETLK`) on one slot file, so:
//!
//! - **never more than N holders**: each holder holds one of N exclusive kernel locks;
//! - **a killed holder frees its slot at once**: the kernel drops the lock with the process
//!   (no mkdir leftovers, no pid files to expire);
//! - **waiters wake without polling lag**: a waiter first takes the `queue` lock (a blocking
//!   `flock(2)` — so only one waiter at a time waits for a slot file), then blocks in the kernel
//!   on *every* slot file at once, one helper thread per slot; the first helper to get its lock
//!   wins, the others give theirs back the moment they get them. A released slot therefore
//!   wakes a waiter through the kernel's lock wake-up, not through a sleep loop.
//! - **`--max` is recorded**: the first user writes `max` (temp file + `link(2)`, so two first
//!   users cannot disagree); a later use with a different N is refused ([`Error::Invalid`])
//!   rather than silently admitting a different number of holders. To change N, remove
//!   `<home>/slots/NAME` while nobody uses it.
//!
//! Each holder writes `{pid, session, cmd, since}` into its own slot file (these files belong
//! to concur); [`Slot::status`] reports a record only for a slot whose lock is held
//! (`F_OFD_GETLK`), so a dead holder's leftover record is never shown.
//!
//! Not guaranteed: fairness. A newcomer that finds a free slot takes it without queueing, so
//! a waiter can be overtaken; no waiter waits while a slot is free. Helper threads that lost the
//! race stay blocked until their slot frees (then release it at once) or the process exits.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::lock::{Holder, LockFile, LockOptions, validate_name};
use crate::sys;
use crate::sys::lock::Mode;
use crate::sys::ofd::Range;

/// The largest `--max` accepted (one helper thread per slot while waiting).
pub const MAX_SLOTS: u32 = 1024;

const WHOLE: Range = Range { start: 0, len: 0 };

/// A named counting semaphore.
///
/// # Examples
/// ```
/// use concur::{Home, slot::Slot};
/// let dir = tempfile::tempdir()?;
/// let home = Home::at(dir.path().join("home"))?;
/// let slot = Slot::open(&home, "ingest", 2)?;
/// let a = slot.try_acquire()?.expect("a free slot");
/// let b = slot.try_acquire()?.expect("a second free slot");
/// assert!(slot.try_acquire()?.is_none()); // N = 2 are held
/// drop(a);
/// assert!(slot.try_acquire()?.is_some());
/// # drop(b);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Slot {
    dir: PathBuf,
    name: String,
    max: u32,
}

/// One slot's state, as [`Slot::status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    /// The slot's index, `0 .. max`.
    pub index: u32,
    /// The holder's record, when the slot is held (`None` inside: held but not yet recorded).
    pub holder: Option<Option<Holder>>,
}

impl Slot {
    /// Opens (creating on first use) slot `name` with `max` holders.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name, a `max` outside `1..=1024`, or a `max` different from
    /// the one recorded for `name`; home and I/O errors.
    pub fn open(home: &Home, name: &str, max: u32) -> Result<Slot> {
        validate_name("slot", name)?;
        check_max(max)?;
        let dir = home.subdir("slots")?.join(name);
        sys::fs::mkdir(&dir, 0o700).map_err(Error::with("cannot create directory", &dir))?;
        let recorded = record_max(&dir, max)?;
        if recorded != max {
            return Err(Error::Invalid(format!(
                "slot {name} is recorded with --max {recorded}, not {max} (remove {} when it is unused to change it)",
                dir.display()
            )));
        }
        Ok(Slot {
            dir,
            name: name.to_owned(),
            max,
        })
    }

    /// The slot `name` as already recorded; `Ok(None)` if nothing has used it yet.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name; home and I/O errors.
    pub fn existing(home: &Home, name: &str) -> Result<Option<Slot>> {
        validate_name("slot", name)?;
        let dir = home.subdir("slots")?.join(name);
        match read_max(&dir.join("max"))? {
            Some(max) => Ok(Some(Slot {
                dir,
                name: name.to_owned(),
                max,
            })),
            None => Ok(None),
        }
    }

    /// The slot's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many holders it admits.
    pub fn max(&self) -> u32 {
        self.max
    }

    fn slot_path(&self, i: u32) -> PathBuf {
        self.dir.join(i.to_string())
    }

    fn open_slot(&self, i: u32) -> Result<LockFile> {
        LockOptions::new(self.slot_path(i)).range(WHOLE).open()
    }

    /// Takes a free slot if there is one; `Ok(None)` when all N are held.
    ///
    /// # Errors
    /// I/O errors opening or locking the slot files.
    pub fn try_acquire(&self) -> Result<Option<Permit>> {
        let first = std::process::id() % self.max;
        for k in 0..self.max {
            let i = (first + k) % self.max;
            let f = self.open_slot(i)?;
            if f.try_acquire()? {
                return Ok(Some(Permit { file: f, index: i }));
            }
        }
        Ok(None)
    }

    /// Waits (in the kernel, see the module docs) until a slot is free and takes it.
    ///
    /// # Errors
    /// As [`Slot::try_acquire`].
    pub fn acquire(&self) -> Result<Permit> {
        Ok(self
            .acquire_until(None)?
            .expect("an unbounded wait ends with a permit"))
    }

    /// Waits at most `timeout` for a slot; `Ok(None)` when the time ran out.
    ///
    /// # Errors
    /// As [`Slot::try_acquire`].
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Permit>> {
        self.acquire_until(Some(Instant::now() + timeout))
    }

    fn acquire_until(&self, deadline: Option<Instant>) -> Result<Option<Permit>> {
        if let Some(p) = self.try_acquire()? {
            return Ok(Some(p));
        }
        let left = |d: Instant| d.saturating_duration_since(Instant::now());
        if deadline.is_some_and(|d| left(d).is_zero()) {
            return Ok(None);
        }
        // One waiter at a time waits on the slot files; the others wait here, in the kernel.
        let queue = LockOptions::new(self.dir.join("queue")).open()?;
        let queued = match deadline {
            None => queue.acquire().map(|()| true)?,
            Some(d) => queue.acquire_timeout(left(d))?,
        };
        if !queued {
            return Ok(None);
        }
        let queue = queue.into_guard();
        let r = self.wait_any(deadline);
        drop(queue);
        r
    }

    /// Blocks on every slot file at once (one helper thread each); the first lock wins.
    fn wait_any(&self, deadline: Option<Instant>) -> Result<Option<Permit>> {
        if let Some(p) = self.try_acquire()? {
            return Ok(Some(p));
        }
        let claimed = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<io::Result<(u32, LockFile)>>();
        for i in 0..self.max {
            let f = self.open_slot(i)?;
            let claimed = Arc::clone(&claimed);
            let tx = tx.clone();
            std::thread::Builder::new()
                .name("concur-slot-wait".into())
                .spawn(move || {
                    sys::supervise::block_all_in_thread();
                    match f.acquire() {
                        Ok(()) => {
                            if claimed
                                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                                .is_ok()
                            {
                                let _ = tx.send(Ok((i, f)));
                            } else {
                                let _ = f.release();
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(io::Error::other(e.to_string())));
                        }
                    }
                })
                .map_err(Error::with("cannot start slot waiter", &self.dir))?;
        }
        drop(tx);
        let got = match deadline {
            None => rx.recv().ok(),
            Some(d) => rx
                .recv_timeout(d.saturating_duration_since(Instant::now()))
                .ok(),
        };
        let got = match got {
            Some(r) => Some(r),
            // Timed out: stop any helper from claiming; if one already has, take its permit.
            None if claimed
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok() =>
            {
                None
            }
            None => rx.recv().ok(),
        };
        match got {
            Some(Ok((index, file))) => Ok(Some(Permit { file, index })),
            Some(Err(e)) => Err(Error::io("cannot wait for slot", &self.dir, e)),
            None => Ok(None),
        }
    }

    /// Every slot and, for the held ones, the holder's record.
    ///
    /// # Errors
    /// I/O errors opening the slot files.
    pub fn status(&self) -> Result<Vec<SlotState>> {
        let mut out = Vec::new();
        for i in 0..self.max {
            let p = self.slot_path(i);
            let f = LockOptions::new(&p).shared(true).range(WHOLE).open()?;
            let held = sys::ofd::is_held(f.file(), Mode::Exclusive, WHOLE)
                .map_err(Error::with("cannot query lock", &p))?;
            let holder = held.then(|| {
                let mut buf = vec![0u8; 4096];
                let n = f.file().read_at(&mut buf, 0).unwrap_or(0);
                serde_json::from_slice::<Holder>(&buf[..n]).ok()
            });
            out.push(SlotState { index: i, holder });
        }
        Ok(out)
    }
}

/// A held slot; released on drop (and by the kernel when the process dies).
#[derive(Debug)]
pub struct Permit {
    file: LockFile,
    index: u32,
}

impl Permit {
    /// Which slot, `0 .. max`.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Writes `holder` into this slot's file (concur's own file) for [`Slot::status`].
    ///
    /// # Errors
    /// [`Error::Io`] when the write fails.
    pub fn record(&self, holder: &Holder) -> Result<()> {
        let p = self.file.path().to_path_buf();
        let mut text = serde_json::to_vec(holder).map_err(|e| Error::Invalid(e.to_string()))?;
        text.push(b'\n');
        let f = self.file.file();
        f.set_len(0)
            .map_err(Error::with("cannot write holder record", &p))?;
        f.write_all_at(&text, 0)
            .map_err(Error::with("cannot write holder record", &p))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let _ = self.file.release();
    }
}

/// Checks a slot count: `1 ..= MAX_SLOTS` on every backend.
///
/// # Errors
/// [`Error::Invalid`] naming the accepted range.
pub fn check_max(max: u32) -> Result<()> {
    if (1..=MAX_SLOTS).contains(&max) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid --max {max}: use 1 to {MAX_SLOTS}"
        )))
    }
}

fn read_max(path: &Path) -> Result<Option<u32>> {
    match std::fs::read_to_string(path) {
        Ok(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Invalid(format!("corrupt slot record {}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", path, e)),
    }
}

/// Records `max` for the slot in `dir` unless a record exists; returns the recorded value.
fn record_max(dir: &Path, max: u32) -> Result<u32> {
    let path = dir.join("max");
    if let Some(m) = read_max(&path)? {
        return Ok(m);
    }
    let how = sys::fs::Atomic::new("max").place(sys::fs::Place::Link);
    match sys::fs::write_atomic(&path, format!("{max}\n").as_bytes(), &how) {
        // Recorded; a failed directory sync only risks the record of a crash, which re-records.
        Ok(()) => Ok(max),
        Err(e) if e.step == sys::fs::Step::SyncDir => Ok(max),
        Err(e) if e.target_exists() => {
            read_max(&path)?.ok_or_else(|| Error::Invalid("slot record vanished".into()))
        }
        Err(e) => Err(e.into()),
    }
}

impl Slot {
    /// The directory holding the slot files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatched_max_is_invalid() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path().join("h")).unwrap();
        Slot::open(&home, "s", 2).unwrap();
        let e = Slot::open(&home, "s", 3).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Invalid);
        assert!(Slot::open(&home, "s", 0).is_err());
        assert!(Slot::open(&home, "../x", 1).is_err());
    }

    #[test]
    fn a_waiter_gets_the_released_slot_and_status_shows_holders() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path().join("h")).unwrap();
        let s = Slot::open(&home, "s", 2).unwrap();
        let a = s.acquire().unwrap();
        let b = s.acquire().unwrap();
        a.record(&Holder::new(std::process::id(), Some("me".into()), None))
            .unwrap();
        let st = s.status().unwrap();
        assert_eq!(st.iter().filter(|x| x.holder.is_some()).count(), 2);
        assert!(
            st.iter()
                .any(|x| matches!(&x.holder, Some(Some(h)) if h.session.as_deref() == Some("me")))
        );
        assert!(
            s.acquire_timeout(Duration::from_millis(20))
                .unwrap()
                .is_none()
        );
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.acquire().unwrap().index());
        let freed = a.index();
        drop(a);
        assert_eq!(t.join().unwrap(), freed);
        drop(b);
    }
}
