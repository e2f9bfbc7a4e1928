//! Per-session instances of would-be singletons: a transparent stdio wrapper.
//!
//! `concur isolate -- npx @playwright/mcp --user-data-dir {session_dir}/browser` starts one
//! instance per session instead of one shared by all: `{session}`, `{session_dir}` (a private
//! directory in the home, `isolate/<session>/`, kept across runs) and `{port}` (a free loopback
//! port, the same for the session every time, different from every other session's) are
//! substituted in the arguments.
//!
//! ## Guarantees
//! - **Transparent stdio.** The child writes straight to concur's stdout (the same open file,
//!   not a copy loop), so not a byte is added; stdin is forwarded unchanged by a thread.
//! - **No orphans.** The child leads its own process group. On stdin EOF the child's stdin is
//!   closed and, if it has not exited within [`GRACE`], the group gets SIGTERM and then, after
//!   [`KILL_AFTER`], SIGKILL; SIGINT/SIGTERM/SIGHUP to concur do the same at once, and so does the
//!   death of concur's parent (`PR_SET_PDEATHSIG` on concur). When the child exits, whatever it
//!   left in its group is killed the same way before concur exits. The child is left unreaped
//!   while its group is signalled, so its pid (the group id) cannot be reused meanwhile.
//! - **Exit status passed through** (128+N for a child killed by signal N).
//! - **Exclusive.** `--exclusive NAME` instead takes the lease `isolate:NAME` in the lease store
//!   the caller passes — the local `SQLite` one, or etcd's when a backend is configured, so the
//!   instance is then exclusive across machines (TTL [`LEASE_TTL`], renewed while the instance
//!   runs, released when it ends, reclaimed at once when the holding session dies on the same
//!   machine); another session fails at once, naming the holder. The same session may run it
//!   twice (re-acquiring is idempotent).
//!
//! ## Not guaranteed
//! - A grandchild that moves itself to another process group (e.g. with `setsid`) escapes the
//!   group kill.
//! - `concur isolate gc` asks the session registry; for a session that never registered (an
//!   isolate started with no session id runs for its agent process: [`agent_session`]) it
//!   falls back to the process that started the isolate (pid + start time of concur's parent).
//! - An isolate killed with SIGKILL leaves its lease until the TTL runs out, unless its session
//!   is registered and dead.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::SessionId;
use crate::lease::{AcquireRequest, Acquired, Store};
use crate::session::{Liveness, Registry};
use crate::sys;
use crate::sys::lock::Mode;

/// How long a child may take to exit by itself after its stdin closed.
pub const GRACE: Duration = Duration::from_millis(500);

/// How long after SIGTERM the group gets SIGKILL.
pub const KILL_AFTER: Duration = Duration::from_secs(2);

/// Who started a session's isolate: the agent process (pid + start time).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Owner {
    session: String,
    pid: u32,
    start: u64,
}

/// A prepared isolate: directory, port and arguments resolved, locks held.
#[derive(Debug)]
pub struct Prepared {
    /// The per-session (or, with `--exclusive`, shared) directory.
    pub dir: PathBuf,
    /// The session's loopback port.
    pub port: u16,
    /// The program and its arguments, placeholders substituted.
    pub argv: Vec<OsString>,
    _in_use: File,
    exclusive: Option<Exclusive>,
}

/// A lease store shared by the isolate and its renewing thread.
type SharedStore = Arc<Mutex<Box<dyn Store + Send>>>;

/// The lease on a shared instance, released when the isolate ends.
struct Exclusive {
    store: SharedStore,
    task: String,
    session: SessionId,
}

impl std::fmt::Debug for Exclusive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exclusive")
            .field("task", &self.task)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        let store = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = store.release(&self.task, &self.session);
    }
}

/// The session an isolate runs for when no id is given or registered: the agent process that
/// started it (the nearest ancestor that is not a shell or wrapper), named `<command>-<pid>`.
/// Gemini CLI and Codex start their MCP servers before their `SessionStart` hooks run and give
/// them no session id; this makes the plain `concur isolate -- …` form one instance per agent
/// process there, as it is per session in Claude Code. Such a session is not registered:
/// [`gc`] removes its directory once that process is gone.
///
/// # Errors
/// [`Error::Invalid`] when no agent process is found above the caller (only shells and
/// wrappers up to init).
pub fn agent_session() -> Result<SessionId> {
    let agent = crate::session::agent_process(std::os::unix::process::parent_id())?;
    let name: String = agent
        .comm
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    SessionId::new(&format!("{}-{}", name.trim_matches('-'), agent.pid))
}

