//! `concur sweep`: a declared inventory of shared resources, joined with scan findings (and
//! optionally diagnose verdicts), as the seed-style P1/P2 tables with counts computed from the
//! rows.
//!
//! The inventory lives in a TOML file (by default `concur.toml` in the swept directory) under
//! `[[sweep.resource]]`; other top-level tables (the runtime configuration's `[guard]`,
//! `[broker]`, ...) are ignored here, so one file can hold both.
//!
//! ```toml
//! [[sweep.resource]]
//! id = "P1-1"                              # P1-* rows go to the P1 table, P2-* to the P2 table
//! name = "health JSON counter"
//! path = "$HOME/.agent/health.json"        # a scan template: `*` wildcards, `|` alternatives
//! pattern = "concur json (locked read-modify-write)"
//! flag = "ISOLATION_HEALTH_JSON"           # optional
//! writers = ["hooks/"]                     # optional: only findings in these files (or dirs/)
//! target = "json-counter"                  # optional: the diagnose target proving it
//! status = "DEFERRED"                      # optional override
//! reason = "needs build-once at dispatch"  # required with DEFERRED
//! ```
//!
//! Status rules (unless overridden): any matched finding at medium or high risk, no writer
//! found, or a diagnose verdict other than `SAFE` → `AT-RISK`; otherwise `VERIFIED` when a
//! diagnose run of its target said `SAFE`, else `APPLIED` (clean statically, not proved). A
//! diagnose run that gave no verdict (`UNKNOWN_TARGET`, `DIAGNOSE_FAILED`) is reported in the
//! evidence and changes nothing.
//! Counts are computed from the rows, never typed by hand.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::scan::{Finding, Pattern, Report, Resource, Risk};

/// A row's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// The pattern is in place; the scan finds nothing risky.
    #[serde(rename = "APPLIED")]
    Applied,
    /// As APPLIED, and a diagnose run proved it SAFE.
    #[serde(rename = "VERIFIED")]
    Verified,
    /// Knowingly left, with a reason.
    #[serde(rename = "DEFERRED")]
    Deferred,
    /// The scan or diagnose found a problem.
    #[serde(rename = "AT-RISK")]
    AtRisk,
}

impl Status {
    /// `APPLIED`, `VERIFIED`, `DEFERRED` or `AT-RISK`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Applied => "APPLIED",
            Status::Verified => "VERIFIED",
            Status::Deferred => "DEFERRED",
            Status::AtRisk => "AT-RISK",
        }
    }
}

/// One declared resource.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declared {
    /// `P1-1`, `P2-3`, ...
    pub id: String,
    /// What it is.
    pub name: String,
    /// Its scan template (`*` wildcards allowed).
    pub path: String,
    /// The pattern applied.
    pub pattern: String,
    /// The feature flag guarding the change, if any.
    pub flag: Option<String>,
    /// Only findings in these files count (paths relative to the swept directory).
    #[serde(default)]
    pub writers: Vec<String>,
    /// The diagnose target that proves it.
    pub target: Option<String>,
    /// A status override.
    pub status: Option<Status>,
    /// Why it is deferred (required with `DEFERRED`).
    pub reason: Option<String>,
}

/// The inventory file's `[sweep]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// A title for the report.
    pub title: Option<String>,
    /// The declared resources.
    #[serde(default, rename = "resource")]
    pub resources: Vec<Declared>,
}

/// One row of a sweep table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `P1-1`.
    pub id: String,
    /// `P1` or `P2`.
    pub priority: String,
    /// What it is.
    pub name: String,
    /// Its template.
    pub path: String,
    /// `file:lines` of each writer found.
    pub writers: Vec<String>,
    /// The pattern applied.
    pub pattern: String,
    /// What the scan (and diagnose) found.
    pub evidence: String,
    /// The flag, or `-`.
    pub flag: String,
    /// The status.
    pub status: Status,
}

/// Counts computed from the rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Rows per status, with their ids.
    pub by_status: BTreeMap<String, Vec<String>>,
    /// Rows in the table.
    pub total: usize,
}

/// A whole sweep.
#[derive(Debug, Clone, Serialize)]
pub struct Sweep {
    /// The title.
    pub title: String,
    /// Every row, in inventory order.
    pub rows: Vec<Row>,
    /// Counts per table (`P1`, `P2`, ...), computed from `rows`.
    pub summary: BTreeMap<String, Counts>,
    /// Scanned resources at medium or high risk that no declared resource covers.
    pub undeclared: Vec<Resource>,
}

/// Reads `[sweep]` from an inventory file.
///
/// # Errors
///
/// The file cannot be read (I/O), or is not valid TOML / has an unknown key / a `DEFERRED`
/// row without a reason / a duplicate id (invalid input, naming the problem).
pub fn load(path: &Path) -> Result<Inventory> {
    let text = std::fs::read_to_string(path).map_err(Error::with("read inventory", path))?;
    parse(&text).map_err(|m| Error::Invalid(format!("{}: {m}", path.display())))
}

