//! The session registry: which sessions are alive.
//!
//! A session record (`<home>/sessions/<id>.json`) names the process that embodies the session —
//! usually the agent process, registered by its hook with `--pid` — by pid, that process's start
//! time (clock ticks since boot) and the boot id. A session is alive while that exact process runs:
//! a reused pid has another start time, and a record from an earlier boot is dead whatever its pid.
//! Records are written atomically (temp file, fsync, rename, fsync dir), so a reader sees the old
//! record or the new one, never a torn one.
//!
//! [`Registry::liveness`] is the one liveness test the rest of concur uses: lease reclaim,
//! `pointer list`, `gc`. A session ends through [`crate::backend::Backend::end_session`], the
//! one path above this registry, markers, pointers, leases and reservations.
//!
//! A session that never registered is [`Liveness::Unregistered`]: not known dead, so nothing of
//! it is reclaimed on liveness grounds (a lease of it still expires by TTL).
//!
//! Not guaranteed: liveness is local to this machine (`/proc`); a session registered with the pid
//! of a short-lived process (a hook itself) dies with that process — register the agent instead.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::SessionId;
use crate::sys;
use crate::time::{boot_id, now_unix_ms};

/// A registered session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The session id.
    pub id: String,
    /// The process that embodies the session.
    pub pid: u32,
    /// That process's start time, in clock ticks since boot.
    pub start_time: u64,
    /// The boot the process belongs to.
    pub boot_id: String,
    /// The working directory the session registered from.
    pub cwd: PathBuf,
    /// The agent, when known (`claude`, `codex`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// When the session registered, in milliseconds since the Unix epoch.
    pub started_at: u64,
}

impl Session {
    /// True while the registered process runs: same pid, same start time, same boot.
    pub fn is_alive(&self) -> bool {
        let same_boot = boot_id().is_ok_and(|b| b == self.boot_id);
        same_boot && sys::proc::is_alive(self.pid, self.start_time)
    }
}

/// What the registry knows about a session's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Registered and its process runs.
    Alive,
    /// Registered and its process is gone (or the machine rebooted since).
    Dead,
    /// Never registered (or ended): nothing is known.
    Unregistered,
}

impl Liveness {
    /// `"alive"`, `"dead"` or `"unregistered"`.
    pub fn name(self) -> &'static str {
        match self {
            Liveness::Alive => "alive",
            Liveness::Dead => "dead",
            Liveness::Unregistered => "unregistered",
        }
    }
}

/// How to register a session.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The process embodying the session (default: the caller's parent process).
    pub pid: Option<u32>,
    /// The agent name.
    pub agent: Option<String>,
    /// The working directory (default: the current one).
    pub cwd: Option<PathBuf>,
}

/// The session registry in a runtime home.
#[derive(Debug, Clone)]
pub struct Registry {
    home: Home,
    dir: PathBuf,
}

impl Registry {
    /// The registry of `home` (creates `sessions/` if missing).
    ///
    /// # Errors
    /// As [`Home::subdir`].
    pub fn open(home: &Home) -> Result<Registry> {
        Ok(Registry {
            dir: home.subdir("sessions")?,
            home: home.clone(),
        })
    }

    /// The home this registry lives in.
    pub fn home(&self) -> &Home {
        &self.home
    }

