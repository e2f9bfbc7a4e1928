//! One file per verb; each has an `Args` (clap) and a `run` that calls the library.

use clap::Subcommand;

use crate::ctx::Ctx;
use crate::exit::{CliError, Exit};

pub mod append;
pub mod broker;
pub mod home;
pub mod hook;
pub mod isolate;
pub mod json;
pub mod read;
pub mod token;
pub mod value;
pub mod write;

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the runtime home (created 0700 and checked on first use)
    Home(home::Args),
    /// The append broker daemon: serve, status, stop, append (group commit, acked = durable)
    Broker(broker::Args),
    /// Run a per-session instance of a would-be singleton (transparent stdio, no orphans)
    Isolate(isolate::Args),
    /// Agent hooks (claude, codex, gemini, cursor): write guard, session export; hook install
    Hook(hook::Args),
    // The verb's help (summary, details, examples) is the doc comment on its `Args`.
    Append(append::Args),
    Write(write::Args),
    Read(read::Args),
    Json(json::Args),
    Token(token::Args),
}

impl Command {
    /// The verb's name, for error prefixes.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Home(_) => "home",
            Command::Broker(_) => "broker",
            Command::Isolate(_) => "isolate",
            Command::Hook(_) => "hook",
            Command::Append(_) => "append",
            Command::Write(_) => "write",
            Command::Read(_) => "read",
            Command::Json(_) => "json",
            Command::Token(_) => "token",
        }
    }

    /// Runs the verb.
    pub fn run(self, ctx: &Ctx) -> Result<Exit, CliError> {
        match self {
            Command::Home(a) => home::run(a, ctx),
            Command::Broker(a) => broker::run(a, ctx),
            Command::Isolate(a) => isolate::run(a, ctx),
            Command::Hook(a) => hook::run(a, ctx),
            Command::Append(a) => append::run(a, ctx),
            Command::Write(a) => write::run(a, ctx),
            Command::Read(a) => read::run(&a, ctx),
            Command::Json(a) => json::run(a, ctx),
            Command::Token(a) => token::run(a, ctx),
        }
    }
}
