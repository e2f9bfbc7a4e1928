//! `concur sweep`: the declared inventory joined with scan (and diagnose) into the seed-style
//! P1/P2 tables.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use concur::scan::{self, ScanOptions};
use concur::sweep;

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Seed-style P1/P2 sweep table: declared inventory + scan (+ diagnose)
///
/// Every declared shared resource (`[[sweep.resource]]` in the
/// inventory file) joined with what `concur scan` finds in PATH and, with --diagnose, with a
/// `concur diagnose` run of its target. Prints P1/P2 tables (resource, writer file:lines,
/// pattern applied, evidence, flag, status APPLIED / VERIFIED / DEFERRED / AT-RISK) and summary
/// counts computed from the rows, then risky writers no resource declares.
///
/// Example: `concur sweep examples/agent-system` (reads examples/agent-system/concur.toml)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directories or files to scan
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The inventory file (default: concur.toml in the first PATH)
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    /// Also run `concur diagnose --targets T` for each resource's target (protected mode)
    #[arg(long)]
    diagnose: bool,
    /// Output format (--json is the same as --format json)
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
}

/// Output formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Markdown tables
    Md,
    /// {"title", "rows":[...], "summary":{...}, "undeclared":[...]}
    Json,
}

/// Runs `concur sweep`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let Args {
        paths,
        inventory,
        diagnose,
        format,
    } = args;
    let inv_path = if let Some(p) = inventory {
        p
    } else {
        let p = paths[0].join("concur.toml");
        if !p.is_file() {
            return Err(CliError::usage(format!(
                "no inventory: pass --inventory FILE or create {}",
                p.display()
            )));
        }
        p
    };
    let inv = sweep::load(&inv_path)?;
    let report = scan::scan(&paths, &ScanOptions::default())?;
    let verdicts = if diagnose {
        run_diagnose(&inv)?
    } else {
        BTreeMap::new()
    };
    let s = sweep::sweep(&inv, &report, &verdicts);
    if ctx.json || matches!(format, Format::Json) {
        print_line(&serde_json::to_string(&s).unwrap_or_default());
    } else {
        print_line(sweep::markdown(&s).trim_end());
    }
    Ok(Exit::Ok)
}

/// Runs `concur diagnose --targets T --mode protected --json` once for all targets and maps
/// each target to its verdict. A target diagnose does not know is reported as
/// `UNKNOWN_TARGET`, never silently dropped.
fn run_diagnose(inv: &sweep::Inventory) -> Result<BTreeMap<String, String>, CliError> {
    let targets = inv.diagnose_targets();
    let mut out = BTreeMap::new();
    if targets.is_empty() {
        return Ok(out);
    }
    let exe = std::env::current_exe()
        .map_err(|e| CliError::new(Exit::Io, "io", format!("cannot find own binary: {e}")))?;
    for t in targets {
        let o = Command::new(&exe)
            .args(["diagnose", "--targets", &t, "--mode", "protected", "--json"])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| CliError::new(Exit::Io, "io", format!("cannot run diagnose: {e}")))?;
        let verdict = sweep::diagnose_verdict(&t, &o.stdout, o.status.code());
        out.insert(t, verdict);
    }
    Ok(out)
}
