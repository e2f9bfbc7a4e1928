//! edit-race: W agent sessions each read one file, change it and write it back, the way an
//! agent's Edit/Write tool does — through the `PreToolUse` hook sequence.
//!
//! Naive (no reservations): every session's hook allows, each reads the file, works, and writes
//! its version back: edits made between another session's read and write vanish → `LOST_EDIT`.
//! Concur: each edit first asks the edit-reservation hook ([`crate::hook::reserve`], with
//! `[reserve] auto = true`): the first session claims the file and goes on, the others are
//! denied, so every edit that was allowed is still in the file.

use std::path::Path;

use serde_json::json;

use super::{put, read_text, work};
use crate::diagnose::{
    Events, Mark, Mode, RoundCheck, Sizes, Target, WriterRun, WriterSpec, now_us,
};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::hook::Agent;
use crate::hook::reserve::{Edit, decide_write};
use crate::id::SessionId;
use crate::reserve::Reservations;

const FILE: &str = "shared.md";

/// The edit-race target.
pub struct EditRace;

impl Target for EditRace {
    fn name(&self) -> &'static str {
        "edit-race"
    }

    fn violations(&self) -> &'static str {
        "LOST_EDIT"
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            writers: 4,
            ops: 2,
            rounds: 5,
        }
    }

    fn expected(&self, _s: &Sizes) -> String {
        "every allowed edit is in the file".into()
    }

    fn setup(&self, dir: &Path, mode: Mode, _s: &Sizes) -> Result<()> {
        put(&dir.join(FILE), b"# shared\n")?;
        // The round's directory is a checkout, as where agents edit: auto-claims are made only
        // of files inside one.
        let git = dir.join(".git");
        crate::sys::fs::mkdir(&git, 0o700).map_err(Error::with("cannot create directory", &git))?;
        if mode == Mode::Protected {
            // The round's own home and reservation database, created before writers race.
            drop(Reservations::open(&Home::at(dir.join("home"))?)?);
        }
        Ok(())
    }

    fn write(&self, spec: &WriterSpec, ev: &mut Events) -> Result<()> {
        let file = spec.dir.join(FILE);
        let session = SessionId::new(&format!("edit-race-{}", spec.writer))?;
        let home = if spec.mode == Mode::Protected {
            Some(Home::at(spec.dir.join("home"))?)
        } else {
            None
        };
        for op in 0..spec.ops {
            let t = now_us();
            let allowed = home.as_ref().is_none_or(|home| {
                let edit = Edit {
                    agent: Agent::Claude,
                    session: Some(&session),
                    cwd: &spec.dir,
                    auto: true,
                    call: None,
                };
                !decide_write(home, &edit, std::slice::from_ref(&file)).is_deny()
            });
            if allowed {
                let text = read_text(&file)?.unwrap_or_default();
                work(3000); // the model thinks, the tool builds the new content
                let line = format!("writer {} edit {op}\n", spec.writer);
                put(&file, format!("{text}{line}").as_bytes())?;
            }
            ev.op(t, json!({ "allowed": allowed, "edit": op }));
        }
        Ok(())
    }

    fn check(&self, dir: &Path, _s: &Sizes, runs: &[WriterRun]) -> Result<RoundCheck> {
        let text = read_text(&dir.join(FILE))?.unwrap_or_default();
        let mut lost = Vec::new();
        let mut allowed = 0;
        for r in runs {
            for e in r.events_of("op") {
                if e.data["allowed"].as_bool() != Some(true) {
                    continue;
                }
                allowed += 1;
                let line = format!("writer {} edit {}\n", r.writer, e.data["edit"]);
                if !text.contains(&line) {
                    lost.push(Mark {
                        round: r.round,
                        at: e.end,
                        writer: Some(r.writer),
                        label: format!("writer {} lost edit {}", r.writer, e.data["edit"]),
                    });
                }
            }
        }
        let denied: usize = runs
            .iter()
            .map(|r| {
                r.events_of("op")
                    .filter(|e| e.data["allowed"].as_bool() == Some(false))
                    .count()
            })
            .sum();
        if lost.is_empty() {
            Ok(RoundCheck::held(format!(
                "{allowed} edits kept, {denied} denied"
            )))
        } else {
            let n = lost.len();
            lost.truncate(super::MAX_MARKS);
            Ok(RoundCheck::broke(
                "LOST_EDIT",
                format!("{n} of {allowed} edits lost"),
                lost,
            ))
        }
    }
}
