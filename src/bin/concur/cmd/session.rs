//! `concur session start|end|list|gc`: the registry of live sessions; with an etcd backend,
//! also the sessions of every machine (`session/ID` keys kept alive by a detached keeper).

use std::time::Duration;

use concur::session::{Cleanup, Registry, Session, StartOptions};

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
    /// End this session: release its leases, remove its markers, pointers and record (and,
    /// with a backend, revoke its etcd registration and stop its keeper)
    ///
    /// Example: `concur session end --session s1`
    End,
    /// List registered sessions, live ones and dead ones (marked); with a backend, the live
    /// sessions on etcd from every machine, this host's marked
    ///
    /// Example: `concur --backend etcd://10.0.0.1:2379 session list --json`
    List,
    /// End every dead session (its process is gone) and say what was removed (local only:
    /// etcd expires a dead session's key itself)
    ///
    /// Example: `concur session gc`
    Gc,
    /// (internal) keep a session's etcd lease alive until its process exits
    #[cfg(feature = "etcd")]
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

/// The TTL of a session's etcd lease unless `session start --ttl` says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// How long `session start` waits for etcd (retries included) before it warns and goes on
/// with the local session only.
const START_BUDGET: Duration = Duration::from_secs(2);

/// How long `session end` waits for etcd, retries included (the default call deadline).
const END_BUDGET: Duration = Duration::from_secs(15);

/// The etcd client and URL of the backend in effect.
#[cfg(feature = "etcd")]
pub type Backend = (concur::etcd::Client, String);
/// No backend can be in effect in a build without etcd.
#[cfg(not(feature = "etcd"))]
pub type Backend = std::convert::Infallible;

/// The backend in effect, with every call bounded by `budget`; `None` for local.
///
/// # Errors
/// A malformed backend URL (or one this build cannot use): exit 4, before anything is written.
pub fn backend(ctx: &Ctx, budget: Duration) -> Result<Option<Backend>, CliError> {
    #[cfg(feature = "etcd")]
    {
        let Some(client) = ctx.etcd_within(Some(budget))? else {
            return Ok(None);
        };
        let url = ctx.backend_url()?.unwrap_or_default();
        Ok(Some((client, url)))
    }
    #[cfg(not(feature = "etcd"))]
    {
        let _ = budget;
        ctx.etcd()
    }
}

/// Registers the locally started session `s` on the backend, if any. A failure (etcd
/// unreachable, keeper not started) is one warning line on stderr, `concur: VERB: warning: ...`:
/// the local session stands and the caller exits 0.
pub fn start_on_backend(
    backend: Option<Backend>,
    reg: &Registry,
    s: &Session,
    ttl: Duration,
    verb: &str,
) -> Option<serde_json::Value> {
    let b = backend?;
    #[cfg(feature = "etcd")]
    {
        let (client, url) = b;
        let started = std::env::current_exe()
            .map_err(|e| concur::Error::io("cannot find own executable", "/proc/self/exe", e))
            .and_then(|exe| concur::etcd::session::start(&client, &url, reg, s, ttl, &exe));
        match started {
            Ok(st) => Some(serde_json::json!({
                "backend": url,
                "lease": format!("{:x}", st.lease),
                "ttl_ms": st.ttl_ms,
                "keeper": st.keeper,
            })),
            Err(e) => {
                eprintln!(
                    "concur: {verb}: warning: session {} not registered on {url} ({e}); it is \
                     registered on this machine only",
                    s.id
                );
                None
            }
        }
    }
    #[cfg(not(feature = "etcd"))]
    {
        let _ = (reg, s, ttl, verb);
        match b {}
    }
}

/// Ends session `id` on the backend, if any: stops its keeper, revokes its etcd lease.
///
/// # Errors
/// When no etcd member answered.
#[cfg_attr(not(feature = "etcd"), allow(clippy::unnecessary_wraps))]
pub fn end_on_backend(
    backend: Option<Backend>,
    reg: &Registry,
    id: &concur::SessionId,
) -> concur::Result<Option<serde_json::Value>> {
    let Some(b) = backend else {
        return Ok(None);
    };
    #[cfg(feature = "etcd")]
    {
        let e = concur::etcd::session::end(&b.0, reg, id)?;
        Ok(Some(serde_json::to_value(e).expect("serialises")))
    }
    #[cfg(not(feature = "etcd"))]
    {
        let _ = (reg, id);
        match b {}
    }
}

