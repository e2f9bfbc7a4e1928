//! `concur session start|end|list|gc`: the registry of live sessions.

use concur::session::{Cleanup, Registry, StartOptions};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Register, end, list and collect sessions.
///
/// A session is named by the pid and start time of its process (and the boot), so a reused pid
/// is never mistaken for a live session. Hooks register the agent process with --pid.
///
/// Example: `concur session start --session "$ID" --pid "$PPID" --agent claude`
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Register this session (default process: the caller's parent, e.g. the hook's shell)
    ///
    /// Example: `concur session start --session s1 --pid 4242 --agent claude`
    Start {
        /// The process embodying the session (e.g. the agent: the hook's parent)
        #[arg(long, value_name = "PID")]
        pid: Option<u32>,
        /// Agent name shown to other sessions (claude, codex, ...)
        #[arg(long, value_name = "NAME")]
        agent: Option<String>,
        /// Working directory to record (default: the current one)
        #[arg(long, value_name = "DIR")]
        cwd: Option<std::path::PathBuf>,
    },
    /// End this session: release its leases, remove its markers, pointers and record
    ///
    /// Example: `concur session end --session s1`
    End,
    /// List registered sessions, live ones and dead ones (marked)
    ///
    /// Example: `concur session list --json`
    List,
    /// End every dead session (its process is gone) and say what was removed
    ///
    /// Example: `concur session gc`
    Gc,
}

/// Runs `concur session`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let home = ctx.home()?;
    let reg = Registry::open(home)?;
    match args.action {
        Action::Start { pid, agent, cwd } => {
            let id = ctx.require_session()?;
            let s = reg.start(&id, &StartOptions { pid, agent, cwd })?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "session": s }));
            } else {
                print_line(&format!("session {} started (pid {})", s.id, s.pid));
            }
        }
        Action::End => {
            let id = ctx.require_session()?;
            let store = ctx.lease_store()?;
            let c = reg.end(&id, &*store)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "ended": c }));
            } else {
                print_line(&describe(&c, "ended"));
            }
        }
        Action::List => {
            let all = reg.list()?;
            let now = concur::session::now_unix_ms();
            if ctx.json {
                let v: Vec<_> = all
                    .iter()
                    .map(|(s, alive)| {
                        let mut o = serde_json::to_value(s).expect("serialises");
                        o["alive"] = (*alive).into();
                        o
                    })
                    .collect();
                ctx.print_json(&serde_json::json!({ "sessions": v }));
            } else {
                for (s, alive) in &all {
                    print_line(&format!(
                        "{}\t{}\tpid {}\t{}\t{}\t{}",
                        s.id,
                        if *alive { "alive" } else { "DEAD" },
                        s.pid,
                        s.agent.as_deref().unwrap_or("-"),
                        age(now, s.started_at),
                        s.cwd.display()
                    ));
                }
            }
        }
        Action::Gc => {
            let store = ctx.lease_store()?;
            let removed = reg.gc(&*store)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "removed": removed }));
            } else if removed.is_empty() {
                print_line("no dead sessions");
            } else {
                for c in &removed {
                    print_line(&describe(c, "removed dead"));
                }
            }
        }
    }
    Ok(Exit::Ok)
}

fn describe(c: &Cleanup, what: &str) -> String {
    let leases = if c.leases.is_empty() {
        "no leases".to_owned()
    } else {
        format!("released leases {}", c.leases.join(", "))
    };
    format!(
        "{what} session {}: {} markers, {} pointers, {leases}",
        c.session,
        c.markers.len(),
        c.pointers.len()
    )
}

/// A short age like `12s`, `5m`, `3h` between two Unix-ms instants.
pub fn age(now_ms: u64, then_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}
