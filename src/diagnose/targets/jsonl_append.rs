//! jsonl-append: W writers each append `ops` JSON lines to one JSONL file.
//!
//! Naive: the file opened for append (`>>`) and each line emitted in two writes, as a split
//! `printf` or a buffered writer flushing mid-line does — another writer's bytes land between
//! the halves → `TORN_LINES` (and lines lost to the tearing). Concur: one line, one `write(2)` on
//! `O_APPEND`, which the kernel never interleaves (`concur::append`).

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::{tally_lines, unseen_lines, work};
use crate::append::AppendOptions;
use crate::diagnose::{Events, Mode, RoundCheck, Sizes, Target, WriterRun, WriterSpec, now_us};
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
        let n = s.writers * s.ops;
        let t = tally_lines(&dir.join(FILE), "msg", 120, n)?;
        let observed = format!(
            "{} whole, {} torn, {} lost, {} duplicated of {n}",
            t.seen.len(),
            t.torn,
            t.lost,
            t.dup
        );
        let verdict = if t.torn > 0 {
            "TORN_LINES"
        } else if t.lost > 0 {
            "LOST_LINES"
        } else if t.reordered > 0 || t.dup > 0 {
            "INTERLEAVED"
        } else {
            return Ok(RoundCheck::held(format!("{n} whole lines")));
        };
        // Mark the appends whose line did not survive whole.
        let marks = unseen_lines(runs, &t.seen);
        Ok(RoundCheck::broke(verdict, observed, marks))
    }
}
