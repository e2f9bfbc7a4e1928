//! The runtime home's `SQLite` database (`leases.db`): one file, one schema, shared by task
//! leases ([`crate::lease::sqlite`], table `leases` and the fencing `counter`) and edit
//! reservations ([`crate::reserve`], table `reservations`). Each of them reads and writes only
//! its own tables (and releases only its own rows at session end); this module owns what they
//! share: how the file is opened, the schema and its version, the `BEGIN IMMEDIATE` transaction
//! with its retry, and the error mapping.
//!
//! Opening creates the file 0600 with `O_NOFOLLOW` first (a symlink planted at the path is
//! refused), then sets a busy handler and `synchronous=FULL` (a committed write survives power
//! loss). The first set-up (WAL mode and the schema) runs under the file's sidecar lock.
//!
//! Every write is one transaction opened with `BEGIN IMMEDIATE`, which takes the database's write
//! lock up front: a deferred `BEGIN` would read, then fail to upgrade under contention
//! (`SQLITE_BUSY` that no busy handler can fix). Racing processes queue on the lock instead of
//! failing.
//!
//! Not guaranteed: the database must be on a local filesystem (WAL needs shared memory).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::sys;

/// How long a transaction waits for the database lock before failing (about; see `busy_wait`).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The busy handler: while another connection holds the write lock, try again after 1 ms (the
/// first 20 tries), then every 2 ms, for about [`BUSY_TIMEOUT`] in all. `SQLite`'s own
/// `busy_timeout` sleeps up to 100 ms between tries, which leaves the lock idle while a queue of
/// short transactions waits (16 racing `lease acquire` processes spent most of their time
/// asleep); each try here is one cheap attempt to take a file lock.
/// `BEGIN IMMEDIATE`, tried again while `SQLite` answers `SQLITE_BUSY` without having waited.
///
/// `SQLite` skips the busy handler where waiting could deadlock (a connection holding SHARED that
/// asks for RESERVED while another holds PENDING, a read racing WAL recovery after the last
/// connection closed); under many concurrent sessions on a loaded machine that surfaced as
/// "database is locked" within milliseconds. A failed `BEGIN` has done nothing, so retrying it
/// is safe; the retries stop at [`BUSY_TIMEOUT`] like the busy handler.
fn begin_immediate<'c>(conn: &'c Connection, path: &Path) -> Result<rusqlite::Transaction<'c>> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate) {
            Ok(tx) => return Ok(tx),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(db_err("cannot lock", path, &e)),
        }
    }
}

fn busy_wait(count: i32) -> bool {
    let limit = i32::try_from(BUSY_TIMEOUT.as_millis() / 2).unwrap_or(i32::MAX);
    if count >= limit {
        return false;
    }
    std::thread::sleep(Duration::from_millis(if count < 20 { 1 } else { 2 }));
    true
}

const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS counter (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  fence INTEGER NOT NULL
);
INSERT OR IGNORE INTO counter (id, fence) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS leases (
  task TEXT PRIMARY KEY,
  session TEXT,
  token INTEGER NOT NULL,
  once INTEGER NOT NULL,
  pid INTEGER,
  cwd TEXT NOT NULL,
  acquired_at INTEGER NOT NULL,
  renewed_at INTEGER NOT NULL,
  ttl_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  boot_id TEXT NOT NULL,
  completed_by TEXT,
  completed_at INTEGER
);
CREATE INDEX IF NOT EXISTS leases_session ON leases (session);
CREATE TABLE IF NOT EXISTS reservations (
  session TEXT NOT NULL,
  root TEXT NOT NULL,
  pattern TEXT NOT NULL,
  shared INTEGER NOT NULL,
  pid INTEGER,
  cwd TEXT NOT NULL,
  reason TEXT,
  since INTEGER NOT NULL,
  renewed_at INTEGER NOT NULL,
  ttl_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  boot_id TEXT NOT NULL,
  PRIMARY KEY (session, root, pattern)
);
PRAGMA user_version = 2;
";

