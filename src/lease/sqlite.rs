//! The local lease store: table `leases` of the runtime home's `SQLite` database (`leases.db`,
//! opened and set up by `crate::sqlite`, which it shares with the edit reservations).
//!
//! Every verb is one transaction opened with `BEGIN IMMEDIATE` (see `crate::sqlite`: the
//! write lock is taken up front, racing processes queue on it). The database runs in WAL mode
//! with `synchronous=FULL`, so a committed grant survives power loss. Fencing tokens come from a
//! one-row counter that is incremented in the granting transaction, so a token is never handed
//! out twice, also after a restart, and tokens are strictly increasing in commit order.
//!
//! Holder liveness comes from the session registry ([`crate::session::Registry`]), consulted
//! inside the transaction; expiry uses `CLOCK_BOOTTIME` plus the boot id, so a wall-clock jump
//! cannot expire or revive a lease, and a lease from an earlier boot counts as expired.
//!
//! Not guaranteed: the database must be on a local filesystem (WAL needs shared memory).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{AcquireRequest, Acquired, Completion, Lease, Store, TaskState, check_task};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::SessionId;
use crate::session::{Liveness, Registry};
use crate::sqlite::{Db, db_err};
use crate::time::BootClock as Clock;
use crate::time::now_unix_ms;

const COLUMNS: &str = "task, session, token, once, pid, cwd, acquired_at, renewed_at, ttl_ms, \
                       expires_ms, boot_id, completed_by, completed_at";

/// One row of `leases`.
#[derive(Debug, Clone)]
struct Row_ {
    task: String,
    session: Option<String>,
    token: u64,
    once: bool,
    pid: Option<u32>,
    cwd: String,
    acquired_at: u64,
    renewed_at: u64,
    ttl_ms: u64,
    expires_ms: u64,
    boot_id: String,
    completed_by: Option<String>,
    completed_at: Option<u64>,
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Row_ {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Row_> {
        Ok(Row_ {
            task: r.get(0)?,
            session: r.get(1)?,
            token: u(r.get(2)?),
            once: r.get::<_, i64>(3)? != 0,
            pid: r
                .get::<_, Option<i64>>(4)?
                .and_then(|p| u32::try_from(p).ok()),
            cwd: r.get(5)?,
            acquired_at: u(r.get(6)?),
            renewed_at: u(r.get(7)?),
            ttl_ms: u(r.get(8)?),
            expires_ms: u(r.get(9)?),
            boot_id: r.get(10)?,
            completed_by: r.get(11)?,
            completed_at: r.get::<_, Option<i64>>(12)?.map(u),
        })
    }

    fn expires_in(&self, clock: &Clock) -> u64 {
        clock.remaining(self.expires_ms, &self.boot_id)
    }

    fn lease(&self, clock: &Clock) -> Option<Lease> {
        Some(Lease {
            task: self.task.clone(),
            session: self.session.clone()?,
            token: self.token,
            once: self.once,
            pid: self.pid,
            cwd: self.cwd.clone(),
            acquired_at: self.acquired_at,
            renewed_at: self.renewed_at,
            ttl_ms: self.ttl_ms,
            expires_in_ms: self.expires_in(clock),
        })
    }

    fn completion(&self) -> Option<Completion> {
        Some(Completion {
            task: self.task.clone(),
            session: self.completed_by.clone()?,
            at: self.completed_at.unwrap_or(0),
            token: self.token,
        })
    }
}

/// The `SQLite` lease store of a runtime home.
#[derive(Debug)]
pub struct SqliteStore {
    db: Db,
    registry: Registry,
}

impl SqliteStore {
    /// Opens (creating if needed, 0600) `leases.db` in `home`.
    ///
    /// # Errors
    /// [`Error::Io`] when the database cannot be opened or set up.
    ///
    /// # Examples
    /// ```
    /// # let d = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use concur::lease::{AcquireRequest, Acquired, Store, sqlite::SqliteStore};
    /// let home = concur::Home::at(d.path().join("home")).unwrap();
    /// let store = SqliteStore::open(&home).unwrap();
    /// let req = AcquireRequest {
    ///     task: "build:web".into(),
    ///     session: concur::SessionId::new("s1").unwrap(),
    ///     ttl: Duration::from_secs(600),
    ///     once: false,
    ///     cwd: "/src".into(),
    /// };
    /// let Acquired::Granted(lease) = store.acquire(&req).unwrap() else { panic!() };
    /// assert!(lease.token >= 1);
    /// ```
    pub fn open(home: &Home) -> Result<SqliteStore> {
        let path = home.join("leases.db");
        SqliteStore::open_at(&path, Registry::open(home)?)
    }

