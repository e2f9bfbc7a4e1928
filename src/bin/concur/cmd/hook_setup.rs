//! `concur hook install|uninstall|doctor|plugin` (called from `hook.rs`): which files, then
//! the library does the work ([`concur::hook::install`], [`concur::hook::doctor`],
//! [`concur::hook::plugin`]).

use std::path::{Path, PathBuf};

use concur::hook::install::{default_settings, hook_command};
use concur::hook::setup::Setup;
use concur::hook::{Agent, doctor};

use super::hook::Target;
use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// How `install` builds the hook command.
pub struct How {
    /// `--command`: installed verbatim.
    pub command: Option<String>,
    /// `--binary`: the concur the wrapper runs.
    pub binary: Option<PathBuf>,
    /// `--dry-run`.
    pub dry_run: bool,
}

/// Prints text that ends its own lines.
fn print_text(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

fn io(what: &str, e: &std::io::Error) -> CliError {
    CliError::new(Exit::Io, "io", format!("{what}: {e}"))
}

/// This concur binary, absolute.
fn this_binary() -> Result<PathBuf, CliError> {
    let exe = std::env::current_exe().map_err(|e| io("cannot find the concur binary", &e))?;
    Ok(std::fs::canonicalize(&exe).unwrap_or(exe))
}

/// `--binary`, made absolute, or this concur.
fn binary(given: Option<PathBuf>) -> Result<PathBuf, CliError> {
    match given {
        Some(b) if b.is_absolute() => Ok(b),
        Some(b) => Ok(crate::ctx::cwd()?.join(b)),
        None => this_binary(),
    }
}

/// The checkout `--project` names: DIR, else the git root above the current directory, else
/// the current directory.
fn project_root(dir: Option<&Path>) -> Result<PathBuf, CliError> {
    let cwd = crate::ctx::cwd()?;
    if let Some(d) = dir {
        return Ok(cwd.join(d));
    }
    Ok(cwd
        .ancestors()
        .find(|d| d.join(".git").exists())
        .unwrap_or(&cwd)
        .to_path_buf())
}

fn settings(agent: Agent, target: &Target) -> Result<PathBuf, CliError> {
    if let Some(s) = &target.settings {
        return Ok(s.clone());
    }
    let project = target
        .project
        .as_ref()
        .map(|d| project_root(d.as_deref()))
        .transpose()?;
    Ok(default_settings(agent, project.as_deref())?)
}

fn setup(ctx: &Ctx, agent: Agent, target: &Target, command: String) -> Result<Setup, CliError> {
    let codex = if agent == Agent::Codex {
        let config = concur::hook::codex::config_path()?;
        Some((config, ctx.home()?.path().to_path_buf()))
    } else {
        None
    };
    Ok(Setup {
        agent,
        settings: settings(agent, target)?,
        command,
        codex,
    })
}

/// `concur hook install --agent A`.
pub fn install(ctx: &Ctx, agent: Agent, target: &Target, how: How) -> Result<Exit, CliError> {
    let command = match how.command {
        Some(c) => c,
        None => hook_command(&binary(how.binary)?, agent),
    };
    let s = setup(ctx, agent, target, command)?;
    let done = s.install(how.dry_run)?;
    if ctx.json {
        ctx.print_json(&s.installed_json(how.dry_run, &done));
    } else {
        print_text(&s.installed_text(how.dry_run, &done));
    }
    Ok(Exit::Ok)
}

/// `concur hook uninstall --agent A`.
pub fn uninstall(ctx: &Ctx, agent: Agent, target: &Target) -> Result<Exit, CliError> {
    let s = setup(ctx, agent, target, String::new())?;
    let done = s.uninstall()?;
    if ctx.json {
        ctx.print_json(&s.uninstalled_json(&done));
    } else {
        for d in &done {
            print_line(&d.to_string());
        }
    }
    Ok(Exit::Ok)
}

/// `concur hook doctor [--agent A]`: exit 0 when every check passes, 3 otherwise.
pub fn doctor(ctx: &Ctx, agent: Option<Agent>, target: &Target) -> Result<Exit, CliError> {
    let home = ctx.home()?.path().to_path_buf();
    let reports = doctor::check_agents(agent, |a| settings(a, target), &home)?;
    if ctx.json {
        ctx.print_json(&doctor::to_json(&reports));
    } else {
        print_text(&doctor::text(&reports));
    }
    Ok(if doctor::healthy(&reports) {
        Exit::Ok
    } else {
        Exit::Precondition
    })
}

/// `concur hook plugin DIR`.
pub fn plugin(ctx: &Ctx, dir: &Path, bin: Option<PathBuf>) -> Result<Exit, CliError> {
    let files = concur::hook::plugin::write(dir, &binary(bin)?)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "dir": dir, "files": files }));
    } else {
        for f in &files {
            print_line(&format!("wrote {}", f.display()));
        }
        print_line(&format!(
            "load it with: claude --plugin-dir {}",
            concur::reserve::git::shell_quote(&dir.to_string_lossy())
        ));
    }
    Ok(Exit::Ok)
}
