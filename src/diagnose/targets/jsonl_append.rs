//! jsonl-append: W writers each append `ops` JSON lines to one JSONL file.
//!
//! Naive: the file opened for append (`>>`) and each line emitted in two writes, as a split
//! `printf` or a buffered writer flushing mid-line does — another writer's bytes land between
//! the halves → `TORN_LINES` (and lines lost to the tearing). Concur: one line, one `write(2)` on
//! `O_APPEND`, which the kernel never interleaves (`concur::append`).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::{MAX_MARKS, read_text, work};
use crate::append::AppendOptions;
use crate::diagnose::{
    Events, Mark, Mode, RoundCheck, Sizes, Target, WriterRun, WriterSpec, now_us,
};
use crate::error::{Error, Result};

const FILE: &str = "events.jsonl";

/// The jsonl-append target.
pub struct JsonlAppend;

fn line(w: usize, i: usize) -> String {
    format!("{}\n", json!({ "w": w, "i": i, "msg": "x".repeat(120) }))
}

impl Target for JsonlAppend {
    fn name(&self) -> &'static str {
        "jsonl-append"
    }

    fn violations(&self) -> &'static str {
        "TORN_LINES / LOST_LINES / INTERLEAVED"
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            writers: 4,
            ops: 50,
            rounds: 1,
        }
    }

    fn expected(&self, s: &Sizes) -> String {
        format!("{} whole lines", s.writers * s.ops)
    }

    fn setup(&self, _dir: &Path, _mode: Mode, _s: &Sizes) -> Result<()> {
        Ok(())
    }

    fn write(&self, spec: &WriterSpec, ev: &mut Events) -> Result<()> {
        let path = spec.dir.join(FILE);
        for i in 0..spec.ops {
            let t = now_us();
            let l = line(spec.writer, i);
            if spec.mode == Mode::Protected {
                AppendOptions::new().append(&path, l.as_bytes())?;
            } else {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&path)
                    .map_err(Error::with("cannot open", &path))?;
                let (a, b) = l.split_at(l.len() / 2);
                f.write_all(a.as_bytes())
                    .map_err(Error::with("cannot append", &path))?;
                work(100);
                f.write_all(b.as_bytes())
                    .map_err(Error::with("cannot append", &path))?;
            }
            ev.op(t, json!({ "i": i }));
        }
        Ok(())
    }

    fn check(&self, dir: &Path, s: &Sizes, runs: &[WriterRun]) -> Result<RoundCheck> {
        let text = read_text(&dir.join(FILE))?.unwrap_or_default();
        let n = s.writers * s.ops;
        let mut torn = 0usize;
        let mut seen = HashSet::new();
        let mut dup = 0usize;
        let mut last: HashMap<u64, u64> = HashMap::new();
        let mut reordered = 0usize;
        for l in text.split_inclusive('\n') {
            let whole = l.ends_with('\n');
            let v: Option<serde_json::Value> = serde_json::from_str(l.trim_end_matches('\n')).ok();
            let key = v
                .as_ref()
                .and_then(|v| Some((v["w"].as_u64()?, v["i"].as_u64()?)));
            match key {
                Some((w, i))
                    if whole
                        && v.as_ref()
                            .is_some_and(|v| v["msg"].as_str().is_some_and(|m| m.len() == 120)) =>
                {
                    if !seen.insert((w, i)) {
                        dup += 1;
                    }
                    if last.get(&w).is_some_and(|&p| p >= i) {
                        reordered += 1;
                    }
                    last.insert(w, i);
                }
                _ => torn += 1,
            }
        }
        let lost = n.saturating_sub(seen.len());
        let observed = format!(
            "{} whole, {torn} torn, {lost} lost, {dup} duplicated of {n}",
            seen.len()
        );
        let verdict = if torn > 0 {
            "TORN_LINES"
        } else if lost > 0 {
            "LOST_LINES"
        } else if reordered > 0 || dup > 0 {
            "INTERLEAVED"
        } else {
            return Ok(RoundCheck::held(format!("{n} whole lines")));
        };
        // Mark the appends whose line did not survive whole.
        let marks = runs
            .iter()
            .flat_map(|r| {
                let seen = &seen;
                r.events_of("op").filter_map(move |e| {
                    let i = e.data["i"].as_u64()?;
                    (!seen.contains(&(r.writer as u64, i))).then(|| Mark {
                        round: r.round,
                        at: e.end,
                        writer: Some(r.writer),
                        label: format!("line {}/{i} torn or lost", r.writer),
                    })
                })
            })
            .take(MAX_MARKS)
            .collect();
        Ok(RoundCheck::broke(verdict, observed, marks))
    }
}