    /// Opens the database at `path`, judging holders by `registry`.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub fn open_at(path: &Path, registry: Registry) -> Result<SqliteStore> {
        Ok(SqliteStore {
            db: Db::open_at(path)?,
            registry,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    fn immediate<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.db.immediate(f)
    }

    fn row(&self, conn: &Connection, task: &str) -> Result<Option<Row_>> {
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM leases WHERE task = ?1"))
            .and_then(|mut st| st.query_row([task], Row_::from_row).optional())
            .map_err(|e| db_err("cannot read", self.path(), &e))
    }

    fn holder_liveness(&self, session: &str) -> Liveness {
        SessionId::new(session).map_or(Liveness::Unregistered, |id| self.registry.liveness(&id))
    }

    /// Whether a held row may be taken by someone else now.
    fn reclaimable(&self, row: &Row_, clock: &Clock) -> (Liveness, bool) {
        let Some(holder) = &row.session else {
            return (Liveness::Unregistered, true);
        };
        let live = self.holder_liveness(holder);
        let expired = row.expires_in(clock) == 0;
        let ok = match live {
            Liveness::Dead => true,
            Liveness::Alive => false,
            Liveness::Unregistered => expired,
        };
        (live, ok)
    }

    fn state(&self, row: &Row_, clock: &Clock) -> TaskState {
        let (live, reclaimable) = self.reclaimable(row, clock);
        let lease = row.lease(clock);
        TaskState {
            task: row.task.clone(),
            holder: lease.as_ref().map(|_| live.name()),
            reclaimable: lease.is_some() && reclaimable,
            lease,
            completed: if row.session.is_none() {
                row.completion()
            } else {
                None
            },
        }
    }
}

/// Executes a cached prepared statement.
fn exec(c: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(p)
}

impl Store for SqliteStore {
    fn acquire(&self, req: &AcquireRequest) -> Result<Acquired> {
        check_task(&req.task)?;
        let me = req.session.as_str();
        let pid = self
            .registry
            .get(&req.session)
            .ok()
            .flatten()
            .map(|s| s.pid);
        let ttl_ms = u64::try_from(req.ttl.as_millis()).unwrap_or(u64::MAX / 4);
        let clock = Clock::now()?;
        let now = now_unix_ms();
        let expires = clock.now_ms.saturating_add(ttl_ms);
        self.immediate(|c| {
            let row = self.row(c, &req.task)?;
            let mut once = req.once;
            if let Some(r) = &row {
                if r.once
                    && r.session.is_none()
                    && let Some(done) = r.completion()
                {
                    return Ok(Acquired::Completed(done));
                }
                once |= r.once;
                if r.session.as_deref() == Some(me) {
                    exec(
                        c,
                        "UPDATE leases SET renewed_at = ?2, ttl_ms = ?3, expires_ms = ?4, \
                         boot_id = ?5, once = ?6, pid = ?7, cwd = ?8 WHERE task = ?1",
                        params![
                            req.task,
                            i(now),
                            i(ttl_ms),
                            i(expires),
                            clock.boot_id,
                            once,
                            pid,
                            req.cwd
                        ],
                    )
                    .map_err(|e| db_err("cannot write", self.path(), &e))?;
                    let r = self.row(c, &req.task)?.expect("row just updated");
                    return Ok(Acquired::Granted(r.lease(&clock).expect("held")));
                }
                if !self.reclaimable(r, &clock).1 {
                    return Ok(Acquired::Held(r.lease(&clock).expect("held")));
                }
            }
            let token: i64 = c
                .prepare_cached("UPDATE counter SET fence = fence + 1 WHERE id = 1 RETURNING fence")
                .and_then(|mut st| st.query_row([], |r| r.get(0)))
                .map_err(|e| db_err("cannot write", self.path(), &e))?;
            exec(
                c,
                &format!(
                    "INSERT OR REPLACE INTO leases ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, NULL, NULL)"
                ),
                params![
                    req.task,
                    me,
                    token,
                    once,
                    pid,
                    req.cwd,
                    i(now),
                    i(ttl_ms),
                    i(expires),
                    clock.boot_id
                ],
            )
            .map_err(|e| db_err("cannot write", self.path(), &e))?;
            let r = self.row(c, &req.task)?.expect("row just written");
            Ok(Acquired::Granted(r.lease(&clock).expect("held")))
        })
    }

