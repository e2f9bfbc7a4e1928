//! How reservations are shown: the refusal of a claim, the answer of `reserve check`, the
//! `reservations` listing, what `release` gave back, and the git pre-commit hook's refusal.

use std::fmt::Write as _;

use super::git::Installed;
use super::{Access, Conflict, Reservation, Target};
use crate::time::age;

/// The heading of the `reservations` listing (shown on a terminal).
pub const LIST_HEADING: &str = "PATH\tMODE\tSESSION\tPID\tHOLDER\tAGE\tEXPIRES\tCWD\tREASON";

impl Reservation {
    /// One tab-separated line of the `reservations` listing, ages taken at `now` (Unix ms).
    pub fn list_line(&self, now: u64) -> String {
        let pid = self.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let expires = if self.holder == "alive" {
            "while alive".to_owned()
        } else {
            format!("in {}", age(self.expires_in_ms, 0))
        };
        format!(
            "{}\t{}\tsession {}\tpid {pid}\t{}\t{}\texpires {expires}\t{}\t{}",
            self.path,
            self.mode.name(),
            self.session,
            self.holder,
            age(now, self.since),
            self.cwd,
            self.reason.as_deref().unwrap_or("-"),
        )
    }
}

/// The one-line message of a refused claim: every conflict, with its holder.
pub fn refusal(conflicts: &[Conflict]) -> String {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| format!("{} conflicts with {}", c.wanted, c.held.describe()))
        .collect();
    format!("nothing reserved: {}", lines.join("; "))
}

impl Access {
    /// `free`, `own` or `denied`.
    pub fn verdict(&self) -> &'static str {
        match self {
            Access::Free => "free",
            Access::Own => "own",
            Access::Denied(_) => "denied",
        }
    }

    /// The other sessions' reservations that deny it (none unless denied).
    pub fn holders(&self) -> &[Reservation] {
        match self {
            Access::Denied(h) => h,
            Access::Free | Access::Own => &[],
        }
    }

    /// The `--json` fields of `reserve check` for `target`.
    pub fn to_json(&self, target: &Target) -> serde_json::Value {
        serde_json::json!({
            "path": target.pattern,
            "root": target.root,
            "access": self.verdict(),
            "holders": self.holders(),
        })
    }

    /// The answer for people: `PATH: free`/`own`, or one `PATH: denied: HOLDER` line per
    /// holder.
    pub fn lines(&self, target: &Target) -> Vec<String> {
        if self.holders().is_empty() {
            return vec![format!("{}: {}", target.pattern, self.verdict())];
        }
        self.holders()
            .iter()
            .map(|h| format!("{}: denied: {}", target.pattern, h.describe()))
            .collect()
    }
}

/// The targets of a release that `released` does not cover: named but not held.
pub fn not_held<'a>(targets: &'a [Target], released: &[Reservation]) -> Vec<&'a str> {
    targets
        .iter()
        .filter(|t| {
            !released
                .iter()
                .any(|g| g.root == t.root && g.path == t.pattern)
        })
        .map(|t| t.pattern.as_str())
        .collect()
}

/// What the git pre-commit hook says on stderr when it refuses a commit: the blocked files,
/// their holders, and what to do.
pub fn commit_refusal(blocked: &[(String, Vec<Reservation>)]) -> String {
    let mut out = format!(
        "concur: commit refused: {} staged file(s) reserved by other sessions:\n",
        blocked.len()
    );
    for (p, _) in blocked {
        let _ = writeln!(out, "  {p}");
    }
    for (_, holders) in blocked {
        for h in holders {
            let _ = writeln!(out, "  - {}", h.describe());
        }
    }
    out.push_str(
        "  Wait for the holder to release, ask it, or unstage these files \
         (git restore --staged FILE).\n",
    );
    out
}

/// The `--json` fields of the git pre-commit hook: `allowed`, and each blocked path with its
/// holders.
pub fn commit_json(blocked: &[(String, Vec<Reservation>)]) -> serde_json::Value {
    let v: Vec<_> = blocked
        .iter()
        .map(|(p, h)| serde_json::json!({ "path": p, "holders": h }))
        .collect();
    serde_json::json!({ "allowed": blocked.is_empty(), "blocked": v })
}

impl std::fmt::Display for Installed {
    /// What the install did: already there, installed, or installed in front of the existing
    /// hook.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hook = self.hook.display();
        match &self.chained {
            _ if !self.changed => write!(f, "already installed: {hook}"),
            Some(c) => write!(
                f,
                "installed {hook} (the existing hook runs first, from {})",
                c.display()
            ),
            None => write!(f, "installed {hook}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_and_own_are_one_line_each() {
        let t = Target {
            root: "/r".into(),
            pattern: "a.rs".into(),
        };
        assert_eq!(Access::Free.lines(&t), ["a.rs: free"]);
        assert_eq!(Access::Own.lines(&t), ["a.rs: own"]);
        assert_eq!(Access::Own.to_json(&t)["access"], "own");
    }

    #[test]
    fn targets_not_released_are_named() {
        let t = |p: &str| Target {
            root: "/r".into(),
            pattern: p.into(),
        };
        assert_eq!(not_held(&[t("a"), t("b")], &[]), ["a", "b"]);
    }
}
