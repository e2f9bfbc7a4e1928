//! The parent side: start writer processes behind a barrier, collect what they report, enforce
//! the deadline, check each round, and fold the rounds into one [`Outcome`].
//!
//! The barrier is a pipe: every writer gets its read end as stdin, reports `ready` on stdout and
//! reads stdin to EOF before doing anything; the parent keeps the only write end and drops it
//! once every writer has reported `ready`, so all of them, start-up done, wake at once. Writers run in their own process groups, so a writer
//! that hangs past the deadline is killed together with anything it started.

use std::io::{BufRead, BufReader, PipeWriter, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{
    Event, Mark, Mode, RoundCheck, RunStatus, Sizes, Target, WriterRun, WriterSpec, now_us,
};
use crate::error::{Error, Result};
use crate::sys;

/// How writers are started: which binary, with what per-writer deadline.
#[derive(Debug, Clone)]
pub struct Harness {
    /// The `concur` binary to re-invoke as `concur diagnose-writer SPEC`.
    pub exe: PathBuf,
    /// Give each writer its own `CONCUR_SESSION` (`diagnose-w<N>`).
    pub per_session: bool,
    /// How long one writer process may run before it is killed and reported.
    pub timeout: Duration,
    /// On an etcd run: the run's backend URL with its fresh key prefix (round `r` works under
    /// [`super::etcd::round_url`]). `None`: local.
    pub backend: Option<String>,
    /// `--chaos`: every writer runs under a tracer that delays its file-system calls, drawn
    /// from this seed ([`super::chaos`]). `None`: writers run as they are.
    pub chaos: Option<u64>,
}

/// One round of one target: a fresh directory and the writers to start on it.
#[derive(Debug)]
pub struct Round<'a> {
    /// The harness.
    pub harness: &'a Harness,
    /// The target's name.
    pub target: &'a str,
    /// Naive, protected or custom.
    pub mode: Mode,
    /// The round's fresh state directory.
    pub dir: &'a Path,
    /// The sizes in force.
    pub sizes: Sizes,
    /// The round index.
    pub round: usize,
}

impl Round<'_> {
    /// The spec for writer `writer` playing `role` (empty = the plain writer).
    pub fn spec(&self, writer: usize, role: &str) -> WriterSpec {
        WriterSpec {
            target: self.target.to_owned(),
            mode: self.mode,
            dir: self.dir.to_path_buf(),
            writer,
            writers: self.sizes.writers,
            ops: self.sizes.ops,
            round: self.round,
            role: role.to_owned(),
            custom: None,
            backend: self
                .harness
                .backend
                .as_deref()
                .map(|b| super::etcd::round_url(b, self.round)),
        }
    }

    /// Starts every writer at once and waits for all of them.
    ///
    /// # Errors
    /// When a writer cannot be spawned.
    pub fn spawn_all(&self) -> Result<Vec<WriterRun>> {
        let specs = (0..self.sizes.writers).map(|w| self.spec(w, "")).collect();
        self.run_specs(specs)
    }

    /// Starts the given writers at once and waits for all of them.
    ///
    /// # Errors
    /// When a writer cannot be spawned.
    pub fn run_specs(&self, specs: Vec<WriterSpec>) -> Result<Vec<WriterRun>> {
        let mut b = self.start(specs)?;
        b.release();
        Ok(b.wait(self.harness.timeout))
    }

    /// Spawns writers behind the barrier; they run once [`Batch::release`] is called.
    ///
    /// # Errors
    /// When the pipe or a writer cannot be created.
    pub fn start(&self, specs: Vec<WriterSpec>) -> Result<Batch> {
        let (reader, writer) =
            std::io::pipe().map_err(Error::with("cannot create barrier pipe", self.dir))?;
        let mut kids = Vec::with_capacity(specs.len());
        for spec in specs {
            let json = serde_json::to_string(&spec).unwrap_or_default();
            let mut cmd = match self.harness.chaos {
                Some(seed) => super::chaos::wrap(
                    &self.harness.exe,
                    &super::chaos::TraceSpec {
                        seed,
                        round: self.round,
                        writer: spec.writer,
                        dir: self.dir.to_path_buf(),
                    },
                ),
                None => Command::new(&self.harness.exe),
            };
            cmd.arg("diagnose-writer")
                .arg(json)
                .stdin(Stdio::from(
                    reader
                        .try_clone()
                        .map_err(Error::with("cannot share barrier pipe", self.dir))?,
                ))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            if self.harness.per_session {
                cmd.env("CONCUR_SESSION", format!("diagnose-w{}", spec.writer));
            }
            let mut child = cmd
                .spawn()
                .map_err(Error::with("cannot start writer", &self.harness.exe))?;
            let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
            kids.push(Kid {
                spec,
                child,
                stdout,
                events: Vec::new(),
                status: None,
            });
        }
        drop(reader);
        Ok(Batch {
            barrier: Some(writer),
            kids,
            released_at: 0,
        })
    }
}

