//! One file per verb; each has an `Args` (clap) and a `run` that calls the library.

use clap::Subcommand;

use crate::ctx::Ctx;
use crate::exit::{CliError, Exit};

pub mod home;
pub mod scan;
pub mod sweep;

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the runtime home (created 0700 and checked on first use)
    Home(home::Args),
    /// Find every shared-state writer in scripts: pattern, lock, risk, inventory
    Scan(scan::Args),
    /// Seed-style P1/P2 sweep table: declared inventory + scan (+ diagnose)
    Sweep(sweep::Args),
}

impl Command {
    /// The verb's name, for error prefixes.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Home(_) => "home",
            Command::Scan(_) => "scan",
            Command::Sweep(_) => "sweep",
        }
    }

    /// Runs the verb.
    pub fn run(self, ctx: &Ctx) -> Result<Exit, CliError> {
        match self {
            Command::Home(a) => home::run(a, ctx),
            Command::Scan(a) => scan::run(a, ctx),
            Command::Sweep(a) => sweep::run(a, ctx),
        }
    }
}
