//! Session liveness on etcd: a session is live while its key `session/ID`, attached to the
//! session's own kept-alive lease, exists.
//!
//! A crashed or partitioned session stops renewing; etcd deletes its key when the lease runs
//! out, with no clock comparison anywhere. Anything else attached to the same lease (locks,
//! slots taken with it) goes at the same moment.
//!
//! Two ways to keep the lease alive:
//! - [`register`]: a thread of the calling process renews it while the [`Registration`] lives
//!   (a long-running process that is itself the session);
//! - [`start`]: for an agent session registered by a short-lived command (`concur session
//!   start`, the `SessionStart` hook). It grants the lease, puts the key ([`Info`]: id, host,
//!   boot, pid, cwd, agent, start time) and starts a detached *keeper* process (`concur session
//!   keep`, in its own session, stdio on `/dev/null`, no other inherited descriptor, cwd `/`)
//!   that renews the lease every TTL/3
//!   and revokes it as soon as the agent process exits — it waits on a pidfd (`pidfd_open(2)`),
//!   no polling; where pidfds are unavailable it checks `/proc` once a second. `session end`
//!   ([`end`]) stops the keeper (SIGTERM, by the pid and start time in
//!   `sessions/ID.keeper`) and revokes the lease.
//!
//! Not guaranteed: a keeper that cannot reach etcd for longer than the TTL gives up (the server
//! has expired the lease by then); the session stays registered locally but is no longer listed
//! on etcd until it starts again. A keeper killed by someone else leaves the key to expire after
//! the TTL.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::Client;
use super::lease::Lease;
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::session::{Registry, Session};
use crate::sys;

/// A registered session; it stays live while this value lives (keepalive thread).
#[derive(Debug)]
pub struct Registration {
    lease: Lease,
}

impl Registration {
    /// The session's lease.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Ends the session now: its key (and everything on its lease) is deleted.
    ///
    /// # Errors
    /// [`crate::Error::Io`] when no member answered (the key then expires with the lease).
    pub fn end(self) -> Result<()> {
        self.lease.revoke()
    }

    /// Leaves the session registered after this process exits, until its TTL runs out
    /// unrenewed; returns the lease id.
    pub fn detach(self) -> i64 {
        self.lease.detach()
    }
}

/// Registers session `id` with `info` (pid, cwd, agent, ...) on a new lease of `ttl`.
///
/// # Errors
/// [`crate::Error::Io`] when no member answered.
pub fn register(
    client: &Client,
    id: &SessionId,
    info: &Value,
    ttl: Duration,
) -> Result<Registration> {
    let lease = Lease::grant(client, ttl)?;
    client.put(
        &client.key(&format!("session/{}", id.as_str())),
        info.to_string().as_bytes(),
        lease.id(),
    )?;
    Ok(Registration { lease })
}

/// The live sessions: id and info, oldest first.
///
/// # Errors
/// [`crate::Error::Io`] when no member answered.
pub fn list(client: &Client) -> Result<Vec<(String, Value)>> {
    let prefix = client.key("session/");
    let (kvs, _) = client.range_prefix(&prefix)?;
    Ok(kvs
        .into_iter()
        .map(|kv| {
            let id = String::from_utf8_lossy(&kv.key[prefix.len()..]).into_owned();
            (id, serde_json::from_slice(&kv.value).unwrap_or(Value::Null))
        })
        .collect())
}

/// Whether session `id` is live.
///
/// # Errors
/// [`crate::Error::Io`] when no member answered.
pub fn is_live(client: &Client, id: &SessionId) -> Result<bool> {
    Ok(client
        .get(&client.key(&format!("session/{}", id.as_str())))?
        .is_some())
}