struct Kid {
    spec: WriterSpec,
    child: Child,
    stdout: BufReader<ChildStdout>,
    events: Vec<Event>,
    status: Option<RunStatus>,
}

/// Writers spawned behind a barrier.
pub struct Batch {
    barrier: Option<PipeWriter>,
    kids: Vec<Kid>,
    released_at: u64,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("writers", &self.kids.len())
            .finish_non_exhaustive()
    }
}

impl Batch {
    /// Waits until every writer has reported `ready` (it is blocked on the barrier, its start-up
    /// done), then lets them all run by closing the barrier pipe's only write end. A writer that
    /// dies before it is ready does not hold the others back; it is reported when waited for.
    pub fn release(&mut self) {
        for i in 0..self.kids.len() {
            while let Some(ev) = self.next_event(i) {
                if ev.kind == "ready" {
                    break;
                }
            }
        }
        self.released_at = now_us();
        self.barrier.take();
    }

    /// Blocks until writer `i` reports its next event (a `call` of the chaos tracer is kept
    /// but not returned); `None` when it ended without one.
    pub fn next_event(&mut self, i: usize) -> Option<Event> {
        let kid = &mut self.kids[i];
        let mut line = String::new();
        loop {
            line.clear();
            if kid.stdout.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if let Ok(ev) = serde_json::from_str::<Event>(line.trim_end()) {
                kid.events.push(ev.clone());
                // The chaos tracer's reports are not the writer's choreography.
                if ev.kind != "call" {
                    return Some(ev);
                }
            }
        }
    }

    /// Kills writer `i` (and its process group) with SIGKILL on purpose, and reaps it.
    pub fn kill(&mut self, i: usize) {
        let kid = &mut self.kids[i];
        let _ = sys::supervise::kill_group(kid.child.id(), libc::SIGKILL);
        let _ = kid.child.wait();
        kid.status = Some(RunStatus::Killed);
    }

    /// The pid of writer `i`.
    pub fn pid(&self, i: usize) -> u32 {
        self.kids[i].child.id()
    }

