//! Holding a named lock or a slot while a command runs, on any backend: the one runner behind
//! `concur lock --name` and `concur slot`.
//!
//! [`run`] tries once; when the name is busy it names the holders (through the caller's `say`)
//! and waits as the [`Wait`] policy says; then it runs the command under the hold with
//! [`crate::child`]'s supervision (signals forwarded, `--max-hold` kills the command's process
//! group, the command dies with this process), releases, and reports one [`Report`] whatever
//! the backend. A local hold is a kernel lock and cannot be lost while this process lives; an
//! etcd hold lives on a lease, and the command is killed the moment the lease is lost (see
//! [`crate::etcd::hold`]). A lock's command gets `CONCUR_FENCE=NAME:TOKEN` for fenced writes.
//!
//! Not guaranteed: that the command's own children die with it when it is killed (see
//! [`crate::child`]).

use std::ffi::OsString;
use std::time::{Duration, Instant};

use crate::backend::held::Held;
use crate::backend::slots::SlotHolder;
use crate::backend::{Backend, Wait};
use crate::child::{self, Ended, Supervise};
use crate::error::{Error, Result};
use crate::lock::Holder;

/// What to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The named exclusive lock.
    Lock(String),
    /// One of `max` slots of a name.
    Slot {
        /// The slot's name.
        name: String,
        /// How many may hold it at once.
        max: u32,
    },
}

impl Claim {
    /// The lock's or slot's name.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Claim::Lock(n) | Claim::Slot { name: n, .. } => n,
        }
    }

    /// `lock NAME` or `slot NAME`, as messages name it.
    #[must_use]
    pub fn what(&self) -> String {
        match self {
            Claim::Lock(n) => format!("lock {n}"),
            Claim::Slot { name, .. } => format!("slot {name}"),
        }
    }
}

/// A command to run while holding a claim.
#[derive(Debug, Clone)]
pub struct Hold {
    /// What to hold.
    pub claim: Claim,
    /// How long to wait when it is busy.
    pub wait: Wait,
    /// The holder's session, recorded for others to see.
    pub session: Option<String>,
    /// The command and its arguments (ignored with `shell_command`).
    pub argv: Vec<OsString>,
    /// A command line for `$SHELL -c`.
    pub shell_command: Option<OsString>,
    /// Kill the command's process group after this long, then release.
    pub max_hold: Option<Duration>,
    /// Do not look up and name the holders when busy or waiting.
    pub quiet: bool,
    /// Say how long getting the hold took and what runs.
    pub verbose: bool,
}

/// How a hold ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Still held by others when the wait ended ([`Wait::No`] or the time ran out): why, naming
    /// the holders unless quiet. Nothing ran.
    Busy(String),
    /// The command could not be started (not found, not executable): nothing ran.
    NotRun(String),
    /// The command ran under the hold.
    Ran(Report),
}

/// What happened to a command run under a hold: the same fields on every backend.
#[derive(Debug, Clone)]
pub struct Report {
    /// `"local"` or `"etcd"`.
    pub backend: &'static str,
    /// What was held.
    pub claim: Claim,
    /// The hold's fencing token (a lock; a slot on etcd).
    pub token: Option<i64>,
    /// The slot index (slots only).
    pub index: Option<u32>,
    /// How long getting the hold took.
    pub waited: Duration,
    /// The program that ran.
    pub program: String,
    /// How the command ended.
    pub ended: Ended,
}

impl Report {
    /// The command's exit code: its own, or 128+N when signal N killed it.
    #[must_use]
    pub fn status(&self) -> u8 {
        self.ended.code()
    }

    /// The `--json` result (without `ok`).
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "backend": self.backend,
            "token": self.token,
            "waited_ms": u64::try_from(self.waited.as_millis()).unwrap_or(u64::MAX),
            "status": self.status(),
            "over_limit": self.ended.over_limit,
            "lost": self.ended.lost,
        });
        match &self.claim {
            Claim::Lock(n) => v["locked"] = n.as_str().into(),
            Claim::Slot { name, .. } => {
                v["slot"] = name.as_str().into();
                v["index"] = self.index.into();
            }
        }
        v
    }

    /// What the user must be told beyond the status: the hold limit or a lost lease killed
    /// the command.
    #[must_use]
    pub fn notice(&self) -> Option<String> {
        let what = self.claim.what();
        if self.ended.lost {
            let token = self
                .token
                .map(|t| format!(" (token {t})"))
                .unwrap_or_default();
            Some(format!(
                "lost {what}{token}: its lease was not renewed in time; {} killed",
                self.program
            ))
        } else if self.ended.over_limit {
            Some(format!(
                "{} held {what} longer than --max-hold; killed its process group",
                self.program
            ))
        } else {
            None
        }
    }
}

