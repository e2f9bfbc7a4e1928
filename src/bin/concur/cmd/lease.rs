//! `concur lease acquire|renew|release|complete|show|list`: task leases with fencing tokens.

use std::time::Duration;

use concur::lease::{AcquireRequest, Acquired, Completion, Lease, TaskState};
use concur::session::Registry;
use concur::time::now_unix_ms;

use super::session::age;
use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Task leases: one live holder per task, a fencing token that only grows, build-once.
///
/// `acquire` prints the fencing token and exits 0, or exits 1 naming the holder (session, pid,
/// cwd, age). The same session re-acquiring gets its lease back, extended. A holder whose session
/// died (see `concur session`) loses the lease at once; an expired TTL frees it only when the
/// holder is not known alive. `--once` + `complete` = build-once: the task is never acquired
/// again (exit 1 naming who completed it when).
///
/// Example: `tok=$(concur lease acquire build:web --once --ttl 10m) && make web && concur lease complete build:web`
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Take the lease on TASK (prints the fencing token), or exit 1 naming the holder
    ///
    /// Example: `concur lease acquire deploy:prod --ttl 5m -w 30`
    Acquire {
        /// The task (1 to 256 bytes, no control characters)
        task: String,
        /// Time to live (30s, 10m, 2h); renew before it runs out
        #[arg(long, value_name = "D", default_value = "10m")]
        ttl: String,
        /// Build-once: after `complete`, the task is never acquired again
        #[arg(long)]
        once: bool,
        /// Wait up to DURATION (10, 1.5s, 1m) for the lease (etcd: watches the holder's key; SQLite: tries again
        /// after 5 ms, backing off to 200 ms)
        #[arg(short = 'w', long = "wait", value_name = "DURATION", default_value = "0",
              value_parser = super::value::duration)]
        wait: Duration,
    },
    /// Extend this session's lease on TASK by --ttl from now (exit 1 if not the holder)
    ///
    /// Example: `concur lease renew deploy:prod --ttl 5m`
    Renew {
        /// The task
        task: String,
        /// New time to live from now
        #[arg(long, value_name = "D", default_value = "10m")]
        ttl: String,
    },
    /// Release this session's lease on TASK (exit 1 if it held none)
    ///
    /// Example: `concur lease release deploy:prod`
    Release {
        /// The task
        task: String,
    },
    /// Mark TASK done and release it; a --once task is never acquired again
    ///
    /// Example: `concur lease complete build:web`
    Complete {
        /// The task
        task: String,
    },
    /// Show TASK's holder, token, expiry and completion
    ///
    /// Example: `concur lease show build:web --json`
    Show {
        /// The task
        task: String,
    },
    /// List held and completed tasks
    ///
    /// Example: `concur lease list`
    List,
}

fn ttl_of(s: &str) -> Result<Duration, CliError> {
    Ok(concur::duration::parse(s)?)
}

/// Runs `concur lease`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let store = ctx.lease_store()?;
    match args.action {
        Action::Acquire {
            task,
            ttl,
            once,
            wait,
        } => {
            let req = AcquireRequest {
                task,
                session: ctx.require_session()?,
                ttl: ttl_of(&ttl)?,
                once,
                cwd: std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            };
            match store.acquire_wait(&req, wait)? {
                Acquired::Granted(l) => {
                    warn_if_dead(ctx, &req.session);
                    if ctx.json {
                        ctx.print_json(&serde_json::json!({ "lease": l }));
                    } else {
                        print_line(&l.token.to_string());
                    }
                    Ok(Exit::Ok)
                }
                Acquired::Held(l) => Err(conflict(held_message(&l))),
                Acquired::Completed(c) => Err(conflict(completed_message(&c))),
            }
        }
        Action::Renew { task, ttl } => {
            let l = store.renew(&task, &ctx.require_session()?, ttl_of(&ttl)?)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "lease": l }));
            } else {
                print_line(&l.token.to_string());
            }
            Ok(Exit::Ok)
        }
        Action::Release { task } => {
            let session = ctx.require_session()?;
            match store.release(&task, &session)? {
                Some(l) => {
                    if ctx.json {
                        ctx.print_json(&serde_json::json!({ "released": l }));
                    }
                    Ok(Exit::Ok)
                }
                None => Err(conflict(format!(
                    "session {session} holds no lease on {task:?}"
                ))),
            }
        }
        Action::Complete { task } => {
            let c = store.complete(&task, &ctx.require_session()?)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "completed": c }));
            }
            Ok(Exit::Ok)
        }
        Action::Show { task } => {
            let st = store.show(&task)?;
            if ctx.json {
                ctx.print_json(&serde_json::to_value(&st).expect("serialises"));
            } else {
                print_line(&state_line(&st));
            }
            Ok(Exit::Ok)
        }
        Action::List => {
            let all = store.list()?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "tasks": all }));
            } else {
                for st in &all {
                    print_line(&state_line(st));
                }
            }
            Ok(Exit::Ok)
        }
    }
}

/// A lease held by a session whose registered process is gone can be taken over at once: say so
/// (the usual cause is registering the hook's own short-lived pid instead of the agent's).
fn warn_if_dead(ctx: &Ctx, session: &concur::SessionId) {
    let Ok(reg) = ctx
        .home()
        .map_err(drop)
        .and_then(|h| Registry::open(h).map_err(drop))
    else {
        return;
    };
    if let Ok(Some(s)) = reg.get(session)
        && !s.is_alive()
    {
        eprintln!(
            "concur: lease: warning: session {session} is registered with pid {} which is gone; \
             others can take this lease over at once (register the agent: concur session start --pid PID)",
            s.pid
        );
    }
}

fn conflict(message: String) -> CliError {
    CliError::new(Exit::Conflict, "conflict", message)
}

fn held_message(l: &Lease) -> String {
    format!(
        "task {:?} is held by session {} (pid {}, cwd {}, {}, token {})",
        l.task,
        l.session,
        l.pid
            .map_or_else(|| "unknown".to_owned(), |p| p.to_string()),
        l.cwd,
        age(now_unix_ms(), l.acquired_at),
        l.token
    )
}

fn completed_message(c: &Completion) -> String {
    format!(
        "task {:?} was completed by session {} at {} ({} ago); a --once task is never acquired again",
        c.task,
        c.session,
        utc(c.at),
        age(now_unix_ms(), c.at)
    )
}

fn state_line(st: &TaskState) -> String {
    if let Some(l) = &st.lease {
        format!(
            "{}\theld by {} ({})\tpid {}\ttoken {}\t{}\texpires in {}s{}{}",
            st.task,
            l.session,
            st.holder.unwrap_or("-"),
            l.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            l.token,
            age(now_unix_ms(), l.acquired_at),
            l.expires_in_ms / 1000,
            if l.once { "\tonce" } else { "" },
            if st.reclaimable { "\treclaimable" } else { "" },
        )
    } else if let Some(c) = &st.completed {
        format!(
            "{}\tcompleted by {} at {}\ttoken {}",
            st.task,
            c.session,
            utc(c.at),
            c.token
        )
    } else {
        format!("{}\tfree", st.task)
    }
}

// `YYYY-MM-DDTHH:MM:SSZ` for Unix milliseconds.
use concur::time::utc_seconds as utc;

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(1_709_210_096_000), "2024-02-29T12:34:56Z");
    }
}
