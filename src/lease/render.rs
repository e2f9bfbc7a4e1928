//! How leases are shown: the one-line conflict messages (`acquire` refused) and the tab-separated
//! line of `show`/`list`, with ages and UTC instants.

use std::fmt;

use super::{Acquired, Completion, Lease, TaskState};
use crate::error::{Error, Result};
use crate::time::now_unix_ms;
use crate::time::{age, utc_seconds};

impl Acquired {
    /// The granted lease; a lease held by another session or a completed build-once task as
    /// the [`Error::Conflict`] that names the holder (session, pid, cwd, age, token) or who
    /// completed it when.
    ///
    /// # Errors
    /// [`Error::Conflict`] unless granted.
    pub fn granted(self) -> Result<Lease> {
        match self {
            Acquired::Granted(l) => Ok(l),
            Acquired::Held(l) => Err(Error::Conflict(format!(
                "task {:?} is held by session {} (pid {}, cwd {}, {}, token {})",
                l.task,
                l.session,
                l.pid
                    .map_or_else(|| "unknown".to_owned(), |p| p.to_string()),
                l.cwd,
                age(now_unix_ms(), l.acquired_at),
                l.token
            ))),
            Acquired::Completed(c) => Err(Error::Conflict(format!(
                "task {:?} was completed by session {} at {} ({} ago); a --once task is never acquired again",
                c.task,
                c.session,
                utc_seconds(c.at),
                age(now_unix_ms(), c.at)
            ))),
        }
    }
}

/// One tab-separated line: `TASK  held by SESSION (LIVENESS)  pid P  token T  AGE  expires in
/// Ns[  once][  reclaimable]`, `TASK  completed by SESSION at UTC  token T`, or `TASK  free`.
impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = &self.lease {
            write!(
                f,
                "{}\theld by {} ({})\tpid {}\ttoken {}\t{}\texpires in {}s{}{}",
                self.task,
                l.session,
                self.holder.unwrap_or("-"),
                l.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                l.token,
                age(now_unix_ms(), l.acquired_at),
                l.expires_in_ms / 1000,
                if l.once { "\tonce" } else { "" },
                if self.reclaimable {
                    "\treclaimable"
                } else {
                    ""
                },
            )
        } else if let Some(Completion {
            session, at, token, ..
        }) = &self.completed
        {
            write!(
                f,
                "{}\tcompleted by {session} at {}\ttoken {token}",
                self.task,
                utc_seconds(*at)
            )
        } else {
            write!(f, "{}\tfree", self.task)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_and_a_completed_task_render_as_one_line() {
        let free = TaskState {
            task: "t".into(),
            lease: None,
            holder: None,
            reclaimable: false,
            completed: None,
        };
        assert_eq!(free.to_string(), "t\tfree");
        let done = TaskState {
            completed: Some(Completion {
                task: "t".into(),
                session: "s".into(),
                at: 1_709_210_096_000,
                token: 7,
            }),
            ..free
        };
        assert_eq!(
            done.to_string(),
            "t\tcompleted by s at 2024-02-29T12:34:56Z\ttoken 7"
        );
    }

    #[test]
    fn a_completed_task_is_a_conflict_naming_who_completed_it() {
        let e = Acquired::Completed(Completion {
            task: "t".into(),
            session: "s".into(),
            at: 0,
            token: 1,
        })
        .granted()
        .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)));
        assert!(
            e.to_string()
                .starts_with("task \"t\" was completed by session s at 1970-01-01T00:00:00Z")
        );
    }
}
