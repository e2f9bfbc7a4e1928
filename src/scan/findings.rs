//! Findings: one write site's pattern, lock coverage, risk and reason.
//!
//! The language front ends only say *what* happens at a site (a pattern, whether a lock covers
//! it, a few facts such as "the temp name is unique"); this module turns that into a risk and a
//! one-line reason, so every language is judged by the same rules.
//!
//! Not guaranteed: a risk is a static judgement. A `safe` site can still be misused at run time
//! (a lock file another writer ignores); `concur diagnose` proves behaviour, scan only points.

use serde::Serialize;

/// What a write site does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// `>>`, `tee -a`, `appendFile*`, mode/flag `a`.
    Append,
    /// A truncating write: `>`, `writeFile*`, mode `w`.
    Overwrite,
    /// A read of the path then a write of it in the same scope.
    ReadModifyWrite,
    /// An existence check guarding a write, `rm` or `mkdir` of the same path.
    CheckThenAct,
    /// `mkdir` used as a lock.
    MkdirLock,
    /// A bounded mkdir-lock retry loop that carries on without the lock.
    MkdirLockFallthrough,
    /// `flock`/`lockf`/`fcntl.flock`/proper-lockfile/`concur lock`.
    Flock,
    /// `mv`/`renameSync`/`os.replace` onto the path.
    AtomicRename,
    /// `O_EXCL`, `{flag:'wx'}`, `set -C`.
    ExclusiveCreate,
    /// A predictable path under /tmp.
    PredictableTmp,
    /// An `SQLite` database.
    Sqlite,
    /// A Unix socket or pid-file daemon.
    Socket,
}

impl Pattern {
    /// The pattern's name as printed (`read-modify-write`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Append => "append",
            Pattern::Overwrite => "overwrite",
            Pattern::ReadModifyWrite => "read-modify-write",
            Pattern::CheckThenAct => "check-then-act",
            Pattern::MkdirLock => "mkdir-lock",
            Pattern::MkdirLockFallthrough => "mkdir-lock-fallthrough",
            Pattern::Flock => "flock",
            Pattern::AtomicRename => "atomic-rename",
            Pattern::ExclusiveCreate => "exclusive-create",
            Pattern::PredictableTmp => "predictable-tmp",
            Pattern::Sqlite => "sqlite",
            Pattern::Socket => "socket",
        }
    }
}

/// How bad a site is, from `safe` to `high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Correct under concurrency.
    Safe,
    /// Correct in practice (e.g. short `O_APPEND` lines); worth knowing.
    Low,
    /// Can misbehave under concurrency.
    Medium,
    /// Loses or corrupts data under concurrency.
    High,
}

impl Risk {
    /// `safe`, `low`, `medium` or `high`.
    pub fn name(self) -> &'static str {
        match self {
            Risk::Safe => "safe",
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }

    /// Parses `safe|low|medium|high`.
    pub fn parse(s: &str) -> Option<Risk> {
        match s {
            "safe" => Some(Risk::Safe),
            "low" => Some(Risk::Low),
            "medium" => Some(Risk::Medium),
            "high" => Some(Risk::High),
            _ => None,
        }
    }
}

/// How sure the scanner is of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Near a parse error: the tree around the site may be wrong.
    Low,
    /// The path could not be fully resolved.
    Medium,
    /// Parsed cleanly, path resolved.
    High,
}

/// One finding at one write site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// File, as given relative to the scanned root.
    pub file: String,
    /// First line of the site (1-based).
    pub line_start: usize,
    /// Last line of the site.
    pub line_end: usize,
    /// The path expression as written.
    pub path: String,
    /// The path resolved into a template (`$HOME/.agent/logs/<date>.md`).
    pub template: String,
    /// What the site does.
    pub pattern: Pattern,
    /// Whether a lock covers the site.
    pub locked: bool,
    /// How bad it is.
    pub risk: Risk,
    /// Why, in one line.
    pub reason: String,
    /// How sure the scanner is.
    pub confidence: Confidence,
    /// The other findings at the same site, weaker than this one (`pattern (risk): reason`).
    pub notes: Vec<String>,
}

