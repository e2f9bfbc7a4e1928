//! The verbs' etcd paths, taken when a backend is set (`--backend`, `CONCUR_BACKEND`, or the
//! config's `[backend] url`): `lock --name`, `slot`. Same options, output and exit
//! codes as the local paths where the concept exists; an option that only makes sense for a
//! local file (shared locks, byte ranges, descriptors) is a usage error naming why.

use std::time::Duration;

use concur::ErrorKind;
use concur::child::{command_for, describe, status_code};
use concur::etcd::hold::{self, Outcome};
use concur::etcd::{Client, Pool, Wait, lock, semaphore};
use concur::home::Home;

use super::lock::{Plan, Target};
use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// The etcd lease TTL of lock and slot holders: a holder that stops renewing (crashed,
/// partitioned) frees its lock this long after its last renewal.
pub const HOLD_TTL: Duration = Duration::from_secs(10);

/// `concur lock --name NAME CMD` on the etcd backend when one is set; `None`: stay local.
pub fn named_lock(ctx: &Ctx, name: Option<&str>, plan: &Plan) -> Result<Option<Exit>, CliError> {
    let Some(name) = name else {
        return Ok(None);
    };
    match ctx.etcd()? {
        Some(client) => lock(&client, name, plan, ctx.home().ok()).map(Some),
        None => Ok(None),
    }
}

/// `client` reusing leases from `home`'s pool for `HOLD_TTL` holders (see
/// [`concur::etcd::pool`]); without a home, or when the pool cannot be set up, `client` as it is.
fn pooled(client: &Client, home: Option<&Home>) -> Client {
    match home.map(|h| Pool::open(h, client, HOLD_TTL)) {
        Some(Ok(pool)) => client.clone().use_lease_pool(pool),
        _ => client.clone(),
    }
}

/// `concur lock --name NAME CMD` on etcd.
pub fn lock(
    client: &Client,
    name: &str,
    plan: &Plan,
    home: Option<&Home>,
) -> Result<Exit, CliError> {
    let refuse = |what: &str| {
        Err(CliError::usage(format!(
            "{what} is not available for etcd locks (--name with a backend)"
        )))
    };
    if plan.mode != Some(concur::lock::Mode::Exclusive) {
        return refuse(if plan.mode.is_none() {
            "-u/--unlock"
        } else {
            "-s/--shared"
        });
    }
    if !matches!(plan.api, concur::lock::Api::Flock) {
        return refuse("--fcntl/--start/--length");
    }
    if plan.no_fork || plan.pass_fd.is_some() || plan.max_hold.is_some() {
        return refuse("--no-fork/--fd/--max-hold");
    }
    debug_assert!(matches!(plan.target, Target::Path(_)));
    let wait = match plan.timeout {
        _ if plan.nonblock => Wait::No,
        Some(t) if t.is_zero() => Wait::No,
        Some(t) => Wait::For(t),
        None => Wait::Forever,
    };
    let session = plan.session.as_deref();
    let client = &pooled(client, home);
    let busy = |msg: String| CliError::new(Exit::Code(plan.conflict_code), "conflict", msg);
    let started = std::time::Instant::now();
    let guard = if let Some(g) = lock::lock(client, name, HOLD_TTL, Wait::No, session)? {
        g
    } else {
        let who = lock::holder(client, name)?
            .map_or_else(|| "another holder".to_string(), |h| h.describe());
        if wait == Wait::No {
            return Err(busy(format!("etcd lock {name} is held by {who}")));
        }
        if !plan.quiet {
            eprintln!("concur: lock: waiting for etcd lock {name} held by {who}");
        }
        match lock::lock(client, name, HOLD_TTL, wait, session) {
            Ok(Some(g)) => g,
            Ok(None) => return Err(busy(format!("etcd lock {name} is busy"))),
            Err(e) if e.kind() == ErrorKind::Conflict => return Err(busy(e.to_string())),
            Err(e) => return Err(e.into()),
        }
    };
    let Some(mut cmd) = command_for(&plan.argv, plan.shell_command.as_ref()) else {
        return Err(CliError::usage("--name needs a command to run (or -c CMD)"));
    };
    if plan.verbose {
        eprintln!(
            "concur: lock: got etcd lock {name} (token {}) in {:.3} s, running {}",
            guard.token(),
            started.elapsed().as_secs_f64(),
            describe(&plan.argv, plan.shell_command.as_ref())
        );
    }
    // The command can fence its own writes: concur json --fence "$CONCUR_FENCE" ...
    cmd.env("CONCUR_FENCE", format!("{name}:{}", guard.token()));
    let out = hold::run(guard.lease(), &mut cmd)?;
    let token = guard.token();
    // Best effort: if the revoke fails, the lease (and the lock) runs out after its TTL.
    let _ = guard.unlock();
    match out {
        Outcome::Exited(st) => {
            let code = status_code(st);
            if plan.json {
                print_line(
                    &serde_json::json!({
                        "ok": true, "backend": "etcd", "locked": name, "token": token,
                        "waited_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(0),
                        "status": code,
                    })
                    .to_string(),
                );
            }
            Ok(Exit::Code(code))
        }
        Outcome::LeaseLost(st) => Err(CliError::new(
            Exit::Code(status_code(st)),
            "conflict",
            format!(
                "lost etcd lock {name} (token {token}): its lease was not renewed in time; command killed"
            ),
        )),
    }
}

