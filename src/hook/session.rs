//! The session side of the hooks: `SessionStart` registers the agent process in the session
//! registry and tells the model who else works in the same directory; `SessionEnd` ends the
//! session and releases its leases.
//!
//! The agent process is found by the caller with [`crate::session::agent_process`]: the hook's
//! nearest ancestor that is not a shell or wrapper (Claude Code's `sh -c` does not `exec`). The leases are in whichever [`Store`] the caller passes (the local
//! `SQLite` one, or etcd's when a backend is configured): this module does not choose.
//! `SessionEnd` is fast — one registry record and one `SQLite` transaction, or a few etcd
//! requests — well inside Claude Code's 1.5 s budget; it never runs after a crash, which is why
//! leases are also reclaimed by liveness (pid + start time) in [`crate::lease`] (on etcd: for
//! holders on the same machine, else at their TTL).

use std::fmt::Write as _;
use std::path::Path;

use crate::error::Result;
use crate::home::Home;
use crate::id::SessionId;
use crate::lease::Store;
use crate::session::{Registry, Session, StartOptions};

/// Registers `session` as embodied by process `agent_pid` in `cwd`, and returns the other live
/// sessions in the same directory (for [`context`]).
///
/// # Errors
/// As [`Registry::start`] and [`Registry::list`].
pub fn start(
    home: &Home,
    session: &SessionId,
    agent: &str,
    agent_pid: u32,
    cwd: &Path,
) -> Result<Vec<Session>> {
    let reg = Registry::open(home)?;
    reg.start(
        session,
        &StartOptions {
            pid: Some(agent_pid),
            agent: Some(agent.to_owned()),
            cwd: Some(cwd.to_path_buf()),
        },
    )?;
    Ok(reg
        .list()?
        .into_iter()
        .filter(|(s, alive)| *alive && s.id != session.as_str() && s.cwd == cwd)
        .map(|(s, _)| s)
        .collect())
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

/// Ends `session`: releases its leases in `leases`, removes its markers, pointers and record.
///
/// # Errors
/// As [`Registry::end`].
pub fn end(home: &Home, session: &SessionId, leases: &dyn Store) -> Result<Vec<String>> {
    Ok(Registry::open(home)?.end(session, leases)?.leases)
}
