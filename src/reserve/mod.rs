//! Edit reservations: a session claims the files it edits; other sessions' writes to them are
//! refused until it lets go.
//!
//! A reservation is a lease of the session on a path or glob ([`Target`]), exclusive or shared,
//! kept in the lease database (`leases.db`, table `reservations`) and judged by the same rules as
//! task leases ([`crate::lease`]):
//!
//! - **All or nothing.** [`Reservations::claim`] runs in one `BEGIN IMMEDIATE` transaction: every
//!   target is checked against every other session's reservation, and either all are written or
//!   none is, and then every conflicting holder is returned. Two racing claims are serialised by
//!   the database lock, so two sessions never both hold overlapping exclusive reservations.
//! - **Globs conflict both ways.** Overlap is decided on the two globs' languages
//!   ([`glob`](self) module docs): `src/**` meets `src/api/x.rs`, and `src/*.rs` does not meet
//!   `docs/*.md`. Over-reporting is possible (documented there); missing a conflict is not.
//! - **Exclusive vs shared.** Two shared reservations may overlap; anything overlapping an
//!   exclusive one of another session conflicts.
//! - **Released** by [`Reservations::release`], by `session end` and the `SessionEnd` hook
//!   ([`release_session`], called by [`crate::backend::Backend::end_session`] on every backend:
//!   reservations are local state even when the leases are on etcd), at once when
//!   the holder's session is dead (pid + start time + boot id), and on TTL only when the holder is
//!   not known alive (an unregistered session). A live session's reservation does not expire.
//! - **May S write P?** [`Reservations::check`] is a single read of the table (no write lock): a
//!   literal-prefix filter, then the glob overlap for the few candidates, then liveness of the
//!   few holders that remain — fast enough for an edit-time hook with a thousand reservations.
//!
//! Not guaranteed: reservations are advisory for anything that does not ask (an editor, a script
//! that never calls concur). The edit-time hook and the git pre-commit hook are the places that
//! ask. Liveness is local to this machine.

pub mod edits;
pub mod git;
pub mod git_guard;
mod glob;
mod path;
pub mod report;

use crate::time::BootClock as Clock;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};
use serde::Serialize;

pub use path::{PATH_MAX, Target, check_len};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::SessionId;
use crate::session::{Liveness, Registry};
use crate::sqlite::{Db, db_err};
use crate::sys;
use crate::time::now_unix_ms;

/// The default time to live of a reservation (it matters only once the holder is not known alive).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Exclusive or shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No other session may reserve or write an overlapping path.
    Exclusive,
    /// Other sessions may reserve it shared too (and those holders may write it).
    Shared,
}

impl Mode {
    /// `"exclusive"` or `"shared"`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Exclusive => "exclusive",
            Mode::Shared => "shared",
        }
    }
}

/// A held reservation as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    /// The holding session.
    pub session: String,
    /// The holder's pid, when its session was registered at claim time.
    pub pid: Option<u32>,
    /// The holder's working directory.
    pub cwd: String,
    /// The repository root the path is relative to (`/` outside a repository).
    pub root: String,
    /// The path or glob, relative to `root`.
    pub path: String,
    /// Exclusive or shared.
    pub mode: Mode,
    /// Why, as the holder said.
    pub reason: Option<String>,
    /// When it was first claimed, ms since the Unix epoch (display only).
    pub since: u64,
    /// When it was last renewed, ms since the Unix epoch (display only).
    pub renewed_at: u64,
    /// The time to live from the last renewal, in ms.
    pub ttl_ms: u64,
    /// Milliseconds left of the TTL (0 when run out; it only matters once the holder is not alive).
    pub expires_in_ms: u64,
    /// The holder's liveness: `alive`, `dead` or `unregistered`.
    pub holder: &'static str,
}

impl Reservation {
    /// The reservation's target.
    pub fn target(&self) -> Target {
        Target {
            root: self.root.clone(),
            pattern: self.path.clone(),
        }
    }

