//! `concur diagnose`: the collision harness.
//!
//! For every *target* (a pattern of shared state from the seed's isolation sweep), W real
//! processes — the `concur` binary re-invoked as a hidden writer — are started together on a
//! barrier (a pipe the parent closes, never a sleep) and hammer a fresh fixture, first with a
//! *naive* writer written the way the seed's scripts wrote it, then with the concur primitive.
//! After each round an invariant is checked and turned into a verdict: a violation name
//! (`LAST_WRITER_WINS`, `TORN_LINES`, ...) or `SAFE`. A naive target that comes out clean is
//! shown as `NOT REPRODUCED`. Users' own scripts run through the same machinery
//! ([`custom`]), checked with the [`checks`] kinds.
//!
//! What it guarantees: every writer is a separate process with its own file descriptors, all
//! released at once; a writer that fails or hangs past its timeout is reported (verdict
//! `ERROR`), never silently counted; a protected target's verdict is computed by the same check
//! as the naive one. What it does not: a naive target not caught in one run proves nothing (races
//! are probabilistic; the built-in sizes are tuned so that they are caught on a loaded 2-core
//! machine); a `SAFE` verdict is evidence over the runs made, not a proof.
//!
//! ## Adding a target
//!
//! 1. Write `src/diagnose/targets/<name>.rs` with a unit struct implementing [`Target`]:
//!    - `name`, `sizes` (default writers/ops/rounds), `expected` (the invariant in words);
//!    - `setup`: create the fixture in the round's fresh directory;
//!    - `write`: runs inside each writer process; do `spec.ops` operations the naive way or
//!      the concur way (`spec.mode`), reporting each with [`Events::op`] (and lock holds with
//!      [`Events::hold`]) so the HTML timeline can show them;
//!    - `check`: read the directory and the writers' events, return a [`RoundCheck`] with the
//!      violation name (or `None`), what was observed, and [`Mark`]s where it broke;
//!    - optionally override `round` for choreography beyond "all writers at once" (the
//!      semaphore target kills a holder with SIGKILL there).
//! 2. Add it to [`targets::all`] (and to the target list in `concur diagnose --help`). The CLI, the table, `--json`, the HTML report and the
//!    test that every naive target is caught and every protected one is SAFE pick it up.

pub mod chaos;
pub mod checks;
pub mod custom;
pub mod etcd;
pub mod html;
pub mod report;
pub mod run;
pub mod suite;
pub mod targets;
pub mod writer;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::Result;

pub use run::{Harness, Outcome, Round};

/// How a writer touches the shared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The way the seed's scripts did it: racy.
    Naive,
    /// Through concur's primitive: must be SAFE.
    Protected,
    /// A user's own script (`--cmd`).
    Custom,
}

impl Mode {
    /// The name shown in the table and `--json` (`naive`, `concur`, `custom`).
    pub fn label(self) -> &'static str {
        match self {
            Mode::Naive => "naive",
            Mode::Protected => "concur",
            Mode::Custom => "custom",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// How hard a target is hammered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    /// Concurrent writer processes.
    pub writers: usize,
    /// Operations per writer per round.
    pub ops: usize,
    /// Rounds, each on a fresh fixture.
    pub rounds: usize,
}

/// What one writer process is told to do (passed as one JSON argument).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriterSpec {
    /// Target name (`custom` for a user's script).
    pub target: String,
    /// Naive, protected or custom.
    pub mode: Mode,
    /// The round's state directory.
    pub dir: PathBuf,
    /// This writer's index, from 0.
    pub writer: usize,
    /// How many writers run in this round.
    pub writers: usize,
    /// Operations to perform.
    pub ops: usize,
    /// The round, from 0.
    pub round: usize,
    /// A target-specific role (`reader`, `hold`, `probe`, ...); empty for a plain writer.
    #[serde(default)]
    pub role: String,
    /// For custom mode: the user's command and its per-run timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomRun>,
    /// On an etcd run: the round's backend URL (a fresh key prefix); the protected writer
    /// coordinates there. `None`: local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

/// A user's command as one writer runs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomRun {
    /// Shell command (`sh -c`).
    pub cmd: String,
    /// Per-run timeout in milliseconds.
    pub timeout_ms: u64,
    /// Give this writer its own `CONCUR_SESSION`.
    pub per_session: bool,
}

/// One thing a writer did, reported as a JSON line on its stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// `op` (one operation), `hold` (a lock/slot held), `fail` (a run failed), or a
    /// target-specific kind.
    pub kind: String,
    /// Start, microseconds since the Unix epoch.
    pub start: u64,
    /// End, microseconds since the Unix epoch.
    pub end: u64,
    /// Target-specific facts (the value read and written, the line appended, ...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

/// A writer's event sink: one JSON line per event on stdout, flushed at once (so the parent can
/// react to an event while the writer still runs).
#[derive(Debug, Default)]
pub struct Events {
    _private: (),
}

impl Events {
    /// A sink writing to this process's stdout.
    pub fn stdout() -> Events {
        Events { _private: () }
    }

