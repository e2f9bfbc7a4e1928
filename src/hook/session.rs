//! The session side of the hooks: `SessionStart` registers the agent process in the session
//! registry (and on the backend) and tells the model who else works in the same directory;
//! `SessionEnd` ends the session through [`Backend::end_session`], the one path `session end`
//! and gc take too.
//!
//! The agent process is found by the caller with [`crate::session::agent_process`]: the hook's
//! nearest ancestor that is not a shell or wrapper (Claude Code's `sh -c` does not `exec`). The
//! leases [`context`] reports are in whichever [`Store`] the caller passes (the backend's):
//! this module does not choose. `SessionEnd` is fast — one registry record and one `SQLite` transaction, or a few etcd
//! requests — well inside Claude Code's 1.5 s budget; it never runs after a crash, which is why
//! leases are also reclaimed by liveness (pid + start time) in [`crate::lease`] (on etcd: for
//! holders on the same machine, else at their TTL).

use std::fmt::Write as _;
use std::path::Path;

use crate::backend::Backend;
use crate::backend::sessions::{Start, Started};
use crate::error::Result;
use crate::hook::{Agent, Answer};
use crate::id::SessionId;
use crate::lease::Store;
use crate::session::{Registry, Session, StartOptions};

/// Registers `session` as embodied by process `agent_pid` in `cwd` on `backend` (on etcd also
/// there, kept alive by a keeper; a failure there is [`Started::warning`]), and returns what
/// was started with the other live sessions in the same directory (for [`context`]).
///
/// # Errors
/// As [`crate::backend::sessions::Sessions::start`] and [`Registry::list`].
pub fn start(
    backend: &Backend,
    session: &SessionId,
    agent: &str,
    agent_pid: u32,
    cwd: &Path,
) -> Result<(Started, Vec<Session>)> {
    let started = backend.sessions()?.start(
        session,
        &Start::new(StartOptions {
            pid: Some(agent_pid),
            agent: Some(agent.to_owned()),
            cwd: Some(cwd.to_path_buf()),
        }),
    )?;
    let others = Registry::open(backend.require_home()?)?
        .list()?
        .into_iter()
        .filter(|(s, alive)| *alive && s.id != session.as_str() && s.cwd == cwd)
        .map(|(s, _)| s)
        .collect();
    Ok((started, others))
}

/// The context for the model: the `others` (from [`start`]) working in `cwd` and the leases
/// each holds in `leases` (whichever store the backend names). Empty when there are no others;
/// the store is not read then.
///
/// # Errors
/// As [`Store::list`].
pub fn context(others: &[Session], cwd: &Path, leases: &dyn Store) -> Result<String> {
    if others.is_empty() {
        return Ok(String::new());
    }
    let leases = leases.list()?;
    let mut text = format!(
        "concur: {} other live session(s) work in {}:",
        others.len(),
        cwd.display()
    );
    for s in others {
        let held: Vec<&str> = leases
            .iter()
            .filter_map(|t| t.lease.as_ref())
            .filter(|l| l.session == s.id)
            .map(|l| l.task.as_str())
            .collect();
        let _ = write!(
            text,
            "\n- session {} ({}, pid {})",
            s.id,
            s.agent.as_deref().unwrap_or("agent"),
            s.pid
        );
        if held.is_empty() {
            text.push_str(", no leases");
        } else {
            let _ = write!(text, ", holding leases: {}", held.join(", "));
        }
    }
    text.push_str(
        "\nCoordinate before touching what they hold (`concur lease list`, `concur lease acquire TASK`).",
    );
    Ok(text)
}

/// The whole `SessionStart` answer: exports the id for the agent's shell tool
/// (`$CLAUDE_ENV_FILE`), registers the agent process above this hook as the session on
/// `backend` ([`start`]), and answers with the other live sessions in `cwd` and their leases,
/// followed by `reserved` (the reservations' context, which needs the configuration the caller
/// holds). A session hook never breaks the agent: every failure is one line on stderr and an
/// allow. An agent process that cannot be found leaves the session unregistered (registering a
/// shell that exits at once would make it dead from its first second and release its
/// reservations).
pub fn on_start(
    agent: Agent,
    id: &SessionId,
    cwd: &Path,
    backend: std::result::Result<Backend, String>,
    reserved: impl FnOnce() -> String,
) -> Answer {
    export(id);
    let parent = std::os::unix::process::parent_id();
    let agent_pid = match crate::session::agent_process(parent) {
        Ok(a) => a.pid,
        Err(e) => {
            eprintln!("concur: hook: session {id} not registered: {e}");
            return Answer::allow();
        }
    };
    let context = backend.and_then(|b| {
        let (started, others) =
            start(&b, id, agent.name(), agent_pid, cwd).map_err(|e| e.to_string())?;
        if let Some(w) = &started.warning {
            eprintln!("concur: hook: warning: {w}");
        }
        if others.is_empty() {
            return Ok(String::new()); // no lease store opened
        }
        let leases = b.leases().map_err(|e| e.to_string())?;
        context(&others, cwd, &*leases).map_err(|e| e.to_string())
    });
    let reserved = reserved();
    let context = context.map(|t| match (t.is_empty(), reserved.is_empty()) {
        (_, true) => t,
        (true, false) => reserved,
        (false, false) => format!("{t}\n{reserved}"),
    });
    match context {
        Ok(text) if !text.is_empty() => Answer {
            stdout: super::claude::session_context(agent, &text).map(|v| v.to_string()),
            ..Answer::allow()
        },
        Ok(_) => Answer::allow(),
        Err(e) => {
            eprintln!("concur: hook: {e}");
            Answer::allow()
        }
    }
}

/// Exports the session id for the agent's later shell-tool calls: a line
/// `export CONCUR_SESSION=ID` appended to `$CLAUDE_ENV_FILE` when the agent set it.
pub fn export(id: &SessionId) {
    let Some(file) = std::env::var_os("CLAUDE_ENV_FILE") else {
        return;
    };
    let line = format!("export CONCUR_SESSION={id}\n");
    let opts = crate::append::AppendOptions::new().fsync(false);
    if let Err(e) = opts.append(Path::new(&file), line.as_bytes()) {
        eprintln!("concur: hook: {e}");
    }
}
