//! json-counter: W writers each add 1 to a counter in a JSON file, `ops` times.
//!
//! Naive (the seed's `update_health` `fire_count`): read the file, work, write the whole file back
//! with a truncating open — two writers that read the same value both write value+1, and a
//! reader that meets the file mid-truncate starts again from 0 → `LAST_WRITER_WINS`.
//! Concur: `concur::json` — the read-modify-write under the file's sidecar lock, written by
//! atomic replace. On an etcd run (the "lock" target there): the naive read-modify-write
//! itself, done under an etcd lock (`concur lock --name counter`).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::{MAX_MARKS, put, read_text, work};
use crate::diagnose::etcd::Etcd;
use crate::diagnose::{
    Events, Mark, Mode, RoundCheck, Sizes, Target, WriterRun, WriterSpec, now_us,
};
use crate::error::{Error, Result};
use crate::json::JsonUpdate;

const FILE: &str = "counter.json";
/// The etcd lock's name on an etcd run.
const LOCK: &str = "counter";

/// The json-counter target.
pub struct JsonCounter;

fn read_count(path: &Path) -> Result<u64> {
    // Like `jq '.count // 0'`: anything unreadable counts as 0.
    Ok(read_text(path)?
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["count"].as_u64())
        .unwrap_or(0))
}

/// Reads the count, works, writes count+1 back with a truncating open; returns what it read.
fn naive_increment(path: &Path) -> Result<u64> {
    let v = read_count(path)?;
    work(300);
    let mut f = File::create(path).map_err(Error::with("cannot open for writing", path))?;
    f.write_all(json!({ "count": v + 1 }).to_string().as_bytes())
        .map_err(Error::with("cannot write", path))?;
    Ok(v)
}

impl Target for JsonCounter {
    fn name(&self) -> &'static str {
        "json-counter"
    }

    fn violations(&self) -> &'static str {
        "LAST_WRITER_WINS"
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            writers: 4,
            ops: 25,
            rounds: 1,
        }
    }

    fn expected(&self, s: &Sizes) -> String {
        format!("count == {}", s.writers * s.ops)
    }

    fn setup(&self, dir: &Path, _mode: Mode, _s: &Sizes) -> Result<()> {
        put(&dir.join(FILE), br#"{"count":0}"#)
    }

    fn write(&self, spec: &WriterSpec, ev: &mut Events) -> Result<()> {
        let path = spec.dir.join(FILE);
        let update = JsonUpdate::new(".count += 1").init(r#"{"count":0}"#)?;
        let etcd = Etcd::for_spec(spec)?;
        for _ in 0..spec.ops {
            let t = now_us();
            match (spec.mode, &etcd) {
                (Mode::Protected, Some(etcd)) => {
                    // On etcd: the naive read-modify-write itself, under `lock --name`.
                    let v = etcd.locked(LOCK, |token| {
                        let h = now_us();
                        let v = naive_increment(&path)?;
                        ev.hold(h, json!({ "lock": LOCK, "token": token }));
                        Ok(v)
                    })?;
                    ev.op(t, json!({ "read": v, "wrote": v + 1 }));
                }
                (Mode::Protected, None) => {
                    let out = update.apply(&path)?;
                    let v: serde_json::Value = serde_json::from_str(&out.value).unwrap_or_default();
                    let wrote = v["count"].as_u64().unwrap_or(0);
                    ev.op(
                        t,
                        json!({ "read": wrote.saturating_sub(1), "wrote": wrote }),
                    );
                }
                _ => {
                    let v = naive_increment(&path)?;
                    ev.op(t, json!({ "read": v, "wrote": v + 1 }));
                }
            }
        }
        Ok(())
    }

    fn on_etcd(&self) -> bool {
        true
    }

    fn check(&self, dir: &Path, s: &Sizes, runs: &[WriterRun]) -> Result<RoundCheck> {
        let n = (s.writers * s.ops) as u64;
        let count = read_count(&dir.join(FILE))?;
        if count == n {
            return Ok(RoundCheck::held(format!("count {count}")));
        }
        // A value written twice is a lost update: the second writer never saw the first's.
        let mut ops: Vec<(u64, usize, u64)> = runs
            .iter()
            .flat_map(|r| {
                r.events_of("op")
                    .filter_map(move |e| Some((e.end, r.writer, e.data["wrote"].as_u64()?)))
            })
            .collect();
        ops.sort_unstable();
        let mut seen: HashMap<u64, usize> = HashMap::new();
        let mut marks = Vec::new();
        for (at, writer, wrote) in ops {
            if let Some(first) = seen.insert(wrote, writer)
                && marks.len() < MAX_MARKS
            {
                {
                    marks.push(Mark {
                        round: runs.first().map_or(0, |r| r.round),
                        at,
                        writer: Some(writer),
                        label: format!("wrote count={wrote} again (over writer {first})"),
                    });
                }
            }
        }
        let lost = n.saturating_sub(count);
        Ok(RoundCheck::broke(
            "LAST_WRITER_WINS",
            format!("count {count}: lost {lost} of {n}"),
            marks,
        ))
    }
}
