//! broker: W writers each append `ops` lines to one memory file.
//!
//! Naive: the seed's memory writers without the daemon — `open(…, 'a')` and the line emitted in
//! three writes (a prefix, the body, the newline), with a little work between them → other
//! writers' bytes land inside lines: `TORN_LINES` / `INTERLEAVED`. Concur: every writer holds one
//! connection to a real `concur broker` (started for the round in a private home under the
//! round directory) and appends with a retry id per line; the check wants every acked line
//! present exactly once and each writer's lines in the order it sent them (`LOST`,
//! `DUPLICATED`, `REORDERED` otherwise).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::{put, tally_lines, unseen_lines, work};
use crate::broker::{self, Client, Line};
use crate::diagnose::{Events, Mode, RoundCheck, Sizes, Target, WriterRun, WriterSpec, now_us};
use crate::error::{Error, Result};
use crate::home::Home;

const FILE: &str = "MEMORY.jsonl";

/// The broker target.
pub struct Broker;

fn body(w: usize, i: usize) -> String {
    json!({ "w": w, "i": i, "note": "y".repeat(100) }).to_string()
}

fn home_of(dir: &Path) -> PathBuf {
    dir.join("broker-home")
}

impl Target for Broker {
    fn name(&self) -> &'static str {
        "broker"
    }

    fn violations(&self) -> &'static str {
        "TORN_LINES / INTERLEAVED (naive); LOST / DUPLICATED / REORDERED"
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            writers: 4,
            ops: 50,
            rounds: 1,
        }
    }

    fn expected(&self, s: &Sizes) -> String {
        format!("{} lines, each once, per-writer order", s.writers * s.ops)
    }

    fn setup(&self, dir: &Path, mode: Mode, _s: &Sizes) -> Result<()> {
        if mode != Mode::Protected {
            return Ok(());
        }
        let home = Home::at(home_of(dir))?;
        let root = std::fs::canonicalize(dir).map_err(Error::with("cannot resolve", dir))?;
        put(
            &home.join("concur.toml"),
            format!("[broker]\nroots = [{:?}]\n", root.to_string_lossy()).as_bytes(),
        )?;
        let exe =
            std::env::current_exe().map_err(Error::with("cannot find", Path::new("concur")))?;
        broker::spawn_daemon(&home, &exe, None)?;
        Ok(())
    }

    fn write(&self, spec: &WriterSpec, ev: &mut Events) -> Result<()> {
        let path = spec.dir.join(FILE);
        if spec.mode == Mode::Protected {
            let home = Home::at(home_of(&spec.dir))?;
            let target = std::fs::canonicalize(&spec.dir)
                .map_err(Error::with("cannot resolve", &spec.dir))?
                .join(FILE);
            let mut c = Client::connect(&home)?;
            for i in 0..spec.ops {
                let t = now_us();
                let id = format!("w{}-{i}", spec.writer);
                c.append(&target, &Line::JsonText(body(spec.writer, i)), Some(&id))?;
                ev.op(t, json!({ "i": i }));
            }
            return Ok(());
        }
        for i in 0..spec.ops {
            let t = now_us();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .map_err(Error::with("cannot open", &path))?;
            let b = body(spec.writer, i);
            let (a, rest) = b.split_at(b.len() / 2);
            for part in [a, rest, "\n"] {
                f.write_all(part.as_bytes())
                    .map_err(Error::with("cannot append", &path))?;
                work(50);
            }
            ev.op(t, json!({ "i": i }));
        }
        Ok(())
    }

    fn check(&self, dir: &Path, s: &Sizes, runs: &[WriterRun]) -> Result<RoundCheck> {
        let home = home_of(dir);
        if home.exists() {
            let _ = broker::stop(&Home::at(&home)?, Duration::from_secs(30));
        }
        let n = s.writers * s.ops;
        let t = tally_lines(&dir.join(FILE), "note", 100, n)?;
        let observed = format!(
            "{} whole, {} torn, {} lost, {} duplicated, {} out of order of {n}",
            t.seen.len(),
            t.torn,
            t.lost,
            t.dup,
            t.reordered
        );
        let verdict = if t.torn > 0 {
            "TORN_LINES"
        } else if t.lost > 0 {
            "LOST"
        } else if t.dup > 0 {
            "DUPLICATED"
        } else if t.reordered > 0 {
            "REORDERED"
        } else {
            return Ok(RoundCheck::held(format!("{n} lines, each once, in order")));
        };
        let marks = unseen_lines(runs, &t.seen);
        Ok(RoundCheck::broke(verdict, observed, marks))
    }
}