/// Resolves the directory, port and arguments for `session` and takes the locks that mark it
/// in use. With `exclusive` = `(NAME, store)`, takes the lease `isolate:NAME` for the shared
/// instance in `store` (whichever lease store the backend names: local `SQLite` or etcd), keeps
/// it renewed while [`run`] runs and releases it when the [`Prepared`] is dropped.
///
/// # Errors
/// [`Error::Conflict`] naming the holder when `exclusive` is held by another session;
/// [`Error::Invalid`] for an empty command or a bad exclusive name; [`Error::Io`] otherwise.
pub fn prepare(
    home: &Home,
    session: &SessionId,
    exclusive: Option<(&str, Box<dyn Store + Send>)>,
    cmd: &[String],
) -> Result<Prepared> {
    if cmd.is_empty() {
        return Err(Error::Invalid("no command to run (put it after --)".into()));
    }
    let base = home.subdir("isolate")?;
    let mut taken = None;
    let dir = if let Some((name, store)) = exclusive {
        let name = SessionId::new(name)
            .map_err(|_| Error::Invalid(format!("invalid exclusive name {name:?}")))?;
        let ex = base.join("exclusive");
        sys::fs::mkdir(&ex, 0o700).map_err(Error::with("cannot create directory", &ex))?;
        let task = format!("isolate:{name}");
        take_exclusive(&*store, &task, session, name.as_str())?;
        // From here on, dropping it releases the lease (also on an error below).
        taken = Some(Exclusive {
            store: Arc::new(Mutex::new(store)),
            task,
            session: session.clone(),
        });
        ex.join(name.as_str())
    } else {
        base.join(session.as_str())
    };
    sys::fs::mkdir(&dir, 0o700).map_err(Error::with("cannot create directory", &dir))?;
    // A shared lock on the directory's .lock marks it in use; gc needs the exclusive one.
    let in_use_path = dir.join(".lock");
    let in_use = sys::fs::open(&in_use_path, sys::fs::Open::read_write(0o600))
        .map_err(Error::with("cannot open", &in_use_path))?;
    sys::lock::flock(&in_use, Mode::Shared).map_err(Error::with("cannot lock", &in_use_path))?;
    write_owner(&dir, session)?;
    let port = session_port(&base, &dir)?;
    let port_s = port.to_string();
    let dir_s = dir.to_string_lossy().into_owned();
    let argv = cmd
        .iter()
        .map(|a| {
            OsString::from(
                a.replace("{session_dir}", &dir_s)
                    .replace("{session}", session.as_str())
                    .replace("{port}", &port_s),
            )
        })
        .collect();
    Ok(Prepared {
        dir,
        port,
        argv,
        _in_use: in_use,
        exclusive: taken,
    })
}

/// How long the lease on a shared instance lives without renewal (it is renewed every third
/// of that while the instance runs, and reclaimed at once when the holding session dies).
pub const LEASE_TTL: Duration = Duration::from_secs(60);