    /// One line naming the holder, mode, age, expiry and reason, for conflict messages.
    pub fn describe(&self) -> String {
        let now = now_unix_ms();
        let pid = self
            .pid
            .map_or_else(|| "no pid".to_owned(), |p| format!("pid {p}"));
        let cwd = if self.cwd.is_empty() {
            String::new()
        } else {
            format!(", cwd {}", self.cwd)
        };
        let until = if self.holder == "alive" {
            "held while that session lives".to_owned()
        } else {
            format!("expires in {}", crate::time::age(self.expires_in_ms, 0))
        };
        let reason = self
            .reason
            .as_ref()
            .map_or_else(String::new, |r| format!(": {r}"));
        format!(
            "{} reserved {} by session {} ({pid}{cwd}, for {}, {until}){reason}",
            self.path,
            self.mode.name(),
            self.session,
            crate::time::age(now, self.since),
        )
    }
}

/// What a claim asks for.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The claiming session.
    pub session: SessionId,
    /// The paths and globs, all or nothing.
    pub targets: Vec<Target>,
    /// Exclusive or shared.
    pub mode: Mode,
    /// Time to live from now (applies only once the session is not known alive).
    pub ttl: Duration,
    /// Why (shown to sessions that run into it).
    pub reason: Option<String>,
    /// The claimer's working directory, shown to others.
    pub cwd: String,
}

/// One conflict of a refused claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The target that was asked for.
    pub wanted: String,
    /// The reservation it ran into.
    pub held: Reservation,
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Every target is now reserved by the session (new or renewed).
    Granted(Vec<Reservation>),
    /// Nothing was claimed; every conflicting holder is listed.
    Refused(Vec<Conflict>),
}

/// The answer to "may session S write path P?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Nobody else holds it.
    Free,
    /// The session itself holds a reservation covering it.
    Own,
    /// Other live sessions hold it (exclusively, or shared while S holds none).
    Denied(Vec<Reservation>),
}

/// One row of `reservations`, with its full glob.
#[derive(Debug, Clone)]
struct Row {
    session: String,
    root: String,
    pattern: String,
    shared: bool,
    pid: Option<u32>,
    cwd: String,
    reason: Option<String>,
    since: u64,
    renewed_at: u64,
    ttl_ms: u64,
    expires_ms: u64,
    boot_id: String,
    full: String,
}

const COLUMNS: &str = "session, root, pattern, shared, pid, cwd, reason, since, renewed_at, \
                       ttl_ms, expires_ms, boot_id";

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Row {
    fn from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        let root: String = r.get(1)?;
        let pattern: String = r.get(2)?;
        let full = Target {
            root: root.clone(),
            pattern: pattern.clone(),
        }
        .full();
        Ok(Row {
            session: r.get(0)?,
            root,
            pattern,
            shared: r.get::<_, i64>(3)? != 0,
            pid: r
                .get::<_, Option<i64>>(4)?
                .and_then(|p| u32::try_from(p).ok()),
            cwd: r.get(5)?,
            reason: r.get(6)?,
            since: u(r.get(7)?),
            renewed_at: u(r.get(8)?),
            ttl_ms: u(r.get(9)?),
            expires_ms: u(r.get(10)?),
            boot_id: r.get(11)?,
            full,
        })
    }

    fn mode(&self) -> Mode {
        if self.shared {
            Mode::Shared
        } else {
            Mode::Exclusive
        }
    }

    fn expires_in(&self, clock: &Clock) -> u64 {
        clock.remaining(self.expires_ms, &self.boot_id)
    }

    fn reservation(&self, clock: &Clock, live: Liveness) -> Reservation {
        Reservation {
            session: self.session.clone(),
            pid: self.pid,
            cwd: self.cwd.clone(),
            root: self.root.clone(),
            path: self.pattern.clone(),
            mode: self.mode(),
            reason: self.reason.clone(),
            since: self.since,
            renewed_at: self.renewed_at,
            ttl_ms: self.ttl_ms,
            expires_in_ms: self.expires_in(clock),
            holder: live.name(),
        }
    }
}

/// Whether two reservation globs in full form (absolute, `\` escaping a literal `*`, `?` or
/// `\`) can name a common path: the test every claim and every hook check runs.
///
/// # Examples
/// ```
/// use concur::reserve::globs_overlap;
/// assert!(globs_overlap("/r/src/**", "/r/src/api/x.rs"));
/// assert!(!globs_overlap("/r/a\\*b", "/r/axb"));
/// ```
pub fn globs_overlap(a: &str, b: &str) -> bool {
    meets(a, b)
}

