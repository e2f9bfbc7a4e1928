//! etcd leases reused by the processes of one machine, so a short-lived holder (`concur lock
//! --name N CMD`, `concur slot`) pays two raft writes — acquire and release — instead of three
//! (grant, acquire, revoke). etcd's own clients do the same within one process (a session lease
//! shared by many locks); a CLI process lives too briefly for that, so the lease outlives it.
//!
//! The pool is a directory of slot files in the concur home, one directory per cluster (its
//! endpoint list) and TTL. A process uses a slot's lease while it holds the slot file's `flock`;
//! the file's one line says what the lease is:
//!
//! - `clean ID TTL_MS UNTIL_MS BOOT`: no key is attached to lease `ID`, which the holder of the
//!   time could count on until `UNTIL_MS` of the boot clock (`CLOCK_BOOTTIME`, which counts
//!   suspend) of boot `BOOT` — its own bound, last acked keepalive + TTL − margin;
//! - `dirty ...`: a process took the lease and may have put keys on it.
//!
//! Taking a lease: the first slot whose lock is free. A clean record of this boot with at least a
//! third of its TTL left is adopted: the line is rewritten `dirty` *before* any key is put on the
//! lease, and the new holder keeps it alive (at once if its last renewal is older than a
//! keepalive period). Anything else — no record, an expired or other-boot one, a dirty one — gets
//! a freshly granted lease. A dirty lease is never adopted and never revoked: the process that
//! used it died holding its keys, and they expire with the lease's TTL exactly as if it had been
//! that process's own lease (the same liveness as without the pool; a revoke here could release
//! a lock while the dead holder's command, killed by `PR_SET_PDEATHSIG`, is still exiting).
//!
//! Putting a lease back ([`super::Lease::release_key`]): the holder deletes its key with a
//! transaction that compares the key's create revision (its fencing token), then writes `clean`
//! with its own validity bound and unlocks. A failed or unanswered delete revokes the lease
//! instead; if that fails too the record stays `dirty`. A holder whose client retried a write
//! after an unanswered attempt ([`Client::had_uncertain_write`]) revokes instead of putting
//! back: the unanswered attempt may still be applied and put a key on the lease.
//!
//! Guarantees: a lease recorded `clean` has no key attached; a lease in use is used by one process
//! (the slot lock); the holder's validity bound is never later than the server's expiry (it only
//! moves with acknowledged keepalives, measured on a clock that counts suspend). A lease the
//! cluster no longer knows (revoked by someone else, or a different cluster now answers on the
//! same endpoints) fails the acquiring transaction with "lease not found"; the caller then takes
//! a fresh lease and tries again.
//!
//! Not guaranteed: reuse. When every slot is busy, or the last holder's renewal is too old, a
//! lease is granted as without the pool. On a home on NFS, `flock` is emulated with POSIX locks,
//! which belong to the process: two threads of one process could take the same slot at once
//! there (the CLI takes one slot per process; a library user with such a home should give each
//! thread its own pool directory, or no pool).

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::time::Duration;

use sha2::Digest as _;

use super::client::Client;
use super::lease::{Lease, Return};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::sys;
use crate::time::BootClock;

/// How many slot files a pool has: at most this many processes reuse leases at once.
const SLOTS: u32 = 16;

/// A pool of reusable leases for one cluster and one TTL, in the concur home.
#[derive(Debug)]
pub struct Pool {
    dir: PathBuf,
}

/// The slot file a process holds while it uses the slot's lease (the flock ends with the file).
#[derive(Debug)]
pub(crate) struct Slot {
    file: File,
}

/// What a slot's line says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    clean: bool,
    id: i64,
    ttl_ms: u64,
    until_ms: u64,
    boot: String,
}

impl Record {
    /// A fixed-width line, so a rewrite in place never leaves a longer line's tail behind.
    fn line(&self) -> String {
        format!(
            "{:<5} {:016x} {:010} {:020} {:<36}\n",
            if self.clean { "clean" } else { "dirty" },
            self.id,
            self.ttl_ms,
            self.until_ms,
            self.boot
        )
    }

    fn parse(line: &str) -> Option<Record> {
        let mut f = line.split_whitespace();
        let clean = match f.next()? {
            "clean" => true,
            "dirty" => false,
            _ => return None,
        };
        let id = i64::from_str_radix(f.next()?, 16).ok()?;
        let ttl_ms = f.next()?.parse().ok()?;
        let until_ms = f.next()?.parse().ok()?;
        let boot = f.next()?.to_string();
        Some(Record {
            clean,
            id,
            ttl_ms,
            until_ms,
            boot,
        })
    }
}

impl Pool {
    /// The pool of `home` for the cluster `client` talks to, for leases of `ttl`.
    ///
    /// # Errors
    /// As [`Home::subdir`]; [`Error::Io`] when the pool directory cannot be created.
    pub fn open(home: &Home, client: &Client, ttl: Duration) -> Result<Pool> {
        let mut endpoints = client.endpoints().to_vec();
        endpoints.sort();
        let digest = sha2::Sha256::digest(endpoints.join(",").as_bytes());
        let cluster = crate::hex::encode(&digest[..8]);
        let dir = home
            .subdir("etcd-leases")?
            .join(format!("{cluster}-{}s", ttl.as_secs()));
        sys::fs::mkdir(&dir, 0o700).map_err(Error::with("cannot create directory", &dir))?;
        Ok(Pool { dir })
    }

