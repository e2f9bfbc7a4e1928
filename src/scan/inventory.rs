//! The inventory: every writer of one resolved path, across files and languages.
//!
//! A resource's risk is the worst risk among its writers' findings; its fix is the concur verb
//! for that worst finding's pattern ([`super::findings::fix_for`]). Findings about the
//! location itself (`predictable-tmp`) count towards the risk but name no writer of their own.

use std::collections::BTreeMap;

use serde::Serialize;

use super::findings::{Finding, Pattern, Risk, fix_for};

/// One writer of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Writer {
    /// The file.
    pub file: String,
    /// First line.
    pub line_start: usize,
    /// Last line.
    pub line_end: usize,
    /// The pattern.
    pub pattern: Pattern,
    /// Whether a lock covers it.
    pub locked: bool,
    /// Its risk.
    pub risk: Risk,
}

/// A shared resource: a resolved path and everything that writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    /// The resolved template.
    pub template: String,
    /// The worst risk among its writers.
    pub risk: Risk,
    /// The concur verb that fixes it.
    pub fix: String,
    /// The files writing it.
    pub files: Vec<String>,
    /// Every writer site.
    pub writers: Vec<Writer>,
}

/// Groups findings by template, worst resources first.
pub fn group(findings: &[Finding]) -> Vec<Resource> {
    let mut by: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        by.entry(f.template.as_str()).or_default().push(f);
    }
    let mut out: Vec<Resource> = by
        .into_iter()
        .map(|(template, fs)| {
            let worst = fs
                .iter()
                .max_by_key(|f| {
                    (
                        f.risk,
                        std::cmp::Reverse(f.pattern == Pattern::PredictableTmp),
                    )
                })
                .expect("a group is never empty");
            let mut files: Vec<String> = fs.iter().map(|f| f.file.clone()).collect();
            files.sort();
            files.dedup();
            let writers = fs
                .iter()
                .filter(|f| f.pattern != Pattern::PredictableTmp)
                .map(|f| Writer {
                    file: f.file.clone(),
                    line_start: f.line_start,
                    line_end: f.line_end,
                    pattern: f.pattern,
                    locked: f.locked,
                    risk: f.risk,
                })
                .collect();
            // The fix follows the worst writer; a predictable /tmp location alone calls for a
            // session-scoped marker.
            let writer = fs
                .iter()
                .filter(|f| f.pattern != Pattern::PredictableTmp)
                .max_by_key(|f| {
                    (
                        f.risk,
                        matches!(f.pattern, Pattern::ReadModifyWrite | Pattern::CheckThenAct),
                    )
                });
            let fix = match writer {
                _ if worst.risk == Risk::Safe => "-".to_string(),
                Some(w) if w.pattern == Pattern::Flock => "concur lock --name".to_string(),
                Some(w) if w.risk > Risk::Safe => fix_for(w.pattern, template).to_string(),
                _ => fix_for(worst.pattern, template).to_string(),
            };
            Resource {
                template: template.to_string(),
                risk: worst.risk,
                fix,
                files,
                writers,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.risk
            .cmp(&a.risk)
            .then_with(|| a.template.cmp(&b.template))
    });
    out
}