    /// Waits for every writer, killing those still running after `timeout` (reported as
    /// [`RunStatus::TimedOut`]).
    pub fn wait(mut self, timeout: Duration) -> Vec<WriterRun> {
        self.barrier.take();
        let deadline = Instant::now() + timeout;
        let (tx, rx) = mpsc::channel();
        let mut pids = Vec::new();
        let n = self.kids.len();
        for (i, mut kid) in self.kids.drain(..).enumerate() {
            pids.push(kid.child.id());
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut err = kid.child.stderr.take();
                let err_thread = std::thread::spawn(move || {
                    let mut s = String::new();
                    if let Some(e) = err.as_mut() {
                        let _ = e.read_to_string(&mut s);
                    }
                    s
                });
                let mut line = String::new();
                while kid.stdout.read_line(&mut line).is_ok_and(|k| k > 0) {
                    if let Ok(ev) = serde_json::from_str::<Event>(line.trim_end()) {
                        kid.events.push(ev);
                    }
                    line.clear();
                }
                let status = kid.child.wait();
                let stderr = err_thread.join().unwrap_or_default();
                let end = now_us();
                let status = match (kid.status.take(), status) {
                    (Some(s), _) => s,
                    (None, Ok(st)) if st.success() => RunStatus::Ok,
                    (None, Ok(st)) => RunStatus::Failed(describe_exit(st, &stderr)),
                    (None, Err(e)) => RunStatus::Failed(format!("cannot wait: {e}")),
                };
                let _ = tx.send((i, kid.spec, kid.events, status, end));
            });
        }
        drop(tx);
        let mut done: Vec<Option<WriterRun>> = vec![None; n];
        let mut timed_out = vec![false; n];
        let mut remaining = n;
        while remaining > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((i, spec, events, status, end)) => {
                    remaining -= 1;
                    let status = if timed_out[i] {
                        RunStatus::TimedOut
                    } else {
                        status
                    };
                    done[i] = Some(WriterRun {
                        writer: spec.writer,
                        round: spec.round,
                        role: spec.role,
                        pid: pids[i],
                        start: self.released_at,
                        end,
                        events,
                        status,
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    for (i, pid) in pids.iter().enumerate() {
                        if done[i].is_none() && !timed_out[i] {
                            timed_out[i] = true;
                            let _ = sys::supervise::kill_group(*pid, libc::SIGKILL);
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        done.into_iter().flatten().collect()
    }
}

/// "exited 2: <last stderr line>" or "killed by signal 9".
pub(crate) fn describe_exit(st: std::process::ExitStatus, stderr: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match (st.code(), st.signal()) {
        (Some(c), _) => format!("exited {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "ended abnormally".to_owned(),
    };
    match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(last) => format!("{how}: {}", last.trim()),
        None => how,
    }
}

/// Everything that happened in one round, for the timeline.
#[derive(Debug, Clone)]
pub struct RoundTrace {
    /// The round index.
    pub round: usize,
    /// When it started (µs since the epoch).
    pub start: u64,
    /// When its last writer was reaped.
    pub end: u64,
    /// The writers' runs.
    pub runs: Vec<WriterRun>,
    /// Where an invariant broke.
    pub marks: Vec<Mark>,
}

impl RoundTrace {
    /// A round's trace. The picture starts when the first writer was released, not when
    /// spawning began (`spawned`, used only when no writer reported a start).
    pub(crate) fn new(
        round: usize,
        spawned: u64,
        end: u64,
        runs: Vec<WriterRun>,
        marks: Vec<Mark>,
    ) -> RoundTrace {
        let start = runs
            .iter()
            .map(|r| r.start)
            .filter(|&t| t > 0)
            .min()
            .unwrap_or(spawned);
        RoundTrace {
            round,
            start,
            end,
            runs,
            marks,
        }
    }
}

/// The result of hammering one target in one mode (or one custom check).
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Target name (or the check, for custom runs).
    pub target: String,
    /// `naive`, `concur` or `custom`.
    pub mode: String,
    /// Concurrent writers.
    pub writers: usize,
    /// Operations per writer per round.
    pub ops: usize,
    /// Rounds.
    pub rounds: usize,
    /// The invariant, in words.
    pub expected: String,
    /// What was observed.
    pub observed: String,
    /// `SAFE`, `NOT REPRODUCED`, `ERROR` or a violation name.
    pub verdict: String,
    /// Wall time.
    pub seconds: f64,
    /// Whether this row is what it should be: protected/custom SAFE, naive caught.
    #[serde(skip)]
    pub pass: bool,
    /// Per-round traces for the HTML report.
    #[serde(skip)]
    pub trace: Vec<RoundTrace>,
    /// Under `--chaos`, when a round broke: the seed and the schedule that broke it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chaos: Option<super::chaos::Broke>,
}

/// The verdict shown for a naive target the harness did not catch.
pub const NOT_REPRODUCED: &str = "NOT REPRODUCED";
/// The verdict of an invariant that held.
pub const SAFE: &str = "SAFE";
/// The verdict when a writer failed or hung: nothing can be concluded.
pub const ERROR: &str = "ERROR";

/// A round check for writers that failed or timed out, if any did.
pub(crate) fn failed_writers(runs: &[WriterRun]) -> Option<RoundCheck> {
    let bad: Vec<String> = runs
        .iter()
        .filter_map(|r| match &r.status {
            RunStatus::Failed(why) => Some(format!("writer {} {why}", r.writer)),
            RunStatus::TimedOut => Some(format!("writer {} timed out (killed)", r.writer)),
            RunStatus::Ok | RunStatus::Killed => None,
        })
        .collect();
    if bad.is_empty() {
        return None;
    }
    let marks = runs
        .iter()
        .filter(|r| matches!(r.status, RunStatus::Failed(_) | RunStatus::TimedOut))
        .map(|r| Mark {
            round: r.round,
            at: r.end,
            writer: Some(r.writer),
            label: "writer failed".into(),
        })
        .collect();
    Some(RoundCheck::broke(ERROR, bad.join("; "), marks))
}

/// Folds per-round checks into a verdict and an observed text.
///
/// Every distinct violation is named (the semaphore shows `OVER_ADMISSION, STALE_SLOT`), each
/// with the first round it was seen in; `ERROR` (a writer failed) comes first, since nothing
/// else can be concluded from a round where a writer did not do its work.
pub(crate) fn fold(mode: Mode, rounds: usize, checks: &[RoundCheck]) -> (String, String, bool) {
    let mut bad: Vec<(String, usize, &RoundCheck, usize)> = Vec::new();
    for (r, c) in checks.iter().enumerate() {
        let Some(v) = &c.violation else { continue };
        match bad.iter_mut().find(|(name, ..)| name == v) {
            Some(entry) => entry.3 += 1,
            None => bad.push((v.clone(), r, c, 1)),
        }
    }
    bad.sort_by_key(|(name, r, ..)| (name != ERROR, *r));
    if bad.is_empty() {
        let last = checks
            .last()
            .map(|c| c.observed.clone())
            .unwrap_or_default();
        let observed = if rounds > 1 {
            format!("{last} (all {rounds} rounds)")
        } else {
            last
        };
        return if mode == Mode::Naive {
            (NOT_REPRODUCED.into(), observed, false)
        } else {
            (SAFE.into(), observed, true)
        };
    }
    let verdict = bad
        .iter()
        .map(|(name, ..)| name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let observed = bad
        .iter()
        .map(|(_, r, c, k)| {
            if rounds > 1 {
                format!("{} (round {r}; {k} of {rounds} rounds)", c.observed)
            } else {
                c.observed.clone()
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    let pass = mode == Mode::Naive && bad[0].0 != ERROR;
    (verdict, observed, pass)
}

/// Runs one target in one mode: every round on a fresh fixture, then the verdict.
///
/// # Errors
/// When a fixture cannot be created or writers cannot be started (a writer that fails or hangs
/// is not an error: it is reported in the outcome).
pub fn run_target(h: &Harness, t: &dyn Target, mode: Mode, sizes: Sizes) -> Result<Outcome> {
    let began = Instant::now();
    let root = scratch_dir()?;
    let mut checks = Vec::new();
    let mut trace = Vec::new();
    let mut broke = None;
    for round in 0..sizes.rounds {
        let dir = root.path().join(format!("round-{round}"));
        sys::fs::mkdir(&dir, 0o700).map_err(Error::with("cannot create round directory", &dir))?;
        t.setup(&dir, mode, &sizes)?;
        if let Some(b) = &h.backend {
            t.setup_etcd(&super::etcd::round_url(b, round), mode, &sizes)?;
        }
        let r = Round {
            harness: h,
            target: t.name(),
            mode,
            dir: &dir,
            sizes,
            round,
        };
        let start = now_us();
        let runs = t.round(&r)?;
        let check = match failed_writers(&runs) {
            Some(c) => c,
            None => t.check(&dir, &sizes, &runs)?,
        };
        let marks = check.marks.clone();
        if let (Some(seed), Some(v), None) = (h.chaos, &check.violation, &broke)
            && v != ERROR
        {
            broke = Some(super::chaos::schedule(seed, round, &runs, &marks));
        }
        trace.push(RoundTrace::new(round, start, now_us(), runs, marks));
        checks.push(check);
    }
    let (verdict, observed, pass) = fold(mode, sizes.rounds, &checks);
    Ok(Outcome {
        target: t.name().to_owned(),
        mode: mode.label().to_owned(),
        writers: sizes.writers,
        ops: sizes.ops,
        rounds: sizes.rounds,
        expected: t.expected(&sizes),
        observed,
        verdict,
        seconds: began.elapsed().as_secs_f64(),
        pass,
        trace,
        chaos: broke,
    })
}

/// A private scratch directory (0700, unpredictable name under `$TMPDIR`), removed on drop.
pub(crate) fn scratch_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("concur-diagnose.")
        .tempdir()
        .map_err(Error::with(
            "cannot create scratch directory",
            &std::env::temp_dir(),
        ))
}

/// Overrides of the targets' default sizes (`--writers`, `--ops`, `--rounds`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// Concurrent writers.
    pub writers: Option<usize>,
    /// Operations per writer per round.
    pub ops: Option<usize>,
    /// Rounds.
    pub rounds: Option<usize>,
}

impl Overrides {
    /// `base` with these overrides applied.
    pub fn apply(&self, base: Sizes) -> Sizes {
        Sizes {
            writers: self.writers.unwrap_or(base.writers),
            ops: self.ops.unwrap_or(base.ops),
            rounds: self.rounds.unwrap_or(base.rounds),
        }
    }
}

/// Runs every target in every mode, in order, calling `progress` before each.
///
/// # Errors
/// As [`run_target`].
pub fn run_suite(
    h: &Harness,
    targets: &[&dyn Target],
    modes: &[Mode],
    sizes: Overrides,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<Vec<Outcome>> {
    let total = targets.len() * modes.len();
    let mut out = Vec::with_capacity(total);
    for t in targets {
        for &m in modes {
            progress(out.len(), total, &format!("{} {}", t.name(), m.label()));
            out.push(run_target(h, *t, m, sizes.apply(t.sizes()))?);
        }
    }
    progress(total, total, "done");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broke(v: &str, obs: &str) -> RoundCheck {
        RoundCheck::broke(v, obs, Vec::new())
    }

    #[test]
    fn a_clean_naive_run_is_not_reproduced_and_a_clean_protected_one_is_safe() {
        let checks = [RoundCheck::held("count 100")];
        assert_eq!(fold(Mode::Naive, 1, &checks).0, NOT_REPRODUCED);
        assert!(!fold(Mode::Naive, 1, &checks).2);
        let (v, obs, pass) = fold(Mode::Protected, 1, &checks);
        assert_eq!((v.as_str(), obs.as_str(), pass), (SAFE, "count 100", true));
    }

    #[test]
    fn distinct_violations_are_all_named_with_their_first_round() {
        let checks = [
            RoundCheck::held("ok"),
            broke("OVER_ADMISSION", "3 holders"),
            broke("STALE_SLOT", "slot taken"),
            broke("OVER_ADMISSION", "4 holders"),
        ];
        let (v, obs, pass) = fold(Mode::Naive, 4, &checks);
        assert_eq!(v, "OVER_ADMISSION, STALE_SLOT");
        assert_eq!(
            obs,
            "3 holders (round 1; 2 of 4 rounds); slot taken (round 2; 1 of 4 rounds)"
        );
        assert!(pass);
        assert!(!fold(Mode::Protected, 4, &checks).2);
    }

    #[test]
    fn a_failed_writer_comes_first_and_never_counts_as_caught() {
        let checks = [
            broke("TORN_LINES", "3 torn"),
            broke(ERROR, "writer 1 exited 1"),
        ];
        let (v, _, pass) = fold(Mode::Naive, 2, &checks);
        assert_eq!(v, "ERROR, TORN_LINES");
        assert!(!pass);
    }
}
