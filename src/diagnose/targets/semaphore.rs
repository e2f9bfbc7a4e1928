//! semaphore: at most `max` (= writers / 2) holders of a counting semaphore at once.
//!
//! Round 0 (admission): W writers each take a slot `ops` times, hold it while they work, and
//! release it. Naive (the seed's lightrag `acquire_slot`): `mkdir slot-i` for each slot, a few
//! retries, and when they run out the hook carries on without a slot → `OVER_ADMISSION`.
//! Later rounds (killed holder): one holder takes the only slot and is killed with SIGKILL
//! while holding it; then a newcomer tries. Naive: the dead holder's slot directory stays →
//! `STALE_SLOT`. Concur: `concur::slot` — kernel locks, released the instant the holder dies.
//!
//! Holders log `+1`/`-1` lines with single `O_APPEND` writes, the `+1` after acquiring and the
//! `-1` before releasing, so the logged running sum never exceeds the true number of holders:
//! a logged excess is a real one.
//!
//! On an etcd run, the concur writer holds an etcd semaphore (`concur slot NAME --max N`) on a
//! lease; a killed holder's slot comes free when its (short, [`etcd::KILLED_TTL`]) lease runs
//! out, so the probe waits up to three such TTLs for it (and `STALE_SLOT` if it does not come).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::{read_text, work};
use crate::diagnose::etcd::{self, Etcd};
use crate::diagnose::{
    Events, Mark, Mode, Round, RoundCheck, Sizes, Target, WriterRun, WriterSpec, now_us,
};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::slot::{Permit, Slot};
use crate::sys::fs as sfs;

const LOG: &str = "holders.log";
const SLOTS: &str = "slots";
/// The etcd semaphore's name on an etcd run.
const ETCD_SLOT: &str = "diagnose";

/// The semaphore target.
pub struct Semaphore;

fn max_for(writers: usize, round: usize) -> usize {
    if round == 0 { (writers / 2).max(1) } else { 1 }
}

enum Held {
    Dir(PathBuf),
    Permit(Permit),
    Etcd(etcd::Permit),
    Nothing,
}

impl Held {
    fn slot(&self) -> Option<String> {
        match self {
            Held::Dir(p) => Some(p.file_name()?.to_string_lossy().into_owned()),
            Held::Permit(p) => Some(format!("slot-{}", p.index())),
            Held::Etcd(p) => Some(format!("slot-{}", p.rank())),
            Held::Nothing => None,
        }
    }

    fn release(self) {
        match self {
            Held::Dir(p) => {
                let _ = std::fs::remove_dir(p);
            }
            Held::Permit(p) => drop(p),
            Held::Etcd(p) => p.release(),
            Held::Nothing => {}
        }
    }
}

/// Naive: `mkdir` each slot dir; `retries` rounds 1 ms apart; `None` when all are taken.
fn naive_acquire(dir: &Path, max: usize, retries: usize) -> Option<Held> {
    for attempt in 0..retries {
        for i in 0..max {
            let p = dir.join(SLOTS).join(format!("slot-{i}"));
            if std::fs::create_dir(&p).is_ok() {
                return Some(Held::Dir(p));
            }
        }
        if attempt + 1 < retries {
            work(1000);
        }
    }
    None
}

/// Concur: `concur::slot` in a home inside the fixture (`max` recorded on first use).
fn open_slot(dir: &Path, max: usize) -> Result<Slot> {
    let home = Home::at(dir.join("home"))?;
    Slot::open(&home, "diagnose", u32::try_from(max).unwrap_or(u32::MAX))
}

/// How a protected writer takes its slot.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Take {
    /// Wait until granted (a plain holder).
    Wait,
    /// Wait until granted, on a short etcd lease: this holder is about to be killed.
    WaitToBeKilled,
    /// Locally: do not wait. On etcd: wait up to three lease TTLs, since a killed holder's
    /// slot comes free when its lease runs out, not at once.
    Probe,
}

