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
//! - [`config`] — `concur.toml`
//! - [`scan`] — static inventory of shared-state writers (`concur scan`)
//! - [`sweep`] — declared inventory + scan + diagnose as the seed-style sweep table
//! - [`sidecar`] — `F.lock` sidecar locks shared by every serialising writer
//! - [`sys`] — the only place raw system calls are made
//! - [`error`] — the error type and its kinds

pub mod config;
pub mod error;
pub mod home;
pub mod id;
pub mod scan;
pub mod sidecar;
pub mod sweep;
pub mod sys;

pub use error::{Error, ErrorKind, Result};
pub use home::Home;
pub use id::SessionId;
