//! One file per verb; each has an `Args` (clap) and a `run` that calls the library.

use clap::Subcommand;

use crate::ctx::Ctx;
use crate::exit::{CliError, Exit};

pub mod append;
pub mod home;
pub mod value;

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the runtime home (created 0700 and checked on first use)
    Home(home::Args),
    // The verb's help (summary, details, examples) is the doc comment on its `Args`.
    Append(append::Args),
}

impl Command {
    /// The verb's name, for error prefixes.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Home(_) => "home",
            Command::Append(_) => "append",
        }
    }

    /// Runs the verb.
    pub fn run(self, ctx: &Ctx) -> Result<Exit, CliError> {
        match self {
            Command::Home(a) => home::run(a, ctx),
            Command::Append(a) => append::run(a, ctx),
        }
    }
}