    fn renew(&self, task: &str, session: &SessionId, ttl: Duration) -> Result<Lease> {
        check_task(task)?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX / 4);
        let clock = Clock::now()?;
        let now = now_unix_ms();
        self.immediate(|c| {
            let n = exec(
                c,
                "UPDATE leases SET renewed_at = ?3, ttl_ms = ?4, expires_ms = ?5, boot_id = ?6 \
                     WHERE task = ?1 AND session = ?2",
                params![
                    task,
                    session.as_str(),
                    i(now),
                    i(ttl_ms),
                    i(clock.now_ms.saturating_add(ttl_ms)),
                    clock.boot_id
                ],
            )
            .map_err(|e| db_err("cannot write", self.path(), &e))?;
            if n == 0 {
                return Err(not_holder(task, session, self.row(c, task)?.as_ref()));
            }
            let r = self.row(c, task)?.expect("row just updated");
            Ok(r.lease(&clock).expect("held"))
        })
    }

    fn release(&self, task: &str, session: &SessionId) -> Result<Option<Lease>> {
        check_task(task)?;
        let clock = Clock::now()?;
        self.immediate(|c| {
            let Some(r) = self.row(c, task)? else {
                return Ok(None);
            };
            if r.session.as_deref() != Some(session.as_str()) {
                return Ok(None);
            }
            exec(
                c,
                "DELETE FROM leases WHERE task = ?1 AND session = ?2",
                params![task, session.as_str()],
            )
            .map_err(|e| db_err("cannot write", self.path(), &e))?;
            Ok(r.lease(&clock))
        })
    }

    fn complete(&self, task: &str, session: &SessionId) -> Result<Completion> {
        check_task(task)?;
        let now = now_unix_ms();
        self.immediate(|c| {
            let r = self.row(c, task)?;
            match &r {
                Some(r) if r.session.as_deref() == Some(session.as_str()) => {}
                other => return Err(not_holder(task, session, other.as_ref())),
            }
            exec(
                c,
                "UPDATE leases SET session = NULL, completed_by = ?2, completed_at = ?3 \
                 WHERE task = ?1",
                params![task, session.as_str(), i(now)],
            )
            .map_err(|e| db_err("cannot write", self.path(), &e))?;
            Ok(self
                .row(c, task)?
                .and_then(|r| r.completion())
                .expect("row just completed"))
        })
    }

    fn show(&self, task: &str) -> Result<TaskState> {
        check_task(task)?;
        let clock = Clock::now()?;
        let row = self.row(self.db.conn(), task)?;
        Ok(row.map_or_else(
            || TaskState {
                task: task.to_owned(),
                lease: None,
                holder: None,
                reclaimable: false,
                completed: None,
            },
            |r| self.state(&r, &clock),
        ))
    }

    fn list(&self) -> Result<Vec<TaskState>> {
        let clock = Clock::now()?;
        let mut stmt = self
            .db
            .conn()
            .prepare(&format!("SELECT {COLUMNS} FROM leases ORDER BY task"))
            .map_err(|e| db_err("cannot read", self.path(), &e))?;
        let rows = stmt
            .query_map([], Row_::from_row)
            .map_err(|e| db_err("cannot read", self.path(), &e))?;
        let mut out = Vec::new();
        for r in rows {
            let r = r.map_err(|e| db_err("cannot read", self.path(), &e))?;
            out.push(self.state(&r, &clock));
        }
        Ok(out)
    }

