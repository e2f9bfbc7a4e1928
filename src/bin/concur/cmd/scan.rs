//! `concur scan`: static inventory of shared-state writers.

use std::io::IsTerminal;
use std::path::PathBuf;

use concur::scan::{self, Risk, ScanOptions};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Find every shared-state writer in scripts: pattern, lock, risk, inventory
///
/// Parses bash/sh, JavaScript, TypeScript and Python: for each write site, its pattern, lock
/// coverage, risk and reason; then an inventory of every path written, grouped across files and
/// languages, with the concur verb that fixes it.
///
/// Scripts named by hook configs under a scanned directory (.claude/settings*.json, a plugin's
/// hooks/hooks.json, .codex/hooks.json, .gemini/settings.json, .cursor/hooks.json, .mcp.json),
/// files under .claude/hooks/, and the local modules and sourced files they use are hook code:
/// it runs concurrently across sessions, so only there is an unlocked read-modify-write or
/// check-then-act `high` (elsewhere `medium`). One row per site: the strongest finding, the
/// others as its notes; worst first. Tests are left out unless --include-tests. Exit 0 even
/// when risky writers are found; parse problems lower nearby confidence and are counted on
/// stderr (--verbose lists them), never fatal.
///
/// Example: `concur scan ~/.claude/hooks --min-risk medium --format md`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to scan
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Output format (--json is the same as --format json)
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Only findings at or above this risk
    #[arg(long, value_enum, value_name = "RISK")]
    min_risk: Option<MinRisk>,
    /// Scan test files too (tests/, __tests__/, *.test.*, *_test.*, test_*.py, conftest.py)
    #[arg(long)]
    include_tests: bool,
    /// Leave out files matching GLOB, relative to the scanned directory (`*` within a name,
    /// `**` across directories; without `/` it matches any name: `--exclude vendor`); repeatable
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// List every parse problem on stderr (by default: one line with the count)
    #[arg(long, short)]
    verbose: bool,
}

/// Output formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for a terminal
    Table,
    /// {"findings":[...],"inventory":[...]}
    Json,
    /// Markdown tables
    Md,
}

/// Risk thresholds.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MinRisk {
    /// low, medium and high
    Low,
    /// medium and high
    Medium,
    /// high only
    High,
}

/// Runs `concur scan`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let Args {
        paths,
        format,
        min_risk,
        include_tests,
        exclude,
        verbose,
    } = args;
    let opts = ScanOptions {
        min_risk: min_risk.map(|m| match m {
            MinRisk::Low => Risk::Low,
            MinRisk::Medium => Risk::Medium,
            MinRisk::High => Risk::High,
        }),
        include_tests,
        exclude,
    };
    let report = scan::scan(&paths, &opts)?;
    for line in report.parse_problems(verbose) {
        eprintln!("concur: scan: {line}");
    }
    let format = if ctx.json { Format::Json } else { format };
    // The terminal's width: $COLUMNS, else the window size of stdout.
    let width = std::io::stdout().is_terminal().then(|| {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .or_else(|| concur::sys::tty::width(std::io::stdout()))
    });
    let out = match format {
        Format::Json => report.to_json_string(),
        Format::Table => report.table(width.flatten()),
        Format::Md => report.markdown(),
    };
    print_line(out.trim_end());
    Ok(Exit::Ok)
}