/// Facts a front end knows about a site besides its pattern.
#[derive(Debug, Clone, Default)]
#[allow(clippy::struct_field_names)]
pub struct Facts {
    /// A lock covers the site.
    pub locked: bool,
    /// The site is a correctly used concur verb (`concur append`, `concur json`, ...).
    pub concur: Option<&'static str>,
    /// atomic-rename: the source is a unique temp (mktemp, mkstemp, a pid+random name).
    pub unique_source: bool,
    /// atomic-rename: the rename consumes a token (moves it to a "consumed" name).
    pub consume: bool,
    /// sqlite: WAL journal mode seen.
    pub wal: bool,
    /// sqlite: a busy timeout seen.
    pub busy_timeout: bool,
    /// The file runs as an agent hook (concurrently across sessions).
    pub hook: bool,
    /// check-then-act: what the guarded action is (`write`, `rm`, `mkdir`, ...); socket:
    /// `start` for a pid file written with a just-started daemon's pid (`$!`).
    pub action: &'static str,
    /// The path is per-process (a pid, mktemp or random name): one writer only.
    pub private: bool,
    /// A free-form detail for the reason (the lock file, the read site line, ...).
    pub detail: String,
    /// overwrite: the content is a constant (every writer writes the same bytes).
    pub constant: bool,
    /// The path is a staging temp (`*.tmp`, `*.new`), a lock file (`*.lock`) or names a
    /// session: not a file other sessions read whole.
    pub scoped: bool,
    /// overwrite: the path is a resolved document other processes read whole (JSON, JSONL,
    /// Markdown, YAML, TOML, CSV, text): a half-written copy of it breaks a reader. A flag, a
    /// stamp or a path the scanner could not resolve (maybe a unique temp, maybe a caller's
    /// argument) is not claimed `high`.
    pub document: bool,
}

/// The risk and one-line reason for a pattern with its facts.
#[allow(clippy::too_many_lines)] // one arm per pattern reads best as one table
pub fn judge(pattern: Pattern, f: &Facts) -> (Risk, String) {
    if let Some(verb) = f.concur {
        return (
            Risk::Safe,
            format!("{verb}: concur primitive, safe by construction"),
        );
    }
    let hook = if f.hook {
        " (runs as a hook: concurrent across sessions)"
    } else {
        ""
    };
    let (risk, reason) = match pattern {
        Pattern::Append | Pattern::Overwrite if f.private => (
            Risk::Safe,
            "per-process name (pid or unique temp): only one writer".into(),
        ),
        Pattern::Append if f.locked => (Risk::Safe, "append under a lock".to_string()),
        Pattern::Append => (
            Risk::Low,
            "O_APPEND: one write per line is atomic up to PIPE_BUF; longer lines can interleave"
                .to_string(),
        ),
        Pattern::Overwrite if f.locked => (Risk::Safe, "truncating write under a lock".into()),
        Pattern::Overwrite if f.constant => (
            Risk::Low,
            "truncating write of constant content: every writer writes the same bytes".into(),
        ),
        Pattern::Overwrite if f.scoped => (
            Risk::Medium,
            "truncating write of a staging temp, lock file or per-session file: no lock".into(),
        ),
        Pattern::Overwrite => (
            if f.hook && f.document {
                Risk::High
            } else {
                Risk::Medium
            },
            "truncating write, no lock: readers can see it empty or half-written, last writer wins"
                .into(),
        ),
        Pattern::ReadModifyWrite if f.locked => {
            (Risk::Safe, "read-modify-write under a lock".into())
        }
        Pattern::ReadModifyWrite if f.private => (
            Risk::Low,
            "read-modify-write of a per-process file (pid or unique temp): one writer only".into(),
        ),
        Pattern::ReadModifyWrite => (
            if f.hook { Risk::High } else { Risk::Medium },
            format!(
                "read then write without a lock: concurrent updates are lost{}",
                detail(&f.detail)
            ),
        ),
        Pattern::CheckThenAct if f.locked => (Risk::Safe, "check-then-act under a lock".into()),
        Pattern::CheckThenAct => (
            if f.hook && !f.scoped {
                Risk::High
            } else {
                Risk::Medium
            },
            format!(
                "existence check then {}: two processes can both pass the check",
                if f.action.is_empty() { "act" } else { f.action }
            ),
        ),
        Pattern::MkdirLock => (
            Risk::Medium,
            "mkdir lock: atomic, but a killed holder leaves the directory behind (stale lock)"
                .into(),
        ),
        Pattern::MkdirLockFallthrough => (
            Risk::High,
            format!(
                "mkdir-lock retry loop gives up and carries on without the lock{}",
                detail(&f.detail)
            ),
        ),
        Pattern::Flock => (
            Risk::Safe,
            format!(
                "kernel lock, released when the holder dies{}",
                detail(&f.detail)
            ),
        ),
        Pattern::AtomicRename if f.consume => (
            Risk::Safe,
            "rename(2) consumes the token: exactly one process wins".into(),
        ),
        Pattern::AtomicRename if f.unique_source || f.locked => (
            Risk::Safe,
            "atomic rename from a unique temp: readers see old or new, never half".into(),
        ),
        Pattern::AtomicRename => (
            Risk::Medium,
            "atomic rename, but the temp name is predictable: concurrent writers share it".into(),
        ),
        Pattern::ExclusiveCreate => (
            Risk::Safe,
            "exclusive create (O_EXCL): exactly one creator wins".into(),
        ),
        Pattern::PredictableTmp => (
            Risk::Medium,
            format!(
                "predictable path under /tmp: shared by every session and user, can be pre-created or symlinked{}",
                detail(&f.detail)
            ),
        ),
        Pattern::Sqlite => match (f.wal, f.busy_timeout) {
            (true, true) => (
                Risk::Safe,
                "SQLite in WAL mode with a busy timeout set".into(),
            ),
            (true, false) => (
                Risk::Medium,
                "SQLite in WAL mode but no busy timeout: concurrent writers get SQLITE_BUSY".into(),
            ),
            (false, true) => (
                Risk::Low,
                "SQLite with a busy timeout, rollback journal: writers block readers".into(),
            ),
            (false, false) => (
                Risk::Medium,
                "SQLite without WAL or busy timeout: concurrent writers get SQLITE_BUSY".into(),
            ),
        },
        Pattern::Socket if f.action == "start" && !f.locked => (
            if f.hook { Risk::High } else { Risk::Medium },
            "pid-file lazy start without a lock: two callers can both find no daemon and both start one"
                .into(),
        ),
        Pattern::Socket => (
            Risk::Low,
            "socket or pid-file daemon: single owner only if the start is locked".into(),
        ),
    };
    if risk == Risk::Safe || hook.is_empty() {
        (risk, reason)
    } else {
        (risk, format!("{reason}{hook}"))
    }
}

