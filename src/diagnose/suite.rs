//! A whole `concur diagnose` run: which targets (or which user script) to run, on which backend,
//! and the summary the table, `--json` and the HTML report are rendered from.
//!
//! The pieces ([`super::run::run_suite`], [`super::custom::run`], [`super::etcd::Run`]) each run
//! one part; this module chooses among them from a [`Request`] and renders the result. A request
//! the caller must change (an unknown target, a local-only target on etcd, `--cmd` without a
//! check) is a [`SuiteError::Request`], distinct from a run that failed.

use std::fmt::Write as _;
use std::time::Duration;

use super::checks::Check;
use super::run::{Overrides, run_suite};
use super::{Harness, Mode, Outcome, Target, chaos, custom, html, report, targets};
use crate::error::Error;

/// What a skipped target's line says.
const SKIPPED: &str = "local-only target, skipped on etcd";

/// Why a run did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The request itself is wrong (an unknown or local-only target, options that do not go
    /// together): change it and run again.
    #[error("{0}")]
    Request(String),
    /// The run failed (a fixture, a writer, the cluster).
    #[error(transparent)]
    Failed(#[from] Error),
}

/// What a user's own script (`--cmd`) is checked with, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// The writer command (`sh -c`).
    pub cmd: String,
    /// `KIND:ARGS` invariants ([`Check::parse`]).
    pub checks: Vec<String>,
    /// Invariants as commands (exit 0 = holds).
    pub check_cmds: Vec<String>,
    /// Run in each fresh state directory before the writers.
    pub setup: Option<String>,
}

/// One diagnose run, as asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Built-in targets by name or alias (empty: all of the backend's).
    pub targets: Vec<String>,
    /// The modes to run the built-in targets in.
    pub modes: Vec<Mode>,
    /// Sizes given explicitly.
    pub sizes: Overrides,
    /// A user's script instead of the built-in targets.
    pub script: Option<Script>,
    /// An etcd URL to run the built-in targets' concur writers on (`None`: local files).
    pub backend: Option<String>,
}

/// An etcd run's key prefix and how many keys were removed afterwards (`None`: cleanup failed).
#[derive(Debug, Clone)]
pub struct EtcdRun {
    /// The run's fresh key prefix.
    pub prefix: String,
    /// Keys removed after the run; `None` when the cluster stopped answering.
    pub removed: Option<usize>,
}

/// What a run showed, and where it ran.
#[derive(Debug, Clone)]
pub struct Summary {
    /// `local`, or the etcd URL as given.
    pub backend: String,
    /// On etcd: the run's key prefix and its cleanup.
    pub etcd: Option<EtcdRun>,
    /// Targets not run on this backend.
    pub skipped: Vec<&'static str>,
    /// The results, in the order they ran.
    pub outcomes: Vec<Outcome>,
    /// Under chaos: the seed of the delays.
    pub chaos: Option<u64>,
    /// Built-in targets (`false`: a user's script).
    pub suite: bool,
}

/// Where a run reports as it goes: progress before each part, warnings (a failed cleanup).
pub struct Progress<'a> {
    /// Called with (done, total, what is next).
    pub step: &'a mut dyn FnMut(usize, usize, &str),
    /// Called with a one-line warning.
    pub warn: &'a mut dyn FnMut(&str),
}

/// Runs `req` with `harness`: the user's script, the built-in targets on etcd, or the local
/// suite.
///
/// # Errors
/// [`SuiteError::Request`] for a request to change; [`SuiteError::Failed`] when the run failed
/// (an unreachable cluster, a fixture or writers that could not be started).
pub fn run(
    req: &Request,
    harness: &mut Harness,
    progress: &mut Progress<'_>,
) -> Result<Summary, SuiteError> {
    let mut summary = Summary {
        backend: "local".into(),
        etcd: None,
        skipped: Vec::new(),
        outcomes: Vec::new(),
        chaos: harness.chaos,
        suite: req.script.is_none(),
    };
    if let Some(script) = &req.script {
        if req.backend.is_some() {
            return Err(SuiteError::Request(
                "--backend runs the built-in targets on etcd; for --cmd, set CONCUR_BACKEND for \
                 your script instead"
                    .into(),
            ));
        }
        summary.outcomes = run_script(req, script, harness, progress)?;
    } else if let Some(url) = &req.backend {
        let chosen = etcd_targets(&req.targets)?;
        // An explicit local-only target was refused above; by default they are skipped.
        summary.skipped = targets::all()
            .iter()
            .filter(|t| req.targets.is_empty() && !t.on_etcd())
            .map(|t| t.name())
            .collect();
        on_etcd(req, url, &chosen, harness, &mut summary, progress)?;
    } else {
        let chosen = local_targets(&req.targets)?;
        summary.outcomes = run_suite(harness, &chosen, &req.modes, req.sizes, progress.step)?;
    }
    Ok(summary)
}