fn take_exclusive(store: &dyn Store, task: &str, session: &SessionId, name: &str) -> Result<()> {
    let req = AcquireRequest {
        task: task.to_owned(),
        session: session.clone(),
        ttl: LEASE_TTL,
        once: false,
        cwd: std::env::current_dir()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    match store.acquire(&req)? {
        Acquired::Granted(_) => Ok(()),
        Acquired::Held(l) => Err(Error::Conflict(format!(
            "the shared instance {name:?} is held by session {}{} (lease {task})",
            l.session,
            l.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        ))),
        Acquired::Completed(_) => Err(Error::Conflict(format!(
            "the shared instance {name:?} is a completed build-once task"
        ))),
    }
}

/// Records the agent as the directory's owner, for gc: the nearest ancestor that is not a shell
/// or wrapper (an MCP config's `sh -c 'exec concur isolate …'` exits long before the agent
/// does), else concur's parent.
fn write_owner(dir: &Path, session: &SessionId) -> Result<()> {
    let ppid = std::os::unix::process::parent_id();
    let (pid, start) = match crate::session::agent_process(ppid) {
        Ok(a) => (a.pid, a.start_time),
        Err(_) => (ppid, sys::proc::start_time(ppid).unwrap_or(0)),
    };
    let owner = Owner {
        session: session.to_string(),
        pid,
        start,
    };
    let path = dir.join("owner.json");
    let json = serde_json::to_string(&owner).unwrap_or_default();
    let how = sys::fs::Atomic::new("owner").durability(sys::fs::Durability::Volatile);
    Ok(sys::fs::write_atomic(&path, json.as_bytes(), &how)?)
}

/// The session's port: the one recorded in `dir/port`, else a fresh free loopback port that no
/// other session has recorded (chosen under `isolate/ports.lock`).
fn session_port(base: &Path, dir: &Path) -> Result<u16> {
    let port_file = dir.join("port");
    if let Some(p) = read_port(&port_file) {
        return Ok(p);
    }
    let lock_path = base.join("ports.lock");
    let _g = crate::sidecar::lock(&lock_path, Some(Duration::from_secs(10)))?;
    if let Some(p) = read_port(&port_file) {
        return Ok(p);
    }
    let mut taken = std::collections::HashSet::new();
    for e in std::fs::read_dir(base)
        .map_err(Error::with("cannot list", base))?
        .flatten()
    {
        if let Some(p) = read_port(&e.path().join("port")) {
            taken.insert(p);
        }
    }
    if let Ok(ex) = std::fs::read_dir(base.join("exclusive")) {
        for e in ex.flatten() {
            if let Some(p) = read_port(&e.path().join("port")) {
                taken.insert(p);
            }
        }
    }
    for _ in 0..64 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::with(
            "cannot find a free port",
            Path::new("127.0.0.1"),
        ))?;
        let p = l
            .local_addr()
            .map_err(Error::with(
                "cannot find a free port",
                Path::new("127.0.0.1"),
            ))?
            .port();
        if taken.insert(p) {
            let how = sys::fs::Atomic::new("port").durability(sys::fs::Durability::Volatile);
            sys::fs::write_atomic(&port_file, p.to_string().as_bytes(), &how)?;
            return Ok(p);
        }
    }
    Err(Error::Conflict("no free loopback port found".into()))
}

fn read_port(p: &Path) -> Option<u16> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Runs the prepared command as described in the module docs and returns its exit status.
///
/// # Errors
/// [`Error::Io`] when the command cannot be started or signals cannot be set up.
pub fn run(p: &Prepared) -> Result<ExitStatus> {
    let sigs = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];
    let here = Path::new("");
    // Die with the agent: its death sends us SIGTERM, handled like any other stop signal.
    let parent = sys::proc::parent_pid(std::process::id()).unwrap_or(0);
    sys::signal::block(&sigs).map_err(Error::with("cannot block signals", here))?;
    // A child that exits without reading all its input must not kill us with SIGPIPE.
    sys::signal::ignore_sigpipe();
    let expected = libc::pid_t::try_from(parent).unwrap_or(0);
    let orphaned = match sys::supervise::die_with_parent(libc::SIGTERM, expected) {
        Ok(()) => false,
        // The parent is already gone (we were re-parented before the prctl took effect).
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => true,
        Err(e) => return Err(Error::io("cannot set parent-death signal", here, e)),
    };

    let program = &p.argv[0];
    let mut cmd = Command::new(program);
    cmd.args(&p.argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .process_group(0);
    // SAFETY: only sigprocmask and signal (async-signal-safe) run between fork and exec.
    unsafe {
        cmd.pre_exec(|| sys::signal::child_reset_signals());
    }
    let mut child = cmd
        .spawn()
        .map_err(Error::with("cannot run", Path::new(program)))?;
    let pid = child.id();
    let (stop_tx, stop_rx) = mpsc::channel::<Stop>();

    // stdin → child, then EOF.
    let mut child_in = child.stdin.take();
    let tx = stop_tx.clone();
    std::thread::Builder::new()
        .name("concur-isolate-stdin".into())
        .spawn(move || {
            let mut buf = [0u8; 16 << 10];
            let mut stdin = std::io::stdin().lock();
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let ok = child_in
                            .as_mut()
                            .is_some_and(|w| w.write_all(&buf[..n]).is_ok());
                        if !ok {
                            break;
                        }
                    }
                }
            }
            drop(child_in.take());
            let _ = tx.send(Stop::StdinClosed);
        })
        .map_err(Error::with("cannot spawn thread", here))?;

    // Stop signals (and the parent's death) → kill the group.
    let tx = stop_tx.clone();
    std::thread::Builder::new()
        .name("concur-isolate-signals".into())
        .stack_size(64 << 10)
        .spawn(move || {
            if sys::signal::wait(&sigs).is_ok() {
                let _ = tx.send(Stop::Signal);
            }
        })
        .map_err(Error::with("cannot spawn thread", here))?;
    if orphaned {
        let _ = stop_tx.send(Stop::Signal);
    }

    // The killer: on a stop event, give the child its grace, then TERM, then KILL the group.
    let (exited_tx, exited_rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("concur-isolate-killer".into())
        .stack_size(64 << 10)
        .spawn(move || {
            let Ok(why) = stop_rx.recv() else { return };
            if why == Stop::StdinClosed && exited_rx.recv_timeout(GRACE).is_ok() {
                return;
            }
            kill_group(pid);
        })
        .map_err(Error::with("cannot spawn thread", here))?;

    if let Some(ex) = &p.exclusive {
        renew_in_background(Arc::clone(&ex.store), ex.task.clone(), ex.session.clone());
    }
    sys::nowait::wait_exited(pid).map_err(Error::with("cannot wait for", Path::new(program)))?;
    let _ = exited_tx.send(());
    // The child is a zombie, so its group id stays its own: clean up what it left behind.
    kill_group(pid);
    child
        .wait()
        .map_err(Error::with("cannot wait for", Path::new(program)))
}

