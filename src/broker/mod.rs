//! The broker: one daemon per home that serialises appends to the files it owns and
//! group-commits them.
//!
//! Layers, top-down (as in mini-redis): [`protocol`] (newline-delimited JSON requests and
//! responses) → [`client`] → [`server`] (socket, peer check, roots, connections) → [`commit`]
//! (one writer per file: one `write(2)` + one `fdatasync(2)` per batch, dedup by retry id) →
//! [`Shutdown`] (drain on SIGTERM).
//!
//! | guarantee | where |
//! |---|---|
//! | one broker per home (flock-guarded pidfile) | [`server::Server::bind`] |
//! | socket 0600 in the 0700 home; other uids refused by `SO_PEERCRED` | [`server`] |
//! | only files under `[broker] roots`, symlinks and `..` resolved | [`server::Roots`] |
//! | acked = durable; per-client order; a batch per fdatasync | [`commit`] |
//! | a retried id is written once, also across a restart (window: [`commit::WINDOW`] ids) | [`commit`] |
//! | same sidecar lock as direct writers | [`commit`], [`crate::sidecar`] |
//! | bounded queues: a slow disk blocks senders | [`commit::QUEUE`] |
//! | SIGTERM drains the queues | [`Shutdown`], [`server::Server::run`] |
//!
//! Not guaranteed: a request the broker had not read when it died gets no answer (retry it by
//! id); durability is `fdatasync`'s on a local filesystem.

pub mod client;
pub mod commit;
pub mod protocol;
pub mod send;
pub mod server;
mod shutdown;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub use client::Client;
pub use commit::Ack;
pub use protocol::{Failure, Line, Request, Response};
pub use server::{Roots, Server, pid_path, socket_path};
pub use shutdown::Shutdown;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::sys;

/// The environment variable through which `serve --detach` hands its daemon the readiness pipe.
pub const READY_FD_VAR: &str = "CONCUR_BROKER_READY_FD";

/// The pid of the broker running for `home`, if one runs (its pidfile lock is held).
///
/// # Errors
/// [`Error::Io`] when the pidfile exists but cannot be read or locked.
pub fn running(home: &Home) -> Result<Option<u32>> {
    let p = pid_path(home);
    let mut f = match sys::fs::open(&p, sys::fs::Open::READ) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot open pidfile", &p, e)),
    };
    if sys::lock::try_flock(&f, sys::lock::Mode::Shared).map_err(Error::with("cannot lock", &p))? {
        return Ok(None);
    }
    let mut s = String::new();
    f.read_to_string(&mut s)
        .map_err(Error::with("cannot read pidfile", &p))?;
    Ok(Some(s.trim().parse().unwrap_or(0)))
}

/// Stops the broker of `home` with SIGTERM (it drains its queues first) and waits up to `wait`
/// for it to be gone. Returns its pid, or `None` when none was running.
///
/// # Errors
/// [`Error::Timeout`] when it is still running after `wait`; [`Error::Io`] when it cannot be
/// signalled.
pub fn stop(home: &Home, wait: Duration) -> Result<Option<u32>> {
    let Some(pid) = running(home)? else {
        return Ok(None);
    };
    let p = pid_path(home);
    if pid == 0 {
        return Err(Error::Conflict("a broker is starting up; try again".into()));
    }
    sys::supervise::kill(pid, libc::SIGTERM).map_err(Error::with("cannot signal broker", &p))?;
    let f = sys::fs::open(&p, sys::fs::Open::READ).map_err(Error::with("cannot open", &p))?;
    if !sys::lock::flock_timeout(&f, sys::lock::Mode::Shared, wait)
        .map_err(Error::with("cannot lock", &p))?
    {
        return Err(Error::Timeout {
            what: "broker to stop",
            path: p,
            secs: wait.as_secs_f64(),
        });
    }
    Ok(Some(pid))
}

