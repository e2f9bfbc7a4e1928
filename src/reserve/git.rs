//! The git backstop: a pre-commit hook that refuses to commit files another session reserved.
//!
//! [`staged_conflicts`] asks git for the staged paths (`git diff --cached --name-only -z`, so any
//! file name survives) and checks each with [`Reservations::check`]. [`install_pre_commit`]
//! writes `pre-commit` into the repository's hooks directory (`git rev-parse --git-path hooks`,
//! so linked worktrees and `core.hooksPath` are honoured). An existing hook that is not concur's
//! is kept as `pre-commit.concur-chained` and run first; a failing chained hook fails the commit
//! before concur is asked. Installing twice changes nothing.
//!
//! Not guaranteed: `git commit --no-verify` skips every pre-commit hook, this one included.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Access, Reservation, Reservations, Target};
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::sys;

/// The line that marks a pre-commit hook as concur's.
pub const MARKER: &str = "# installed by: concur hook install";

/// The name an existing hook is kept under when concur's is installed in front of it.
pub const CHAINED: &str = "pre-commit.concur-chained";

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(Error::with("cannot run git in", dir))?;
    if !out.status.success() {
        return Err(Error::Precondition(format!(
            "git {} failed in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

fn git_path(dir: &Path, args: &[&str]) -> Result<PathBuf> {
    let out = git(dir, args)?;
    let s = String::from_utf8_lossy(&out)
        .trim_end_matches('\n')
        .to_owned();
    Ok(dir.join(s))
}

/// The staged files of the repository containing `dir` that `session` may not commit, each
/// with the reservations that block it.
///
/// # Errors
/// [`Error::Precondition`] outside a git repository; store errors.
pub fn staged_conflicts(
    r: &Reservations,
    session: Option<&SessionId>,
    dir: &Path,
) -> Result<Vec<(String, Vec<Reservation>)>> {
    let top = git_path(dir, &["rev-parse", "--show-toplevel"])?;
    let names = git(&top, &["diff", "--cached", "--name-only", "-z"])?;
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let target = Target::resolve(&name, &top)?;
        if let Access::Denied(h) = r.check(session, &target)? {
            out.push((target.pattern, h));
        }
    }
    Ok(out)
}

/// What [`install_pre_commit`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Installed {
    /// The hook file.
    pub hook: PathBuf,
    /// Where an existing hook was moved to be chained, if one was.
    pub chained: Option<PathBuf>,
    /// False when concur's hook was already installed (nothing changed).
    pub changed: bool,
}

/// Installs concur's pre-commit hook in the repository containing `dir`; `concur` is the
/// command line that runs the binary (e.g. its absolute path).
///
/// # Errors
/// [`Error::Precondition`] outside a git repository, or when an earlier chained hook is in the
/// way; [`Error::Io`] when the hook cannot be written.
pub fn install_pre_commit(dir: &Path, concur: &str) -> Result<Installed> {
    let hooks = git_path(dir, &["rev-parse", "--git-path", "hooks"])?;
    sys::fs::mkdir(&hooks, 0o755).map_err(Error::with("cannot create", &hooks))?;
    let hook = hooks.join("pre-commit");
    let chained_path = hooks.join(CHAINED);
    let existing = std::fs::read(&hook).ok();
    if existing
        .as_deref()
        .is_some_and(|e| String::from_utf8_lossy(e).contains(MARKER))
    {
        return Ok(Installed {
            hook,
            chained: chained_path.exists().then_some(chained_path),
            changed: false,
        });
    }
    let mut chained = None;
    if existing.is_some() {
        if std::fs::symlink_metadata(&chained_path).is_ok() {
            return Err(Error::Precondition(format!(
                "both {} (not concur's) and {} exist: merge them by hand",
                hook.display(),
                chained_path.display()
            )));
        }
        sys::fs::rename_noreplace(&hook, &chained_path)
            .map_err(Error::with("cannot move existing hook to", &chained_path))?;
        chained = Some(chained_path);
    }
    let script = format!(
        "#!/bin/sh\n{MARKER} --git (edit reservations)\n\
         # A hook that was here before runs first: {CHAINED}\n\
         chained=\"$(dirname \"$0\")/{CHAINED}\"\n\
         if [ -x \"$chained\" ]; then \"$chained\" \"$@\" || exit $?; fi\n\
         exec {concur} hook git-pre-commit\n"
    );
    let how = sys::fs::Atomic::new("pre-commit")
        .exact_mode(0o755)
        .durability(sys::fs::Durability::Data);
    sys::fs::write_atomic(&hook, script.as_bytes(), &how)?;
    Ok(Installed {
        hook,
        chained,
        changed: true,
    })
}

/// Quotes `s` for a POSIX shell command line.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@".contains(c))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}
