//! Lease acquire + release in-process: concur's `SqliteStore` against a raw rusqlite loop running
//! the same statements (same pragmas, same `BEGIN IMMEDIATE` transactions, cached statements).
//! The ratio raw ÷ concur is the share of the time that is `SQLite` and the disk, not concur.
//!
//! `cargo bench --bench lease` (set `TMPDIR` to choose the disk; the default is `/tmp`).

use std::time::Duration;

use concur::lease::sqlite::SqliteStore;
use concur::lease::{AcquireRequest, Acquired, Store};
use concur::{Home, SessionId};
use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

fn concur_store(c: &mut Criterion) {
    let d = tempfile::tempdir().unwrap();
    let home = Home::at(d.path().join("home")).unwrap();
    let store = SqliteStore::open(&home).unwrap();
    let session = SessionId::new("bench").unwrap();
    let req = AcquireRequest {
        task: "task".into(),
        session: session.clone(),
        ttl: Duration::from_secs(600),
        once: false,
        cwd: "/w".into(),
    };
    c.bench_function("lease/concur acquire+release", |b| {
        b.iter(|| {
            let Acquired::Granted(l) = store.acquire(&req).unwrap() else {
                panic!("not granted")
            };
            store.release(&l.task, &session).unwrap().unwrap();
        });
    });
}

const SELECT: &str = "SELECT task, session, token, once, pid, cwd, acquired_at, renewed_at, ttl_ms, \
                      expires_ms, boot_id, completed_by, completed_at FROM leases WHERE task = ?1";

fn raw_rusqlite(c: &mut Criterion) {
    let d = tempfile::tempdir().unwrap();
    // Same file layout and schema as concur's store (created by it), then used raw.
    let home = Home::at(d.path().join("home")).unwrap();
    drop(SqliteStore::open(&home).unwrap());
    let conn = Connection::open(home.join("leases.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    c.bench_function("lease/raw rusqlite acquire+release", |b| {
        b.iter(|| {
            let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
                .unwrap();
            let row: Option<String> = tx
                .prepare_cached(SELECT)
                .unwrap()
                .query_row(["task"], |r| r.get(0))
                .optional()
                .unwrap();
            assert!(row.is_none());
            let token: i64 = tx
                .prepare_cached("UPDATE counter SET fence = fence + 1 WHERE id = 1 RETURNING fence")
                .unwrap()
                .query_row([], |r| r.get(0))
                .unwrap();
            tx.prepare_cached(
                "INSERT OR REPLACE INTO leases (task, session, token, once, pid, cwd, acquired_at, \
                 renewed_at, ttl_ms, expires_ms, boot_id, completed_by, completed_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, NULL, NULL)",
            )
            .unwrap()
            .execute(params![
                "task",
                "bench",
                token,
                false,
                None::<i64>,
                "/w",
                1,
                600_000,
                2,
                "boot"
            ])
            .unwrap();
            let _: Option<String> = tx
                .prepare_cached(SELECT)
                .unwrap()
                .query_row(["task"], |r| r.get(0))
                .optional()
                .unwrap();
            tx.commit().unwrap();
            let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
                .unwrap();
            let _: Option<String> = tx
                .prepare_cached(SELECT)
                .unwrap()
                .query_row(["task"], |r| r.get(0))
                .optional()
                .unwrap();
            tx.prepare_cached("DELETE FROM leases WHERE task = ?1 AND session = ?2")
                .unwrap()
                .execute(["task", "bench"])
                .unwrap();
            tx.commit().unwrap();
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = concur_store, raw_rusqlite
}
criterion_main!(benches);