    fn record_path(&self, id: &SessionId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Registers (or re-registers) session `id`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the process does not exist; [`Error::Io`] when the record cannot
    /// be written.
    ///
    /// # Examples
    /// ```
    /// # let d = tempfile::tempdir().unwrap();
    /// use concur::session::{Registry, StartOptions, Liveness};
    /// let home = concur::Home::at(d.path().join("home")).unwrap();
    /// let reg = Registry::open(&home).unwrap();
    /// let id = concur::SessionId::new("s1").unwrap();
    /// let opts = StartOptions { pid: Some(std::process::id()), ..Default::default() };
    /// let s = reg.start(&id, &opts).unwrap();
    /// assert!(s.is_alive());
    /// assert_eq!(reg.liveness(&id), Liveness::Alive);
    /// ```
    pub fn start(&self, id: &SessionId, opts: &StartOptions) -> Result<Session> {
        let pid = match opts.pid {
            Some(p) => p,
            None => sys::proc::parent_pid(std::process::id()).map_err(Error::with(
                "cannot read parent pid",
                Path::new("/proc/self/stat"),
            ))?,
        };
        let start_time = sys::proc::start_time(pid)
            .map_err(|e| Error::Invalid(format!("no process with pid {pid}: {e}")))?;
        let boot_id = boot_id()?.to_owned();
        let cwd = match &opts.cwd {
            Some(c) => c.clone(),
            None => std::env::current_dir().unwrap_or_default(),
        };
        let s = Session {
            id: id.to_string(),
            pid,
            start_time,
            boot_id,
            cwd,
            agent: opts.agent.clone(),
            started_at: now_unix_ms(),
        };
        let json = serde_json::to_vec(&s).expect("a session serialises");
        sys::fs::write_atomic(&self.record_path(id), &json, &sys::fs::Atomic::new("rec"))?;
        Ok(s)
    }

    /// The record of `id`, if registered.
    ///
    /// # Errors
    /// [`Error::Io`] when the record exists but cannot be read or parsed.
    pub fn get(&self, id: &SessionId) -> Result<Option<Session>> {
        read_record(&self.record_path(id))
    }

    /// What is known about `id`'s process. An unreadable record counts as unregistered.
    pub fn liveness(&self, id: &SessionId) -> Liveness {
        match self.get(id) {
            Ok(Some(s)) if s.is_alive() => Liveness::Alive,
            Ok(Some(_)) => Liveness::Dead,
            _ => Liveness::Unregistered,
        }
    }

    /// Removes `id`'s record. Returns whether there was one.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be removed.
    pub fn remove(&self, id: &SessionId) -> Result<bool> {
        let p = self.record_path(id);
        match std::fs::remove_file(&p) {
            Ok(()) => {
                let _ = sys::fs::sync_dir(&self.dir);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("cannot remove session record", &p, e)),
        }
    }

    /// Every registered session with its liveness, ordered by start.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be read.
    pub fn list(&self) -> Result<Vec<(Session, bool)>> {
        let mut out = Vec::new();
        let rd = std::fs::read_dir(&self.dir).map_err(Error::with("cannot list", &self.dir))?;
        for entry in rd {
            let entry = entry.map_err(Error::with("cannot list", &self.dir))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if SessionId::new(stem).is_err() {
                continue;
            }
            if let Ok(Some(s)) = read_record(&entry.path()) {
                let alive = s.is_alive();
                out.push((s, alive));
            }
        }
        out.sort_by(|a, b| (a.0.started_at, &a.0.id).cmp(&(b.0.started_at, &b.0.id)));
        Ok(out)
    }
}

/// The most processes [`agent_process`] and [`Registry::of_ancestry`] look at (one
/// `/proc/PID/stat` read each, plus a `cmdline` read for a `node`): deeper chains of wrappers
/// are refused rather than guessed.
pub const MAX_ANCESTRY: usize = 16;

/// Programs that run a command without being the agent: shells, `env`-like launchers, and the
/// npm/npx shims. A hook's chain of these is walked past to reach the agent.
const WRAPPERS: [&str; 18] = [
    "sh", "dash", "bash", "zsh", "fish", "ksh", "mksh", "busybox", "env", "timeout", "nice",
    "ionice", "nohup", "stdbuf", "setsid", "chrt", "taskset", "npx",
];

/// True when process `pid`, named `comm`, only runs another command: a shell, a launcher such
/// as `env` or `timeout`, or npm's `npm exec`/`npx` (a `node` running `npm-cli.js`/`npx-cli.js`,
/// or renamed `npm exec ...`). A `node` running anything else (Gemini CLI is one) is not.
fn is_wrapper(pid: u32, comm: &str) -> bool {
    wraps(comm, || {
        sys::proc::cmdline(pid, 2)
            .unwrap_or_default()
            .into_iter()
            .nth(1)
    })
}

/// [`is_wrapper`] on the facts: the command name, and (read only for a `node`) its script.
fn wraps(comm: &str, script: impl FnOnce() -> Option<String>) -> bool {
    if WRAPPERS.contains(&comm) || comm.starts_with("npm exec") || comm == "npm" {
        return true;
    }
    if comm != "node" {
        return false;
    }
    script().is_some_and(|script| {
        let name = Path::new(&script)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        matches!(name, "npm-cli.js" | "npx-cli.js" | "npm" | "npx")
    })
}

/// The process a hook runs for: the nearest ancestor of `from` (inclusive) that is not a
/// shell or wrapper (sh, bash, env, timeout, npm's shims, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentProcess {
    /// Its pid.
    pub pid: u32,
    /// Its start time, clock ticks since boot.
    pub start_time: u64,
    /// Its command name.
    pub comm: String,
    /// The wrappers walked past, nearest first (pid, command name).
    pub skipped: Vec<(u32, String)>,
}

