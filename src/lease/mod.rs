//! Task leases: exactly one live holder per task, fencing tokens that only grow, build-once.
//!
//! A lease names a task (any string up to 256 bytes without control characters) and the session
//! holding it. The rules every [`Store`] implements:
//!
//! - **One live holder.** Acquire is one atomic step: it either grants the lease or returns the
//!   current holder (session, pid, cwd, since).
//! - **Fencing token.** Every grant carries a token larger than every token granted before in the
//!   same store, for any task, also across restarts. A re-acquire by the holder keeps its token
//!   and extends the lease.
//! - **Reclaim.** A holder whose session is dead (registry: pid + start time + boot id) loses the
//!   lease at once. An expired TTL reclaims it only when the holder is not known alive: a live
//!   holder that is slow to renew keeps its lease (reclaiming on TTL alone runs work twice).
//!   Expiry is measured on the boot clock of the machine and tied to its boot id, never on the
//!   wall clock.
//! - **Build-once.** A lease taken with `once` and then [`Store::complete`]d is never granted
//!   again; an acquire says who completed it and when.
//!
//! The trait speaks only these terms, so a distributed backend (etcd: create-revision as token,
//! a kept-alive etcd lease as liveness) implements the same verbs. [`sqlite::SqliteStore`] is the
//! local one.

mod render;
pub mod sqlite;

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::SessionId;

/// A granted lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The task.
    pub task: String,
    /// The holding session.
    pub session: String,
    /// The fencing token: larger than every earlier grant's.
    pub token: u64,
    /// Build-once: once completed, never granted again.
    pub once: bool,
    /// The holder's pid, when its session is registered.
    pub pid: Option<u32>,
    /// The holder's working directory.
    pub cwd: String,
    /// When the lease was granted, ms since the Unix epoch (display only).
    pub acquired_at: u64,
    /// When it was last renewed, ms since the Unix epoch (display only).
    pub renewed_at: u64,
    /// The time to live from the last renewal, in ms.
    pub ttl_ms: u64,
    /// Milliseconds left until the TTL runs out (0 when expired).
    pub expires_in_ms: u64,
}

/// A completed build-once task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Completion {
    /// The task.
    pub task: String,
    /// The session that completed it.
    pub session: String,
    /// When, ms since the Unix epoch.
    pub at: u64,
    /// The fencing token of the lease that completed it.
    pub token: u64,
}

/// The outcome of an acquire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// The caller holds the lease (new, reclaimed, or its own extended).
    Granted(Lease),
    /// Another live (or not yet expired) holder has it.
    Held(Lease),
    /// A build-once task that was completed.
    Completed(Completion),
}

/// What an acquire asks for.
#[derive(Debug, Clone)]
pub struct AcquireRequest {
    /// The task.
    pub task: String,
    /// The acquiring session.
    pub session: SessionId,
    /// Time to live from now.
    pub ttl: Duration,
    /// Build-once.
    pub once: bool,
    /// The holder's working directory, shown to others in conflicts.
    pub cwd: String,
}

/// The state of one task as `show`/`list` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskState {
    /// The task.
    pub task: String,
    /// The current lease, if any is held.
    pub lease: Option<Lease>,
    /// The holder's liveness (`alive`, `dead`, `unregistered`), when held.
    pub holder: Option<&'static str>,
    /// Whether the lease can be taken now by another session.
    pub reclaimable: bool,
    /// The completion, for a completed build-once task.
    pub completed: Option<Completion>,
}

/// A lease store. Implementations must make each method one atomic step.
pub trait Store {
    /// Acquires `req.task` for `req.session`, or reports who has it.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad task name; store errors otherwise.
    fn acquire(&self, req: &AcquireRequest) -> Result<Acquired>;

    /// Extends the session's lease on `task` by `ttl` from now.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the session does not hold it.
    fn renew(&self, task: &str, session: &SessionId, ttl: Duration) -> Result<Lease>;

    /// Releases the session's lease on `task`; `Ok(None)` when it held none.
    ///
    /// # Errors
    /// Store errors.
    fn release(&self, task: &str, session: &SessionId) -> Result<Option<Lease>>;

    /// Marks `task` done by its holder and releases it. A build-once task stays completed.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the session does not hold it.
    fn complete(&self, task: &str, session: &SessionId) -> Result<Completion>;

    /// The state of `task`.
    ///
    /// # Errors
    /// Store errors.
    fn show(&self, task: &str) -> Result<TaskState>;

    /// Every held or completed task.
    ///
    /// # Errors
    /// Store errors.
    fn list(&self) -> Result<Vec<TaskState>>;

    /// Releases every lease `session` holds (its end, or gc after its death); returns the tasks.
    ///
    /// # Errors
    /// Store errors.
    fn release_session(&self, session: &SessionId) -> Result<Vec<String>>;

    /// Acquires like [`Store::acquire`], and while another holder has the lease, keeps trying
    /// until `wait` has passed; then returns the last answer (`Held` on a timeout). A completed
    /// build-once task is returned at once (waiting cannot change it).
    ///
    /// This default polls: first after 5 ms, doubling up to 200 ms between tries. That suits a
    /// database-backed store, which has nothing to block on: a release or a holder's death is
    /// seen at the next try (within 200 ms). A store that can be notified overrides it (etcd
    /// watches the holder's key instead).
    ///
    /// # Errors
    /// As [`Store::acquire`].
    fn acquire_wait(&self, req: &AcquireRequest, wait: Duration) -> Result<Acquired> {
        let deadline = std::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(5);
        loop {
            let got = self.acquire(req)?;
            let now = std::time::Instant::now();
            if !matches!(got, Acquired::Held(_)) || now >= deadline {
                return Ok(got);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}

/// Checks a task name: 1..=256 bytes, no control characters.
///
/// # Errors
/// [`Error::Invalid`] saying what is wrong.
pub fn check_task(task: &str) -> Result<()> {
    if task.is_empty() || task.len() > 256 {
        return Err(Error::Invalid(format!(
            "invalid task {task:?}: must be 1 to 256 bytes"
        )));
    }
    if task.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "invalid task {task:?}: control characters are not allowed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_are_checked() {
        assert!(check_task("build:web").is_ok());
        assert!(check_task("").is_err());
        assert!(check_task("a\nb").is_err());
    }
}
