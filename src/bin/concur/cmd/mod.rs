//! One file per verb; each has an `Args` (clap) and a `run` that calls the library.

use clap::Subcommand;

use crate::ctx::Ctx;
use crate::exit::{CliError, Exit};

pub mod append;
pub mod flock;
pub mod home;
pub mod json;
pub mod lock;
pub mod lockf;
#[cfg(feature = "etcd")]
pub mod on_etcd;
pub mod read;
pub mod token;
pub mod value;
pub mod write;

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the runtime home (created 0700 and checked on first use)
    Home(home::Args),
    // The verb's help (summary, details, examples) is the doc comment on its `Args`.
    Append(append::Args),
    Write(write::Args),
    Read(read::Args),
    Json(json::Args),
    Token(token::Args),
    /// Run a command while holding a file lock (flock(1) compatible)
    Lock(lock::Args),
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
            Command::Append(_) => "append",
            Command::Write(_) => "write",
            Command::Read(_) => "read",
            Command::Json(_) => "json",
            Command::Token(_) => "token",
            Command::Lock(_) => "lock",
        }
    }

    /// Runs the verb.
    pub fn run(self, ctx: &Ctx) -> Result<Exit, CliError> {
        match self {
            Command::Home(a) => home::run(a, ctx),
            Command::Append(a) => append::run(a, ctx),
            Command::Write(a) => write::run(a, ctx),
            Command::Read(a) => read::run(&a, ctx),
            Command::Json(a) => json::run(a, ctx),
            Command::Token(a) => token::run(a, ctx),
            Command::Lock(a) => lock::run(a, ctx),
        }
    }
}
