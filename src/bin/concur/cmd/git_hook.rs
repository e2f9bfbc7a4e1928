//! `concur hook git-pre-commit` and `concur hook install --git`: the git backstop for edit
//! reservations (called from `hook.rs`).

use concur::reserve::git::{install_pre_commit, shell_quote, staged_conflicts};
use concur::reserve::{Reservations, report};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// `concur hook git-pre-commit`: checks the staged files; exit 1 names the blocked ones.
pub fn pre_commit(ctx: &Ctx) -> Result<Exit, CliError> {
    let cwd = crate::ctx::cwd()?;
    let session = ctx.session()?;
    let r = Reservations::open(ctx.home()?)?;
    let blocked = staged_conflicts(&r, session.as_ref(), &cwd)?;
    if ctx.json {
        ctx.print_json(&report::commit_json(&blocked));
    }
    if blocked.is_empty() {
        return Ok(Exit::Ok);
    }
    eprint!("{}", report::commit_refusal(&blocked));
    Ok(Exit::Conflict)
}

/// `concur hook install --git`: installs the pre-commit hook, chaining an existing one.
pub fn install(ctx: &Ctx) -> Result<Exit, CliError> {
    let cwd = crate::ctx::cwd()?;
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
    } else {
        print_line(&done.to_string());
    }
    Ok(Exit::Ok)
}
