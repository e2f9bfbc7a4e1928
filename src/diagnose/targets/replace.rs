//! replace: writers rewrite a file again and again while readers read it.
//!
//! Naive (the seed's `fs.writeFileSync`, P2-5): truncate the file in place, then write the new
//! content (in two chunks, as a large write or a buffered writer does) — a reader between the
//! truncate and the last chunk sees an empty or half file → `TORN_READ`. Concur: `concur::replace`
//! (temp file, fsync, `rename(2)`): a reader sees the old file or the new one, whole.
//!
//! Half the writers (at least one) write; the rest (at least one) read until every writer has
//! left its `done-N` marker.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::{MAX_MARKS, put, work};
use crate::diagnose::{
    Events, Mark, Mode, Round, RoundCheck, Sizes, Target, WriterRun, WriterSpec, now_us,
};
use crate::error::{Error, Result};
use crate::replace::ReplaceOptions;

const FILE: &str = "state.txt";

/// The replace target.
pub struct Replace;

fn writer_count(writers: usize) -> usize {
    (writers / 2).max(1)
}

fn content(w: usize, i: usize) -> String {
    format!("BEGIN {w} {i}\n{}\nEND\n", "z".repeat(4000))
}

fn whole(text: &[u8]) -> bool {
    text.starts_with(b"BEGIN ") && text.ends_with(b"\nEND\n") && text.len() > 4000
}

impl Target for Replace {
    fn name(&self) -> &'static str {
        "replace"
    }

    fn violations(&self) -> &'static str {
        "TORN_READ"
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            writers: 4,
            ops: 40,
            rounds: 1,
        }
    }

    fn expected(&self, _s: &Sizes) -> String {
        "every read whole".into()
    }

    fn setup(&self, dir: &Path, _mode: Mode, _s: &Sizes) -> Result<()> {
        put(&dir.join(FILE), content(0, 0).as_bytes())
    }

    fn round(&self, r: &Round<'_>) -> Result<Vec<WriterRun>> {
        let nw = writer_count(r.sizes.writers);
        let total = r.sizes.writers.max(nw + 1);
        let specs = (0..total)
            .map(|i| r.spec(i, if i < nw { "" } else { "reader" }))
            .collect();
        r.run_specs(specs)
    }

    fn write(&self, spec: &WriterSpec, ev: &mut Events) -> Result<()> {
        let path = spec.dir.join(FILE);
        if spec.role == "reader" {
            let nw = writer_count(spec.writers);
            let (mut reads, mut torn) = (0u64, 0u64);
            loop {
                let done = (0..nw).all(|w| spec.dir.join(format!("done-{w}")).exists());
                let t = now_us();
                let text = std::fs::read(&path).unwrap_or_default();
                reads += 1;
                if !whole(&text) {
                    torn += 1;
                    if torn <= 50 {
                        ev.emit("torn", t, now_us(), json!({ "len": text.len() }));
                    }
                }
                if done || reads > 2_000_000 {
                    break;
                }
            }
            ev.emit(
                "reads",
                now_us(),
                now_us(),
                json!({ "reads": reads, "torn": torn }),
            );
            return Ok(());
        }
        for i in 0..spec.ops {
            let t = now_us();
            let c = content(spec.writer, i + 1);
            if spec.mode == Mode::Protected {
                ReplaceOptions::new().replace(&path, c.as_bytes())?;
            } else {
                let mut f =
                    File::create(&path).map_err(Error::with("cannot open for writing", &path))?;
                let (a, b) = c.split_at(c.len() / 2);
                f.write_all(a.as_bytes())
                    .map_err(Error::with("cannot write", &path))?;
                work(200);
                f.write_all(b.as_bytes())
                    .map_err(Error::with("cannot write", &path))?;
            }
            ev.op(t, json!({ "i": i }));
        }
        super::put(&spec.dir.join(format!("done-{}", spec.writer)), b"")
    }

    fn check(&self, _dir: &Path, _s: &Sizes, runs: &[WriterRun]) -> Result<RoundCheck> {
        let (mut reads, mut torn) = (0u64, 0u64);
        for r in runs {
            for e in r.events_of("reads") {
                reads += e.data["reads"].as_u64().unwrap_or(0);
                torn += e.data["torn"].as_u64().unwrap_or(0);
            }
        }
        if torn == 0 {
            return Ok(RoundCheck::held(format!("{reads} reads, all whole")));
        }
        let marks = runs
            .iter()
            .flat_map(|r| {
                r.events_of("torn").map(move |e| Mark {
                    round: r.round,
                    at: e.start,
                    writer: Some(r.writer),
                    label: format!("read {} bytes", e.data["len"]),
                })
            })
            .take(MAX_MARKS)
            .collect();
        Ok(RoundCheck::broke(
            "TORN_READ",
            format!("{torn} of {reads} reads empty or partial"),
            marks,
        ))
    }
}
