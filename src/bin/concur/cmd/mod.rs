//! One file per verb; each has an `Args` (clap) and a `run` that calls the library.

use clap::Subcommand;

use crate::ctx::Ctx;
use crate::exit::{CliError, Exit};

pub mod flock;
pub mod home;
pub mod lock;
pub mod lockf;
pub mod slot;

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the runtime home (created 0700 and checked on first use)
    Home(home::Args),
    /// Run a command while holding a file lock (flock(1) compatible)
    Lock(lock::Args),
    /// Run a command in one of N slots (a counting semaphore across processes)
    Slot(slot::Args),
}

/// Multi-call: invoked through a link named `flock` or `lockf`, the binary is that program.
/// Returns `None` for any other name (then `concur` parses its own arguments).
pub fn multicall() -> Option<std::process::ExitCode> {
    let mut args = std::env::args_os();
    let argv0 = args.next()?;
    let name = std::path::Path::new(&argv0).file_name()?.to_owned();
    match name.to_str()? {
        "flock" => Some(flock::main(&args.collect::<Vec<_>>())),
        "lockf" => Some(lockf::main(&args.collect::<Vec<_>>())),
        _ => None,
    }
}

impl Command {
    /// The verb's name, for error prefixes.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Home(_) => "home",
            Command::Lock(_) => "lock",
            Command::Slot(_) => "slot",
        }
    }

    /// Runs the verb.
    pub fn run(self, ctx: &Ctx) -> Result<Exit, CliError> {
        match self {
            Command::Home(a) => home::run(a, ctx),
            Command::Lock(a) => lock::run(a, ctx),
            Command::Slot(a) => slot::run(a, ctx),
        }
    }
}
