//! Users' own scripts as writers: `concur diagnose --cmd 'CMD' --check KIND:ARGS ...`.
//!
//! W writer processes start together on the barrier; each runs `sh -c CMD` N times (`--ops`,
//! one shared state directory) or once per round on a fresh one (`--rounds`, for first-writer
//! races). Every run gets `CONCUR_STATE_DIR` (also the cwd of `--setup` and the checks),
//! `CONCUR_WRITER`, `CONCUR_ROUND`, `CONCUR_RUN` and, with `--per-session`, its writer's own
//! `CONCUR_SESSION`. A run that exits non-zero or outlives `--timeout` (its process group is
//! killed) is reported as such and fails the result; it is never counted as a run that worked.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::checks::Check;
use super::run::{ERROR, Outcome, RoundTrace, SAFE, describe_exit, failed_writers, scratch_dir};
use super::{CustomRun, Events, Harness, Mark, Mode, Round, Sizes, WriterSpec, now_us};
use crate::error::{Error, Result};
use crate::sys;

/// A custom diagnose run, as the CLI parsed it.
#[derive(Debug, Clone)]
pub struct Options {
    /// The writer command (`sh -c`).
    pub cmd: String,
    /// The checks (including `--check-cmd`).
    pub checks: Vec<Check>,
    /// Run in each fresh state directory before the writers.
    pub setup: Option<String>,
    /// Concurrent writers.
    pub writers: usize,
    /// Runs per writer per round.
    pub ops: usize,
    /// Rounds (fresh state each).
    pub rounds: usize,
    /// Per-run timeout.
    pub timeout: Duration,
}

