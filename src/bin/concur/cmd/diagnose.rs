//! `concur diagnose`: the built-in validation suite, or a user's own script under W concurrent
//! writers; and the hidden `concur diagnose-writer` each writer process runs.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use concur::diagnose::checks::Check;
use concur::diagnose::etcd as diag_etcd;
use concur::diagnose::run::{Overrides, run_suite};
use concur::diagnose::{self as targets_api, Harness, Mode, Outcome, custom, html, report};
use concur::diagnose::{chaos, targets, writer};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Prove collisions: N real processes hammer shared state; invariants give verdicts.
///
/// With no arguments, runs the built-in suite: for each target a naive writer (written the way
/// hooks usually are: must be caught) and then concur's primitive (must be SAFE). Exit 3 if a
/// concur target (or a check of your script) is not SAFE.
///
/// Targets: json-counter, jsonl-append, token, semaphore, header-once, replace, hash-ledger,
/// task-start, session-pointer, sqlite, broker, edit-race, single-flight; aliases: lock
/// (json-counter), slot (semaphore).
///
/// With the global --backend etcd://H:P[,H:P..][/prefix], the concur writers of json-counter
/// (alias lock: the naive update under `lock --name`), token, semaphore (alias slot) and
/// task-start coordinate through etcd, under a fresh key prefix removed afterwards; the other
/// targets are local-only and skipped. Only the flag switches: $CONCUR_BACKEND and the config
/// leave diagnose local.
///
/// Examples:
///   concur diagnose
///   concur diagnose --targets token,semaphore --mode naive --report out.html
///   concur --backend etcd://10.0.0.1:2379 diagnose --targets lock,slot --writers 8
///   concur diagnose --cmd 'bash hooks/count.sh' --check counter:n.json:.count --ops 20
///   concur diagnose --cmd 'sh take.sh' --setup 'echo t > token' --check winners:won --rounds 20
///   concur diagnose --chaos --seed 1 --rounds 50 --check 'lines:log:^entry$' \
///     --cmd 'cd "$CONCUR_STATE_DIR"; [ -f log ] || echo "# header" > log; echo entry >> log'
///
/// --chaos delays every writer's file-system calls (open, stat, read, write, rename, link,
/// unlink, mkdir, flock; its children's too) at random from a seed, so check-then-act windows
/// open wide; when a round breaks, the calls of each writer on the round's files are printed in
/// the order they ran, with the seed (--seed N replays the same delays).
///
/// Your script sees CONCUR_STATE_DIR (fresh per round; cwd of --setup and the checks),
/// CONCUR_WRITER, CONCUR_ROUND, CONCUR_RUN and with --per-session its own CONCUR_SESSION.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Built-in targets to run, comma-separated (default: all)
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "T,..",
        conflicts_with = "cmd"
    )]
    targets: Vec<String>,
    /// naive, protected (alias concur) or both
    #[arg(long, default_value = "both", value_name = "MODE", value_parser = ["naive", "protected", "concur", "both"])]
    mode: String,
    /// Concurrent writer processes (default: 4)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    writers: Option<u16>,
    /// Operations per writer (with --cmd: runs of CMD per writer, one shared state)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    ops: Option<u32>,
    /// Rounds on fresh state (with --cmd: each writer runs CMD once per round)
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rounds: Option<u32>,
    /// Give each writer its own CONCUR_SESSION
    #[arg(long)]
    per_session: bool,
    /// Your writer: a shell command run by each writer (sh -c)
    #[arg(long, value_name = "CMD")]
    cmd: Option<String>,
    /// An invariant for --cmd: counter:FILE:JQPATH, lines:FILE[:REGEX], jsonl:FILE,
    /// header:FILE:TEXT, winners:FILE, unique:FILE, empty:FILE, max:N:FILE (paths relative to
    /// the state dir)
    #[arg(long = "check", value_name = "KIND:ARGS", requires = "cmd")]
    checks: Vec<String>,
    /// An invariant as a command run in the state dir: exit 0 = holds
    #[arg(long, value_name = "CMD", requires = "cmd")]
    check_cmd: Vec<String>,
    /// Run before each round in the fresh state dir
    #[arg(long, value_name = "CMD", requires = "cmd")]
    setup: Option<String>,
    /// Per-run timeout in seconds for --cmd runs (built-in: per writer process)
    #[arg(long, value_name = "DURATION", default_value = "20s",
          value_parser = super::value::duration)]
    timeout: Duration,
    /// Write a self-contained HTML timeline (one lane per writer) to FILE
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Delay the writers' file-system calls (and their children's) at random, to open
    /// check-then-act windows wide; a broken round's schedule is printed with the seed
    #[arg(long)]
    chaos: bool,
    /// With --chaos: the seed of the delays (replays a run; default: a fresh one, printed)
    #[arg(long, value_name = "N", requires = "chaos")]
    seed: Option<u64>,
}