/// Holds `h.claim` on `backend` and runs the command under it (see the module docs). `say`
/// gets the progress a user should see on stderr: whom it waits for, and with
/// [`Hold::verbose`] how long it took.
///
/// # Errors
/// [`Error::Invalid`] for a bad name, a `max` other than the recorded one, or no command; the
/// backend's errors; a lease that can no longer be watched (the command is killed).
pub fn run(backend: &Backend, h: &Hold, say: &mut dyn FnMut(&str)) -> Result<Outcome> {
    // Before any thread starts (a lease's keepalive): see `child::reserve_sigchld`.
    child::reserve_sigchld().map_err(|e| Error::io("cannot block SIGCHLD", "concur", e))?;
    let Some(mut cmd) = child::command_for(&h.argv, h.shell_command.as_ref()) else {
        return Err(Error::Invalid("no command to run".into()));
    };
    let described = child::describe(&h.argv, h.shell_command.as_ref());
    let me = Holder::me(h.session.clone(), Some(described.clone()));
    let started = Instant::now();
    let held = match acquire(backend, h, &me, say)? {
        Ok(held) => held,
        Err(busy) => return Ok(Outcome::Busy(busy)),
    };
    let waited = started.elapsed();
    if h.verbose {
        let token = held
            .token()
            .map(|t| format!(" (token {t})"))
            .unwrap_or_default();
        say(&format!(
            "got {}{token} in {:.3} s, running {described}",
            h.claim.what(),
            waited.as_secs_f64()
        ));
    }
    if let (Claim::Lock(name), Some(token)) = (&h.claim, held.token()) {
        // The command can fence its own writes: concur write --fence "$CONCUR_FENCE" ...
        cmd.env("CONCUR_FENCE", format!("{name}:{token}"));
    }
    let program = cmd.get_program().to_string_lossy().into_owned();
    let how = Supervise {
        max_hold: h.max_hold,
        die_with_parent: true,
        pass_fds: Vec::new(),
    };
    let ended = supervise(&held, cmd, &how)?;
    let (token, index) = (held.token(), held.index());
    // Best effort: a lock the kernel or the lease's TTL frees anyway.
    let _ = held.release();
    Ok(match ended {
        Ok(ended) => Outcome::Ran(Report {
            backend: backend.name(),
            claim: h.claim.clone(),
            token,
            index,
            waited,
            program,
            ended,
        }),
        Err(e) => {
            let why = e.to_string();
            let why = why.split(" (os error").next().unwrap_or(&why).to_owned();
            Outcome::NotRun(format!("failed to execute {program}: {why}"))
        }
    })
}

/// Tries once; if busy, names the holders and waits as `h.wait` says. The inner `Err` is the
/// busy message.
fn acquire(
    backend: &Backend,
    h: &Hold,
    me: &Holder,
    say: &mut dyn FnMut(&str),
) -> Result<std::result::Result<Held, String>> {
    let take = |wait: Wait| match &h.claim {
        Claim::Lock(name) => backend.locks()?.acquire(name, wait, me),
        Claim::Slot { name, max } => backend.slots()?.acquire(name, *max, wait, me),
    };
    if let Some(held) = take(Wait::No)? {
        return Ok(Ok(held));
    }
    let what = h.claim.what();
    let who = if h.quiet {
        String::new()
    } else {
        format!(": {}", holders(backend, &h.claim)?)
    };
    if h.wait == Wait::No {
        return Ok(Err(format!("{what} is busy{who}")));
    }
    if !h.quiet {
        say(&format!("waiting for {what}{who}"));
    }
    Ok(match take(h.wait)? {
        Some(held) => Ok(held),
        None => Err(format!("timed out waiting for {what}{who}")),
    })
}

/// `held by pid 12 (session a, 3 s) on h1` (a lock), `2 of 2 held: pid 12 (...), pid 13`
/// (a slot): the one way every backend names who holds a name.
///
/// # Errors
/// The backend's errors.
pub fn holders(backend: &Backend, claim: &Claim) -> Result<String> {
    Ok(match claim {
        Claim::Lock(name) => {
            let hs = backend.locks()?.holders(name)?;
            match hs.split_first() {
                None => "held by another holder".to_string(),
                Some((first, [])) => format!("held by {}", first.describe()),
                Some((first, more)) => {
                    format!("held by {} and {} more", first.describe(), more.len())
                }
            }
        }
        Claim::Slot { name, max } => {
            let st = backend.slots()?.status(name)?;
            let who: Vec<String> = st.held.iter().map(SlotHolder::describe).collect();
            format!(
                "{} of {} held: {}",
                st.held.len(),
                st.max.unwrap_or(*max),
                who.join(", ")
            )
        }
    })
}

/// Runs `cmd` under `held`: the outer error is a lease that could not be watched, the inner one
/// a command that could not start.
#[cfg_attr(not(feature = "etcd"), allow(clippy::unnecessary_wraps))]
fn supervise(
    held: &Held,
    cmd: std::process::Command,
    how: &Supervise,
) -> Result<std::io::Result<Ended>> {
    #[cfg(feature = "etcd")]
    if let Some(lease) = held.lease() {
        return crate::etcd::hold::run(lease, cmd, how);
    }
    let _ = held;
    Ok(child::run(cmd, how))
}