    /// A lease of `ttl` for this process: a clean pooled one adopted, else a new one (pooled
    /// when a slot is free). See the module docs.
    ///
    /// # Errors
    /// [`Error::Io`] when a grant finds no member; slot files that cannot be opened or locked
    /// only mean no reuse.
    pub(crate) fn take(&self, client: &Client, ttl: Duration) -> Result<Lease> {
        let Some((slot, record)) = self.free_slot() else {
            return Lease::grant(client, ttl);
        };
        if let Some(r) = record.filter(|r| r.clean && r.ttl_ms == millis(ttl)) {
            // The bound is a point on the boot clock, recorded rounded down to a millisecond:
            // adopted as it is, so time that passes from here on (a stopped process, a slow
            // write to the home) comes off what is left of it.
            let clock = BootClock::now()?;
            if clock.remaining(r.until_ms, &r.boot) >= millis(ttl) / 3 {
                let dirty = Record { clean: false, ..r };
                if slot.write(&dirty).is_ok() {
                    let until = Duration::from_millis(dirty.until_ms);
                    return Lease::adopt(client, dirty.id, ttl, until, Box::new(slot));
                }
            }
        }
        // Nothing to adopt: a fresh lease, recorded dirty before anyone can put a key on it.
        let lease = Lease::grant(client, ttl)?;
        let dirty = Record {
            clean: false,
            id: lease.id(),
            ttl_ms: millis(ttl),
            until_ms: 0,
            boot: "-".into(),
        };
        Ok(if slot.write(&dirty).is_ok() {
            lease.with_slot(Box::new(slot))
        } else {
            lease
        })
    }

    /// The first slot whose lock is free, with its record. Always from slot 0: one process
    /// after another reuses the same lease; only concurrent ones spread to more.
    fn free_slot(&self) -> Option<(Slot, Option<Record>)> {
        (0..SLOTS).find_map(|i| {
            let path = self.dir.join(i.to_string());
            let mut file = sys::fs::open(&path, sys::fs::Open::read_write(0o600)).ok()?;
            if !sys::lock::try_flock(&file, sys::lock::Mode::Exclusive).ok()? {
                return None;
            }
            let mut text = String::new();
            let record = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| Record::parse(&text));
            Some((Slot { file }, record))
        })
    }
}

/// A lease from `pool` when there is one (see [`Pool::take`]), else a freshly granted one. Put
/// it back with [`Lease::release_key`] or [`Lease::put_back`] so that it can be reused.
///
/// # Errors
/// [`Error::Io`] when a grant finds no member.
pub(crate) fn take(pool: Option<&Pool>, client: &Client, ttl: Duration) -> Result<Lease> {
    match pool {
        Some(p) => p.take(client, ttl),
        None => Lease::grant(client, ttl),
    }
}

impl Slot {
    fn write(&self, r: &Record) -> std::io::Result<()> {
        self.file.write_all_at(r.line().as_bytes(), 0)
    }
}

impl Return for Slot {
    /// Records that lease `id` has no key attached and is valid until `until` (the holder's
    /// bound on the boot clock), then unlocks the slot.
    fn put_back(self: Box<Self>, id: i64, ttl: Duration, until: Duration) {
        let Ok(clock) = BootClock::now() else {
            return; // the record stays dirty: the lease is abandoned, not reused
        };
        // Rounded down to a millisecond: never later than the holder's bound.
        let until_ms = millis(until);
        if until_ms <= clock.now_ms {
            // Its bound passed: it may be gone; keyless either way, so let it run out.
            return self.clear();
        }
        let _ = self.write(&Record {
            clean: true,
            id,
            ttl_ms: millis(ttl),
            until_ms,
            boot: clock.boot_id.to_string(),
        });
    }

    /// Records that the slot holds no lease (the lease was revoked), then unlocks the slot.
    fn clear(self: Box<Self>) {
        let _ = self.file.set_len(0);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_keep_their_width() {
        let r = Record {
            clean: true,
            id: 0x694d_9a2f_11c0_0c2b,
            ttl_ms: 10_000,
            until_ms: 16_501_234,
            boot: "5b4a0c1e-6a3b-4a7e-9a57-1f0b3c2d4e5f".into(),
        };
        let dirty = Record {
            clean: false,
            boot: "-".into(),
            until_ms: 0,
            ..r.clone()
        };
        assert_eq!(Record::parse(&r.line()), Some(r.clone()));
        assert_eq!(r.line().len(), dirty.line().len());
        assert_eq!(Record::parse(&dirty.line()).map(|d| d.clean), Some(false));
        assert_eq!(Record::parse("clean zz 1 2 b"), None);
        assert_eq!(Record::parse(""), None);
    }
}