/// The hidden tracer: `concur diagnose-chaos SPEC -- CMD...` (each writer under `--chaos`).
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// The tracer spec (JSON)
    spec: String,
    /// The writer command
    #[arg(last = true, required = true)]
    cmd: Vec<std::ffi::OsString>,
}

/// Runs `concur diagnose-chaos`: the writer under the tracer; ends as the writer ended.
pub fn run_chaos(a: &ChaosArgs, _ctx: &Ctx) -> Result<Exit, CliError> {
    let spec: chaos::TraceSpec = serde_json::from_str(&a.spec)
        .map_err(|e| CliError::invalid(format!("bad tracer spec: {e}")))?;
    match chaos::trace(&spec, &a.cmd)? {
        chaos::Ended::Code(c) => Ok(Exit::Code(u8::try_from(c & 0xff).unwrap_or(1))),
        chaos::Ended::Signal(sig) => {
            concur::sys::supervise::raise_default(sig);
            Ok(Exit::Code(u8::try_from(128 + sig).unwrap_or(255)))
        }
    }
}

/// The hidden writer: `concur diagnose-writer SPEC` (what `diagnose` starts, N at a time).
#[derive(Debug, clap::Args)]
pub struct WriterArgs {
    /// The writer spec (JSON)
    spec: String,
}

/// Runs `concur diagnose-writer`.
pub fn run_writer(a: &WriterArgs, _ctx: &Ctx) -> Result<Exit, CliError> {
    writer::serve(&a.spec)?;
    Ok(Exit::Ok)
}

