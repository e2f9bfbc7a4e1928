//! The `concur` binary: argument parsing, error printing and exit codes around the library.
//!
//! Invoked through a link named `flock` or `lockf` it behaves as those programs (multi-call).
//!
//! Start-up is part of every verb's cost (hooks run concur for every tool call), so the binary
//! has its own C `main` instead of `std`'s: `std`'s start-up asks glibc for the main thread's
//! stack bounds to guard against stack overflow, which reads and parses `/proc/self/maps` — a
//! fifth of a short verb's instructions (callgrind). What is lost is only the overflow message:
//! a stack overflow still ends the process, with SIGSEGV. Arguments and environment work as
//! usual (glibc hands them to `std` before `main`); stdout is flushed on the way out, and a
//! panic still exits 101. On other systems (musl, macOS, the BSDs) `std`'s start-up runs as
//! usual, since there it is what gives `std::env::args` the arguments.

// Doc comments on clap items are --help text, read by people in a terminal, not rustdoc.
#![allow(clippy::doc_markdown)]
// The unit-test harness brings its own main. Only glibc hands the arguments to `std` before
// `main` (through `.init_array`); elsewhere `std`'s own start-up must run for `std::env::args`.
#![cfg_attr(all(not(test), target_os = "linux", target_env = "gnu"), no_main)]

use std::process::ExitCode;

use clap::Parser;

mod cmd;
mod ctx;
mod exit;

use ctx::Ctx;
use exit::{CliError, Exit};

/// Collision-free shared state for concurrent sessions, hooks and scripts.
///
/// Exit codes: 0 done, 1 conflict (busy, lost, timeout), 2 usage, 3 precondition failed,
/// 4 invalid input (nothing written), 74 I/O error, 77 permission or unsafe path;
/// verbs that run a command exit with its status.
#[derive(Debug, Parser)]
#[command(
    name = "concur",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: cmd::Command,
}

// The options every verb takes (a plain comment: a doc comment here would become the root's about).
#[derive(Debug, clap::Args)]
struct Globals {
    /// Machine-readable JSON on stdout (errors too: {"ok":false,"error":{...}})
    #[arg(long, global = true)]
    json: bool,
    /// Session id (default: $CONCUR_SESSION, the agent's $CLAUDE_CODE_SESSION_ID /
    /// $CODEX_THREAD_ID / $GEMINI_SESSION_ID ..., else the registered agent session above this
    /// process)
    #[arg(long, global = true, value_name = "ID")]
    session: Option<String>,
    /// Configuration file (default: $CONCUR_HOME/concur.toml)
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Coordination backend, e.g. etcd://h1:2379,h2:2379 (default: $CONCUR_BACKEND, the
    /// config's [backend] url, else local files). Moves lock --name, slot, token, lease and
    /// session onto etcd; file verbs (append, write, ledger) always stay local
    #[arg(long, global = true, value_name = "URL")]
    backend: Option<String>,
}

/// The process entry point, called by the C runtime (see the module docs).
// SAFETY: the one symbol named `main` in the program; the C runtime calls it with the usual
// signature and nothing else defines it (`#![no_main]`).
#[cfg(all(not(test), target_os = "linux", target_env = "gnu"))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    open_closed_std_fds();
    let code = std::panic::catch_unwind(run).unwrap_or(101);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    libc::c_int::from(code)
}