/// What `concur slot NAME --max N CMD` asks for.
pub struct SlotRun<'a> {
    pub name: &'a str,
    pub max: u32,
    pub nonblock: bool,
    pub timeout: Option<Duration>,
    pub conflict_code: u8,
    pub quiet: bool,
    pub max_hold: Option<Duration>,
    pub argv: &'a [std::ffi::OsString],
    pub shell_command: Option<&'a std::ffi::OsString>,
    pub json: bool,
    pub session: Option<&'a str>,
    /// The concur home, for the lease pool.
    pub home: Option<&'a Home>,
}

/// `concur slot NAME --max N CMD` on etcd.
pub fn slot(client: &Client, r: &SlotRun<'_>) -> Result<Exit, CliError> {
    if r.max_hold.is_some() {
        return Err(CliError::usage(
            "--max-hold is not available for etcd slots (with a backend)",
        ));
    }
    let max = usize::try_from(r.max).unwrap_or(usize::MAX);
    let wait = match r.timeout {
        _ if r.nonblock => Wait::No,
        Some(t) if t.is_zero() => Wait::No,
        Some(t) => Wait::For(t),
        None => Wait::Forever,
    };
    let name = r.name;
    let client = &pooled(client, r.home);
    let busy = |what: &str| {
        CliError::new(
            Exit::Code(r.conflict_code),
            "conflict",
            format!("{what} for etcd slot {name} (all {max} held)"),
        )
    };
    let started = std::time::Instant::now();
    let permit =
        if let Some(p) = semaphore::acquire(client, name, max, HOLD_TTL, Wait::No, r.session)? {
            p
        } else {
            if wait == Wait::No {
                return Err(busy("no free slot"));
            }
            if !r.quiet {
                let (held, _) = semaphore::holders(client, name)?;
                let who: Vec<String> = held.iter().map(lock::Holder::describe).collect();
                eprintln!(
                    "concur: slot: waiting for a slot of {name} on etcd ({} of {max} held: {})",
                    held.len(),
                    who.join("; ")
                );
            }
            match semaphore::acquire(client, name, max, HOLD_TTL, wait, r.session) {
                Ok(Some(p)) => p,
                Ok(None) => return Err(busy("no free slot")),
                Err(e) if e.kind() == ErrorKind::Conflict => return Err(busy("timed out waiting")),
                Err(e) => return Err(e.into()),
            }
        };
    let Some(mut cmd) = command_for(r.argv, r.shell_command) else {
        return Err(CliError::usage(
            "give a command to run (after --) or -c CMD",
        ));
    };
    let out = hold::run(permit.lease(), &mut cmd)?;
    let (token, rank) = (permit.token(), permit.rank());
    let _ = permit.release();
    match out {
        Outcome::Exited(st) => {
            let code = status_code(st);
            if r.json {
                print_line(
                    &serde_json::json!({
                        "ok": true, "backend": "etcd", "slot": name, "index": rank,
                        "token": token, "status": code,
                        "waited_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(0),
                    })
                    .to_string(),
                );
            }
            Ok(Exit::Code(code))
        }
        Outcome::LeaseLost(st) => Err(CliError::new(
            Exit::Code(status_code(st)),
            "conflict",
            format!("lost etcd slot {name}: its lease was not renewed in time; command killed"),
        )),
    }
}

/// `concur slot status NAME` on etcd.
pub fn slot_status(client: &Client, name: &str, ctx: &Ctx) -> Result<Exit, CliError> {
    let (held, max) = semaphore::holders(client, name)?;
    if ctx.json {
        let list: Vec<_> = held
            .iter()
            .map(|h| {
                serde_json::json!({
                    "token": h.token, "pid": h.info.get("pid"), "session": h.info.get("session"),
                    "host": h.info.get("host"), "since": h.info.get("since"),
                })
            })
            .collect();
        ctx.print_json(&serde_json::json!({
            "slot": name, "backend": "etcd", "max": max, "held": held.len(), "holders": list,
        }));
    } else if let Some(max) = max {
        print_line(&format!("{name}: {} of {max} held (etcd)", held.len()));
        for h in &held {
            print_line(&format!("  {}", h.describe()));
        }
    } else {
        print_line(&format!("{name}: unused (etcd)"));
    }
    Ok(Exit::Ok)
}