    /// Reports an event.
    pub fn emit(&mut self, kind: &str, start: u64, end: u64, data: serde_json::Value) {
        let ev = Event {
            kind: kind.to_owned(),
            start,
            end,
            data,
        };
        let line = serde_json::to_string(&ev).unwrap_or_default();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Reports one operation that ran from `start` until now.
    pub fn op(&mut self, start: u64, data: serde_json::Value) {
        self.emit("op", start, now_us(), data);
    }

    /// Reports a lock or slot held from `start` until now.
    pub fn hold(&mut self, start: u64, data: serde_json::Value) {
        self.emit("hold", start, now_us(), data);
    }
}

/// Microseconds since the Unix epoch: a clock every writer process shares.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// How a writer process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    /// Exit 0.
    Ok,
    /// Non-zero exit or killed by a signal; the text says which (with stderr's last line).
    Failed(String),
    /// Still running at the deadline; killed.
    TimedOut,
    /// Killed on purpose by the target's choreography (not a failure).
    Killed,
}

/// One writer process's run: what it reported and how it ended.
#[derive(Debug, Clone)]
pub struct WriterRun {
    /// The writer index.
    pub writer: usize,
    /// The round.
    pub round: usize,
    /// The role it played.
    pub role: String,
    /// Its pid.
    pub pid: u32,
    /// When the barrier released it (µs since the epoch).
    pub start: u64,
    /// When it was reaped.
    pub end: u64,
    /// What it reported.
    pub events: Vec<Event>,
    /// How it ended.
    pub status: RunStatus,
}

impl WriterRun {
    /// The events of one kind.
    pub fn events_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(move |e| e.kind == kind)
    }
}

/// A point on the timeline where an invariant broke.
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    /// The round.
    pub round: usize,
    /// When (µs since the epoch).
    pub at: u64,
    /// The writer involved, if one is.
    pub writer: Option<usize>,
    /// What happened there.
    pub label: String,
}

/// The verdict of one round's invariant check.
#[derive(Debug, Clone, Default)]
pub struct RoundCheck {
    /// The violation's name (`LAST_WRITER_WINS`, ...), or `None` when the invariant held.
    pub violation: Option<String>,
    /// What was observed, in words (`count 63 of 100: lost 37`).
    pub observed: String,
    /// Where it broke.
    pub marks: Vec<Mark>,
}

impl RoundCheck {
    /// The invariant held; `observed` says what was seen.
    pub fn held(observed: impl Into<String>) -> RoundCheck {
        RoundCheck {
            violation: None,
            observed: observed.into(),
            marks: Vec::new(),
        }
    }

    /// The invariant broke with `violation`.
    pub fn broke(violation: &str, observed: impl Into<String>, marks: Vec<Mark>) -> RoundCheck {
        RoundCheck {
            violation: Some(violation.to_owned()),
            observed: observed.into(),
            marks,
        }
    }
}

/// One pattern the harness can hammer. See the module docs for how to add one.
pub trait Target: Sync {
    /// The name used in `--targets` and the table.
    fn name(&self) -> &'static str;
    /// The violations the naive writer is expected to show, for docs and `--help`.
    fn violations(&self) -> &'static str;
    /// Default sizes.
    fn sizes(&self) -> Sizes;
    /// The invariant, in words, for these sizes (`count == 100`).
    fn expected(&self, sizes: &Sizes) -> String;
    /// Creates the fixture in a fresh round directory; the default creates nothing (the
    /// writers create what they write).
    ///
    /// # Errors
    /// Any I/O error creating it.
    fn setup(&self, _dir: &Path, _mode: Mode, _sizes: &Sizes) -> Result<()> {
        Ok(())
    }
    /// Runs one round; the default starts every writer at once and waits for all.
    ///
    /// # Errors
    /// When the writers cannot be started.
    fn round(&self, r: &Round<'_>) -> Result<Vec<WriterRun>> {
        r.spawn_all()
    }
    /// The writer's side: performs `spec.ops` operations in `spec.mode`, inside a writer process.
    ///
    /// # Errors
    /// Any failure, which the harness reports as the writer failing.
    fn write(&self, spec: &WriterSpec, events: &mut Events) -> Result<()>;
    /// Checks the invariant after a round.
    ///
    /// # Errors
    /// When the state cannot be read at all.
    fn check(&self, dir: &Path, sizes: &Sizes, runs: &[WriterRun]) -> Result<RoundCheck>;
    /// Whether the protected writer can coordinate through an etcd backend
    /// (`concur --backend etcd://… diagnose`); see [`etcd`].
    fn on_etcd(&self) -> bool {
        false
    }
    /// On an etcd run, prepares the round's keys under `url` (the round's fresh key prefix),
    /// after [`Target::setup`].
    ///
    /// # Errors
    /// When etcd cannot be reached.
    fn setup_etcd(&self, _url: &str, _mode: Mode, _sizes: &Sizes) -> Result<()> {
        Ok(())
    }
}
