//! # concur — collision-free shared local state
//!
//! Many concurrent sessions (AI coding-agent sessions, their shell hooks, cron jobs, CI steps)
//! share files in a home directory. concur gives them primitives that cannot collide: no lost
//! updates, no torn lines, no one-time token used twice, no task started twice, no session
//! reading another's pointer. The `concur` binary is a thin layer over this library.
//!
//! ## Guarantees
//!
//! | primitive | guarantee | mechanism |
//! |---|---|---|
//! | runtime home | private: refused if a symlink, foreign-owned or group/world-writable | [`home`] |
//! | session id | cannot escape the home (`[A-Za-z0-9._-]{1,128}`) | [`id`] |
//! | lock | one exclusive holder (or many shared); released by the kernel when the holder dies; waiters block in the kernel, no polling | [`lock`] |
//! | session | a reused pid is not mistaken for a live session | pid + start time + boot id, [`session`] |
//! | marker / pointer | one session never reads another's value unless it names it | per-session files, atomic replace, [`marker`] |
//! | ledger | every line chains to the one before; a lock timeout never writes unprotected | SHA-256 chain, sidecar lock, [`ledger`] |
//! | lease | one live holder per task; fencing tokens only grow; build-once | `SQLite` `BEGIN IMMEDIATE`, [`lease`] |
//! | reserve | overlapping paths/globs never held exclusively by two live sessions; a claim is all or nothing; a dead session's claims free at once | `SQLite` `BEGIN IMMEDIATE`, glob overlap, [`reserve`] |
//!
//! ## Non-guarantees
//!
//! - Locks are `flock(2)` locks: advisory, and only as good as every writer's use of them.
//! - Durability is what `fsync(2)` gives on a local filesystem; network filesystems may lie.
//! - `O_NOFOLLOW` protects the last path component; parent directories are trusted.
//!
//! ## Modules
//!
//! - [`home`] — the runtime home and its safety checks
//! - [`id`] — session ids
//! - [`child`] — running a command while a lock or permit is held
//! - [`config`] — `concur.toml`
//! - [`lock`] — file, named and byte-range locks, and who holds them
//! - [`sidecar`] — `F.lock` sidecar locks shared by every serialising writer
//! - [`session`] — the session registry and liveness
//! - [`marker`] — session-scoped markers and pointers, legacy fallback
//! - [`ledger`] — hash-chained JSONL
//! - [`lease`] — task leases (the `Store` trait, the `SQLite` store)
//! - [`reserve`] — edit reservations: paths and globs a session claims, and "may S write P?"
//! - [`diagnose`] — the collision harness: real concurrent writers, invariants, verdicts
//! - [`sys`] — the only place raw system calls are made
//! - [`error`] — the error type and its kinds

pub mod append;
pub mod child;
pub mod config;
pub mod diagnose;
pub mod duration;
pub mod error;
pub mod home;
pub mod id;
pub mod json;
pub mod lease;
pub mod ledger;
pub mod lock;
pub mod marker;
pub mod replace;
pub mod reserve;
pub mod session;
pub mod sidecar;
pub mod sys;
pub mod token;

pub use error::{Error, ErrorKind, Result};
pub use home::Home;
pub use id::SessionId;