/// What a session's key says about it (for display; `host` and `boot_id` tell this machine's
/// sessions from others').
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Info {
    /// The session id.
    pub id: String,
    /// The host name of the machine the session runs on.
    pub host: String,
    /// That machine's boot id.
    pub boot_id: String,
    /// The agent process (on that machine).
    pub pid: u32,
    /// The working directory the session registered from (on that machine).
    pub cwd: PathBuf,
    /// The agent, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// When the session registered, in milliseconds since the Unix epoch (display only).
    pub started_at: u64,
}

impl Info {
    /// The key's value for a locally registered session.
    pub fn of(s: &Session) -> Info {
        Info {
            id: s.id.clone(),
            host: hostname(),
            boot_id: s.boot_id.clone(),
            pid: s.pid,
            cwd: s.cwd.clone(),
            agent: s.agent.clone(),
            started_at: s.started_at,
        }
    }

    /// Whether the session runs on this machine: same host name and same boot.
    pub fn is_this_host(&self) -> bool {
        self.host == hostname() && crate::time::boot_id().is_ok_and(|b| b == self.boot_id)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn session_key(client: &Client, id: &str) -> Vec<u8> {
    client.key(&format!("session/{id}"))
}

/// The sessions registered on etcd, from every machine, oldest first. A value that is not an
/// [`Info`] (a [`register`]ed process with its own fields) shows with its id and defaults.
///
/// # Errors
/// [`crate::Error::Io`] when no member answered.
pub fn sessions(client: &Client) -> Result<Vec<Info>> {
    let mut out: Vec<Info> = list(client)?
        .into_iter()
        .map(|(id, v)| {
            let mut info: Info = serde_json::from_value(v).unwrap_or_default();
            info.id = id;
            info
        })
        .collect();
    out.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    Ok(out)
}

/// The keeper of a session started with [`start`], as recorded in `sessions/ID.keeper`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keeper {
    /// The keeper's pid.
    pub pid: u32,
    /// Its start time (clock ticks since boot), so a reused pid is never signalled.
    pub start_time: u64,
    /// The etcd lease it keeps alive.
    pub lease: i64,
}

fn keeper_path(reg: &Registry, id: &SessionId) -> Result<PathBuf> {
    Ok(reg.home().subdir("sessions")?.join(format!("{id}.keeper")))
}

/// The keeper record of `id`, if any (an unreadable one counts as none).
///
/// # Errors
/// As [`crate::Home::subdir`].
pub fn keeper(reg: &Registry, id: &SessionId) -> Result<Option<Keeper>> {
    let p = keeper_path(reg, id)?;
    Ok(std::fs::read(&p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Stops `id`'s keeper, if it still runs (SIGTERM, checked by pid and start time), and removes
/// its record. Returns the pid signalled.
///
/// # Errors
/// As [`crate::Home::subdir`].
pub fn stop_keeper(reg: &Registry, id: &SessionId) -> Result<Option<u32>> {
    let Some(k) = keeper(reg, id)? else {
        return Ok(None);
    };
    let signalled = (sys::proc::is_alive(k.pid, k.start_time)
        && sys::supervise::kill(k.pid, libc::SIGTERM).is_ok())
    .then_some(k.pid);
    let _ = std::fs::remove_file(keeper_path(reg, id)?);
    Ok(signalled)
}

/// What [`start`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Started {
    /// The session's etcd lease.
    pub lease: i64,
    /// The TTL the server granted.
    pub ttl_ms: u64,
    /// The keeper process's pid.
    pub keeper: u32,
}

/// Registers the locally started `session` on etcd (key `session/ID` on a new lease of `ttl`)
/// and starts its detached keeper: `exe --backend URL session keep ...` with `CONCUR_HOME` set
/// to the registry's home. A keeper of an earlier start of the same session is stopped and its
/// lease revoked (the key has moved to the new lease by then).
///
/// # Errors
/// [`Error::Io`] when no member answered or the keeper cannot be started; nothing stays
/// registered on etcd then (the lease is revoked, best effort).
pub fn start(
    client: &Client,
    url: &str,
    reg: &Registry,
    session: &Session,
    ttl: Duration,
    exe: &Path,
) -> Result<Started> {
    let id = SessionId::new(&session.id)?;
    let (lease, granted) = client.grant(ttl)?;
    let value = serde_json::to_vec(&Info::of(session)).expect("an Info serialises");
    let undo = |e: Error| {
        let _ = client.revoke(lease);
        e
    };
    client
        .put(&session_key(client, &session.id), &value, lease)
        .map_err(undo)?;
    if let Some(old) = keeper(reg, &id).map_err(undo)? {
        let _ = stop_keeper(reg, &id);
        if old.lease != lease {
            let _ = client.revoke(old.lease);
        }
    }
    let granted_ms = u64::try_from(granted.as_millis()).unwrap_or(u64::MAX);
    let pid = spawn_keeper(reg, url, session, lease, granted_ms, exe).map_err(undo)?;
    let k = Keeper {
        pid,
        start_time: sys::proc::start_time(pid).unwrap_or(0),
        lease,
    };
    let path = match keeper_path(reg, &id) {
        Ok(p) => p,
        Err(e) => {
            let _ = sys::supervise::kill(pid, libc::SIGTERM);
            return Err(undo(e));
        }
    };
    let json = serde_json::to_vec(&k).expect("a keeper record serialises");
    if let Err(e) = sys::fs::write_atomic(&path, &json, &sys::fs::Atomic::new("rec")) {
        let _ = sys::supervise::kill(pid, libc::SIGTERM);
        return Err(undo(e.into()));
    }
    Ok(Started {
        lease,
        ttl_ms: granted_ms,
        keeper: pid,
    })
}

fn spawn_keeper(
    reg: &Registry,
    url: &str,
    s: &Session,
    lease: i64,
    ttl_ms: u64,
    exe: &Path,
) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(exe);
    cmd.arg("--backend")
        .arg(url)
        .args(["session", "keep", &s.id])
        .args(["--lease", &lease.to_string()])
        .args(["--ttl-ms", &ttl_ms.to_string()])
        .args(["--pid", &s.pid.to_string()])
        .args(["--start-time", &s.start_time.to_string()])
        .env("CONCUR_HOME", reg.home().path())
        .env_remove("CONCUR_BACKEND")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec (sigprocmask, signal, setsid,
    // close_range).
    unsafe {
        cmd.pre_exec(|| {
            sys::signal::child_reset_signals()?;
            sys::signal::child_setsid()?;
            // Best effort: an older kernel leaves inherited descriptors open.
            let _ = sys::detach::child_cloexec_from(3);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(Error::with("cannot start", exe))?;
    let pid = child.id();
    // Reap it whenever it exits, for callers that outlive it (a CLI exits first: then init does).
    let _ = std::thread::Builder::new()
        .name("concur-keeper-reaper".into())
        .spawn(move || child.wait());
    Ok(pid)
}

/// Why [`keep`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepEnd {
    /// The agent process exited; the lease was revoked (or, unreachable, left to expire).
    AgentExited,
    /// The local session record is gone or names another process (ended, restarted): revoked.
    Ended,
    /// The lease no longer exists on etcd (revoked by `session end`, or expired).
    LeaseGone,
    /// No keepalive was acknowledged for longer than the TTL: the server has expired it.
    Unreachable,
}

/// The keeper loop: renews `lease` every TTL/3 until agent process `pid` (started at
/// `start_time`) exits, the session's local record goes, or the lease is gone; revokes it in
/// the first two cases. Waits on a pidfd between renewals, or checks `/proc` every second where
/// pidfds are unavailable.
pub fn keep(
    client: &Client,
    reg: &Registry,
    id: &SessionId,
    lease: i64,
    ttl: Duration,
    pid: u32,
    start_time: u64,
) -> KeepEnd {
    let alive = || sys::proc::is_alive(pid, start_time);
    let pidfd = sys::pidfd::open(pid).ok();
    let revoke = |why: KeepEnd| {
        let _ = client.revoke(lease);
        why
    };
    let period = (ttl / 3).max(Duration::from_millis(100));
    let mut valid_until = Instant::now() + ttl;
    let mut next = Instant::now() + period;
    loop {
        // The pidfd was opened before this check: a pid reused earlier fails it.
        if !alive() {
            return revoke(KeepEnd::AgentExited);
        }
        let wait = next.saturating_duration_since(Instant::now());
        match &pidfd {
            Some(fd) => match fd.wait_exit(wait) {
                Ok(true) => return revoke(KeepEnd::AgentExited),
                Ok(false) => {}
                Err(_) => std::thread::sleep(wait.min(Duration::from_secs(1))),
            },
            None => std::thread::sleep(wait.min(Duration::from_secs(1))),
        }
        if Instant::now() < next {
            continue;
        }
        match reg.get(id) {
            Ok(Some(s)) if s.pid == pid && s.start_time == start_time => {}
            Ok(_) => return revoke(KeepEnd::Ended),
            Err(_) => {} // unreadable: not known ended
        }
        let sent = Instant::now();
        match client.keep_alive_once(lease, sent + period) {
            Ok(t) if t.is_zero() => return KeepEnd::LeaseGone,
            Ok(t) => {
                valid_until = sent + t;
                next = sent + period;
            }
            Err(_) if Instant::now() >= valid_until => return KeepEnd::Unreachable,
            Err(_) => next = Instant::now() + period.min(Duration::from_secs(1)),
        }
    }
}

/// Removes `id`'s keeper record if it names this process (a keeper that ends on its own).
///
/// # Errors
/// As [`crate::Home::subdir`].
pub fn forget_keeper(reg: &Registry, id: &SessionId, pid: u32) -> Result<()> {
    if keeper(reg, id)?.is_some_and(|k| k.pid == pid) {
        let _ = std::fs::remove_file(keeper_path(reg, id)?);
    }
    Ok(())
}

/// What [`end`] did on etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ended {
    /// Whether the session had a key (now deleted with its lease).
    pub revoked: bool,
    /// The keeper process stopped, if one ran.
    pub keeper: Option<u32>,
}

/// Ends session `id` on etcd: stops its keeper and revokes the lease its key is on (deleting
/// the key and anything else on that lease).
///
/// # Errors
/// [`Error::Io`] when no member answered (the keeper is stopped all the same; the key then
/// expires with its lease).
pub fn end(client: &Client, reg: &Registry, id: &SessionId) -> Result<Ended> {
    let keeper = stop_keeper(reg, id)?;
    let key = session_key(client, id.as_str());
    let revoked = match client.get(&key)? {
        Some(kv) if kv.lease != 0 => {
            client.revoke(kv.lease)?;
            true
        }
        Some(_) => client.delete(&key)?,
        None => false,
    };
    Ok(Ended { revoked, keeper })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_round_trips_and_a_foreign_value_reads_with_defaults() {
        let d = tempfile::tempdir().unwrap();
        let home = crate::Home::at(d.path().join("h")).unwrap();
        let reg = Registry::open(&home).unwrap();
        let id = SessionId::new("s1").unwrap();
        let opts = crate::session::StartOptions {
            pid: Some(std::process::id()),
            ..Default::default()
        };
        let s = reg.start(&id, &opts).unwrap();
        let info = Info::of(&s);
        assert!(info.is_this_host());
        let back: Info = serde_json::from_slice(&serde_json::to_vec(&info).unwrap()).unwrap();
        assert_eq!(back, info);
        let foreign: Info = serde_json::from_str(r#"{"pid":7,"other":true}"#).unwrap();
        assert_eq!((foreign.pid, foreign.host.as_str()), (7, ""));
        assert!(!foreign.is_this_host());
        assert_eq!(keeper(&reg, &id).unwrap(), None);
        assert_eq!(stop_keeper(&reg, &id).unwrap(), None);
    }
}