/// Runs `concur session`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let home = ctx.home()?;
    let reg = Registry::open(home)?;
    match args.action {
        Action::Start {
            pid,
            agent,
            cwd,
            ttl,
        } => start(ctx, &reg, &StartOptions { pid, agent, cwd }, ttl)?,
        Action::End => end(ctx, &reg)?,
        #[cfg(feature = "etcd")]
        Action::List if ctx.etcd()?.is_some() => {
            let client = ctx.etcd()?.expect("checked");
            list_etcd(ctx, &client)?;
        }
        #[cfg(feature = "etcd")]
        Action::Keep {
            id,
            lease,
            ttl_ms,
            pid,
            start_time,
        } => {
            let id = concur::SessionId::new(&id)?;
            let Some(client) = ctx.etcd_within(Some(KEEPER_CALL))? else {
                return Err(CliError::usage("session keep needs a backend"));
            };
            let ttl = Duration::from_millis(ttl_ms);
            concur::etcd::session::keep(&client, &reg, &id, lease, ttl, pid, start_time);
            concur::etcd::session::forget_keeper(&reg, &id, std::process::id())?;
        }
        Action::List => {
            let all = reg.list()?;
            let now = concur::time::now_unix_ms();
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

/// `session start`: locally, then on the backend (a failure there is a warning).
fn start(ctx: &Ctx, reg: &Registry, opts: &StartOptions, ttl: Duration) -> Result<(), CliError> {
    let id = ctx.require_session()?;
    let backend = backend(ctx, START_BUDGET)?;
    let s = reg.start(&id, opts)?;
    let etcd = start_on_backend(backend, reg, &s, ttl, "session");
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "session": s, "etcd": etcd }));
    } else {
        let on = etcd.as_ref().map_or(String::new(), |e| {
            format!(
                "; on {} (keeper pid {})",
                e["backend"].as_str().unwrap_or("etcd"),
                e["keeper"]
            )
        });
        print_line(&format!("session {} started (pid {}){on}", s.id, s.pid));
    }
    Ok(())
}

/// `session end`: leases, markers, pointers, record; then the etcd registration.
fn end(ctx: &Ctx, reg: &Registry) -> Result<(), CliError> {
    let id = ctx.require_session()?;
    let store = ctx.lease_store()?;
    let backend = backend(ctx, END_BUDGET)?;
    let c = reg.end(&id, &*store)?;
    let etcd = end_on_backend(backend, reg, &id)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "ended": c, "etcd": etcd }));
    } else {
        let mut line = describe(&c, "ended");
        if let Some(e) = &etcd {
            line.push_str(if e["revoked"] == true {
                ", etcd registration revoked"
            } else {
                ", not registered on etcd"
            });
        }
        print_line(&line);
    }
    Ok(())
}

/// The longest one keeper call (a keepalive, a revoke) waits, retries included.
#[cfg(feature = "etcd")]
const KEEPER_CALL: Duration = Duration::from_secs(5);

/// `session list` on etcd: every machine's sessions, this host's marked.
#[cfg(feature = "etcd")]
fn list_etcd(ctx: &Ctx, client: &concur::etcd::Client) -> Result<(), CliError> {
    let all = concur::etcd::session::sessions(client)?;
    if ctx.json {
        let v: Vec<_> = all
            .iter()
            .map(|s| {
                let mut o = serde_json::to_value(s).expect("serialises");
                o["this_host"] = s.is_this_host().into();
                o
            })
            .collect();
        ctx.print_json(&serde_json::json!({ "backend": "etcd", "sessions": v }));
    } else {
        let now = concur::time::now_unix_ms();
        for s in &all {
            let here = if s.is_this_host() { " (this host)" } else { "" };
            print_line(&format!(
                "{}\t{}{here}\tpid {}\t{}\t{}\t{}",
                s.id,
                s.host,
                s.pid,
                s.agent.as_deref().unwrap_or("-"),
                age(now, s.started_at),
                s.cwd.display()
            ));
        }
    }
    Ok(())
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
