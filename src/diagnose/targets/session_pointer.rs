//! session-pointer: W sessions each keep an "active task" pointer and read it back.
//!
//! Naive (the seed's P1-13 `/tmp/mc-active-task`): one global file, last writer wins; a session
//! that reads its pointer back after another session wrote gets the other's task →
//! `CROSS_SESSION_LEAK`. Concur: `concur::marker::Pointers`, one value per session; a session
//! reads only its own unless it names another.

use std::path::Path;

use serde_json::json;

use super::{MAX_MARKS, put, read_text, work};
use crate::diagnose::{
    Events, Mark, Mode, RoundCheck, Sizes, Target, WriterRun, WriterSpec, now_us,
};
use crate::error::Result;
use crate::home::Home;
use crate::id::SessionId;
use crate::marker::Pointers;

const FILE: &str = "mc-active-task";
const NAME: &str = "active-task";

/// The session-pointer target.
pub struct SessionPointer;

impl Target for SessionPointer {
    fn name(&self) -> &'static str {
        "session-pointer"
    }

    fn violations(&self) -> &'static str {
        "CROSS_SESSION_LEAK"
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            writers: 4,
            ops: 20,
            rounds: 1,
        }
    }

    fn expected(&self, _s: &Sizes) -> String {
        "every read returns the reader's own task".into()
    }

    fn setup(&self, dir: &Path, mode: Mode, _s: &Sizes) -> Result<()> {
        if mode == Mode::Protected {
            Home::at(dir.join("home"))?;
        }
        Ok(())
    }

    fn write(&self, spec: &WriterSpec, ev: &mut Events) -> Result<()> {
        let session = SessionId::new(&format!("diagnose-w{}", spec.writer))?;
        let pointers = if spec.mode == Mode::Protected {
            Some(Pointers::new(&Home::at(spec.dir.join("home"))?))
        } else {
            None
        };
        let file = spec.dir.join(FILE);
        for i in 0..spec.ops {
            let t = now_us();
            let mine = format!("task-w{}-{i}", spec.writer);
            let read = if let Some(p) = &pointers {
                p.set(&session, NAME, &mine)?;
                work(1000); // the session works on its task, then looks it up again
                p.get(&session, NAME)?.unwrap_or_default()
            } else {
                put(&file, mine.as_bytes())?;
                work(1000);
                read_text(&file)?.unwrap_or_default()
            };
            ev.op(t, json!({ "mine": mine, "read": read }));
        }
        Ok(())
    }

    fn check(&self, _dir: &Path, _s: &Sizes, runs: &[WriterRun]) -> Result<RoundCheck> {
        let mut leaks = 0usize;
        let mut total = 0usize;
        let mut marks = Vec::new();
        for r in runs {
            for e in r.events_of("op") {
                total += 1;
                if e.data["mine"] != e.data["read"] {
                    leaks += 1;
                    if marks.len() < MAX_MARKS {
                        marks.push(Mark {
                            round: r.round,
                            at: e.end,
                            writer: Some(r.writer),
                            label: format!(
                                "writer {} read {} (not its own)",
                                r.writer, e.data["read"]
                            ),
                        });
                    }
                }
            }
        }
        if leaks == 0 {
            Ok(RoundCheck::held(format!("{total} reads, all own")))
        } else {
            Ok(RoundCheck::broke(
                "CROSS_SESSION_LEAK",
                format!("{leaks} of {total} reads returned another session's task"),
                marks,
            ))
        }
    }
}