/// Finds the agent process above a hook: starting at `from` (the hook's parent), walks up past
/// shells and wrappers (`sh -c` does not always `exec` its last command, and a hook may be
/// launched through `env`, `timeout`, `npx` or concur's own fail-closed wrapper) to the first
/// process that is none of them.
///
/// Fails closed: a chain of more than [`MAX_ANCESTRY`] wrappers, one that reaches init (every
/// ancestor was a wrapper: the agent is gone), or an unreadable `/proc` entry is an error —
/// never a guess that would register a short-lived shell as the session.
///
/// # Errors
/// [`Error::Invalid`] saying which of the above happened.
pub fn agent_process(from: u32) -> Result<AgentProcess> {
    let mut pid = from;
    let mut skipped = Vec::new();
    for _ in 0..MAX_ANCESTRY {
        if pid <= 1 {
            return Err(Error::Invalid(format!(
                "no agent process above the hook: only shells and wrappers up to init ({})",
                names(&skipped)
            )));
        }
        let st = sys::proc::stat(pid)
            .map_err(|e| Error::Invalid(format!("cannot read process {pid}: {e}")))?;
        if !is_wrapper(pid, &st.comm) {
            return Ok(AgentProcess {
                pid,
                start_time: st.start_time,
                comm: st.comm,
                skipped,
            });
        }
        skipped.push((pid, st.comm));
        pid = st.ppid;
    }
    Err(Error::Invalid(format!(
        "no agent process within {MAX_ANCESTRY} ancestors of the hook ({})",
        names(&skipped)
    )))
}

/// The session a command acts for when neither `--session` nor an environment variable names
/// one: the live registered session whose agent process is the nearest ancestor of the caller
/// (see [`Registry::of_ancestry`]). `None` when there is none, or when nothing was ever
/// registered in `home` (then no file is created).
pub fn of_caller(home: &Home) -> Option<SessionId> {
    if !home.path().join("sessions").is_dir() {
        return None;
    }
    let reg = Registry::open(home).ok()?;
    let parent = sys::proc::parent_pid(std::process::id()).ok()?;
    let s = reg.of_ancestry(parent).ok()??;
    SessionId::new(&s.id).ok()
}

fn names(chain: &[(u32, String)]) -> String {
    chain
        .iter()
        .map(|(p, c)| format!("{c}[{p}]"))
        .collect::<Vec<_>>()
        .join(" <- ")
}

impl Registry {
    /// The live registered session whose process is the nearest ancestor of `from` (inclusive),
    /// looking at most [`MAX_ANCESTRY`] processes up: what a command run in an agent's shell
    /// tool acts for when nothing names a session (Gemini's shell tool has no id in its
    /// environment). A process matches by pid *and* start time, so a reused pid never does.
    ///
    /// # Errors
    /// [`Error::Io`] when the registry cannot be listed.
    pub fn of_ancestry(&self, from: u32) -> Result<Option<Session>> {
        let live: Vec<Session> = self
            .list()?
            .into_iter()
            .filter_map(|(s, alive)| alive.then_some(s))
            .collect();
        if live.is_empty() {
            return Ok(None);
        }
        let mut pid = from;
        for _ in 0..MAX_ANCESTRY {
            if pid <= 1 {
                break;
            }
            let Ok(st) = sys::proc::stat(pid) else {
                break;
            };
            if let Some(s) = live
                .iter()
                .find(|s| s.pid == pid && s.start_time == st.start_time)
            {
                return Ok(Some(s.clone()));
            }
            pid = st.ppid;
        }
        Ok(None)
    }
}

fn read_record(path: &Path) -> Result<Option<Session>> {
    let file = match sys::fs::open(path, sys::fs::Open::READ) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot open session record", path, e)),
    };
    let s: Session = serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
        Error::io(
            "cannot parse session record",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells_launchers_and_npm_shims_are_wrappers_but_agents_are_not() {
        for comm in [
            "sh",
            "dash",
            "bash",
            "env",
            "timeout",
            "npm exec concur",
            "npx",
        ] {
            assert!(wraps(comm, || None), "{comm}");
        }
        let npm = || Some("/usr/lib/node_modules/npm/bin/npm-cli.js".to_owned());
        assert!(wraps("node", npm));
        let gemini = || Some("/usr/local/bin/gemini".to_owned());
        assert!(!wraps("node", gemini), "Gemini CLI is a node process");
        for comm in ["claude", "codex", "cursor-agent"] {
            assert!(!wraps(comm, || unreachable!()), "{comm}");
        }
    }

    #[test]
    fn the_walk_fails_closed_at_init() {
        let e = agent_process(1).unwrap_err().to_string();
        assert!(e.contains("init"), "{e}");
    }

    #[test]
    fn a_wrong_start_time_or_boot_is_dead() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path().join("h")).unwrap();
        let reg = Registry::open(&home).unwrap();
        let id = SessionId::new("a").unwrap();
        let opts = StartOptions {
            pid: Some(std::process::id()),
            ..StartOptions::default()
        };
        let mut s = reg.start(&id, &opts).unwrap();
        assert!(s.is_alive());
        s.start_time += 1;
        assert!(!s.is_alive());
        s.start_time -= 1;
        s.boot_id = "another-boot".into();
        assert!(!s.is_alive());
        assert_eq!(
            reg.liveness(&SessionId::new("b").unwrap()),
            Liveness::Unregistered
        );
        assert!(reg.remove(&id).unwrap());
        assert_eq!(reg.liveness(&id), Liveness::Unregistered);
    }
}