fn detail(d: &str) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!(" ({d})")
    }
}

/// The concur verb that fixes a resource whose worst finding has this pattern.
pub fn fix_for(pattern: Pattern, template: &str) -> &'static str {
    let t = template.to_ascii_lowercase();
    match pattern {
        _ if t.contains("ledger") && pattern != Pattern::Append => "concur ledger append",
        Pattern::Append => "concur append",
        Pattern::Overwrite | Pattern::AtomicRename => "concur write",
        Pattern::ReadModifyWrite
            if std::path::Path::new(&t)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json")) =>
        {
            "concur json"
        }
        Pattern::ReadModifyWrite => "concur write --if-match",
        Pattern::CheckThenAct if t.contains("token") => "concur token take",
        Pattern::CheckThenAct
            if [".md", ".log", ".jsonl", ".txt"]
                .iter()
                .any(|e| t.rsplit('/').next().is_some_and(|n| n.contains(e))) =>
        {
            "concur append --header"
        }
        Pattern::CheckThenAct if t.contains("started") || t.contains("task") => {
            "concur lease --once"
        }
        Pattern::CheckThenAct | Pattern::PredictableTmp => "concur marker",
        Pattern::MkdirLock | Pattern::MkdirLockFallthrough if t.contains("slot") => "concur slot",
        Pattern::MkdirLock | Pattern::MkdirLockFallthrough | Pattern::Flock => "concur lock",
        Pattern::ExclusiveCreate => "concur append --header",
        Pattern::Sqlite => "concur lease",
        Pattern::Socket => "concur broker",
    }
}

/// Whether a write can be the "act" of a check-then-act race: an exclusive create cannot (the
/// loser fails instead of overwriting), nor can an atomic rename (whoever renames last wins
/// whole; the check decides nothing a reader could see half-done).
pub fn is_act(p: Pattern) -> bool {
    !matches!(p, Pattern::ExclusiveCreate | Pattern::AtomicRename)
}