/// Runs `concur diagnose`.
pub fn run(a: &Args, ctx: &Ctx) -> Result<Exit, CliError> {
    if a.timeout.is_zero() || a.timeout > Duration::from_secs(86_400) {
        return Err(CliError::usage(
            "--timeout must be more than 0 and at most 1d",
        ));
    }
    let exe = std::env::current_exe()
        .map_err(|e| CliError::new(Exit::Io, "io", format!("cannot find own binary: {e}")))?;
    let mut harness = Harness {
        exe,
        per_session: a.per_session,
        timeout: a.timeout,
        backend: None,
        chaos: a.chaos.then(|| a.seed.unwrap_or_else(chaos::fresh_seed)),
    };
    let backend = ctx.backend_flag.as_deref().filter(|u| !u.is_empty());
    // (A --cmd script inherits $CONCUR_BACKEND and uses it: no note there.)
    if backend.is_none()
        && a.cmd.is_none()
        && !ctx.json
        && let Some(u) = std::env::var("CONCUR_BACKEND")
            .ok()
            .filter(|u| !u.is_empty())
    {
        eprintln!(
            "concur: diagnose: note: runs the local suite; $CONCUR_BACKEND ({u}) is used \
             only when given as --backend"
        );
    }
    if backend.is_some() && a.cmd.is_some() {
        return Err(CliError::usage(
            "--backend runs the built-in targets on etcd; for --cmd, set CONCUR_BACKEND for \
             your script instead",
        ));
    }
    let progress_on = std::io::stderr().is_terminal() && !ctx.json;
    let mut progress = |done: usize, total: usize, what: &str| {
        if progress_on {
            let width = 24;
            let filled = (done * width).checked_div(total).unwrap_or(width);
            let mut e = std::io::stderr().lock();
            let _ = write!(
                e,
                "\r\x1b[2K[{}{}] {done}/{total} {what}",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
            if done == total {
                let _ = write!(e, "\r\x1b[2K");
            }
            let _ = e.flush();
        }
    };
    let mut about = About {
        backend: "local".into(),
        etcd: None,
        skipped: Vec::new(),
    };
    let outcomes = if let Some(cmd) = &a.cmd {
        run_custom(a, cmd, &harness, &mut progress)?
    } else if let Some(url) = backend {
        let chosen = etcd_targets(a)?;
        // An explicit local-only target was refused above; by default they are skipped.
        about.skipped = targets::all()
            .iter()
            .filter(|t| a.targets.is_empty() && !t.on_etcd())
            .map(|t| t.name())
            .collect();
        on_etcd(a, url, &chosen, &mut harness, &mut about, &mut progress)?
    } else {
        suite(a, &harness, &mut progress)?
    };
    if let Some(path) = &a.report {
        write_report(path, &outcomes, &about)?;
    }
    print(ctx, a.cmd.is_none(), &about, &outcomes, harness.chaos);
    // A naive target that is not caught is shown (NOT REPRODUCED) but does not fail the run;
    // anything of concur's or of the user's that is not SAFE does.
    let failed = outcomes.iter().any(|o| o.mode != "naive" && !o.pass);
    Ok(if failed { Exit::Precondition } else { Exit::Ok })
}

/// Prints the outcomes: the `--json` document, or the table (with the backend line and the
/// skipped targets on etcd).
fn print(ctx: &Ctx, suite: bool, about: &About, outcomes: &[Outcome], seed: Option<u64>) {
    if ctx.json {
        let mut doc = serde_json::json!({ "backend": about.backend });
        if let Some(seed) = seed {
            doc["chaos"] = serde_json::json!({ "seed": seed });
        }
        if let Some(e) = &about.etcd {
            doc["etcd_prefix"] = e.prefix.clone().into();
            doc["keys_removed"] = e.removed.into();
        }
        if suite {
            doc["skipped"] = about
                .skipped
                .iter()
                .map(|t| serde_json::json!({ "target": t, "reason": SKIPPED }))
                .collect();
        }
        doc["results"] = report::json(outcomes)["results"].take();
        ctx.print_json(&doc);
    } else {
        let mut out = std::io::stdout().lock();
        if let Some(e) = &about.etcd {
            let removed = e.removed.map_or_else(
                || "not removed: the cluster stopped answering".to_string(),
                |n| format!("{n} keys removed"),
            );
            let _ = writeln!(
                out,
                "backend: {} (key prefix {}, {removed})",
                about.backend, e.prefix
            );
        }
        // On a terminal the rows are fitted to its width (long observations wrap).
        let width = concur::sys::tty::width(std::io::stdout());
        let _ = out.write_all(report::table_fitted(outcomes, width).as_bytes());
        // Aligned with the table's first column.
        let w = outcomes
            .iter()
            .map(|o| o.target.len())
            .chain(about.skipped.iter().map(|t| t.len()))
            .chain([report::HEADINGS[0].len()])
            .max()
            .unwrap_or(0);
        for t in &about.skipped {
            let _ = writeln!(out, "{t:<w$}  {SKIPPED}");
        }
        if let Some(seed) = seed {
            print_chaos(&mut out, seed, outcomes);
        }
        let _ = out.flush();
    }
}

/// Under `--chaos`: the seed, and for each result that broke, the schedule that broke it.
fn print_chaos(out: &mut impl Write, seed: u64, outcomes: &[Outcome]) {
    let _ = writeln!(
        out,
        "chaos: seed {seed} (replay the same delays with --chaos --seed {seed})"
    );
    for o in outcomes {
        let Some(b) = &o.chaos else { continue };
        let _ = writeln!(
            out,
            "\n{} {} broke in round {} ({}); the calls on its files, in order:",
            o.target, o.mode, b.round, o.verdict
        );
        let _ = out.write_all(chaos::render(b).as_bytes());
    }
}

/// What a skipped target's line says.
const SKIPPED: &str = "local-only target, skipped on etcd";

/// Which backend a run used, for the table, `--json` and the HTML report.
struct About {
    /// `local`, or the etcd URL as given.
    backend: String,
    /// On etcd: the run's key prefix and how many keys were removed (`None`: cleanup failed).
    etcd: Option<EtcdRun>,
    /// Targets not run on this backend.
    skipped: Vec<&'static str>,
}

struct EtcdRun {
    prefix: String,
    removed: Option<usize>,
}

/// The targets of an etcd run: the etcd ones by default; an explicit local-only one is a usage
/// error (exit 2). `lock` and `slot` name json-counter and semaphore.
fn etcd_targets(a: &Args) -> Result<Vec<&'static dyn targets_api::Target>, CliError> {
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
    if a.targets.is_empty() {
        return Ok(targets::all().into_iter().filter(|t| t.on_etcd()).collect());
    }
    a.targets
        .iter()
        .map(|n| {
            let t = targets::find(diag_etcd::resolve(n)).ok_or_else(|| {
                CliError::usage(format!("unknown target {n:?} (on etcd: {})", etcd_names()))
            })?;
            if t.on_etcd() {
                Ok(t)
            } else {
                Err(CliError::usage(format!(
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
    a: &Args,
    url: &str,
    chosen: &[&dyn targets_api::Target],
    harness: &mut Harness,
    about: &mut About,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<Vec<Outcome>, CliError> {
    let run = diag_etcd::Run::start(url)?;
    harness.backend = Some(run.url().to_owned());
    url.clone_into(&mut about.backend);
    let out = run_suite(harness, chosen, modes(a), overrides(a), progress);
    let removed = run.cleanup();
    if let Err(e) = &removed {
        eprintln!(
            "concur: diagnose: warning: could not remove the run's keys under {}: {e}",
            run.prefix()
        );
    }
    about.etcd = Some(EtcdRun {
        prefix: run.prefix().to_owned(),
        removed: removed.ok(),
    });
    Ok(out?)
}

/// This build has no etcd support.
#[cfg(not(feature = "etcd"))]
fn on_etcd(
    _a: &Args,
    url: &str,
    _chosen: &[&dyn targets_api::Target],
    _harness: &mut Harness,
    _about: &mut About,
    _progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<Vec<Outcome>, CliError> {
    Err(CliError::invalid(format!(
        "backend {url}: this concur was built without the etcd feature"
    )))
}

fn modes(a: &Args) -> &'static [Mode] {
    match a.mode.as_str() {
        "naive" => &[Mode::Naive],
        "protected" | "concur" => &[Mode::Protected],
        _ => &[Mode::Naive, Mode::Protected],
    }
}

fn overrides(a: &Args) -> Overrides {
    Overrides {
        writers: a.writers.map(usize::from),
        ops: a.ops.map(|n| n as usize),
        rounds: a.rounds.map(|n| n as usize),
    }
}

fn suite(
    a: &Args,
    harness: &Harness,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<Vec<Outcome>, CliError> {
    let chosen = if a.targets.is_empty() {
        targets::all()
    } else {
        a.targets
            .iter()
            .map(|n| {
                targets::find(n).ok_or_else(|| {
                    let names: Vec<_> = targets::all().iter().map(|t| t.name()).collect();
                    CliError::usage(format!(
                        "unknown target {n:?} (known: {})",
                        names.join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    Ok(run_suite(
        harness,
        &chosen,
        modes(a),
        overrides(a),
        progress,
    )?)
}

fn run_custom(
    a: &Args,
    cmd: &str,
    harness: &Harness,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<Vec<Outcome>, CliError> {
    if a.ops.is_some() && a.rounds.is_some() {
        return Err(CliError::usage(
            "--ops and --rounds cannot be used together with --cmd",
        ));
    }
    let mut checks = a
        .checks
        .iter()
        .map(|c| Check::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    checks.extend(a.check_cmd.iter().map(|c| Check::command(c)));
    if checks.is_empty() {
        return Err(CliError::usage(
            "--cmd needs at least one --check or --check-cmd",
        ));
    }
    let (ops, rounds) = match (a.ops, a.rounds) {
        (_, Some(r)) => (1, r as usize),
        (Some(n), None) => (n as usize, 1),
        (None, None) => (10, 1),
    };
    let opts = custom::Options {
        cmd: cmd.to_owned(),
        checks,
        setup: a.setup.clone(),
        writers: a.writers.map_or(4, usize::from),
        ops,
        rounds,
        timeout: a.timeout,
    };
    progress(0, 1, "custom");
    let out = custom::run(harness, &opts)?;
    progress(1, 1, "done");
    Ok(out)
}

fn write_report(
    path: &std::path::Path,
    outcomes: &[Outcome],
    about: &About,
) -> Result<(), CliError> {
    let backend = match &about.etcd {
        Some(e) => format!("{} (key prefix {})", about.backend, e.prefix),
        None if about.backend == "local" => "local files".to_owned(),
        None => about.backend.clone(),
    };
    let page = html::page_on(outcomes, &backend, &about.skipped);
    let mut f = std::fs::File::create(path).map_err(|e| {
        CliError::new(
            Exit::Io,
            "io",
            format!("cannot create report ({}): {e}", path.display()),
        )
    })?;
    f.write_all(page.as_bytes()).map_err(|e| {
        CliError::new(
            Exit::Io,
            "io",
            format!("cannot write report ({}): {e}", path.display()),
        )
    })?;
    if !std::io::stderr().is_terminal() {
        return Ok(());
    }
    eprintln!("concur: diagnose: report written to {}", path.display());
    let _ = print_line;
    Ok(())
}
