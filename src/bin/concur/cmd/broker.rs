//! `concur broker serve|status|stop|append`: the append broker daemon and its client.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use concur::broker::{self, Client, Line, Roots, Server, Shutdown};

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
    let bound = (|| -> Result<Server, concur::Error> {
        let home = concur::Home::resolve()?;
        let config = match &ctx.config_flag {
            Some(p) => concur::config::Config::load(Some(p), None)?,
            None => concur::config::Config::load(None, Some(home.path()))?,
        };
        Server::bind(&home, Roots::from_config(&config))
    })();
    let outcome = bound.as_ref().map(drop);
    if let Some(ready) = ready {
        broker::report_ready(ready, outcome);
    }
    let server = bound?;
    let stats = server.run(&shutdown)?;
    if ctx.json {
        ctx.print_json(&stats);
    }
    Ok(Exit::Ok)
}

fn status(ctx: &Ctx) -> Result<Exit, CliError> {
    let home = ctx.home()?;
    let Some(pid) = broker::running(home)? else {
        if ctx.json {
            ctx.print_json(&serde_json::json!({ "running": false }));
        } else {
            print_line("no broker running");
        }
        return Ok(Exit::Precondition);
    };
    let mut info = serde_json::Map::new();
    info.insert("running".into(), true.into());
    info.insert("pid".into(), pid.into());
    if let Ok(m) = Client::connect(home).and_then(|mut c| c.status()) {
        info.extend(m);
    }
    if ctx.json {
        ctx.print_json(&serde_json::Value::Object(info));
    } else {
        let get = |k: &str| info.get(k).cloned().unwrap_or(serde_json::Value::Null);
        print_line(&format!(
            "broker running (pid {pid}): {} connections, {} files, {} appends in {} batches, {} fsyncs",
            get("connections"),
            get("files"),
            get("appends"),
            get("batches"),
            get("fsyncs")
        ));
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

/// How many times an append is retried (same id) after the connection broke.
const RETRIES: u32 = 100;

/// Lines of one `broker append -` in flight on its connection at once.
const PIPELINE: usize = 32;

/// Runs an append through the broker; shared with `concur append --broker`.
pub fn append(a: &AppendArgs, ctx: &Ctx) -> Result<Exit, CliError> {
    let home = ctx.home()?;
    let lines: Vec<(Line, Option<String>)> = if a.line == "-" && !a.one_line {
        let mut v = Vec::new();
        for (n, l) in std::io::stdin().lock().lines().enumerate() {
            let l =
                l.map_err(|e| CliError::new(Exit::Io, "io", format!("cannot read stdin: {e}")))?;
            let id = a.id.as_ref().map(|id| format!("{id}-{}", n + 1));
            let line = parse_line(&l, a.raw).map_err(|mut e| {
                // serde counts within the one line: its column is what matters.
                let why = e.message.replace(" at line 1 column ", " at column ");
                e.message = format!("stdin line {}: {why}", n + 1);
                e
            })?;
            v.push((line, id));
        }
        v
    } else {
        vec![(parse_line(&a.line, a.raw)?, a.id.clone())]
    };
    // Check every line before anything is sent: bad input writes nothing.
    for (n, (l, id)) in lines.iter().enumerate() {
        let checked = l
            .encode()
            .and_then(|_| id.as_deref().map_or(Ok(()), broker::protocol::check_id));
        checked.map_err(|e| {
            let mut e = CliError::from(e);
            if lines.len() > 1 {
                e.message = format!("stdin line {}: {}", n + 1, e.message);
            }
            e
        })?;
    }
    let auto = auto_id_prefix();
    let mut client = match connect(home, a, ctx) {
        Ok(c) => Some(c),
        Err(e) if a.fallback.is_some() => {
            eprintln!(
                "concur: broker: {}; appending directly (--fallback direct)",
                e.message
            );
            None
        }
        Err(e) => return Err(e),
    };
    // Without --id, an id is only made up when this client may retry (--autostart): a retry
    // needs one to stay exactly-once.
    let lines: Vec<(Line, Option<String>)> = lines
        .into_iter()
        .enumerate()
        .map(|(n, (line, id))| {
            let id = id.or_else(|| a.autostart.then(|| format!("{auto}.{}", n + 1)));
            (line, id)
        })
        .collect();
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
        send_all(c, home, a, ctx, &lines, |n, ack| {
            report(lines[n].1.as_deref(), ack);
        })?;
    } else {
        for (line, id) in &lines {
            let ack = direct(ctx, &a.file, line, id.as_deref())?;
            report(id.as_deref(), ack);
        }
    }
    Ok(Exit::Ok)
}

fn parse_line(s: &str, raw: bool) -> Result<Line, CliError> {
    if raw {
        return Ok(Line::Text(s.to_owned()));
    }
    let line = Line::JsonText(s.to_owned());
    line.encode()?;
    Ok(line)
}

fn auto_id_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("auto.{}.{nanos}", std::process::id())
}