/// Takes a slot as `how` says; `None` when none was free.
fn protected_acquire(
    etcd: Option<&Etcd>,
    dir: &Path,
    max: usize,
    how: Take,
) -> Result<Option<Held>> {
    if let Some(etcd) = etcd {
        let (ttl, within) = match how {
            Take::Wait => (etcd::HOLD_TTL, None),
            Take::WaitToBeKilled => (etcd::KILLED_TTL, None),
            Take::Probe => (
                etcd::HOLD_TTL,
                Some(etcd.granted_ttl(etcd::KILLED_TTL)? * 3),
            ),
        };
        return Ok(etcd.slot(ETCD_SLOT, max, ttl, within)?.map(Held::Etcd));
    }
    let wait = how != Take::Probe;
    let slot = open_slot(dir, max)?;
    let permit = if wait {
        Some(slot.acquire()?)
    } else {
        slot.try_acquire()?
    };
    Ok(permit.map(Held::Permit))
}

fn log(dir: &Path, delta: &str, w: usize) -> Result<()> {
    let p = dir.join(LOG);
    let f = sfs::open(&p, sfs::Open::append(sfs::DEFAULT_MODE))
        .map_err(Error::with("cannot open", &p))?;
    sfs::write_once(&f, format!("{delta} {w} {}\n", now_us()).as_bytes())
        .map_err(Error::with("cannot append", &p))?;
    Ok(())
}

