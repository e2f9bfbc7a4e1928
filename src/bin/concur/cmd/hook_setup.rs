//! `concur hook install|uninstall|doctor|plugin` (called from `hook.rs`): which files, then
//! the library does the work ([`concur::hook::install`], [`concur::hook::doctor`],
//! [`concur::hook::plugin`]).

use std::path::{Path, PathBuf};

use concur::hook::Agent;
use concur::hook::install::{default_settings, hook_command};
use concur::hook::setup::Setup;

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
        Some(b) => {
            let cwd =
                std::env::current_dir().map_err(|e| io("cannot read current directory", &e))?;
            Ok(cwd.join(b))
        }
        None => this_binary(),
    }
}

/// The checkout `--project` names: DIR, else the git root above the current directory, else
/// the current directory.
fn project_root(dir: Option<&Path>) -> Result<PathBuf, CliError> {
    let cwd = std::env::current_dir().map_err(|e| io("cannot read current directory", &e))?;
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
        let files: Vec<_> = done
            .iter()
            .map(|d| {
                serde_json::json!({"file": d.settings, "changed": d.changed,
                    "backup": d.backup, "diff": d.diff})
            })
            .collect();
        ctx.print_json(&serde_json::json!({
            "agent": agent.name(), "command": s.command, "dry_run": how.dry_run, "files": files,
        }));
        return Ok(Exit::Ok);
    }
    for d in &done {
        match (how.dry_run, d.changed) {
            (true, true) => {
                print_line(&format!("--- {}", d.settings.display()));
                print!("{}", d.diff);
            }
            (false, true) => print_line(&format!(
                "installed concur's {} hooks in {}",
                agent.name(),
                d.settings.display()
            )),
            (_, false) => print_line(&format!(
                "already installed: {} unchanged",
                d.settings.display()
            )),
        }
    }
    Ok(Exit::Ok)
}

/// `concur hook uninstall --agent A`.
pub fn uninstall(ctx: &Ctx, agent: Agent, target: &Target) -> Result<Exit, CliError> {
    let s = setup(ctx, agent, target, String::new())?;
    let done = s.uninstall()?;
    if ctx.json {
        let files: Vec<_> = done
            .iter()
            .map(|d| serde_json::json!({"file": d.file, "changed": d.changed, "restored": d.restored}))
            .collect();
        ctx.print_json(&serde_json::json!({ "agent": agent.name(), "files": files }));
        return Ok(Exit::Ok);
    }
    for d in &done {
        let what = match (d.changed, d.restored) {
            (_, true) => "restored as it was before the install",
            (true, false) => "concur's hooks removed, the rest kept",
            (false, false) => "nothing of concur's: unchanged",
        };
        print_line(&format!("{}: {what}", d.file.display()));
    }
    Ok(Exit::Ok)
}

/// `concur hook doctor [--agent A]`: exit 0 when every check passes, 3 otherwise.
pub fn doctor(ctx: &Ctx, agent: Option<Agent>, target: &Target) -> Result<Exit, CliError> {
    let agents = match agent {
        Some(a) => vec![a],
        None => vec![Agent::Claude, Agent::Codex, Agent::Gemini, Agent::Cursor],
    };
    let home = ctx.home()?.path().to_path_buf();
    let mut reports = Vec::new();
    for a in agents {
        let file = settings(a, target)?;
        if agent.is_none() && !file.exists() {
            continue;
        }
        let config = if a == Agent::Codex {
            Some(concur::hook::codex::config_path()?)
        } else {
            None
        };
        reports.push(concur::hook::doctor::check(
            a,
            &file,
            config.as_deref(),
            &home,
        ));
    }
    let ok = !reports.is_empty() && reports.iter().all(concur::hook::doctor::Report::ok);
    if ctx.json {
        let v: Vec<_> = reports
            .iter()
            .map(|r| serde_json::json!({"agent": r.agent, "settings": r.settings, "ok": r.ok(), "checks": r.checks}))
            .collect();
        ctx.print_json(&serde_json::json!({ "healthy": ok, "agents": v }));
    } else if reports.is_empty() {
        print_line("no agent settings found: run concur hook install --agent AGENT");
    }
    if !ctx.json {
        for r in &reports {
            print_line(&format!("{} ({})", r.agent, r.settings.display()));
            for c in &r.checks {
                let mark = if c.ok { "ok  " } else { "FAIL" };
                print_line(&format!("  {mark} {:<13} {}", c.name, c.detail));
            }
        }
    }
    Ok(if ok { Exit::Ok } else { Exit::Precondition })
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
