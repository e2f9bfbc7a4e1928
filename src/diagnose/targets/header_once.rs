//! header-once: W writers each log one entry to a daily log that must start with one header.
//!
//! Naive (the seed's user-message-logger, P2-4): `[ -f "$LOG" ] || printf '# header\n' >>
//! "$LOG"`, then `echo entry >> "$LOG"` — every writer that checked before the first header
//! landed writes its own → `DUPLICATE_HEADER`. Concur: a missing file is created with header and
//! entry in one step (`concur::append --header`: temp file + `link(2)`, which only one writer can
//! win); the losers append.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::{read_text, work};
use crate::append::AppendOptions;
use crate::diagnose::{
    Events, Mark, Mode, RoundCheck, Sizes, Target, WriterRun, WriterSpec, now_us,
};
use crate::error::{Error, Result};
use crate::sys::fs as sfs;

const FILE: &str = "daily-log.md";
const HEADER: &str = "# daily log";

/// The header-once target.
pub struct HeaderOnce;

fn append(path: &Path, text: &str) -> Result<()> {
    let f = sfs::open(path, sfs::Open::append(sfs::DEFAULT_MODE))
        .map_err(Error::with("cannot open", path))?;
    sfs::write_once(&f, text.as_bytes()).map_err(Error::with("cannot append", path))?;
    Ok(())
}

impl Target for HeaderOnce {
    fn name(&self) -> &'static str {
        "header-once"
    }

    fn violations(&self) -> &'static str {
        "DUPLICATE_HEADER"
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            writers: 4,
            ops: 1,
            rounds: 5,
        }
    }

    fn expected(&self, s: &Sizes) -> String {
        format!("1 header first, {} entries", s.writers * s.ops)
    }

    fn write(&self, spec: &WriterSpec, ev: &mut Events) -> Result<()> {
        let path = spec.dir.join(FILE);
        for i in 0..spec.ops {
            let t = now_us();
            let entry = format!("- entry {} {i}\n", spec.writer);
            let mut wrote_header = false;
            if spec.mode == Mode::Protected {
                AppendOptions::new()
                    .header(HEADER)
                    .append(&path, entry.as_bytes())?;
            } else {
                if !path.exists() {
                    work(5000); // build the header: date, session banner
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(&path)
                        .map_err(Error::with("cannot open", &path))?;
                    f.write_all(format!("{HEADER}\n").as_bytes())
                        .map_err(Error::with("cannot write", &path))?;
                    wrote_header = true;
                }
                append(&path, &entry)?;
            }
            ev.op(t, json!({ "header": wrote_header }));
        }
        Ok(())
    }

    fn check(&self, dir: &Path, s: &Sizes, runs: &[WriterRun]) -> Result<RoundCheck> {
        let text = read_text(&dir.join(FILE))?.unwrap_or_default();
        let headers = text.lines().filter(|l| *l == HEADER).count();
        let entries = text.lines().filter(|l| l.starts_with("- entry ")).count();
        let first_ok = text.lines().next() == Some(HEADER);
        let n = s.writers * s.ops;
        let observed = format!("header written {headers}x, {entries} of {n} entries");
        if headers == 1 && first_ok && entries == n {
            return Ok(RoundCheck::held(observed));
        }
        let marks = runs
            .iter()
            .flat_map(|r| {
                r.events_of("op")
                    .filter(|e| e.data["header"].as_bool() == Some(true))
                    .map(move |e| Mark {
                        round: r.round,
                        at: e.end,
                        writer: Some(r.writer),
                        label: format!("writer {} wrote a header", r.writer),
                    })
            })
            .skip(1)
            .collect();
        let verdict = if headers > 1 {
            "DUPLICATE_HEADER"
        } else if entries < n {
            "LOST_LINES"
        } else {
            "MISSING_HEADER"
        };
        Ok(RoundCheck::broke(verdict, observed, marks))
    }
}
