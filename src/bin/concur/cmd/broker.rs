//! `concur broker serve|status|stop|append`: the append broker daemon and its client.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use concur::broker::send::{self, Status};
use concur::broker::{self, Shutdown};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// The append broker daemon: group commit, acked = durable, retries written once
///
/// One daemon per home group-commits appends (one write + one fdatasync per batch) to files
/// under `[broker] roots`, acking each line once it is durable.
///
/// Example (with `roots = ["~/.agent"]` under `[broker]` in $(concur home)/concur.toml):
///   concur broker serve --detach
///   concur broker append ~/.agent/log.jsonl '{"event":"start"}' --id evt-1
///   concur broker status --json
///   concur broker stop
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Run the broker (foreground; SIGTERM/SIGINT drain the queues and stop it)
    ///
    /// Exits 1 if a broker already runs for this home.
    Serve {
        /// Start it in the background and return once it listens
        #[arg(long)]
        detach: bool,
    },
    /// Is a broker running? Prints its pid and counters (exit 3 when none runs)
    Status,
    /// Stop the running broker (SIGTERM; it drains first) and wait until it is gone
    Stop {
        /// How long to wait for it to stop (30, 30s, 2m)
        #[arg(long, default_value = "30s", value_name = "DURATION",
              value_parser = super::value::duration)]
        wait: Duration,
    },
    /// Append a line through the broker; acked means durable
    ///
    /// Example: concur broker append ~/.agent/log.jsonl '{"n":1}' --id run-7 --autostart
    /// With `-`, every stdin line is one append (ids ID-1, ID-2, ... when --id is given),
    /// pipelined: up to 32 lines in flight, acked in order; after a refusal no further line is
    /// sent.
    Append(AppendArgs),
}

/// Options of `concur broker append` (also the `--broker` mode of `concur append`).
#[derive(Debug, clap::Args)]
pub struct AppendArgs {
    /// The file to append to (absolute, under a configured [broker] root)
    pub file: PathBuf,
    /// The line: JSON (written compact, key order kept), raw text with --raw, or `-` for
    /// stdin lines
    #[arg(allow_hyphen_values = true)]
    pub line: String,
    /// Write the line as raw text (UTF-8; newline and NUL refused)
    #[arg(long)]
    pub raw: bool,
    /// Retry id: a line sent again with the same id is written once (default with
    /// --autostart: a unique id, so this client's own reconnect-retries stay exactly-once)
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Start the broker when none runs (two racing clients end with one broker)
    #[arg(long)]
    pub autostart: bool,
    /// When no broker can be reached: `direct` appends under the sidecar lock instead
    #[arg(long, value_name = "MODE", value_parser = ["direct"])]
    pub fallback: Option<String>,
    /// `line` is the line itself even if it is `-` (set by `concur append --broker`)
    #[arg(skip)]
    pub one_line: bool,
}

/// Runs `concur broker ...`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    match args.action {
        Action::Serve { detach: true } => detach(ctx),
        Action::Serve { detach: false } => serve(ctx),
        Action::Status => status(ctx),
        Action::Stop { wait } => stop(ctx, wait),
        Action::Append(a) => append(&a, ctx),
    }
}

fn exe() -> Result<PathBuf, CliError> {
    std::env::current_exe()
        .map_err(|e| CliError::new(Exit::Io, "io", format!("cannot find own executable: {e}")))
}

fn detach(ctx: &Ctx) -> Result<Exit, CliError> {
    let home = ctx.home()?;
    // A bad configuration is the caller's error (exit 4), found before a daemon is started.
    ctx.config()?;
    let pid = broker::spawn_daemon(home, &exe()?, ctx.config_flag.as_deref())?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "pid": pid, "socket": broker::socket_path(home) }));
    } else {
        print_line(&format!("broker started (pid {pid})"));
    }
    Ok(Exit::Ok)
}

fn serve(ctx: &Ctx) -> Result<Exit, CliError> {
    // SAFETY: Readiness::take's contract: taken once, here, first thing in the daemon.
    let ready = unsafe { broker::Readiness::take() };
    // Block the stop signals before any thread exists, so every thread inherits the mask.
    let shutdown = Shutdown::on_signals()?;
    let stats = broker::bind_reporting(ready, ctx.config_flag.as_deref())?.run(&shutdown)?;
    if ctx.json {
        ctx.print_json(&stats);
    }
    Ok(Exit::Ok)
}

