//! One file per verb; each has an `Args` (clap) and a `run` that calls the library.

use clap::Subcommand;

use crate::ctx::Ctx;
use crate::exit::{CliError, Exit};

pub mod append;
pub mod broker;
pub mod completions;
pub mod diagnose;
pub mod fenced;
pub mod git_hook;
pub mod home;
pub mod hook;
pub mod hook_setup;
pub mod isolate;
pub mod json;
pub mod lease;
pub mod ledger;
pub mod lock;
pub mod marker;
pub mod once;
pub mod pointer;
pub mod read;
pub mod release;
pub mod reservations;
pub mod reserve;
pub mod reserve_hook;
pub mod scan;
pub mod session;
pub mod slot;
pub mod sweep;
pub mod token;
pub mod value;
pub mod write;

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    Home(home::Args),
    Broker(broker::Args),
    Isolate(isolate::Args),
    Hook(hook::Args),
    // The verb's help (summary, details, examples) is the doc comment on its `Args`.
    Append(append::Args),
    Write(write::Args),
    Read(read::Args),
    Json(json::Args),
    Token(token::Args),
    /// Run a command while holding a file lock (flock(1) compatible)
    Lock(lock::Args),
    Session(session::Args),
    Marker(marker::Args),
    Pointer(pointer::Args),
    Ledger(ledger::Args),
    Lease(lease::Args),
    Reserve(reserve::Args),
    Release(release::Args),
    Reservations(reservations::Args),
    Diagnose(diagnose::Args),
    /// (internal) one writer process of `concur diagnose`
    #[command(name = "diagnose-writer", hide = true)]
    DiagnoseWriter(diagnose::WriterArgs),
    /// (internal) a writer of `concur diagnose --chaos` under its tracer
    #[command(name = "diagnose-chaos", hide = true)]
    DiagnoseChaos(diagnose::ChaosArgs),
    /// Run a command in one of N slots (a counting semaphore across processes)
    Slot(slot::Args),
    /// Run a command once for all callers that ask at the same time (single-flight)
    Once(once::Args),
    Scan(scan::Args),
    Sweep(sweep::Args),
    Completions(completions::Args),
    Man(completions::ManArgs),
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
            Command::Lock(_) => "lock",
            Command::Session(_) => "session",
            Command::Marker(_) => "marker",
            Command::Pointer(_) => "pointer",
            Command::Ledger(_) => "ledger",
            Command::Lease(_) => "lease",
            Command::Reserve(_) => "reserve",
            Command::Release(_) => "release",
            Command::Reservations(_) => "reservations",
            Command::Diagnose(_) => "diagnose",
            Command::DiagnoseWriter(_) => "diagnose-writer",
            Command::DiagnoseChaos(_) => "diagnose-chaos",
            Command::Slot(_) => "slot",
            Command::Once(_) => "once",
            Command::Scan(_) => "scan",
            Command::Sweep(_) => "sweep",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
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
            Command::Lock(a) => lock::run(a, ctx),
            Command::Session(a) => session::run(a, ctx),
            Command::Marker(a) => marker::run(a, ctx),
            Command::Pointer(a) => pointer::run(a, ctx),
            Command::Ledger(a) => ledger::run(a, ctx),
            Command::Lease(a) => lease::run(a, ctx),
            Command::Reserve(a) => reserve::run(a, ctx),
            Command::Release(a) => release::run(&a, ctx),
            Command::Reservations(a) => reservations::run(&a, ctx),
            Command::Diagnose(a) => diagnose::run(&a, ctx),
            Command::DiagnoseWriter(a) => diagnose::run_writer(&a, ctx),
            Command::DiagnoseChaos(a) => diagnose::run_chaos(&a, ctx),
            Command::Slot(a) => slot::run(a, ctx),
            Command::Once(a) => once::run(&a, ctx),
            Command::Scan(a) => scan::run(a, ctx),
            Command::Sweep(a) => sweep::run(a, ctx),
            Command::Completions(a) => completions::run(&a),
            Command::Man(a) => completions::run_man(&a),
        }
    }
}

/// The parser of verb `name` alone (its own arguments, as in the full command tree), for a
/// start-up that does not build every verb's parser; `None` for a name that is not a verb.
pub fn verb_parser(name: &str) -> Option<clap::Command> {
    use clap::{Args, Command as C};
    type Augment = fn(C) -> C;
    let (name, augment): (&'static str, Augment) = match name {
        "home" => ("home", home::Args::augment_args),
        "broker" => ("broker", broker::Args::augment_args),
        "isolate" => ("isolate", isolate::Args::augment_args),
        "hook" => ("hook", hook::Args::augment_args),
        "append" => ("append", append::Args::augment_args),
        "write" => ("write", write::Args::augment_args),
        "read" => ("read", read::Args::augment_args),
        "json" => ("json", json::Args::augment_args),
        "token" => ("token", token::Args::augment_args),
        "lock" => ("lock", lock::Args::augment_args),
        "session" => ("session", session::Args::augment_args),
        "marker" => ("marker", marker::Args::augment_args),
        "pointer" => ("pointer", pointer::Args::augment_args),
        "ledger" => ("ledger", ledger::Args::augment_args),
        "lease" => ("lease", lease::Args::augment_args),
        "reserve" => ("reserve", reserve::Args::augment_args),
        "release" => ("release", release::Args::augment_args),
        "reservations" => ("reservations", reservations::Args::augment_args),
        "slot" => ("slot", slot::Args::augment_args),
        "once" => ("once", once::Args::augment_args),
        "sweep" => ("sweep", sweep::Args::augment_args),
        _ => return None,
    };
    Some(augment(C::new(name)))
}

/// Multi-call: invoked through a link named `flock` or `lockf`, the binary is that program.
/// Returns `None` for any other name (then `concur` parses its own arguments).
pub fn multicall() -> Option<std::process::ExitCode> {
    let mut args = std::env::args_os();
    let argv0 = args.next()?;
    let name = std::path::Path::new(&argv0).file_name()?.to_owned();
    match name.to_str()? {
        "flock" => Some(concur::flock::program::main(&args.collect::<Vec<_>>())),
        "lockf" => Some(concur::lockf::program::main(&args.collect::<Vec<_>>())),
        _ => None,
    }
}