/// Whether two globs (full form) can name a common path: a cheap literal-prefix test first.
fn meets(a: &str, b: &str) -> bool {
    let (pa, pb) = (glob::literal_prefix(a), glob::literal_prefix(b));
    if !(pa.starts_with(pb) || pb.starts_with(pa)) {
        return false;
    }
    glob::overlaps(&glob::parse(a), &glob::parse(b))
}

/// The file beside a lease database whose existence says reservations may have been claimed
/// in it. It is created (and made durable) before the first claim commits and never removed,
/// so its absence proves the table is empty and the edit-time hook need not open the database.
fn marker_for(db: &Path) -> std::path::PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".reserved");
    s.into()
}

/// Whether `home` may hold reservations: `false` only when none was ever claimed in it (its
/// marker file is missing), so a caller can allow an edit without opening the database. Any
/// doubt (an error other than "not found") answers `true`.
///
/// # Examples
/// ```
/// # let d = tempfile::tempdir().unwrap();
/// let home = concur::Home::at(d.path().join("home")).unwrap();
/// assert!(!concur::reserve::may_exist(&home));
/// ```
pub fn may_exist(home: &Home) -> bool {
    match std::fs::symlink_metadata(marker_for(&home.join("leases.db"))) {
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        Ok(_) => true,
    }
}

/// Creates `db`'s marker durably (file and directory entry) unless it exists.
fn mark(db: &Path) -> Result<()> {
    let m = marker_for(db);
    if std::fs::symlink_metadata(&m).is_ok() {
        return Ok(());
    }
    drop(
        sys::fs::open(&m, sys::fs::Open::read_write(sys::fs::DEFAULT_MODE))
            .map_err(Error::with("cannot create the reservation marker", &m))?,
    );
    sys::fs::sync_dir(sys::fs::parent_dir(&m))
        .map_err(Error::with("cannot sync the directory of", &m))
}

/// The reservations of a runtime home.
#[derive(Debug)]
pub struct Reservations {
    db: Db,
    registry: Registry,
}

/// Session liveness, each holder looked up once per call.
struct Lives<'a> {
    registry: &'a Registry,
    seen: HashMap<String, Liveness>,
}

impl Lives<'_> {
    fn of(&mut self, session: &str) -> Liveness {
        if let Some(l) = self.seen.get(session) {
            return *l;
        }
        let l = SessionId::new(session)
            .map_or(Liveness::Unregistered, |id| self.registry.liveness(&id));
        self.seen.insert(session.to_owned(), l);
        l
    }

    /// Whether `row` no longer holds: its session is dead, or not known alive and past its TTL.
    fn gone(&mut self, row: &Row, clock: &Clock) -> bool {
        match self.of(&row.session) {
            Liveness::Dead => true,
            Liveness::Alive => false,
            Liveness::Unregistered => row.expires_in(clock) == 0,
        }
    }
}

impl Reservations {
    /// Opens the reservations of `home` (the lease database).
    ///
    /// # Errors
    /// [`Error::Io`] when the database cannot be opened or set up, or the registry's directory
    /// cannot be made.
    ///
    /// # Examples
    /// ```
    /// # let d = tempfile::tempdir().unwrap();
    /// # let dir = std::fs::canonicalize(d.path()).unwrap();
    /// use concur::reserve::{Access, Claim, ClaimRequest, Mode, Reservations, Target, DEFAULT_TTL};
    /// let home = concur::Home::at(dir.join("home")).unwrap();
    /// let r = Reservations::open(&home).unwrap();
    /// let a = concur::SessionId::new("a").unwrap();
    /// let b = concur::SessionId::new("b").unwrap();
    /// let req = ClaimRequest {
    ///     session: a.clone(),
    ///     targets: vec![Target::resolve("src/**", &dir).unwrap()],
    ///     mode: Mode::Exclusive,
    ///     ttl: DEFAULT_TTL,
    ///     reason: Some("refactoring the parser".into()),
    ///     cwd: String::new(),
    /// };
    /// assert!(matches!(r.claim(&req).unwrap(), Claim::Granted(_)));
    /// let file = Target::resolve("src/api/x.rs", &dir).unwrap();
    /// assert_eq!(r.check(Some(&a), &file).unwrap(), Access::Own);
    /// assert!(matches!(r.check(Some(&b), &file).unwrap(), Access::Denied(_)));
    /// ```
    pub fn open(home: &Home) -> Result<Reservations> {
        let r = Reservations {
            db: Db::open(home)?,
            registry: Registry::open(home)?,
        };
        r.mark_if_used()?;
        Ok(r)
    }