fn status(ctx: &Ctx) -> Result<Exit, CliError> {
    let Some(status) = Status::of(ctx.home()?)? else {
        if ctx.json {
            ctx.print_json(&serde_json::json!({ "running": false }));
        } else {
            print_line("no broker running");
        }
        return Ok(Exit::Precondition);
    };
    if ctx.json {
        ctx.print_json(&status.to_json());
    } else {
        print_line(&status.to_string());
    }
    Ok(Exit::Ok)
}

fn stop(ctx: &Ctx, wait: Duration) -> Result<Exit, CliError> {
    let home = ctx.home()?;
    let stopped = broker::stop(home, wait)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "stopped": stopped }));
    } else {
        match stopped {
            Some(pid) => print_line(&format!("broker stopped (pid {pid})")),
            None => print_line("no broker running"),
        }
    }
    Ok(Exit::Ok)
}

/// Runs an append through the broker; shared with `concur append --broker`.
pub fn append(a: &AppendArgs, ctx: &Ctx) -> Result<Exit, CliError> {
    let home = ctx.home()?;
    let lines = if a.line == "-" && !a.one_line {
        let mut v = Vec::new();
        for (n, l) in std::io::stdin().lock().lines().enumerate() {
            let l =
                l.map_err(|e| CliError::new(Exit::Io, "io", format!("cannot read stdin: {e}")))?;
            v.push(send::line(&l, a.raw, a.id.as_deref(), Some(n + 1))?);
        }
        v
    } else {
        vec![send::line(&a.line, a.raw, a.id.as_deref(), None)?]
    };
    let lines = send::prepare(lines, a.autostart)?;
    let exe = if a.autostart { Some(exe()?) } else { None };
    let reach = reach(home, exe.as_deref(), ctx);
    let mut client = match reach.connect() {
        Ok(c) => Some(c),
        Err(e) if a.fallback.is_some() => {
            eprintln!("concur: broker: {e}; appending directly (--fallback direct)");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let via_broker = client.is_some();
    let report = |id: Option<&str>, ack: broker::Ack| {
        if ctx.json {
            ctx.print_json(&serde_json::json!({
                "id": id, "duplicate": ack.duplicate, "broker": via_broker,
            }));
        } else if ack.duplicate {
            print_line(&format!("duplicate {}", id.unwrap_or_default()));
        }
    };
    if let Some(c) = &mut client {
        reach.send_all(c, &a.file, &lines, |n, ack| {
            report(lines[n].1.as_deref(), ack);
        })?;
    } else {
        for (line, id) in &lines {
            let ack = reach.direct(&ctx.config()?, &a.file, line, id.as_deref())?;
            report(id.as_deref(), ack);
        }
    }
    Ok(Exit::Ok)
}

/// How to reach the broker: starting one with `exe` when given.
fn reach<'a>(home: &'a concur::Home, exe: Option<&'a Path>, ctx: &'a Ctx) -> send::Reach<'a> {
    send::Reach {
        home,
        autostart: exe.map(|exe| send::Autostart {
            exe,
            config: ctx.config_flag.as_deref(),
        }),
    }
}

/// `concur ledger append --broker`: the ledger append runs in the broker.
pub fn ledger_append(
    file: &Path,
    entry: &serde_json::Value,
    autostart: bool,
    ctx: &Ctx,
) -> Result<Exit, CliError> {
    let exe = if autostart { Some(exe()?) } else { None };
    let mut c = reach(ctx.home()?, exe.as_deref(), ctx).connect()?;
    let a = c.ledger_append(file, entry)?;
    if ctx.json {
        ctx.print_json(&serde_json::Value::Object(a));
    } else {
        let get = |k: &str| a.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let hash = get("hash");
        print_line(&format!(
            "{} {}",
            get("seq"),
            hash.as_str().unwrap_or_default()
        ));
    }
    Ok(Exit::Ok)
}
