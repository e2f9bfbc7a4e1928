//! One file per verb; each has an `Args` (clap) and a `run` that calls the library.

use clap::Subcommand;

use crate::ctx::Ctx;
use crate::exit::{CliError, Exit};

pub mod home;
pub mod lease;
pub mod ledger;
pub mod marker;
pub mod pointer;
pub mod session;

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the runtime home (created 0700 and checked on first use)
    Home(home::Args),
    /// Register, end, list and collect sessions (pid + start time, so reused pids are not live)
    Session(session::Args),
    /// Session-scoped markers (set/check/clear/migrate) with a legacy-path fallback
    Marker(marker::Args),
    /// Session-scoped pointers: one value per session under a shared name
    Pointer(pointer::Args),
    /// Hash-chained JSONL ledgers: append (locked, tail-only), verify, repair
    Ledger(ledger::Args),
    /// Task leases: one live holder, growing fencing tokens, build-once
    Lease(lease::Args),
}

impl Command {
    /// The verb's name, for error prefixes.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Home(_) => "home",
            Command::Session(_) => "session",
            Command::Marker(_) => "marker",
            Command::Pointer(_) => "pointer",
            Command::Ledger(_) => "ledger",
            Command::Lease(_) => "lease",
        }
    }

    /// Runs the verb.
    pub fn run(self, ctx: &Ctx) -> Result<Exit, CliError> {
        match self {
            Command::Home(a) => home::run(a, ctx),
            Command::Session(a) => session::run(a, ctx),
            Command::Marker(a) => marker::run(a, ctx),
            Command::Pointer(a) => pointer::run(a, ctx),
            Command::Ledger(a) => ledger::run(a, ctx),
            Command::Lease(a) => lease::run(a, ctx),
        }
    }
}