impl Target for Semaphore {
    fn name(&self) -> &'static str {
        "semaphore"
    }

    fn violations(&self) -> &'static str {
        "OVER_ADMISSION / STALE_SLOT"
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            writers: 4,
            ops: 10,
            rounds: 2,
        }
    }

    fn expected(&self, s: &Sizes) -> String {
        format!(
            "<= {} holders; slot free after holder killed -9",
            max_for(s.writers, 0)
        )
    }

    fn setup(&self, dir: &Path, _mode: Mode, _s: &Sizes) -> Result<()> {
        let d = dir.join(SLOTS);
        sfs::mkdir(&d, 0o700).map_err(Error::with("cannot create", &d))
    }

    fn round(&self, r: &Round<'_>) -> Result<Vec<WriterRun>> {
        if r.round == 0 {
            return r.spawn_all();
        }
        // Killed holder: take the slot, report it, get SIGKILL; then a newcomer tries.
        let mut b = r.start(vec![r.spec(0, "hold")])?;
        b.release();
        let held = b.next_event(0).is_some_and(|e| e.kind == "held");
        if held {
            b.kill(0);
        }
        let mut runs = b.wait(r.harness.timeout);
        if held {
            runs.extend(r.run_specs(vec![r.spec(1, "probe")])?);
        }
        Ok(runs)
    }

    fn write(&self, spec: &WriterSpec, ev: &mut Events) -> Result<()> {
        let dir = &spec.dir;
        let max = max_for(spec.writers, spec.round);
        let protected = spec.mode == Mode::Protected;
        let etcd = Etcd::for_spec(spec)?;
        let etcd = etcd.as_ref();
        match spec.role.as_str() {
            "hold" => {
                let t = now_us();
                let held = if protected {
                    protected_acquire(etcd, dir, max, Take::WaitToBeKilled)?
                } else {
                    naive_acquire(dir, max, 3)
                };
                ev.emit(
                    "held",
                    t,
                    now_us(),
                    json!({ "slot": held.as_ref().and_then(Held::slot) }),
                );
                // Hold until killed: the parent kills us as soon as it reads "held". Should the
                // parent die first, stop holding rather than linger (bounded at 60 s).
                let parent = std::os::unix::process::parent_id();
                for _ in 0..3000 {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    if std::os::unix::process::parent_id() != parent {
                        break;
                    }
                }
                Ok(())
            }
            "probe" => {
                let t = now_us();
                let held = if protected {
                    protected_acquire(etcd, dir, max, Take::Probe)?
                } else {
                    naive_acquire(dir, max, 3)
                };
                ev.op(
                    t,
                    json!({ "acquired": held.is_some(), "etcd": etcd.is_some() }),
                );
                if let Some(h) = held {
                    h.release();
                }
                Ok(())
            }
            _ => {
                for _ in 0..spec.ops {
                    let t = now_us();
                    let held = if protected {
                        protected_acquire(etcd, dir, max, Take::Wait)?
                    } else {
                        // Out of retries, the seed's hook proceeds anyway.
                        naive_acquire(dir, max, 3)
                    }
                    .unwrap_or(Held::Nothing);
                    log(dir, "+1", spec.writer)?;
                    let h = now_us();
                    // The POST the slot guards: long against the naive retry window (3 x 1 ms), so that on a
                    // loaded machine, where short sleeps stretch, holders still overlap the retries.
                    work(20_000);
                    log(dir, "-1", spec.writer)?;
                    let slot = held.slot();
                    ev.hold(h, json!({ "slot": slot }));
                    held.release();
                    ev.op(t, json!({ "slot": slot }));
                }
                Ok(())
            }
        }
    }

    fn on_etcd(&self) -> bool {
        true
    }

    fn check(&self, dir: &Path, s: &Sizes, runs: &[WriterRun]) -> Result<RoundCheck> {
        let round = runs.first().map_or(0, |r| r.round);
        if round > 0 {
            let holder = runs.iter().find(|r| r.role == "hold");
            let pid = holder.map_or(0, |r| r.pid);
            let probe = runs
                .iter()
                .find(|r| r.role == "probe")
                .and_then(|r| r.events_of("op").next().map(|e| (r.writer, e.clone())));
            return Ok(match probe {
                Some((_, e))
                    if e.data["acquired"].as_bool() == Some(true)
                        && e.data["etcd"].as_bool() == Some(true) =>
                {
                    let waited = Duration::from_micros(e.end.saturating_sub(e.start));
                    RoundCheck::held(format!(
                        "slot free {:.1} s after pid {pid} killed -9 (its etcd lease ran out)",
                        waited.as_secs_f64()
                    ))
                }
                Some((_, e)) if e.data["acquired"].as_bool() == Some(true) => {
                    RoundCheck::held(format!("slot free at once after pid {pid} killed -9"))
                }
                Some((w, e)) => RoundCheck::broke(
                    "STALE_SLOT",
                    format!("slot still taken after holder pid {pid} killed -9"),
                    vec![Mark {
                        round,
                        at: e.end,
                        writer: Some(w),
                        label: format!("slot left by killed pid {pid}"),
                    }],
                ),
                None => RoundCheck::broke("ERROR", "holder never took the slot", Vec::new()),
            });
        }
        let max = max_for(s.writers, 0);
        let text = read_text(&dir.join(LOG))?.unwrap_or_default();
        let (mut cur, mut peak, mut first_over) = (0i64, 0i64, None);
        for l in text.lines() {
            let mut parts = l.split_whitespace();
            let d: i64 = parts.next().and_then(|d| d.parse().ok()).unwrap_or(0);
            cur += d;
            if cur > peak {
                peak = cur;
            }
            if cur > i64::try_from(max).unwrap_or(i64::MAX) && first_over.is_none() {
                let w = parts.next().and_then(|w| w.parse().ok());
                let at = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
                first_over = Some((w, at));
            }
        }
        Ok(match first_over {
            None => RoundCheck::held(format!("at most {peak} holders")),
            Some((w, at)) => RoundCheck::broke(
                "OVER_ADMISSION",
                format!("{peak} holders at once (max {max})"),
                vec![Mark {
                    round,
                    at,
                    writer: w,
                    label: format!("holder #{} admitted", max + 1),
                }],
            ),
        })
    }
}
