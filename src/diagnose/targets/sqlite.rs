//! sqlite: W writers each insert `ops` rows in read-then-write transactions.
//!
//! Naive: the default rollback journal, no busy timeout, a deferred `BEGIN` that reads and then
//! writes — two readers that both want to upgrade to a writer cannot, and one gets `SQLITE_BUSY`
//! at once; a hook that does not retry loses the row → `BUSY_ERRORS` / `LOST_ROWS`. Concur (what
//! `concur lease` does): WAL, `busy_timeout`, `BEGIN IMMEDIATE` (take the write lock first).

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::json;

use super::{MAX_MARKS, work};
use crate::diagnose::{
    Events, Mark, Mode, RoundCheck, Sizes, Target, WriterRun, WriterSpec, now_us,
};
use crate::error::{Error, Result};

const FILE: &str = "state.db";

/// The sqlite target.
pub struct Sqlite;

fn db_err(path: &Path) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |e| Error::io("sqlite", path, std::io::Error::other(e.to_string()))
}

fn insert(conn: &Connection, begin: &str, w: usize, i: usize) -> rusqlite::Result<()> {
    conn.execute_batch(begin)?;
    let r = (|| {
        let seen: i64 = conn.query_row("SELECT count(*) FROM entries", [], |r| r.get(0))?;
        work(500); // decide what to write from what was read
        conn.execute(
            "INSERT INTO entries (w, i, seen) VALUES (?1, ?2, ?3)",
            rusqlite::params![w.to_string(), i.to_string(), seen],
        )?;
        conn.execute_batch("COMMIT")
    })();
    if r.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    r
}

impl Target for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn violations(&self) -> &'static str {
        "BUSY_ERRORS / LOST_ROWS"
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            writers: 4,
            ops: 20,
            rounds: 1,
        }
    }

    fn expected(&self, s: &Sizes) -> String {
        format!("{} rows, 0 errors", s.writers * s.ops)
    }

    fn setup(&self, dir: &Path, mode: Mode, _s: &Sizes) -> Result<()> {
        let path = dir.join(FILE);
        let conn = Connection::open(&path).map_err(db_err(&path))?;
        if mode == Mode::Protected {
            conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
                .map_err(db_err(&path))?;
        }
        conn.execute_batch(
            "CREATE TABLE entries (id INTEGER PRIMARY KEY, w INTEGER, i INTEGER, seen INTEGER)",
        )
        .map_err(db_err(&path))
    }

    fn write(&self, spec: &WriterSpec, ev: &mut Events) -> Result<()> {
        let path = spec.dir.join(FILE);
        let conn = Connection::open(&path).map_err(db_err(&path))?;
        let protected = spec.mode == Mode::Protected;
        let (timeout, begin) = if protected {
            (Duration::from_secs(10), "BEGIN IMMEDIATE")
        } else {
            (Duration::ZERO, "BEGIN")
        };
        conn.busy_timeout(timeout).map_err(db_err(&path))?;
        for i in 0..spec.ops {
            let t = now_us();
            let r = insert(&conn, begin, spec.writer, i);
            if protected && r.is_ok() {
                ev.hold(t, json!({}));
            }
            ev.op(
                t,
                json!({ "ok": r.is_ok(), "error": r.err().map(|e| e.to_string()) }),
            );
        }
        Ok(())
    }

    fn check(&self, dir: &Path, s: &Sizes, runs: &[WriterRun]) -> Result<RoundCheck> {
        let path = dir.join(FILE);
        let conn = Connection::open(&path).map_err(db_err(&path))?;
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
            .map_err(db_err(&path))?;
        let n = s.writers * s.ops;
        let errors: Vec<Mark> = runs
            .iter()
            .flat_map(|r| {
                r.events_of("op")
                    .filter(|e| e.data["ok"].as_bool() == Some(false))
                    .map(move |e| Mark {
                        round: r.round,
                        at: e.end,
                        writer: Some(r.writer),
                        label: e.data["error"].as_str().unwrap_or("error").to_owned(),
                    })
            })
            .collect();
        let observed = format!("{rows} rows of {n}, {} busy errors", errors.len());
        let rows = usize::try_from(rows).unwrap_or(0);
        if errors.is_empty() && rows == n {
            return Ok(RoundCheck::held(observed));
        }
        let verdict = if errors.is_empty() {
            "LOST_ROWS"
        } else {
            "BUSY_ERRORS"
        };
        Ok(RoundCheck::broke(
            verdict,
            observed,
            errors.into_iter().take(MAX_MARKS).collect(),
        ))
    }
}
