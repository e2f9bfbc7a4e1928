//! `concur git-hook pre-commit|install`: the git backstop for edit reservations.

use concur::reserve::Reservations;
use concur::reserve::git::{install_pre_commit, shell_quote, staged_conflicts};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Git backstop for edit reservations: refuse commits of files another session reserved.
///
/// `pre-commit` (run by git) checks every staged file and exits 1 naming each file reserved by
/// another live session, so the commit does not happen. `install` puts it into the repository's
/// pre-commit hook; an existing hook is kept and runs first (chained), installing twice is a
/// no-op.
///
/// Example: `cd my-repo && concur git-hook install`
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Check the staged files (what .git/hooks/pre-commit runs); exit 1 names the blocked ones
    ///
    /// Example: `concur git-hook pre-commit --session "$CONCUR_SESSION"`
    PreCommit,
    /// Install the pre-commit hook in this repository, chaining an existing one
    ///
    /// Example: `concur git-hook install`
    Install,
}

/// Runs `concur git-hook`.
pub fn run(args: &Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let cwd = std::env::current_dir().map_err(|e| {
        CliError::new(
            Exit::Io,
            "io",
            format!("cannot read current directory: {e}"),
        )
    })?;
    match args.action {
        Action::PreCommit => {
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
            let mut lines = Vec::new();
            for (_, holders) in &blocked {
                for h in holders {
                    lines.push(h.describe());
                }
            }
            eprintln!(
                "concur: commit refused: {} staged file(s) reserved by other sessions:",
                blocked.len()
            );
            for (p, _) in &blocked {
                eprintln!("  {p}");
            }
            for l in &lines {
                eprintln!("  - {l}");
            }
            eprintln!(
                "  Wait for the holder to release, ask it, or unstage these files \
                 (git restore --staged FILE)."
            );
            Ok(Exit::Conflict)
        }
        Action::Install => {
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
    }
}