/// What `std`'s start-up does and this `main` must do itself: a standard descriptor (0, 1, 2)
/// that is closed (`concur ... >&-`) is opened on `/dev/null`. Else the first file concur opens
/// takes its number, and a command concur runs (`lock -c`, `isolate`) inherits it closed: the
/// first file *that* opens receives its output.
#[cfg(all(not(test), target_os = "linux", target_env = "gnu"))]
fn open_closed_std_fds() {
    for fd in 0..=2 {
        // SAFETY: F_GETFD only reads a descriptor's flags; no pointers.
        let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
        if closed {
            // SAFETY: a NUL-terminated path. Descriptors below `fd` are open by now, so the
            // lowest free one, which open returns, is `fd`; without O_CLOEXEC, as inherited.
            // Best effort, as std's: a failure leaves it closed.
            let _ = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

/// The entry point on other systems: `std`'s start-up, then the program.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() -> ExitCode {
    ExitCode::from(run())
}

/// The exit status an `ExitCode` stands for (`ExitCode` has no getter; it compares).
#[cfg_attr(test, allow(dead_code))]
fn status_of(code: ExitCode) -> u8 {
    (0..=u8::MAX)
        .find(|&c| ExitCode::from(c) == code)
        .unwrap_or(1)
}

/// The program: multi-call, or parse and run a verb; returns the exit status.
#[cfg_attr(test, allow(dead_code))]
fn run() -> u8 {
    reset_sigpipe();
    if let Some(code) = cmd::multicall() {
        return status_of(code);
    }
    let cli = hook_line()
        .or_else(parse_one_verb)
        .unwrap_or_else(parse_args);
    let g = cli.globals;
    let mut ctx = Ctx::new(g.json, g.session, g.config);
    ctx.backend_flag = g.backend;
    let verb = cli.command.verb();
    match cli.command.run(&ctx) {
        Ok(exit) => exit.code(),
        Err(e) => report(verb, &ctx, &e).code(),
    }
}

/// Parses the command line, exiting with clap's usage error (2) or help (0) as `Cli::parse` does.
///
/// The clap command tree and matches are leaked instead of dropped: freeing them took about a
/// quarter of the binary's start-up instructions (callgrind), and hooks run concur hundreds of
/// times a minute. The process ends soon after; the memory is returned then.
fn parse_args() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let mut command = Cli::command();
    let mut matches = command.get_matches_mut();
    let cli = Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit());
    std::mem::forget(matches);
    std::mem::forget(command);
    cli
}

/// Exactly `concur hook AGENT`, the line agents run for every tool call: it has no options to
/// parse, so it is built directly (what clap makes of it, checked by the hook tests).
fn hook_line() -> Option<Cli> {
    let mut args = std::env::args_os().skip(1);
    let (Some(verb), Some(agent), None) = (args.next(), args.next(), args.next()) else {
        return None;
    };
    if verb != "hook" {
        return None;
    }
    let hook = cmd::hook::Args::for_agent(agent.to_str()?)?;
    Some(Cli {
        globals: Globals {
            json: false,
            session: None,
            config: None,
            backend: None,
        },
        command: cmd::Command::Hook(hook),
    })
}

/// Parses a command line that names a verb (after any global options) with a parser holding
/// only that verb; `None` when it does not, or on any error, help or version request.
///
/// Building every verb's parser was about a third of a short verb's start-up instructions
/// (callgrind), paid by every hook call. The one-verb tree has the same root settings and
/// global options and the verb's own arguments, so a line it accepts parses to the same
/// [`Cli`] as with the full tree; everything else (errors, `--help`, `--version`, no verb) is
/// left to [`parse_args`], which prints exactly what it always did.
fn parse_one_verb() -> Option<Cli> {
    use clap::{Args, FromArgMatches};
    let sub = cmd::verb_parser(&verb_name()?)?;
    let mut root = Globals::augment_args(
        clap::Command::new("concur")
            .version(env!("CARGO_PKG_VERSION"))
            .propagate_version(true)
            .max_term_width(100)
            .subcommand_required(true),
    )
    .subcommand(sub);
    let mut matches = root.try_get_matches_from_mut(std::env::args_os()).ok()?;
    let cli = Cli {
        globals: Globals::from_arg_matches_mut(&mut matches).ok()?,
        command: cmd::Command::from_arg_matches_mut(&mut matches).ok()?,
    };
    // Not dropped, as in parse_args.
    std::mem::forget(matches);
    std::mem::forget(root);
    Some(cli)
}

/// The first argument that is not a global option or its value: the verb, if the line has
/// one. `None` at anything else that starts with `-` (left to the full parser).
fn verb_name() -> Option<String> {
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        let a = a.into_string().ok()?;
        match a.as_str() {
            "--json" => {}
            "--session" | "--config" | "--backend" => {
                args.next()?;
            }
            _ if a.starts_with("--session=")
                || a.starts_with("--config=")
                || a.starts_with("--backend=") => {}
            _ if a.starts_with('-') => return None,
            _ => return Some(a),
        }
    }
    None
}

/// Prints a verb's error as one line on stderr (and as JSON on stdout with `--json`).
fn report(verb: &str, ctx: &Ctx, e: &CliError) -> Exit {
    eprintln!("concur: {verb}: {}", e.message);
    if ctx.json {
        let v = serde_json::json!({
            "ok": false,
            "error": { "kind": e.kind, "message": e.message, "exit": e.exit.code() },
        });
        ctx::print_line(&v.to_string());
    }
    e.exit
}

/// Restores the default SIGPIPE action so that `concur ... | head` ends quietly, as a
/// command-line tool should, instead of panicking on a write error.
fn reset_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