fn connect(home: &concur::Home, a: &AppendArgs, ctx: &Ctx) -> Result<Client, CliError> {
    if a.autostart {
        Ok(Client::connect_or_start(
            home,
            &exe()?,
            ctx.config_flag.as_deref(),
            Duration::from_secs(10),
        )?)
    } else {
        Ok(Client::connect(home)?)
    }
}

/// Appends `lines` to `a.file` through the broker, pipelined ([`PIPELINE`] in flight), calling
/// `acked(n, ack)` for each line in order. After a refusal no further line is sent (those
/// already in flight are answered and reported) and the first refusal is returned. When the
/// broker goes away mid-run and `--autostart` is given, it reconnects (starting a broker) and
/// resends every unanswered line with its id: the dedup index writes each at most once.
fn send_all(
    c: &mut Client,
    home: &concur::Home,
    a: &AppendArgs,
    ctx: &Ctx,
    lines: &[(Line, Option<String>)],
    mut acked: impl FnMut(usize, broker::Ack),
) -> Result<(), CliError> {
    let file = a.file.as_path();
    let (mut done, mut sent, mut tries) = (0, 0, 0);
    let mut refused: Option<CliError> = None;
    // Lines that may be sent: all of them, until a refusal stops it at those already sent
    // (which a reconnect still resends: they were sent, and must be answered).
    let mut stop = lines.len();
    loop {
        let mut step = Ok(());
        while step.is_ok() && sent < stop && sent - done < PIPELINE {
            let (line, id) = &lines[sent];
            step = c.send_append(file, line, id.as_deref());
            sent += 1;
        }
        if step.is_ok() {
            if done == sent {
                return refused.map_or(Ok(()), Err);
            }
            match c.recv_append() {
                Ok(Ok(ack)) => {
                    acked(done, ack);
                    done += 1;
                }
                Ok(Err(f)) => {
                    if refused.is_none() {
                        stop = sent;
                    }
                    refused.get_or_insert_with(|| f.into_error(file).into());
                    done += 1;
                }
                Err(e) => step = Err(e),
            }
        }
        if let Err(e) = step {
            if tries >= RETRIES || !a.autostart {
                return Err(e.into());
            }
            // The broker went away mid-request: reconnect (starting a new one) and send every
            // unanswered line again, with the same ids. Never on the dead connection: its
            // client still counts the unanswered lines as in flight.
            *c = loop {
                tries += 1;
                match connect(home, a, ctx) {
                    Ok(n) => break n,
                    Err(e) if tries >= RETRIES => return Err(e),
                    Err(_) => {}
                }
            };
            sent = done;
        }
    }
}

/// `concur ledger append --broker`: the ledger append runs in the broker.
pub fn ledger_append(
    file: &Path,
    entry: &serde_json::Value,
    autostart: bool,
    ctx: &Ctx,
) -> Result<Exit, CliError> {
    let home = ctx.home()?;
    let mut c = if autostart {
        Client::connect_or_start(
            home,
            &exe()?,
            ctx.config_flag.as_deref(),
            Duration::from_secs(10),
        )?
    } else {
        Client::connect(home)?
    };
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

/// `--fallback direct`: appends in this process. With a retry id, through the broker's own
/// dedup index, so an id retried while the broker is down (and again once it is back) is
/// written once; a broker that runs but did not answer is not bypassed then.
fn direct(ctx: &Ctx, file: &Path, line: &Line, id: Option<&str>) -> Result<broker::Ack, CliError> {
    let config = ctx.config()?;
    let target = Roots::from_config(&config).check(file)?;
    let bytes = line.encode()?;
    let Some(id) = id else {
        let mut bytes = bytes;
        bytes.push(b'\n');
        concur::append::AppendOptions::new().append(&target, &bytes)?;
        return Ok(broker::Ack { duplicate: false });
    };
    let home = ctx.home()?;
    if let Some(pid) = broker::running(home)? {
        return Err(CliError::new(
            Exit::Conflict,
            "conflict",
            format!(
                "the broker (pid {pid}) runs but could not be reached; not appending directly with a retry id (it could be written twice)"
            ),
        ));
    }
    let index = broker::commit::index_path(&home.subdir("broker")?, &target);
    Ok(broker::commit::append_direct(
        &target,
        &index,
        &bytes,
        Some(id),
    )?)
}