/// Renews the shared instance's lease every third of its TTL until the process exits.
fn renew_in_background(store: SharedStore, task: String, session: SessionId) {
    let _ = std::thread::Builder::new()
        .name("concur-isolate-renew".into())
        .stack_size(256 << 10)
        .spawn(move || {
            loop {
                std::thread::sleep(LEASE_TTL / 3);
                let guard = store
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if guard.renew(&task, &session, LEASE_TTL).is_err() {
                    eprintln!("concur: isolate: cannot renew the lease {task}");
                }
            }
        });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    StdinClosed,
    Signal,
}

/// SIGTERM to the group, then SIGKILL if anything of it is left after [`KILL_AFTER`]. The
/// group's unreaped leader (a zombie) does not count as left.
fn kill_group(pgid: u32) {
    if sys::proc::group_members(pgid).is_empty() {
        return;
    }
    let _ = sys::supervise::kill_group(pgid, libc::SIGTERM);
    let deadline = std::time::Instant::now() + KILL_AFTER;
    // Processes that are not our children cannot be waited for; poll their group briefly.
    while !sys::proc::group_members(pgid).is_empty() {
        if std::time::Instant::now() >= deadline {
            let _ = sys::supervise::kill_group(pgid, libc::SIGKILL);
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Removes the per-session directories of dead sessions (by the session registry; for a session
/// that never registered, by the agent process that started its isolate) that no running
/// isolate uses. Returns the removed paths.
///
/// # Errors
/// [`Error::Io`] when the isolate directory cannot be listed.
pub fn gc(home: &Home) -> Result<Vec<PathBuf>> {
    let base = home.subdir("isolate")?;
    let registry = Registry::open(home)?;
    let mut removed = Vec::new();
    for e in std::fs::read_dir(&base)
        .map_err(Error::with("cannot list", &base))?
        .flatten()
    {
        let dir = e.path();
        if dir.file_name().is_some_and(|n| n == "exclusive")
            || !e.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        let id = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| SessionId::new(n).ok());
        let alive = match id.map(|id| registry.liveness(&id)) {
            Some(Liveness::Alive) => true,
            Some(Liveness::Dead) => false,
            // Never registered: judge by the agent process that started the isolate.
            _ => std::fs::read_to_string(dir.join("owner.json"))
                .ok()
                .and_then(|s| serde_json::from_str::<Owner>(&s).ok())
                .is_some_and(|o| sys::proc::is_alive(o.pid, o.start)),
        };
        if alive {
            continue;
        }
        let lock_path = dir.join(".lock");
        let Ok(lock) = sys::fs::open(&lock_path, sys::fs::Open::read_write(0o600)) else {
            continue;
        };
        if !sys::lock::try_flock(&lock, Mode::Exclusive).unwrap_or(false) {
            continue; // an isolate still runs for it
        }
        std::fs::remove_dir_all(&dir).map_err(Error::with("cannot remove", &dir))?;
        removed.push(dir);
    }
    Ok(removed)
}