    /// Creates the marker for a database that holds reservations but has none (claimed by a
    /// concur that predates the marker): every open does it, session starts included, so such
    /// a home is covered again at the next `SessionStart` hook or reserve command.
    fn mark_if_used(&self) -> Result<()> {
        let path = self.db.path();
        if std::fs::symlink_metadata(marker_for(path)).is_ok() {
            return Ok(());
        }
        let used: bool = self
            .db
            .conn()
            .query_row("SELECT EXISTS (SELECT 1 FROM reservations)", [], |r| {
                r.get(0)
            })
            .map_err(|e| db_err("cannot read", path, &e))?;
        if used { mark(path) } else { Ok(()) }
    }

    /// The database file (the home's `leases.db`).
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    fn lives(&self) -> Lives<'_> {
        Lives {
            registry: &self.registry,
            seen: HashMap::new(),
        }
    }

    fn rows(
        &self,
        c: &Connection,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Row>> {
        let path = self.db.path();
        let mut stmt = c
            .prepare_cached(&format!("SELECT {COLUMNS} FROM reservations {filter}"))
            .map_err(|e| db_err("cannot read", path, &e))?;
        let rows = stmt
            .query_map(args, Row::from_sql)
            .map_err(|e| db_err("cannot read", path, &e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| db_err("cannot read", path, &e))
    }

    /// Claims every target of `req` for its session, or none of them.
    ///
    /// A target the session already holds is renewed (mode, TTL and, if given, reason updated).
    /// Rows of dead or expired holders are removed in the same transaction.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a reason with control characters or over 1,000 bytes; store errors.
    pub fn claim(&self, req: &ClaimRequest) -> Result<Claim> {
        if let Some(r) = &req.reason
            && (r.len() > 1000 || r.chars().any(char::is_control))
        {
            return Err(Error::Invalid(
                "invalid --reason: at most 1000 bytes, no control characters".into(),
            ));
        }
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
        let wanted: Vec<(String, &Target)> = req.targets.iter().map(|t| (t.full(), t)).collect();
        let path = self.db.path();
        // Before any row can commit: the hook reads a missing marker as "no reservations".
        mark(path)?;
        self.db.immediate(|c| {
            let mut lives = self.lives();
            let mut conflicts = Vec::new();
            let mut gone = Vec::new();
            for row in self.rows(c, "WHERE session != ?1", &[&me])? {
                if lives.gone(&row, &clock) {
                    gone.push(row);
                    continue;
                }
                for (full, t) in &wanted {
                    let compatible = row.shared && req.mode == Mode::Shared;
                    if !compatible && meets(full, &row.full) {
                        let live = lives.of(&row.session);
                        conflicts.push(Conflict {
                            wanted: t.pattern.clone(),
                            held: row.reservation(&clock, live),
                        });
                    }
                }
            }
            if !conflicts.is_empty() {
                return Ok(Claim::Refused(conflicts));
            }
            for g in &gone {
                c.execute(
                    "DELETE FROM reservations WHERE session = ?1 AND root = ?2 AND pattern = ?3",
                    params![g.session, g.root, g.pattern],
                )
                .map_err(|e| db_err("cannot write", path, &e))?;
            }
            let mut out = Vec::new();
            for (_, t) in &wanted {
                c.execute(
                    &format!(
                        "INSERT INTO reservations ({COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11) \
                         ON CONFLICT (session, root, pattern) DO UPDATE SET \
                         shared = excluded.shared, pid = excluded.pid, cwd = excluded.cwd, \
                         reason = COALESCE(excluded.reason, reason), \
                         renewed_at = excluded.renewed_at, ttl_ms = excluded.ttl_ms, \
                         expires_ms = excluded.expires_ms, boot_id = excluded.boot_id"
                    ),
                    params![
                        me,
                        t.root,
                        t.pattern,
                        req.mode == Mode::Shared,
                        pid,
                        req.cwd,
                        req.reason,
                        i(now),
                        i(ttl_ms),
                        i(clock.now_ms.saturating_add(ttl_ms)),
                        clock.boot_id
                    ],
                )
                .map_err(|e| db_err("cannot write", path, &e))?;
                let row = self
                    .rows(
                        c,
                        "WHERE session = ?1 AND root = ?2 AND pattern = ?3",
                        &[&me, &t.root, &t.pattern],
                    )?
                    .pop()
                    .expect("row just written");
                let live = lives.of(me);
                out.push(row.reservation(&clock, live));
            }
            Ok(Claim::Granted(out))
        })
    }

    /// Releases the session's reservations of exactly these targets (all of them for `None`).
    /// Returns what was released.
    ///
    /// # Errors
    /// Store errors.
    pub fn release(
        &self,
        session: &SessionId,
        targets: Option<&[Target]>,
    ) -> Result<Vec<Reservation>> {
        let clock = Clock::now()?;
        let path = self.db.path();
        let me = session.as_str();
        self.db.immediate(|c| {
            let mut out = Vec::new();
            let mut lives = self.lives();
            for row in self.rows(c, "WHERE session = ?1", &[&me])? {
                let hit = targets.is_none_or(|ts| {
                    ts.iter()
                        .any(|t| t.root == row.root && t.pattern == row.pattern)
                });
                if !hit {
                    continue;
                }
                c.execute(
                    "DELETE FROM reservations WHERE session = ?1 AND root = ?2 AND pattern = ?3",
                    params![row.session, row.root, row.pattern],
                )
                .map_err(|e| db_err("cannot write", path, &e))?;
                let live = lives.of(me);
                out.push(row.reservation(&clock, live));
            }
            Ok(out)
        })
    }

    /// Every reservation still held (dead and expired holders left out), ordered by root, path
    /// and session.
    ///
    /// # Errors
    /// Store errors.
    pub fn list(&self) -> Result<Vec<Reservation>> {
        let clock = Clock::now()?;
        let mut lives = self.lives();
        let mut out = Vec::new();
        for row in self.rows(self.db.conn(), "ORDER BY root, pattern, session", &[])? {
            if lives.gone(&row, &clock) {
                continue;
            }
            let live = lives.of(&row.session);
            out.push(row.reservation(&clock, live));
        }
        Ok(out)
    }

    /// The rows that may overlap `target`: a first pass reads only root and pattern (no
    /// allocation per row) and drops rows whose literal prefix differs from the target's; the
    /// survivors are read whole. Both reads are one transaction, so they see one snapshot.
    fn candidates(&self, target: &Target) -> Result<Vec<Row>> {
        let path = self.db.path();
        let c = self.db.conn();
        let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Deferred)
            .map_err(|e| db_err("cannot read", path, &e))?;
        let tp = glob::literal_prefix(&target.pattern);
        let full = target.full();
        let mut ids: Vec<i64> = Vec::new();
        {
            let mut stmt = tx
                .prepare_cached("SELECT rowid, root, pattern FROM reservations")
                .map_err(|e| db_err("cannot read", path, &e))?;
            let mut rows = stmt
                .query([])
                .map_err(|e| db_err("cannot read", path, &e))?;
            while let Some(r) = rows.next().map_err(|e| db_err("cannot read", path, &e))? {
                let root = r
                    .get_ref(1)
                    .ok()
                    .and_then(|v| v.as_str().ok())
                    .unwrap_or("");
                let pattern = r
                    .get_ref(2)
                    .ok()
                    .and_then(|v| v.as_str().ok())
                    .unwrap_or("");
                let maybe = if root == target.root {
                    let rp = glob::literal_prefix(pattern);
                    tp.starts_with(rp) || rp.starts_with(tp)
                } else {
                    // Different roots (nested repositories, paths outside one): full test.
                    let other = Target {
                        root: root.to_owned(),
                        pattern: pattern.to_owned(),
                    }
                    .full();
                    let (a, b) = (glob::literal_prefix(&full), glob::literal_prefix(&other));
                    a.starts_with(b) || b.starts_with(a)
                };
                if maybe {
                    ids.push(r.get(0).map_err(|e| db_err("cannot read", path, &e))?);
                }
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.rows(&tx, "WHERE rowid = ?1", &[&id])?);
        }
        tx.commit().map_err(|e| db_err("cannot read", path, &e))?;
        Ok(out)
    }

    /// May `session` (or a caller with no session, for `None`) write `target`?
    ///
    /// Denied when another session that still holds has an exclusive reservation overlapping
    /// it, or a shared one while `session` holds none overlapping it. One read, no write lock.
    ///
    /// # Errors
    /// Store errors (a hook must treat them as a denial).
    pub fn check(&self, session: Option<&SessionId>, target: &Target) -> Result<Access> {
        let clock = Clock::now()?;
        let full = target.full();
        let me = session.map(SessionId::as_str);
        let mut lives = self.lives();
        let mut own = false;
        let mut exclusive = Vec::new();
        let mut shared = Vec::new();
        for row in self.candidates(target)? {
            if !meets(&full, &row.full) {
                continue;
            }
            if Some(row.session.as_str()) == me {
                own = true;
                continue;
            }
            if lives.gone(&row, &clock) {
                continue;
            }
            let live = lives.of(&row.session);
            if row.shared {
                shared.push(row.reservation(&clock, live));
            } else {
                exclusive.push(row.reservation(&clock, live));
            }
        }
        Ok(if !exclusive.is_empty() {
            Access::Denied(exclusive)
        } else if own {
            Access::Own
        } else if !shared.is_empty() {
            Access::Denied(shared)
        } else {
            Access::Free
        })
    }
}