/// What the checks and the runs showed over all rounds.
#[derive(Default)]
struct Tally {
    /// Failed or timed-out runs, described.
    failures: Vec<String>,
    /// Per check: the first failing round, its observation and violation name.
    first_bad: Vec<Option<(usize, String, &'static str)>>,
    /// Per check: in how many rounds it failed.
    bad_rounds: Vec<usize>,
    /// Per check: the last observation.
    last: Vec<String>,
    /// Under `--chaos`: the first round a check broke in, and its schedule.
    broke: Option<super::chaos::Broke>,
}

/// Runs the user's script and checks; one [`Outcome`] for the runs themselves (first) and one
/// per check.
///
/// # Errors
/// When a state directory cannot be created, `--setup` fails, or writers cannot be started.
pub fn run(h: &Harness, o: &Options) -> Result<Vec<Outcome>> {
    let began = Instant::now();
    let root = scratch_dir()?;
    let sizes = Sizes {
        writers: o.writers,
        ops: o.ops,
        rounds: o.rounds,
    };
    let runs_per_round = o.writers * o.ops;
    // Each writer process may take up to ops × timeout; give it that plus slack.
    let op_count = u32::try_from(o.ops).unwrap_or(u32::MAX);
    let harness = Harness {
        timeout: o.timeout.saturating_mul(op_count) + Duration::from_secs(5),
        ..h.clone()
    };
    let n = o.checks.len();
    let mut tally = Tally {
        first_bad: vec![None; n],
        bad_rounds: vec![0; n],
        last: vec![String::new(); n],
        ..Tally::default()
    };
    let mut trace = Vec::new();
    for round in 0..o.rounds {
        let dir = root.path().join(format!("round-{round}"));
        sys::fs::mkdir(&dir, 0o700).map_err(Error::with("cannot create state directory", &dir))?;
        setup(o, &dir, round)?;
        let r = Round {
            harness: &harness,
            target: "custom",
            mode: Mode::Custom,
            dir: &dir,
            sizes,
            round,
        };
        let specs: Vec<WriterSpec> = (0..o.writers)
            .map(|w| WriterSpec {
                custom: Some(CustomRun {
                    cmd: o.cmd.clone(),
                    timeout_ms: u64::try_from(o.timeout.as_millis()).unwrap_or(u64::MAX),
                    per_session: h.per_session,
                }),
                ..r.spec(w, "")
            })
            .collect();
        let start = now_us();
        let runs = r.run_specs(specs)?;
        let end = now_us();
        let mut marks = collect_failures(&runs, round, &mut tally.failures);
        for (i, c) in o.checks.iter().enumerate() {
            let ev = c.eval(&dir, runs_per_round)?;
            if let Some(name) = ev.violation {
                tally.bad_rounds[i] += 1;
                marks.push(Mark {
                    round,
                    at: end,
                    writer: None,
                    label: format!("{} broke: {}", c.spec, ev.observed),
                });
                if tally.first_bad[i].is_none() {
                    tally.first_bad[i] = Some((round, ev.observed.clone(), name));
                }
            }
            tally.last[i] = ev.observed;
        }
        if let Some(seed) = h.chaos
            && tally.broke.is_none()
            && tally.first_bad.iter().flatten().any(|(r, ..)| *r == round)
        {
            tally.broke = Some(super::chaos::schedule(seed, round, &runs, &marks));
        }
        trace.push(RoundTrace::new(round, start, end, runs, marks));
    }
    Ok(rows(o, &tally, trace, began.elapsed().as_secs_f64()))
}

/// Runs `--setup` in a fresh state directory.
fn setup(o: &Options, dir: &std::path::Path, round: usize) -> Result<()> {
    let Some(setup) = &o.setup else {
        return Ok(());
    };
    let out = Command::new("sh")
        .arg("-c")
        .arg(setup)
        .current_dir(dir)
        .env("CONCUR_STATE_DIR", dir)
        .env("CONCUR_ROUND", round.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(Error::with("cannot run --setup in", dir))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Precondition(format!(
        "--setup failed in round {round}: {}",
        describe_exit(out.status, &String::from_utf8_lossy(&out.stderr))
    )))
}

/// Describes every failed or timed-out run of a round into `failures`; returns their marks.
fn collect_failures(
    runs: &[super::WriterRun],
    round: usize,
    failures: &mut Vec<String>,
) -> Vec<Mark> {
    let mut marks = Vec::new();
    if let Some(c) = failed_writers(runs) {
        failures.push(format!("round {round}: {}", c.observed));
        marks.extend(c.marks);
    }
    for w in runs {
        for e in w.events_of("fail") {
            failures.push(format!(
                "writer {} run {} (round {round}) {}",
                w.writer,
                e.data["run"],
                e.data["why"].as_str().unwrap_or("failed")
            ));
            marks.push(Mark {
                round,
                at: e.end,
                writer: Some(w.writer),
                label: format!("run {} failed", e.data["run"]),
            });
        }
    }
    marks
}

/// The result rows: the runs themselves, then one per check.
fn rows(o: &Options, tally: &Tally, trace: Vec<RoundTrace>, seconds: f64) -> Vec<Outcome> {
    let runs_per_round = o.writers * o.ops;
    let total_runs = runs_per_round * o.rounds;
    let row = |target: String, expected: String, observed: String, verdict: &str| Outcome {
        target,
        mode: Mode::Custom.label().to_owned(),
        writers: o.writers,
        ops: o.ops,
        rounds: o.rounds,
        expected,
        observed,
        pass: verdict == SAFE,
        verdict: verdict.to_owned(),
        seconds,
        trace: Vec::new(),
        chaos: None,
    };
    let (expected, all) = if total_runs == 1 {
        ("1 run exits 0".to_owned(), "it exited 0".to_owned())
    } else {
        (
            format!("{total_runs} runs exit 0"),
            format!("all {total_runs} exited 0"),
        )
    };
    let runs_row = match tally.failures.first() {
        None => row("runs".into(), expected, all, SAFE),
        Some(first) => {
            let more = match tally.failures.len() {
                1 => String::new(),
                k => format!(" (+{} more)", k - 1),
            };
            let observed = format!("{} failed: {first}{more}", tally.failures.len());
            row("runs".into(), expected, observed, ERROR)
        }
    };
    let mut out = vec![Outcome { trace, ..runs_row }];
    for (i, c) in o.checks.iter().enumerate() {
        let expected = c.expected(runs_per_round);
        out.push(match &tally.first_bad[i] {
            None if o.rounds > 1 => row(
                c.spec.clone(),
                expected,
                format!("{} (all {} rounds)", tally.last[i], o.rounds),
                SAFE,
            ),
            None => row(c.spec.clone(), expected, tally.last[i].clone(), SAFE),
            Some((round, obs, name)) => {
                let k = tally.bad_rounds[i];
                let chaos = tally.broke.clone().filter(|b| b.round == *round);
                let observed = if o.rounds > 1 {
                    format!("{obs} (round {round}; {k} of {} rounds)", o.rounds)
                } else {
                    format!("{obs} (round {round})")
                };
                Outcome {
                    chaos,
                    ..row(c.spec.clone(), expected, observed, name)
                }
            }
        });
    }
    out
}

/// The writer side of a custom run: the user's command `spec.ops` times, each under the timeout.
///
/// # Errors
/// Only when the command cannot be started at all.
pub fn write(spec: &WriterSpec, run: &CustomRun, ev: &mut Events) -> Result<()> {
    for k in 0..spec.ops {
        let t = now_us();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&run.cmd)
            .env("CONCUR_STATE_DIR", &spec.dir)
            .env("CONCUR_WRITER", spec.writer.to_string())
            .env("CONCUR_ROUND", spec.round.to_string())
            .env("CONCUR_RUN", k.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if run.per_session {
            cmd.env("CONCUR_SESSION", format!("diagnose-w{}", spec.writer));
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .spawn()
            .map_err(Error::with("cannot run", std::path::Path::new("sh")))?;
        let pid = child.id();
        let mut stderr = child.stderr.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(e) = stderr.as_mut() {
                let _ = e.read_to_string(&mut s);
            }
            let _ = tx.send((child.wait(), s));
        });
        let timeout = Duration::from_millis(run.timeout_ms);
        let (result, timed_out) = if let Ok(r) = rx.recv_timeout(timeout) {
            (r, false)
        } else {
            let _ = sys::supervise::kill_group(pid, libc::SIGKILL);
            let r = rx
                .recv()
                .unwrap_or((Err(std::io::Error::other("lost")), String::new()));
            (r, true)
        };
        let why = match (&result.0, timed_out) {
            (_, true) => Some(format!(
                "timed out after {} s (killed)",
                timeout.as_secs_f64()
            )),
            (Ok(st), false) if st.success() => None,
            (Ok(st), false) => Some(describe_exit(*st, &result.1)),
            (Err(e), false) => Some(format!("cannot wait: {e}")),
        };
        ev.op(t, json!({ "run": k, "ok": why.is_none() }));
        if let Some(why) = why {
            ev.emit("fail", t, now_us(), json!({ "run": k, "why": why }));
        }
    }
    Ok(())
}