fn parse(text: &str) -> std::result::Result<Inventory, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| e.message().to_string())?;
    let Some(sweep) = table.get("sweep") else {
        return Err("no [[sweep.resource]] entries".into());
    };
    let inv: Inventory = sweep
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| format!("[sweep]: {}", e.message()))?;
    if inv.resources.is_empty() {
        return Err("no [[sweep.resource]] entries".into());
    }
    let mut seen = std::collections::HashSet::new();
    for r in &inv.resources {
        if !seen.insert(r.id.as_str()) {
            return Err(format!("duplicate resource id {}", r.id));
        }
        if r.status == Some(Status::Deferred) && r.reason.as_deref().unwrap_or("").is_empty() {
            return Err(format!("{}: DEFERRED needs a reason", r.id));
        }
    }
    Ok(inv)
}

/// `|` separates alternatives; `*` matches any run of characters; everything else literally.
fn matches(pattern: &str, text: &str) -> bool {
    pattern.split('|').any(|alt| matches_one(alt.trim(), text))
}

fn matches_one(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            let Some(pos) = rest.find(p) else {
                return false;
            };
            rest = &rest[pos + p.len()..];
        }
    }
    true
}

fn lines(f: &Finding) -> String {
    if f.line_start == f.line_end {
        format!("{}:{}", f.file, f.line_start)
    } else {
        format!("{}:{}-{}", f.file, f.line_start, f.line_end)
    }
}

/// Joins an inventory with a scan report and diagnose verdicts (target → verdict of the
/// protected run).
pub fn sweep(inv: &Inventory, report: &Report, verdicts: &BTreeMap<String, String>) -> Sweep {
    let mut rows = Vec::new();
    let mut covered = std::collections::HashSet::new();
    for d in &inv.resources {
        for f in report
            .findings
            .iter()
            .filter(|f| matches(&d.path, &f.template))
        {
            covered.insert(f.template.clone());
        }
        let found: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| matches(&d.path, &f.template))
            .filter(|f| {
                d.writers.is_empty()
                    || d.writers.iter().any(|w| {
                        *w == f.file || (w.ends_with('/') && f.file.starts_with(w.as_str()))
                    })
            })
            .collect();
        let mut writers: Vec<String> = found
            .iter()
            .filter(|f| f.pattern != Pattern::PredictableTmp)
            .map(|f| lines(f))
            .collect();
        writers.dedup();
        let worst = found.iter().map(|f| f.risk).max();
        let mut evidence = evidence(&found);
        let verdict = d.target.as_ref().and_then(|t| verdicts.get(t));
        if let (Some(t), Some(v)) = (&d.target, verdict) {
            let _ = write!(evidence, "; diagnose {t}: {v}");
        }
        let computed = if found.is_empty() || worst.is_some_and(|r| r >= Risk::Medium) {
            Status::AtRisk
        } else {
            match verdict.map(String::as_str) {
                Some("SAFE") => Status::Verified,
                // no verdict could be had: not evidence either way
                None | Some("UNKNOWN_TARGET" | "DIAGNOSE_FAILED") => Status::Applied,
                Some(_) => Status::AtRisk,
            }
        };
        let status = d.status.unwrap_or(computed);
        if status == Status::Deferred {
            let _ = write!(
                evidence,
                "; deferred: {}",
                d.reason.as_deref().unwrap_or("")
            );
        }
        let priority =
            d.id.split('-')
                .next()
                .filter(|p| !p.is_empty())
                .unwrap_or("P1")
                .to_string();
        rows.push(Row {
            id: d.id.clone(),
            priority,
            name: d.name.clone(),
            path: d.path.clone(),
            writers,
            pattern: d.pattern.clone(),
            evidence,
            flag: d.flag.clone().unwrap_or_else(|| "-".into()),
            status,
        });
    }
    let mut summary: BTreeMap<String, Counts> = BTreeMap::new();
    for r in &rows {
        let c = summary.entry(r.priority.clone()).or_default();
        c.total += 1;
        c.by_status
            .entry(r.status.name().to_string())
            .or_default()
            .push(r.id.clone());
    }
    let undeclared = report
        .inventory
        .iter()
        .filter(|r| r.risk >= Risk::Medium && !covered.contains(&r.template))
        .cloned()
        .collect();
    Sweep {
        title: inv
            .title
            .clone()
            .unwrap_or_else(|| "Isolation sweep".into()),
        rows,
        summary,
        undeclared,
    }
}

