//! `concur diagnose`: the built-in validation suite, or a user's own script under W concurrent
//! writers; and the hidden `concur diagnose-writer` each writer process runs.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use concur::diagnose::run::Overrides;
use concur::diagnose::suite::{self, Progress, Request, Script, SuiteError};
use concur::diagnose::{Harness, Mode, chaos, writer};

use crate::ctx::Ctx;
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
    suite::check_timeout(a.timeout).map_err(usage)?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::new(Exit::Io, "io", format!("cannot find own binary: {e}")))?;
    let mut harness = Harness {
        exe,
        per_session: a.per_session,
        timeout: a.timeout,
        backend: None,
        chaos: a.chaos.then(|| a.seed.unwrap_or_else(chaos::fresh_seed)),
    };
    let backend = ctx.backend_flag.clone().filter(|u| !u.is_empty());
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
    let req = Request {
        targets: a.targets.clone(),
        modes: match a.mode.as_str() {
            "naive" => vec![Mode::Naive],
            "protected" | "concur" => vec![Mode::Protected],
            _ => vec![Mode::Naive, Mode::Protected],
        },
        sizes: Overrides {
            writers: a.writers.map(usize::from),
            ops: a.ops.map(|n| n as usize),
            rounds: a.rounds.map(|n| n as usize),
        },
        script: a.cmd.as_ref().map(|cmd| Script {
            cmd: cmd.clone(),
            checks: a.checks.clone(),
            check_cmds: a.check_cmd.clone(),
            setup: a.setup.clone(),
        }),
        backend,
    };
    let progress_on = std::io::stderr().is_terminal() && !ctx.json;
    let mut step = |done: usize, total: usize, what: &str| {
        if progress_on {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(suite::progress_bar(done, total, what).as_bytes());
            let _ = e.flush();
        }
    };
    let mut warn = |m: &str| eprintln!("concur: diagnose: warning: {m}");
    let mut progress = Progress {
        step: &mut step,
        warn: &mut warn,
    };
    let summary = suite::run(&req, &mut harness, &mut progress).map_err(usage)?;
    if let Some(path) = &a.report {
        write_report(path, &summary.html())?;
    }
    if ctx.json {
        ctx.print_json(&summary.to_json());
    } else {
        // On a terminal the rows are fitted to its width (long observations wrap).
        let width = concur::sys::tty::width(std::io::stdout());
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(summary.text(width).as_bytes());
        let _ = out.flush();
    }
    Ok(if summary.failed() {
        Exit::Precondition
    } else {
        Exit::Ok
    })
}

/// A request to change is a usage error (exit 2); a failed run maps by its kind.
fn usage(e: SuiteError) -> CliError {
    match e {
        SuiteError::Request(m) => CliError::usage(m),
        SuiteError::Failed(e) => e.into(),
    }
}

fn write_report(path: &std::path::Path, page: &str) -> Result<(), CliError> {
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
    if std::io::stderr().is_terminal() {
        eprintln!("concur: diagnose: report written to {}", path.display());
    }
    Ok(())
}