    fn release_session(&self, session: &SessionId) -> Result<Vec<String>> {
        self.immediate(|c| {
            let mut stmt = c
                .prepare("DELETE FROM leases WHERE session = ?1 RETURNING task")
                .map_err(|e| db_err("cannot write", self.path(), &e))?;
            let tasks = stmt
                .query_map([session.as_str()], |r| r.get::<_, String>(0))
                .map_err(|e| db_err("cannot write", self.path(), &e))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| db_err("cannot write", self.path(), &e))?;
            Ok(tasks)
        })
    }
}

fn not_holder(task: &str, session: &SessionId, row: Option<&Row_>) -> Error {
    let who = match row.and_then(|r| r.session.as_deref()) {
        Some(h) => format!("held by session {h}"),
        None => "not held".to_owned(),
    };
    Error::Conflict(format!(
        "session {session} does not hold the lease on {task:?} ({who})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::StartOptions;

    fn setup() -> (tempfile::TempDir, Home, SqliteStore) {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path().join("h")).unwrap();
        let s = SqliteStore::open(&home).unwrap();
        (d, home, s)
    }

    fn req(task: &str, session: &str, ttl_ms: u64) -> AcquireRequest {
        AcquireRequest {
            task: task.into(),
            session: SessionId::new(session).unwrap(),
            ttl: Duration::from_millis(ttl_ms),
            once: false,
            cwd: "/w".into(),
        }
    }

    #[test]
    fn one_holder_tokens_grow_and_reacquire_keeps_the_token() {
        let (_d, _h, s) = setup();
        let Acquired::Granted(a) = s.acquire(&req("t", "a", 60_000)).unwrap() else {
            panic!()
        };
        assert!(matches!(
            s.acquire(&req("t", "b", 60_000)).unwrap(),
            Acquired::Held(_)
        ));
        let Acquired::Granted(a2) = s.acquire(&req("t", "a", 60_000)).unwrap() else {
            panic!()
        };
        assert_eq!(a.token, a2.token);
        s.release("t", &SessionId::new("a").unwrap()).unwrap();
        let Acquired::Granted(b) = s.acquire(&req("t", "b", 60_000)).unwrap() else {
            panic!()
        };
        assert!(b.token > a.token);
    }

    #[test]
    fn expired_ttl_is_reclaimable_only_when_the_holder_is_not_alive() {
        let (_d, home, s) = setup();
        let reg = Registry::open(&home).unwrap();
        let a = SessionId::new("a").unwrap();
        reg.start(
            &a,
            &StartOptions {
                pid: Some(std::process::id()),
                ..StartOptions::default()
            },
        )
        .unwrap();
        assert!(matches!(
            s.acquire(&req("t", "a", 0)).unwrap(),
            Acquired::Granted(_)
        ));
        // Alive holder, TTL run out: still held.
        assert!(matches!(
            s.acquire(&req("t", "b", 0)).unwrap(),
            Acquired::Held(_)
        ));
        // Unregistered holder, TTL run out: reclaimable.
        reg.remove(&a).unwrap();
        assert!(matches!(
            s.acquire(&req("t", "b", 60_000)).unwrap(),
            Acquired::Granted(_)
        ));
    }

    #[test]
    fn completed_once_task_is_never_granted_again() {
        let (_d, _h, s) = setup();
        let mut r = req("t", "a", 60_000);
        r.once = true;
        assert!(matches!(s.acquire(&r).unwrap(), Acquired::Granted(_)));
        s.complete("t", &SessionId::new("a").unwrap()).unwrap();
        for who in ["a", "b"] {
            assert!(matches!(
                s.acquire(&req("t", who, 60_000)).unwrap(),
                Acquired::Completed(_)
            ));
        }
    }
}