/// The built-in targets called `names` (all when empty).
fn local_targets(names: &[String]) -> Result<Vec<&'static dyn Target>, SuiteError> {
    if names.is_empty() {
        return Ok(targets::all());
    }
    names
        .iter()
        .map(|n| {
            targets::find(n).ok_or_else(|| {
                let names: Vec<_> = targets::all().iter().map(|t| t.name()).collect();
                SuiteError::Request(format!(
                    "unknown target {n:?} (known: {})",
                    names.join(", ")
                ))
            })
        })
        .collect()
}

/// The targets of an etcd run: the etcd ones by default; an explicit local-only one is refused.
/// `lock` and `slot` name json-counter and semaphore.
fn etcd_targets(names: &[String]) -> Result<Vec<&'static dyn Target>, SuiteError> {
    let etcd_names = || {
        targets::all()
            .iter()
            .filter(|t| t.on_etcd())
            .map(|t| match t.name() {
                "json-counter" => "json-counter (lock)",
                "semaphore" => "semaphore (slot)",
                n => n,
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if names.is_empty() {
        return Ok(targets::all().into_iter().filter(|t| t.on_etcd()).collect());
    }
    names
        .iter()
        .map(|n| {
            let t = targets::find(super::etcd::resolve(n)).ok_or_else(|| {
                SuiteError::Request(format!("unknown target {n:?} (on etcd: {})", etcd_names()))
            })?;
            if t.on_etcd() {
                Ok(t)
            } else {
                Err(SuiteError::Request(format!(
                    "target {n} is local-only (it works on local files) and cannot run on etcd; \
                     etcd targets: {}",
                    etcd_names()
                )))
            }
        })
        .collect()
}

/// Runs `chosen` with their concur writers on the etcd cluster at `url`, under a fresh key
/// prefix that is removed afterwards (also when the run fails).
#[cfg(feature = "etcd")]
fn on_etcd(
    req: &Request,
    url: &str,
    chosen: &[&dyn Target],
    harness: &mut Harness,
    summary: &mut Summary,
    progress: &mut Progress<'_>,
) -> Result<(), SuiteError> {
    let run = super::etcd::Run::start(url)?;
    harness.backend = Some(run.url().to_owned());
    url.clone_into(&mut summary.backend);
    let out = run_suite(harness, chosen, &req.modes, req.sizes, progress.step);
    let removed = run.cleanup();
    if let Err(e) = &removed {
        (progress.warn)(&format!(
            "could not remove the run's keys under {}: {e}",
            run.prefix()
        ));
    }
    summary.etcd = Some(EtcdRun {
        prefix: run.prefix().to_owned(),
        removed: removed.ok(),
    });
    summary.outcomes = out?;
    Ok(())
}

/// This build has no etcd support.
#[cfg(not(feature = "etcd"))]
fn on_etcd(
    _req: &Request,
    url: &str,
    _chosen: &[&dyn Target],
    _harness: &mut Harness,
    _summary: &mut Summary,
    _progress: &mut Progress<'_>,
) -> Result<(), SuiteError> {
    Err(Error::Invalid(format!(
        "backend {url}: this concur was built without the etcd feature"
    ))
    .into())
}

/// Runs a user's script with its checks (one shared state per round).
fn run_script(
    req: &Request,
    script: &Script,
    harness: &Harness,
    progress: &mut Progress<'_>,
) -> Result<Vec<Outcome>, SuiteError> {
    let Overrides {
        writers,
        ops,
        rounds,
    } = req.sizes;
    if ops.is_some() && rounds.is_some() {
        return Err(SuiteError::Request(
            "--ops and --rounds cannot be used together with --cmd".into(),
        ));
    }
    let mut checks = script
        .checks
        .iter()
        .map(|c| Check::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    checks.extend(script.check_cmds.iter().map(|c| Check::command(c)));
    if checks.is_empty() {
        return Err(SuiteError::Request(
            "--cmd needs at least one --check or --check-cmd".into(),
        ));
    }
    let (ops, rounds) = match (ops, rounds) {
        (_, Some(r)) => (1, r),
        (Some(n), None) => (n, 1),
        (None, None) => (10, 1),
    };
    let opts = custom::Options {
        cmd: script.cmd.clone(),
        checks,
        setup: script.setup.clone(),
        writers: writers.unwrap_or(4),
        ops,
        rounds,
        timeout: harness.timeout,
    };
    (progress.step)(0, 1, "custom");
    let out = custom::run(harness, &opts)?;
    (progress.step)(1, 1, "done");
    Ok(out)
}

impl Summary {
    /// Whether the run failed: anything of concur's or of the user's that is not SAFE. A naive
    /// target that is not caught is shown (NOT REPRODUCED) but does not fail the run.
    pub fn failed(&self) -> bool {
        self.outcomes.iter().any(|o| o.mode != "naive" && !o.pass)
    }

    /// The `--json` document (without the `ok` field).
    pub fn to_json(&self) -> serde_json::Value {
        let mut doc = serde_json::json!({ "backend": self.backend });
        if let Some(seed) = self.chaos {
            doc["chaos"] = serde_json::json!({ "seed": seed });
        }
        if let Some(e) = &self.etcd {
            doc["etcd_prefix"] = e.prefix.clone().into();
            doc["keys_removed"] = e.removed.into();
        }
        if self.suite {
            doc["skipped"] = self
                .skipped
                .iter()
                .map(|t| serde_json::json!({ "target": t, "reason": SKIPPED }))
                .collect();
        }
        doc["results"] = report::json(&self.outcomes)["results"].take();
        doc
    }

    /// The text report: the backend line on etcd, the table (fitted to `width` columns when
    /// given), the skipped targets, and under chaos the seed and each broken round's schedule.
    pub fn text(&self, width: Option<usize>) -> String {
        let mut out = String::new();
        if let Some(e) = &self.etcd {
            let removed = e.removed.map_or_else(
                || "not removed: the cluster stopped answering".to_string(),
                |n| format!("{n} keys removed"),
            );
            let _ = writeln!(
                out,
                "backend: {} (key prefix {}, {removed})",
                self.backend, e.prefix
            );
        }
        out.push_str(&report::table_fitted(&self.outcomes, width));
        // Aligned with the table's first column.
        let w = self
            .outcomes
            .iter()
            .map(|o| o.target.len())
            .chain(self.skipped.iter().map(|t| t.len()))
            .chain([report::HEADINGS[0].len()])
            .max()
            .unwrap_or(0);
        for t in &self.skipped {
            let _ = writeln!(out, "{t:<w$}  {SKIPPED}");
        }
        if let Some(seed) = self.chaos {
            let _ = writeln!(
                out,
                "chaos: seed {seed} (replay the same delays with --chaos --seed {seed})"
            );
            for o in &self.outcomes {
                let Some(b) = &o.chaos else { continue };
                let _ = writeln!(
                    out,
                    "\n{} {} broke in round {} ({}); the calls on its files, in order:",
                    o.target, o.mode, b.round, o.verdict
                );
                out.push_str(&chaos::render(b));
            }
        }
        out
    }

    /// The self-contained HTML report (one lane per writer), naming the backend.
    pub fn html(&self) -> String {
        let backend = match &self.etcd {
            Some(e) => format!("{} (key prefix {})", self.backend, e.prefix),
            None if self.backend == "local" => "local files".to_owned(),
            None => self.backend.clone(),
        };
        html::page_on(&self.outcomes, &backend, &self.skipped)
    }
}

/// One frame of the terminal progress bar: `[####    ] done/total what`, drawn over the current
/// line; the last frame (`done == total`) clears it.
pub fn progress_bar(done: usize, total: usize, what: &str) -> String {
    let width = 24;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    let mut s = format!(
        "\r\x1b[2K[{}{}] {done}/{total} {what}",
        "#".repeat(filled),
        " ".repeat(width - filled)
    );
    if done == total {
        s.push_str("\r\x1b[2K");
    }
    s
}

/// The timeout of one writer (or one run of a script) must be more than 0 and at most a day.
///
/// # Errors
/// [`SuiteError::Request`] outside that range.
pub fn check_timeout(timeout: Duration) -> Result<(), SuiteError> {
    if timeout.is_zero() || timeout > Duration::from_secs(86_400) {
        return Err(SuiteError::Request(
            "--timeout must be more than 0 and at most 1d".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_target_is_a_request_error_naming_the_known_ones() {
        let Err(SuiteError::Request(m)) = local_targets(&["nope".into()]) else {
            panic!("accepted an unknown target");
        };
        assert!(
            m.starts_with("unknown target \"nope\" (known: json-counter,"),
            "{m}"
        );
    }

    #[test]
    fn a_local_only_target_is_refused_on_etcd_and_aliases_resolve() {
        assert!(matches!(
            etcd_targets(&["replace".into()]),
            Err(SuiteError::Request(_))
        ));
        let t = etcd_targets(&["lock".into(), "slot".into()]).unwrap();
        let names: Vec<_> = t.iter().map(|t| t.name()).collect();
        assert_eq!(names, ["json-counter", "semaphore"]);
    }

    #[test]
    fn the_progress_bar_fills_and_clears_at_the_end() {
        assert_eq!(
            progress_bar(1, 2, "x"),
            format!("\r\x1b[2K[{}{}] 1/2 x", "#".repeat(12), " ".repeat(12))
        );
        assert!(progress_bar(2, 2, "done").ends_with("done\r\x1b[2K"));
    }
}