fn evidence(found: &[&Finding]) -> String {
    if found.is_empty() {
        return "scan: no writer found".into();
    }
    let mut by: BTreeMap<(&str, bool), usize> = BTreeMap::new();
    for f in found {
        *by.entry((f.pattern.name(), f.locked)).or_default() += 1;
    }
    let parts: Vec<String> = by
        .iter()
        .map(|((p, locked), n)| {
            let l = if *locked { " locked" } else { "" };
            if *n > 1 {
                format!("{p}{l} ×{n}")
            } else {
                format!("{p}{l}")
            }
        })
        .collect();
    let worst = found
        .iter()
        .max_by_key(|f| f.risk)
        .expect("found is not empty");
    let mut s = format!("scan: {}; worst {}", parts.join(", "), worst.risk.name());
    if worst.risk >= Risk::Medium {
        let _ = write!(s, " ({}: {})", lines(worst), worst.reason);
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl Inventory {
    /// The diagnose targets the declared resources name, sorted, each once.
    pub fn diagnose_targets(&self) -> Vec<String> {
        let mut targets: Vec<String> = self
            .resources
            .iter()
            .filter_map(|r| r.target.clone())
            .collect();
        targets.sort();
        targets.dedup();
        targets
    }
}

/// The verdict of `target` from what `concur diagnose --targets TARGET --mode protected
/// --json` printed (`stdout`) and its exit code: the concur row's verdict, else
/// `UNKNOWN_TARGET` (exit 2) or `DIAGNOSE_FAILED`.
pub fn diagnose_verdict(target: &str, stdout: &[u8], code: Option<i32>) -> String {
    serde_json::from_slice::<serde_json::Value>(stdout)
        .ok()
        .and_then(|v| {
            v["results"].as_array().and_then(|rs| {
                rs.iter()
                    .find(|r| r["target"] == target && r["mode"] != "naive")
                    .and_then(|r| r["verdict"].as_str().map(str::to_string))
            })
        })
        .unwrap_or_else(|| {
            if code == Some(2) {
                "UNKNOWN_TARGET".into()
            } else {
                "DIAGNOSE_FAILED".into()
            }
        })
}

/// The seed-style Markdown report: one table per priority, then summary counts from the rows
/// and the undeclared risky writers.
pub fn markdown(s: &Sweep) -> String {
    let mut out = format!("# {}\n", s.title);
    for (prio, counts) in &s.summary {
        let _ = writeln!(out, "\n## {prio} Table ({} resources)\n", counts.total);
        out.push_str(
            "| # | Resource | Writer file | Pattern applied | Evidence | Flag | Status |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|\n");
        for r in s.rows.iter().filter(|r| &r.priority == prio) {
            let writers = if r.writers.is_empty() {
                "-".to_string()
            } else {
                r.writers.join(", ")
            };
            let _ = writeln!(
                out,
                "| {} | {} `{}` | {} | {} | {} | {} | {} |",
                r.id,
                esc(&r.name),
                esc(&r.path),
                esc(&writers),
                esc(&r.pattern),
                esc(&r.evidence),
                esc(&r.flag),
                r.status.name()
            );
        }
    }
    out.push_str("\n## Summary Counts\n\n");
    for (prio, counts) in &s.summary {
        for st in [
            Status::Applied,
            Status::Verified,
            Status::Deferred,
            Status::AtRisk,
        ] {
            let ids = counts.by_status.get(st.name()).cloned().unwrap_or_default();
            let _ = writeln!(
                out,
                "- **{prio} {}:** {}{}",
                st.name(),
                ids.len(),
                if ids.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", ids.join(", "))
                }
            );
        }
        let _ = writeln!(out, "- **{prio} total:** {}", counts.total);
    }
    if !s.undeclared.is_empty() {
        let _ = writeln!(
            out,
            "\n## Undeclared writers ({} at medium or high risk)\n",
            s.undeclared.len()
        );
        out.push_str("| risk | resource | files | fix |\n|---|---|---|---|\n");
        for r in &s.undeclared {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | `{}` |",
                r.risk.name(),
                esc(&r.template),
                r.files.join(", "),
                r.fix
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_runs() {
        assert!(matches("/tmp/hop-*", "/tmp/hop-<taskId>"));
        assert!(matches("$HOME/*/x.json", "$HOME/a/b/x.json"));
        assert!(!matches("/tmp/hop-*", "/var/hop-1"));
        assert!(matches("a", "a"));
        assert!(matches("/tmp/tok | concur:token/tok", "concur:token/tok"));
    }

    #[test]
    fn inventory_rejects_unknown_keys_and_reasonless_deferrals() {
        let ok =
            "[guard]\nprotect=[]\n[[sweep.resource]]\nid='P1-1'\nname='n'\npath='p'\npattern='x'\n";
        assert_eq!(parse(ok).unwrap().resources.len(), 1);
        let typo = "[[sweep.resource]]\nid='P1-1'\nname='n'\npath='p'\npattern='x'\nflg='F'\n";
        assert!(parse(typo).unwrap_err().contains("flg"));
        let deferred =
            "[[sweep.resource]]\nid='P1-1'\nname='n'\npath='p'\npattern='x'\nstatus='DEFERRED'\n";
        assert!(parse(deferred).unwrap_err().contains("reason"));
    }
}
