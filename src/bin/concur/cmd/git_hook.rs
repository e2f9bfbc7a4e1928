//! `concur hook git-pre-commit` and `concur hook install --git`: the git backstop for edit
//! reservations (called from `hook.rs`).

use concur::reserve::Reservations;
use concur::reserve::git::{install_pre_commit, shell_quote, staged_conflicts};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

fn cwd() -> Result<std::path::PathBuf, CliError> {
    std::env::current_dir().map_err(|e| {
        CliError::new(
            Exit::Io,
            "io",
            format!("cannot read current directory: {e}"),
        )
    })
}

/// `concur hook git-pre-commit`: checks the staged files; exit 1 names the blocked ones.
pub fn pre_commit(ctx: &Ctx) -> Result<Exit, CliError> {
    let cwd = cwd()?;
    let session = ctx.session()?;
    let r = Reservations::open(ctx.home()?)?;
    let blocked = staged_conflicts(&r, session.as_ref(), &cwd)?;
    if ctx.json {
        let v: Vec<_> = blocked
            .iter()
            .map(|(p, h)| serde_json::json!({ "path": p, "holders": h }))
            .collect();
        ctx.print_json(&serde_json::json!({ "allowed": blocked.is_empty(), "blocked": v }));
    }
    if blocked.is_empty() {
        return Ok(Exit::Ok);
    }
    eprintln!(
        "concur: commit refused: {} staged file(s) reserved by other sessions:",
        blocked.len()
    );
    for (p, _) in &blocked {
        eprintln!("  {p}");
    }
    for (_, holders) in &blocked {
        for h in holders {
            eprintln!("  - {}", h.describe());
        }
    }
    eprintln!(
        "  Wait for the holder to release, ask it, or unstage these files \
         (git restore --staged FILE)."
    );
    Ok(Exit::Conflict)
}

/// `concur hook install --git`: installs the pre-commit hook, chaining an existing one.
pub fn install(ctx: &Ctx) -> Result<Exit, CliError> {
    let cwd = cwd()?;
    let exe = std::env::current_exe().map_err(|e| {
        CliError::new(
            Exit::Io,
            "io",
            format!("cannot find the concur binary: {e}"),
        )
    })?;
    let done = install_pre_commit(&cwd, &shell_quote(&exe.to_string_lossy()))?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "installed": done }));
    } else if !done.changed {
        print_line(&format!("already installed: {}", done.hook.display()));
    } else if let Some(c) = &done.chained {
        print_line(&format!(
            "installed {} (the existing hook runs first, from {})",
            done.hook.display(),
            c.display()
        ));
    } else {
        print_line(&format!("installed {}", done.hook.display()));
    }
    Ok(Exit::Ok)
}