/// Starts `exe broker serve` as a daemon (own session, stdio detached, stderr appended to
/// `broker.log` in the home) and waits until it listens. Returns its pid.
///
/// # Errors
/// [`Error::Conflict`] when a broker already runs for the home; [`Error::Io`] when the daemon
/// cannot start or dies before it listens (its message is passed on).
pub fn spawn_daemon(home: &Home, exe: &Path, config: Option<&Path>) -> Result<u32> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::os::unix::process::CommandExt;
    let log_path = home.join("broker.log");
    let log = sys::fs::open(&log_path, sys::fs::Open::append(0o600))
        .map_err(Error::with("cannot open", &log_path))?;
    let (mut r, w) = sys::signal::pipe().map_err(Error::with("cannot create pipe", home.path()))?;
    let wfd = w.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.args(["broker", "serve"]);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.env("CONCUR_HOME", home.path())
        .env(READY_FD_VAR, "3")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: only async-signal-safe calls between fork and exec (sigprocmask, setsid, dup2).
    // The closure runs only in the child of the spawn below, while `w` is still open (it is
    // dropped after the spawn; `cmd` is never spawned again), so `wfd` is open in the child;
    // dup_to's contract: descriptor 3 is the number the daemon is told to read (READY_FD_VAR).
    unsafe {
        cmd.pre_exec(move || {
            sys::signal::child_reset_signals()?;
            sys::signal::child_setsid()?;
            sys::supervise::dup_to(BorrowedFd::borrow_raw(wfd), 3)
        });
    }
    let mut child = cmd.spawn().map_err(Error::with("cannot start", exe))?;
    drop(w);
    let mut msg = String::new();
    let _ = r.read_to_string(&mut msg);
    let msg = msg.trim();
    if let Some(pid) = msg.strip_prefix("ready ") {
        return Ok(pid.parse().unwrap_or(child.id()));
    }
    let _ = child.wait();
    if let Some(rest) = msg.strip_prefix("conflict ") {
        return Err(Error::Conflict(rest.to_owned()));
    }
    let why = msg.strip_prefix("error ").unwrap_or(msg);
    let why = if why.is_empty() {
        format!("it exited before listening (see {})", log_path.display())
    } else {
        why.to_owned()
    };
    Err(Error::io(
        "cannot start broker",
        home.path(),
        std::io::Error::other(why),
    ))
}

/// The daemon's start-up: binds the broker of the resolved home with the configuration at
/// `config` (default: the home's), then reports the outcome through `ready` (the pipe
/// [`Readiness::take`] took, if any) to a parent waiting in [`spawn_daemon`]. Call it before
/// spawning threads.
///
/// # Errors
/// As [`Home::resolve`], [`crate::config::Config::load`] and [`Server::bind`] (a broker that
/// already runs is [`Error::Conflict`]).
pub fn bind_reporting(ready: Option<Readiness>, config: Option<&Path>) -> Result<Server> {
    let bound = (|| {
        let home = Home::resolve()?;
        let config = match config {
            Some(p) => crate::config::Config::load(Some(p), None)?,
            None => crate::config::Config::load(None, Some(home.path()))?,
        };
        Server::bind(&home, Roots::from_config(&config))
    })();
    if let Some(ready) = ready {
        report_ready(ready, bound.as_ref().map(drop));
    }
    bound
}

/// The readiness pipe of a daemon started by [`spawn_daemon`]: taken once at start-up with
/// [`Readiness::take`], written once by [`report_ready`], which consumes it.
#[derive(Debug)]
pub struct Readiness(std::fs::File);

impl Readiness {
    /// Takes the readiness pipe this process inherited from [`spawn_daemon`] (the descriptor
    /// named by [`READY_FD_VAR`]); `None` when it was not started that way.
    ///
    /// # Safety
    /// Call at most once per process: the returned value owns the descriptor and closes it, and
    /// a second one would close or write a descriptor number that may since have been reused.
    pub unsafe fn take() -> Option<Readiness> {
        // SAFETY: take_inherited's contract is this function's, passed on to the caller.
        unsafe { sys::fd::take_inherited(READY_FD_VAR) }.map(|fd| Readiness(fd.into()))
    }
}

/// Reports readiness (or the start-up error) to the parent waiting in [`spawn_daemon`], through
/// the pipe `ready` took; the pipe is closed after, which ends the parent's wait. Consuming
/// `ready` makes this happen once.
pub fn report_ready(ready: Readiness, outcome: std::result::Result<(), &Error>) {
    let Readiness(mut f) = ready;
    let line = match outcome {
        Ok(()) => format!("ready {}\n", std::process::id()),
        Err(e @ Error::Conflict(_)) => format!("conflict {e}\n"),
        Err(e) => format!("error {e}\n"),
    };
    let _ = f.write_all(line.as_bytes());
}
