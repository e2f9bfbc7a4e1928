//! One file per verb; each has an `Args` (clap) and a `run` that calls the library.

use clap::Subcommand;

use crate::ctx::Ctx;
use crate::exit::{CliError, Exit};

pub mod diagnose;
pub mod home;

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the runtime home (created 0700 and checked on first use)
    Home(home::Args),
    /// Prove collisions: N real processes hammer shared state; invariants give verdicts
    Diagnose(diagnose::Args),
    /// (internal) one writer process of `concur diagnose`
    #[command(name = "diagnose-writer", hide = true)]
    DiagnoseWriter(diagnose::WriterArgs),
}

impl Command {
    /// The verb's name, for error prefixes.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Home(_) => "home",
            Command::Diagnose(_) => "diagnose",
            Command::DiagnoseWriter(_) => "diagnose-writer",
        }
    }

    /// Runs the verb.
    pub fn run(self, ctx: &Ctx) -> Result<Exit, CliError> {
        match self {
            Command::Home(a) => home::run(a, ctx),
            Command::Diagnose(a) => diagnose::run(&a, ctx),
            Command::DiagnoseWriter(a) => diagnose::run_writer(&a, ctx),
        }
    }
}