/// Removes every reservation of `session` (session end and gc, whatever the lease backend:
/// reservations are local state even when leases live on etcd); returns them as
/// `reserve:<full path>` names. Opens nothing when the home has never held a reservation.
///
/// # Errors
/// The database cannot be opened or written.
pub fn release_session(home: &Home, session: &SessionId) -> Result<Vec<String>> {
    if !may_exist(home) {
        return Ok(Vec::new());
    }
    let r = Reservations::open(home)?;
    r.db.immediate(|c| release_session_in(c, session, r.db.path()))
}

/// Removes every reservation of `session` inside the caller's transaction; returns them as
/// `reserve:<full path>` names.
fn release_session_in(c: &Connection, session: &SessionId, db: &Path) -> Result<Vec<String>> {
    let mut stmt = c
        .prepare("DELETE FROM reservations WHERE session = ?1 RETURNING root, pattern")
        .map_err(|e| db_err("cannot write", db, &e))?;
    let names = stmt
        .query_map([session.as_str()], |r| {
            Ok(Target {
                root: r.get(0)?,
                pattern: r.get(1)?,
            })
        })
        .map_err(|e| db_err("cannot write", db, &e))?
        .map(|t| t.map(|t| format!("reserve:{}", t.full())))
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| db_err("cannot write", db, &e))?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Registry, StartOptions};

    struct Fx {
        _d: tempfile::TempDir,
        dir: std::path::PathBuf,
        home: Home,
        r: Reservations,
    }

    fn fx() -> Fx {
        let d = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(dir.join("repo/.git")).unwrap();
        let home = Home::at(dir.join("home")).unwrap();
        let r = Reservations::open(&home).unwrap();
        Fx {
            _d: d,
            dir,
            home,
            r,
        }
    }

    fn req(f: &Fx, who: &str, paths: &[&str], mode: Mode, ttl_ms: u64) -> ClaimRequest {
        ClaimRequest {
            session: SessionId::new(who).unwrap(),
            targets: paths
                .iter()
                .map(|p| Target::resolve(p, &f.dir.join("repo")).unwrap())
                .collect(),
            mode,
            ttl: Duration::from_millis(ttl_ms),
            reason: None,
            cwd: String::new(),
        }
    }

    fn t(f: &Fx, p: &str) -> Target {
        Target::resolve(p, &f.dir.join("repo")).unwrap()
    }

    #[test]
    fn the_marker_comes_with_the_first_claim_and_is_restored_on_open() {
        let f = fx();
        assert!(!may_exist(&f.home), "nothing claimed yet");
        assert!(matches!(
            f.r.claim(&req(&f, "a", &["src/a.rs"], Mode::Exclusive, 60_000))
                .unwrap(),
            Claim::Granted(_)
        ));
        assert!(may_exist(&f.home));
        // A home whose rows were written without a marker (an older concur) gets it back.
        std::fs::remove_file(marker_for(f.r.path())).unwrap();
        assert!(!may_exist(&f.home));
        drop(Reservations::open(&f.home).unwrap());
        assert!(may_exist(&f.home));
    }

    #[test]
    fn a_refused_claim_claims_nothing_and_names_every_holder() {
        let f = fx();
        assert!(matches!(
            f.r.claim(&req(&f, "a", &["src/a.rs"], Mode::Exclusive, 60_000))
                .unwrap(),
            Claim::Granted(_)
        ));
        assert!(matches!(
            f.r.claim(&req(&f, "b", &["docs/**"], Mode::Exclusive, 60_000))
                .unwrap(),
            Claim::Granted(_)
        ));
        let Claim::Refused(c) =
            f.r.claim(&req(
                &f,
                "c",
                &["free.rs", "src/**", "docs/x.md"],
                Mode::Exclusive,
                60_000,
            ))
            .unwrap()
        else {
            panic!("granted")
        };
        let holders: Vec<_> = c.iter().map(|c| c.held.session.as_str()).collect();
        assert_eq!(holders, ["a", "b"]);
        assert_eq!(f.r.check(None, &t(&f, "free.rs")).unwrap(), Access::Free);
    }

    #[test]
    fn shared_claims_coexist_and_exclude_the_rest() {
        let f = fx();
        for who in ["a", "b"] {
            assert!(matches!(
                f.r.claim(&req(&f, who, &["lib/**"], Mode::Shared, 60_000))
                    .unwrap(),
                Claim::Granted(_)
            ));
        }
        assert!(matches!(
            f.r.claim(&req(&f, "c", &["lib/x"], Mode::Exclusive, 60_000))
                .unwrap(),
            Claim::Refused(_)
        ));
        let a = SessionId::new("a").unwrap();
        let c = SessionId::new("c").unwrap();
        assert_eq!(f.r.check(Some(&a), &t(&f, "lib/x")).unwrap(), Access::Own);
        assert!(
            matches!(f.r.check(Some(&c), &t(&f, "lib/x")).unwrap(), Access::Denied(v) if v.len() == 2)
        );
    }

    #[test]
    fn dead_holders_release_at_once_and_ttl_only_frees_unregistered_ones() {
        let f = fx();
        let reg = Registry::open(&f.home).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let a = SessionId::new("a").unwrap();
        reg.start(
            &a,
            &StartOptions {
                pid: Some(child.id()),
                ..StartOptions::default()
            },
        )
        .unwrap();
        // Alive, TTL 0: still held.
        assert!(matches!(
            f.r.claim(&req(&f, "a", &["x"], Mode::Exclusive, 0))
                .unwrap(),
            Claim::Granted(_)
        ));
        assert!(matches!(
            f.r.check(None, &t(&f, "x")).unwrap(),
            Access::Denied(_)
        ));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(f.r.check(None, &t(&f, "x")).unwrap(), Access::Free);
        // Unregistered: held until the TTL runs out.
        assert!(matches!(
            f.r.claim(&req(&f, "u", &["y"], Mode::Exclusive, 60_000))
                .unwrap(),
            Claim::Granted(_)
        ));
        assert!(matches!(
            f.r.check(None, &t(&f, "y")).unwrap(),
            Access::Denied(_)
        ));
        assert!(matches!(
            f.r.claim(&req(&f, "v", &["z"], Mode::Exclusive, 0))
                .unwrap(),
            Claim::Granted(_)
        ));
        assert_eq!(f.r.check(None, &t(&f, "z")).unwrap(), Access::Free);
        // Session end releases them, whichever lease store the session used.
        let released = release_session(&f.home, &SessionId::new("u").unwrap()).unwrap();
        assert_eq!(released.len(), 1, "{released:?}");
        assert_eq!(f.r.check(None, &t(&f, "y")).unwrap(), Access::Free);
    }

    #[test]
    fn release_by_target_and_all() {
        let f = fx();
        let a = SessionId::new("a").unwrap();
        assert!(matches!(
            f.r.claim(&req(&f, "a", &["p", "q", "r/**"], Mode::Exclusive, 60_000))
                .unwrap(),
            Claim::Granted(_)
        ));
        assert_eq!(f.r.release(&a, Some(&[t(&f, "q")])).unwrap().len(), 1);
        assert_eq!(f.r.list().unwrap().len(), 2);
        assert_eq!(f.r.release(&a, None).unwrap().len(), 2);
        assert!(f.r.list().unwrap().is_empty());
    }
}
