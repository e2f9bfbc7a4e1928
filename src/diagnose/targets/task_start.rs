//! task-start: W sessions race to start the same build task, over several rounds.
//!
//! Naive (the seed's P1-7 hop-build started marker): `[ -f started-TASK ] || { touch
//! started-TASK; build; }` — every session that checked before the first `touch` starts the build
//! → `DOUBLE_START`. Concur: `lease acquire TASK --once` (one `BEGIN IMMEDIATE` transaction) and
//! `complete`: exactly one session is granted the task, ever. On an etcd run: the same calls on
//! the etcd lease store (one transaction per acquire).

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::{MAX_MARKS, OneOf, exactly_one, put, work};
use crate::diagnose::etcd::Etcd;
use crate::diagnose::{Events, Mode, RoundCheck, Sizes, Target, WriterRun, WriterSpec, now_us};
use crate::error::Result;
use crate::home::Home;
use crate::id::SessionId;
use crate::lease::sqlite::SqliteStore;
use crate::lease::{AcquireRequest, Acquired, Store};

const TASK: &str = "hop-build:T-1";
const MARKER: &str = "hop-build-started-T-1";

/// The task-start target.
pub struct TaskStart;

impl Target for TaskStart {
    fn name(&self) -> &'static str {
        "task-start"
    }

    fn violations(&self) -> &'static str {
        "DOUBLE_START / NO_START"
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            writers: 4,
            ops: 1,
            rounds: 10,
        }
    }

    fn expected(&self, _s: &Sizes) -> String {
        "1 start per round".into()
    }

    fn setup(&self, dir: &Path, mode: Mode, _s: &Sizes) -> Result<()> {
        if mode == Mode::Protected {
            drop(SqliteStore::open(&Home::at(dir.join("home"))?)?);
        }
        Ok(())
    }

    fn write(&self, spec: &WriterSpec, ev: &mut Events) -> Result<()> {
        let session = SessionId::new(&format!("diagnose-w{}", spec.writer))?;
        let etcd = Etcd::for_spec(spec)?;
        for _ in 0..spec.ops {
            let t = now_us();
            let started = if spec.mode == Mode::Protected {
                let store: Box<dyn Store> = match &etcd {
                    Some(etcd) => etcd.task_store(),
                    None => Box::new(SqliteStore::open(&Home::at(spec.dir.join("home"))?)?),
                };
                let req = AcquireRequest {
                    task: TASK.into(),
                    session: session.clone(),
                    ttl: Duration::from_secs(600),
                    once: true,
                    cwd: spec.dir.display().to_string(),
                };
                match store.acquire(&req)? {
                    Acquired::Granted(_) => {
                        work(2000); // the build
                        store.complete(TASK, &session)?;
                        true
                    }
                    Acquired::Held(_) | Acquired::Completed(_) => false,
                }
            } else {
                let marker = spec.dir.join(MARKER);
                if marker.exists() {
                    false
                } else {
                    work(2000); // read the task, decide to build
                    put(&marker, session.as_str().as_bytes())?;
                    true
                }
            };
            ev.op(t, json!({ "started": started }));
        }
        Ok(())
    }

    fn on_etcd(&self) -> bool {
        true
    }

    fn check(&self, _dir: &Path, _s: &Sizes, runs: &[WriterRun]) -> Result<RoundCheck> {
        Ok(exactly_one(
            runs,
            &OneOf {
                field: "started",
                noun: "start",
                none: "NO_START",
                many: "DOUBLE_START",
                again: |w| format!("writer {w} started the task again"),
                limit: MAX_MARKS,
            },
        ))
    }
}
