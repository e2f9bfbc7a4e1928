//! `concur scan`: static inventory of shared-state writers.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;

use concur::scan::{self, Report, Risk, ScanOptions};

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
    if verbose {
        for e in &report.parse_errors {
            eprintln!(
                "concur: scan: parse problem at {}:{} (confidence of nearby findings lowered)",
                e.file, e.line
            );
        }
    } else if !report.parse_errors.is_empty() {
        let mut files: Vec<&str> = report
            .parse_errors
            .iter()
            .map(|e| e.file.as_str())
            .collect();
        files.dedup();
        eprintln!(
            "concur: scan: {} parse problems in {} files lowered the confidence of nearby findings (--verbose lists them)",
            report.parse_errors.len(),
            files.len()
        );
    }
    let format = if ctx.json { Format::Json } else { format };
    let width = if std::io::stdout().is_terminal() {
        terminal_width()
    } else {
        None
    };
    let out = match format {
        Format::Json => json(&report),
        Format::Table => table(&report, width),
        Format::Md => markdown(&report),
    };
    print_line(out.trim_end());
    Ok(Exit::Ok)
}

/// `{"findings":[...],"inventory":[...]}`.
pub fn json(r: &Report) -> String {
    serde_json::json!({ "findings": r.findings, "inventory": r.inventory }).to_string()
}

fn lines(a: usize, b: usize) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

/// The terminal's width: `$COLUMNS`, else the window size of stdout.
fn terminal_width() -> Option<usize> {
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(c);
    }
    // SAFETY: TIOCGWINSZ fills a `winsize` we own; fd 1 is a terminal (checked by the caller).
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(1, libc::TIOCGWINSZ, &raw mut ws) == 0 && ws.ws_col > 0)
            .then_some(usize::from(ws.ws_col))
    }
}

/// `s` cut to `max` characters, the cut marked with `…`.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(max.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

/// Aligned plain-text tables, one row per site, worst first; with a terminal `width`, long
/// templates are shortened and every line is cut to fit.
pub fn table(r: &Report, width: Option<usize>) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "RISK".into(),
        "PATTERN".into(),
        "SITE".into(),
        "TEMPLATE".into(),
        "LOCKED".into(),
        "REASON".into(),
    ]];
    for f in &r.findings {
        rows.push([
            f.risk.name().into(),
            f.pattern.name().into(),
            format!("{}:{}", f.file, lines(f.line_start, f.line_end)),
            if width.is_some() {
                cut(&f.template, 48)
            } else {
                f.template.clone()
            },
            if f.locked { "yes" } else { "no" }.into(),
            format!(
                "{}{}{}",
                f.reason,
                match f.confidence {
                    scan::Confidence::High => "",
                    scan::Confidence::Medium => " [confidence: medium]",
                    scan::Confidence::Low => " [confidence: low]",
                },
                match f.notes.len() {
                    0 => String::new(),
                    1 => " [+1 note]".to_string(),
                    n => format!(" [+{n} notes]"),
                }
            ),
        ]);
    }
    let mut out = aligned(&rows);
    out.push('\n');
    let mut inv: Vec<[String; 6]> = vec![[
        "RISK".into(),
        "RESOURCE".into(),
        "WRITERS".into(),
        "FIX".into(),
        String::new(),
        String::new(),
    ]];
    for res in &r.inventory {
        inv.push([
            res.risk.name().into(),
            res.template.clone(),
            writers(res),
            res.fix.clone(),
            String::new(),
            String::new(),
        ]);
    }
    out.push_str(&aligned(&inv));
    let _ = write!(
        out,
        "\n{} findings, {} resources, {} files",
        r.findings.len(),
        r.inventory.len(),
        r.files
    );
    if r.skipped_tests > 0 {
        let _ = write!(
            out,
            " ({} test files left out: --include-tests)",
            r.skipped_tests
        );
    }
    out.push('\n');
    match width {
        Some(w) => out.lines().map(|l| cut(l, w) + "\n").collect(),
        None => out,
    }
}

fn writers(res: &scan::Resource) -> String {
    let mut v: Vec<String> = res
        .writers
        .iter()
        .map(|w| format!("{}:{}", w.file, lines(w.line_start, w.line_end)))
        .collect();
    v.dedup();
    if v.len() > 3 {
        let more = v.len() - 3;
        v.truncate(3);
        v.push(format!("+{more} more"));
    }
    v.join(", ")
}

fn aligned(rows: &[[String; 6]]) -> String {
    let mut widths = [0usize; 6];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i == 5 || r[i + 1..].iter().all(String::is_empty) {
                line.push_str(c);
                break;
            }
            let _ = write!(line, "{c:w$}  ", w = widths[i]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Markdown tables: findings, then the inventory.
pub fn markdown(r: &Report) -> String {
    let mut out = String::from(
        "## Findings\n\n| risk | pattern | site | template | locked | reason |\n|---|---|---|---|---|---|\n",
    );
    for f in &r.findings {
        let _ = writeln!(
            out,
            "| {} | {} | {}:{} | `{}` | {} | {} |",
            f.risk.name(),
            f.pattern.name(),
            f.file,
            lines(f.line_start, f.line_end),
            md_escape(&f.template),
            if f.locked { "yes" } else { "no" },
            md_escape(&if f.notes.is_empty() {
                f.reason.clone()
            } else {
                format!("{}; also: {}", f.reason, f.notes.join("; "))
            })
        );
    }
    out.push_str("\n## Inventory\n\n| risk | resource | writers | fix |\n|---|---|---|---|\n");
    for res in &r.inventory {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} |",
            res.risk.name(),
            md_escape(&res.template),
            writers(res),
            if res.fix == "-" {
                "-".to_string()
            } else {
                format!("`{}`", res.fix)
            }
        );
    }
    out
}
