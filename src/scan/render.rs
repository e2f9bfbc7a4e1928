//! How a scan [`Report`] is shown: the aligned text tables, Markdown, `--json`, and the
//! one-line summary of parse problems.

use std::fmt::Write as _;

use super::{Confidence, Report, Resource};

impl Report {
    /// `{"findings":[...],"inventory":[...]}`.
    pub fn to_json_string(&self) -> String {
        serde_json::json!({ "findings": self.findings, "inventory": self.inventory }).to_string()
    }

    /// Aligned plain-text tables, one row per site, worst first; with a terminal `width`, long
    /// templates are shortened and every line is cut to fit.
    pub fn table(&self, width: Option<usize>) -> String {
        table(self, width)
    }

    /// Markdown tables: findings, then the inventory.
    pub fn markdown(&self) -> String {
        markdown(self)
    }

    /// What to say on stderr about the parse problems met: with `verbose` one line each, else
    /// one line with their count (nothing when there were none).
    pub fn parse_problems(&self, verbose: bool) -> Vec<String> {
        if verbose {
            return self
                .parse_errors
                .iter()
                .map(|e| {
                    format!(
                        "parse problem at {}:{} (confidence of nearby findings lowered)",
                        e.file, e.line
                    )
                })
                .collect();
        }
        if self.parse_errors.is_empty() {
            return Vec::new();
        }
        let mut files: Vec<&str> = self.parse_errors.iter().map(|e| e.file.as_str()).collect();
        files.dedup();
        vec![format!(
            "{} parse problems in {} files lowered the confidence of nearby findings (--verbose lists them)",
            self.parse_errors.len(),
            files.len()
        )]
    }
}

fn lines(a: usize, b: usize) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
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
fn table(r: &Report, width: Option<usize>) -> String {
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
                    Confidence::High => "",
                    Confidence::Medium => " [confidence: medium]",
                    Confidence::Low => " [confidence: low]",
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

fn writers(res: &Resource) -> String {
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
fn markdown(r: &Report) -> String {
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
