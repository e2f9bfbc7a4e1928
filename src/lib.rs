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
//! | slot | never more than N holders; a killed holder frees its slot at once; waiters block in the kernel | [`slot`] |
//! | once | of the callers of a key that arrive while its command runs, one runs it and the rest get its output and status; a killed runner is replaced by exactly one waiter | `flock` handoff, atomic result file, [`once`]; on etcd a leader key on its lease ([`backend::once`]) |
//! | append | one whole line per call, durable; one header per file; dedup; no partial line on a full disk | [`append`] |
//! | write / read | readers never see an empty or half-written file; `if_match` detects lost updates | [`replace`] |
//! | json | no lost updates; a failing filter changes nothing | [`json`] |
//! | token | exactly one taker wins, on either backend; every take, won or not, recorded in the taker's audit ledger by the take itself | [`token`], [`backend::tokens`] |
//! | ledger | every line chains to the one before; a lock timeout never writes unprotected | SHA-256 chain, sidecar lock, [`ledger`] |
//! | session | a reused pid is not mistaken for a live session | pid + start time + boot id, [`session`] |
//! | marker / pointer | one session never reads another's value unless it names it | per-session files, atomic replace, [`marker`] |
//! | lease | one live holder per task; fencing tokens only grow; build-once | `SQLite` `BEGIN IMMEDIATE`, [`lease`] |
//! | reserve | overlapping paths/globs never held exclusively by two live sessions; a claim is all or nothing; a dead session's claims free at once | `SQLite` `BEGIN IMMEDIATE`, glob overlap, [`reserve`] |
//! | broker | one per home; acked append = durable, written once per retry id, group-committed | [`broker`] |
//! | hook guard | a file-tool write to a `[guard]` path is denied; any failure on a guarded event denies | [`hook`] |
//! | isolate | one instance per session; its whole process group dies with it; stdout untouched | [`isolate`] |
//! | scan | a parse error never stops a scan; it lowers nearby confidence and is reported | [`scan`] |
//! | fenced write / json | a write whose fencing token is below the highest the file accepted for that lock is refused; with etcd, also one not holding the lock now | `FILE.fence` record under the sidecar lock, [`fence`] |
//! | etcd lock / slot / token | one holder (N for slots) by etcd's account; fencing token = create revision, fenced writes refused once stale | `etcd` (feature `etcd`) |
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
//! - [`backend`] — the coordination backend (local files or etcd), resolved once, and its wait policy
//! - [`id`] — session ids
//! - [`config`] — `concur.toml`
//! - [`error`] — the error type and its kinds
//! - [`sys`] — the only place raw system calls are made
//! - [`sidecar`] — `F.lock` sidecar locks shared by every serialising writer
//! - [`lock`] — file, named and byte-range locks, and who holds them
//! - [`flock`] — the flock(1) engine behind `concur lock FILE` and the `flock` program
//! - [`lockf`] — the lockf(1) engine behind the `lockf` program
//! - [`once`] — single-flight: one run of a command for all callers of a key at once
//! - [`slot`] — counting semaphores (`--max N` holders) across processes
//! - [`child`] — running a command while a lock or permit is held
//! - [`hold`] — a named lock or slot held on any backend while a command runs
//! - [`append`] — whole-line appends to shared logs
//! - [`replace`] — atomic whole-file replace, etags
//! - [`json`] — locked jq updates of JSON files
//! - [`fence`] — fenced writes: `NAME:TOKEN`, the per-file record of accepted tokens
//! - [`token`] — one-time tokens and their audit ledger
//! - [`time`] — the wall and boot clocks; UTC timestamps for audit records and listings
//! - [`duration`] — `30s`/`5m`/`2h`/`1d` durations
//! - [`ledger`] — hash-chained JSONL
//! - [`session`] — the session registry and liveness
//! - [`marker`] — session-scoped markers and pointers, legacy fallback
//! - [`lease`] — task leases (the `Store` trait, the `SQLite` store)
//! - `sqlite` — the home's `SQLite` database shared by leases and reservations: open, schema, `BEGIN IMMEDIATE`
//! - [`reserve`] — edit reservations: paths and globs a session claims, and "may S write P?"
//! - [`broker`] — the append broker daemon, its client and protocol
//! - [`hook`] — agent hook adapters (Claude, Codex, Gemini, Cursor), the write guard, install
//! - [`isolate`] — per-session instances of would-be singletons (stdio wrapper)
//! - [`diagnose`] — the collision harness: real concurrent writers, invariants, verdicts
//! - [`scan`] — static inventory of shared-state writers (`concur scan`)
//! - [`sweep`] — declared inventory + scan + diagnose as the seed-style sweep table
//! - `etcd` — lock, slot, token, session and fenced writes on an etcd cluster (feature `etcd`)

pub mod append;
pub mod backend;
mod base64;
pub mod broker;
pub mod child;
pub mod config;
pub mod diagnose;
pub mod duration;
pub mod error;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod fence;
pub mod flock;
mod hex;
pub mod hold;
pub mod home;
pub mod hook;
pub mod id;
pub mod isolate;
mod jq;
pub mod json;
pub mod lease;
pub mod ledger;
pub mod lock;
pub mod lockf;
pub mod marker;
pub mod once;
pub mod replace;
pub mod reserve;
pub mod scan;
pub mod session;
pub mod sidecar;
pub mod slot;
mod sqlite;
pub mod sweep;
pub mod sys;
pub mod time;
pub mod token;
pub mod wait;

pub use error::{Error, ErrorKind, Result};
pub use home::Home;
pub use id::SessionId;

/// README.md's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
