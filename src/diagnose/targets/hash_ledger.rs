//! hash-ledger: W writers each append to a hash-chained JSONL ledger.
//!
//! Naive (the seed's P2-3 verdict ledger): a `mkdir` lock tried 100 times with 10 ms sleeps; on
//! timeout the writer carries on **unprotected**; under the lock it reads the last line's hash,
//! works (computes, validates: slow), and appends `{seq, prev, hash}` with `>>`. When the critical
//! section is slower than the retry budget, timed-out writers append on top of the same head →
//! two lines with one `prev` → `CHAIN_BROKEN`. Concur: `concur::ledger::append` waits for the
//! sidecar lock and, if it times out, fails instead of writing.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::{MAX_MARKS, work};
use crate::diagnose::{
    Events, Mark, Mode, RoundCheck, Sizes, Target, WriterRun, WriterSpec, now_us,
};
use crate::error::{Error, Result};
use crate::ledger::{self, GENESIS, canonical, line_hash};
use crate::sys;

const FILE: &str = "verdict-ledger.jsonl";
const LOCKDIR: &str = "verdict-ledger.lockdir";

/// The hash-ledger target.
pub struct HashLedger;

/// The naive writer's read of the head: last line's seq and hash.
fn naive_head(path: &Path) -> (u64, String) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .last()
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .and_then(|v| Some((v["seq"].as_u64()?, v["hash"].as_str()?.to_owned())))
        .unwrap_or((0, GENESIS.to_owned()))
}

impl Target for HashLedger {
    fn name(&self) -> &'static str {
        "hash-ledger"
    }

    fn violations(&self) -> &'static str {
        "CHAIN_BROKEN"
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            writers: 8,
            ops: 1,
            rounds: 1,
        }
    }

    fn expected(&self, s: &Sizes) -> String {
        format!("chain verifies, {} entries", s.writers * s.ops)
    }

    fn write(&self, spec: &WriterSpec, ev: &mut Events) -> Result<()> {
        let path = spec.dir.join(FILE);
        for i in 0..spec.ops {
            let t = now_us();
            let entry = json!({ "writer": spec.writer, "i": i, "verdict": "pass" });
            if spec.mode == Mode::Protected {
                let opts = ledger::Options {
                    wait: Some(Duration::from_secs(60)),
                    fsync: true,
                };
                let a = ledger::append(&path, &entry, opts)?;
                ev.op(t, json!({ "seq": a.seq, "unprotected": false }));
                continue;
            }
            let lockdir = spec.dir.join(LOCKDIR);
            let mut locked = false;
            for _ in 0..100 {
                if std::fs::create_dir(&lockdir).is_ok() {
                    locked = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let h = now_us();
            // Timed out: the seed's writer "proceeds anyway".
            let (seq, prev) = naive_head(&path);
            work(400_000); // validate the verdict, hash the evidence: the slow critical section
            let Value::Object(mut m) = entry else {
                unreachable!()
            };
            m.insert("seq".into(), Value::from(seq + 1));
            m.insert("prev".into(), Value::from(prev.clone()));
            let hash = line_hash(&prev, &m);
            m.insert("hash".into(), Value::from(hash));
            let mut line = canonical(&Value::Object(m));
            line.push('\n');
            let f = sys::fs::open(&path, sys::fs::Open::append(sys::fs::DEFAULT_MODE))
                .map_err(Error::with("cannot open", &path))?;
            (&f).write_all(line.as_bytes())
                .map_err(Error::with("cannot write", &path))?;
            if locked {
                let _ = std::fs::remove_dir(&lockdir);
                ev.hold(h, json!({}));
            }
            ev.op(t, json!({ "seq": seq + 1, "unprotected": !locked }));
        }
        Ok(())
    }

    fn check(&self, dir: &Path, s: &Sizes, runs: &[WriterRun]) -> Result<RoundCheck> {
        let want = (s.writers * s.ops) as u64;
        let path = dir.join(FILE);
        let report = ledger::verify(&path)?;
        let lines = std::fs::read_to_string(&path).map_or(0, |t| t.lines().count() as u64);
        let marks: Vec<Mark> = runs
            .iter()
            .flat_map(|r| {
                r.events_of("op")
                    .filter(|e| e.data["unprotected"] == true)
                    .map(move |e| Mark {
                        round: r.round,
                        at: e.end,
                        writer: Some(r.writer),
                        label: format!(
                            "writer {} wrote unprotected after the lock timed out",
                            r.writer
                        ),
                    })
            })
            .take(MAX_MARKS)
            .collect();
        if let Some(p) = report.problem {
            return Ok(RoundCheck::broke(
                "CHAIN_BROKEN",
                format!("line {}: {}: {}", p.line, p.fault.name(), p.detail),
                marks,
            ));
        }
        if lines != want {
            return Ok(RoundCheck::broke(
                "LOST",
                format!("{lines} entries of {want}"),
                marks,
            ));
        }
        Ok(RoundCheck::held(format!("chain of {lines} verifies")))
    }
}
