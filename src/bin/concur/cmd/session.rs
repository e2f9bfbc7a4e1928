//! `concur session start|end|list|gc`: the registry of live sessions; with an etcd backend,
//! also the sessions of every machine (`session/ID` keys kept alive by a detached keeper).

use std::time::Duration;

use concur::backend::sessions::{Keeper, Start};
use concur::session::StartOptions;

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Register, end, list and collect sessions.
///
/// A session is named by the pid and start time of its process (and the boot), so a reused pid
/// is never mistaken for a live session. Hooks register the agent process with --pid.
///
/// With a backend (`--backend etcd://...`, `$CONCUR_BACKEND`), `start` also registers the
/// session on etcd, kept alive by a detached keeper until the process exits or `end` runs, and
/// `list` shows the sessions of every machine.
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
    /// With a backend it is also registered on etcd, on a lease a detached keeper renews until
    /// the process exits; if etcd cannot be reached, one warning line and the session starts
    /// locally all the same (exit 0).
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
        /// With an etcd backend: the TTL of the session's etcd lease, renewed every TTL/3 (a
        /// dead machine's sessions vanish after it)
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = super::value::duration)]
        ttl: Duration,
    },
    /// End this session: release its reservations, edit record, markers, pointers and task
    /// leases, end its etcd registration (keeper stopped, lease revoked) when a backend is set,
    /// remove its record; --json says what was released
    ///
    /// Example: `concur session end --session s1`
    End,
    /// List registered sessions, live ones and dead ones (marked); with a backend, the live
    /// sessions on etcd from every machine, this host's marked
    ///
    /// Example: `concur --backend etcd://10.0.0.1:2379 session list --json`
    List,
    /// End every dead session (its process is gone) as `end` would, and say what was released
    /// (this machine's registry: liveness is judged here; on etcd a dead session's key is
    /// revoked too if its keeper left it behind)
    ///
    /// Example: `concur session gc`
    Gc,
    /// (internal) keep a session's etcd lease alive until its process exits
    #[command(hide = true)]
    Keep {
        /// The session id
        id: String,
        /// The etcd lease id
        #[arg(long)]
        lease: i64,
        /// The lease's TTL in milliseconds
        #[arg(long)]
        ttl_ms: u64,
        /// The agent process
        #[arg(long)]
        pid: u32,
        /// Its start time (clock ticks since boot)
        #[arg(long)]
        start_time: u64,
    },
}

/// How long `session start` waits for etcd (retries included) before it warns and goes on
/// with the local session only.
const START_BUDGET: Duration = Duration::from_secs(2);

/// How long `session end` and `gc` wait for etcd, retries included (the default call deadline).
const END_BUDGET: Duration = Duration::from_secs(15);

/// The longest one keeper call (a keepalive, a revoke) waits, retries included.
const KEEPER_CALL: Duration = Duration::from_secs(5);

/// Runs `concur session`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    match args.action {
        Action::Start {
            pid,
            agent,
            cwd,
            ttl,
        } => {
            let id = ctx.require_session()?;
            let how = Start {
                ttl,
                ..Start::new(StartOptions { pid, agent, cwd })
            };
            let s = ctx
                .backend_within(Some(START_BUDGET))?
                .sessions()?
                .start(&id, &how)?;
            if let Some(w) = &s.warning {
                eprintln!("concur: session: warning: {w}");
            }
            if ctx.json {
                ctx.print_json(&serde_json::to_value(&s).expect("serialises"));
            } else {
                print_line(&s.describe());
            }
        }
        Action::End => {
            let id = ctx.require_session()?;
            let e = ctx.backend_within(Some(END_BUDGET))?.end_session(&id)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "ended": e }));
            } else {
                print_line(&e.describe("ended"));
            }
        }
        Action::List => {
            let backend = ctx.backend()?;
            let all = backend.sessions()?.list()?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "backend": backend.name(), "sessions": all }));
            } else {
                let now = concur::time::now_unix_ms();
                for s in &all {
                    print_line(&s.line(now));
                }
            }
        }
        Action::Gc => {
            let removed = ctx.backend_within(Some(END_BUDGET))?.gc_sessions()?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "removed": removed }));
            } else if removed.is_empty() {
                print_line("no dead sessions");
            } else {
                for e in &removed {
                    print_line(&e.describe("removed dead"));
                }
            }
        }
        Action::Keep {
            id,
            lease,
            ttl_ms,
            pid,
            start_time,
        } => {
            let keeper = Keeper {
                lease,
                ttl: Duration::from_millis(ttl_ms),
                pid,
                start_time,
            };
            let id = concur::SessionId::new(&id)?;
            ctx.backend_within(Some(KEEPER_CALL))?
                .keep_session(&id, &keeper)?;
        }
    }
    Ok(Exit::Ok)
}