/// An open connection to a home's `SQLite` database, its schema set up.
#[derive(Debug)]
pub(crate) struct Db {
    conn: Connection,
    path: PathBuf,
}

impl Db {
    /// Opens (creating if needed, 0600) `leases.db` in `home`.
    ///
    /// # Errors
    /// [`Error::Io`] when the database cannot be opened or set up.
    pub(crate) fn open(home: &Home) -> Result<Db> {
        Db::open_at(&home.join("leases.db"))
    }

    /// Opens (creating if needed, 0600) the database at `path`.
    ///
    /// # Errors
    /// As [`Db::open`].
    pub(crate) fn open_at(path: &Path) -> Result<Db> {
        // Create it ourselves: 0600, and a symlink planted at the path is refused.
        drop(
            sys::fs::open(path, sys::fs::Open::read_write(sys::fs::DEFAULT_MODE))
                .map_err(Error::with("cannot open lease database", path))?,
        );
        let conn = Connection::open(path).map_err(|e| db_err("cannot open", path, &e))?;
        conn.busy_handler(Some(busy_wait))
            .map_err(|e| db_err("cannot configure", path, &e))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| db_err("cannot configure", path, &e))?;
        let version = |conn: &Connection| -> Result<i64> {
            conn.query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(|e| db_err("cannot read", path, &e))
        };
        // First set-up is serialised by the sidecar lock. Unserialised, one process switching a
        // new database to WAL holds PENDING while another, holding SHARED, asks for RESERVED;
        // SQLite breaks that deadlock by failing the second with SQLITE_BUSY at once, busy
        // handler or not (seen as "database is locked" when many sessions start together).
        let setup = if version(&conn)? < SCHEMA_VERSION {
            Some(crate::sidecar::lock(&crate::sidecar::path_for(path), None)?)
        } else {
            None
        };
        if setup.is_some() && version(&conn)? < SCHEMA_VERSION {
            // WAL is a persistent property of the file; set it once, before the schema.
            conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
                .map_err(|e| db_err("cannot set WAL mode on", path, &e))?;
            let tx = begin_immediate(&conn, path)?;
            tx.execute_batch(SCHEMA)
                .map_err(|e| db_err("cannot create schema in", path, &e))?;
            tx.commit()
                .map_err(|e| db_err("cannot commit to", path, &e))?;
        }
        Ok(Db {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The open connection (reads outside a transaction see one consistent snapshot each).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committing when it returns `Ok`.
    ///
    /// # Errors
    /// `f`'s error (nothing is committed), or the database's when it cannot begin or commit.
    pub(crate) fn immediate<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let tx = begin_immediate(&self.conn, &self.path)?;
        let out = f(&tx)?;
        tx.commit()
            .map_err(|e| db_err("cannot commit to", &self.path, &e))?;
        Ok(out)
    }
}

/// A database error as an [`Error::Io`] on the database file: `ACTION (PATH): WHY`.
pub(crate) fn db_err(action: &'static str, path: &Path, e: &rusqlite::Error) -> Error {
    Error::io(
        action,
        path,
        std::io::Error::other(e.to_string().replace('\n', " ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_open_sets_up_both_tables_and_a_second_open_finds_them() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path().join("h")).unwrap();
        let db = Db::open(&home).unwrap();
        let n: i64 = db
            .immediate(|c| {
                c.query_row(
                    "SELECT (SELECT COUNT(*) FROM leases) + (SELECT COUNT(*) FROM reservations)",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| db_err("cannot read", db.path(), &e))
            })
            .unwrap();
        assert_eq!(n, 0);
        drop(db);
        let again = Db::open(&home).unwrap();
        let v: i64 = again
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn a_symlink_at_the_database_path_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("elsewhere.db");
        let link = d.path().join("leases.db");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Db::open_at(&link).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Permission, "{e}");
        assert!(!target.exists());
    }
}
