//! `concur ledger append|verify|repair`: hash-chained JSONL.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use concur::ledger::{self, Options};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Hash-chained JSONL ledgers: append (locked, tail-only), verify, repair
///
/// Each line carries seq, prev and hash = SHA-256(prev ‖ canonical line).
///
/// `append` holds FILE.lock (waiting at most -w seconds; on timeout it fails with exit 1 and
/// writes nothing) and reads only the file's tail. `verify` names the first bad line and exits 3.
/// `repair` removes only a torn final line, never a complete one.
///
/// Example: `concur ledger append verdicts.jsonl '{"task":"T-1","verdict":"pass"}' && concur ledger verify verdicts.jsonl`
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Append one entry (a JSON object; `-` reads it from stdin); prints seq and hash
    ///
    /// Example: `concur ledger append verdicts.jsonl '{"verdict":"pass"}' -w 5`
    Append {
        /// The ledger file (created 0600 if missing)
        file: PathBuf,
        /// The entry: a JSON object without seq/prev/hash, or `-` for stdin
        #[arg(value_name = "JSON", allow_hyphen_values = true)]
        entry: String,
        /// How long to wait for the lock (10, 1.5s, 1m; 0: try once); on timeout exit 1, nothing written
        #[arg(
            short = 'w',
            long = "wait",
            value_name = "DURATION",
            default_value = "10",
            value_parser = super::value::duration
        )]
        wait: Duration,
        /// Do not fdatasync before reporting success
        #[arg(long)]
        no_fsync: bool,
        /// Append through the home's broker (see `concur broker --help`); FILE must be under a
        /// `[broker] roots` directory
        #[arg(long, conflicts_with = "no_fsync")]
        broker: bool,
        /// With --broker: start the broker when none runs
        #[arg(long, requires = "broker")]
        autostart: bool,
    },
    /// Check the whole chain; name the first bad line and exit 3
    ///
    /// Example: `concur ledger verify verdicts.jsonl`
    Verify {
        /// The ledger file
        file: PathBuf,
    },
    /// Remove a torn final line (or add the newline a complete final entry lacks)
    ///
    /// Example: `concur ledger repair verdicts.jsonl && concur ledger verify verdicts.jsonl`
    Repair {
        /// The ledger file
        file: PathBuf,
        /// How long to wait for the lock (10, 1.5s, 1m)
        #[arg(
            short = 'w',
            long = "wait",
            value_name = "DURATION",
            default_value = "10",
            value_parser = super::value::duration
        )]
        wait: Duration,
    },
}

/// Runs `concur ledger`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    ctx.note_local("ledger");
    match args.action {
        Action::Append {
            file,
            entry,
            wait,
            no_fsync,
            broker,
            autostart,
        } => {
            let text = if entry == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| CliError::invalid(format!("cannot read stdin: {e}")))?;
                s
            } else {
                entry
            };
            let entry: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| CliError::invalid(format!("entry is not JSON: {e}")))?;
            if broker {
                return super::broker::ledger_append(&file, &entry, autostart, ctx);
            }
            let opts = Options {
                wait: Some(wait),
                fsync: !no_fsync,
            };
            let a = ledger::append(&file, &entry, opts)?;
            if let Some(r) = &a.repaired {
                eprintln!("concur: ledger: {}", r.describe(&file));
            }
            if ctx.json {
                ctx.print_json(&serde_json::to_value(&a).expect("serialises"));
            } else {
                print_line(&format!("{} {}", a.seq, a.hash));
            }
            Ok(Exit::Ok)
        }
        Action::Verify { file } => {
            let r = ledger::verify(&file)?.holds()?;
            if ctx.json {
                ctx.print_json(&serde_json::to_value(&r).expect("serialises"));
            } else {
                print_line(&r.to_string());
            }
            Ok(Exit::Ok)
        }
        Action::Repair { file, wait } => {
            let opts = Options {
                wait: Some(wait),
                fsync: true,
            };
            let r = ledger::repair(&file, opts)?;
            if ctx.json {
                ctx.print_json(&serde_json::to_value(&r).expect("serialises"));
            } else if r.removed.is_some() || r.terminated {
                print_line(&r.describe(&file));
            } else {
                print_line(&format!("{}: nothing to repair", file.display()));
            }
            Ok(Exit::Ok)
        }
    }
}
