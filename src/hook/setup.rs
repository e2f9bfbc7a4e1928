//! One agent's hook set-up as a whole: its hooks settings file ([`super::install`]) and, for
//! Codex, the `config.toml` those hooks need ([`super::codex`]), installed and uninstalled
//! together in the order that keeps each step recoverable.

use std::path::PathBuf;

use super::install::{self, Installed, Uninstalled};
use super::{Agent, codex};
use crate::error::{Error, Result};
use crate::sys;

/// Everything `hook install` and `hook uninstall` touch for one agent.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The agent.
    pub agent: Agent,
    /// Its hooks settings file.
    pub settings: PathBuf,
    /// The hook command line (see [`install::hook_command`]).
    pub command: String,
    /// Codex only: its `config.toml`, and the concur home its sandbox must be able to write.
    pub codex: Option<(PathBuf, PathBuf)>,
}

impl Setup {
    /// Installs: the settings file, then (Codex) what `config.toml` needs for those hooks to
    /// run ([`codex::configure`]). One result per file.
    ///
    /// # Errors
    /// As [`install::install`] and [`codex::configure`].
    pub fn install(&self, dry_run: bool) -> Result<Vec<Installed>> {
        if !dry_run {
            let mut dirs = vec![sys::fs::parent_dir(&self.settings)];
            if let Some((config, _)) = &self.codex {
                dirs.push(sys::fs::parent_dir(config));
            }
            for d in dirs {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .create(d)
                    .map_err(Error::with("cannot create", d))?;
            }
        }
        let done = install::install(&self.settings, self.agent, &self.command, dry_run)?;
        let mut out = Vec::new();
        if let Some((config, home)) = &self.codex {
            let hooks = done.after.clone();
            out.push(done);
            out.push(codex::configure(
                config,
                &self.settings,
                &hooks,
                &self.command,
                home,
                dry_run,
            )?);
        } else {
            out.push(done);
        }
        Ok(out)
    }

    /// Uninstalls what [`Setup::install`] did (Codex: `config.toml` first, while the hooks it
    /// trusts can still be read).
    ///
    /// # Errors
    /// As [`install::uninstall`] and [`codex::unconfigure`].
    pub fn uninstall(&self) -> Result<Vec<Uninstalled>> {
        let mut out = Vec::new();
        if let Some((config, _)) = &self.codex {
            out.push(codex::unconfigure(config, &self.settings, &self.command)?);
        }
        out.push(install::uninstall(
            &self.settings,
            self.agent,
            &self.command,
        )?);
        Ok(out)
    }
}

impl Setup {
    /// The `--json` fields of an install: the agent, the command, `dry_run` and per file
    /// whether it changed, its backup and its diff.
    pub fn installed_json(&self, dry_run: bool, done: &[Installed]) -> serde_json::Value {
        let files: Vec<_> = done
            .iter()
            .map(|d| {
                serde_json::json!({"file": d.settings, "changed": d.changed,
                    "backup": d.backup, "diff": d.diff})
            })
            .collect();
        serde_json::json!({
            "agent": self.agent.name(), "command": self.command, "dry_run": dry_run, "files": files,
        })
    }

    /// What an install did, for people: per file the diff (dry run), that it was installed, or
    /// that it was already.
    pub fn installed_text(&self, dry_run: bool, done: &[Installed]) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for d in done {
            let file = d.settings.display();
            let _ = match (dry_run, d.changed) {
                (true, true) => write!(out, "--- {file}\n{}", d.diff),
                (false, true) => writeln!(
                    out,
                    "installed concur's {} hooks in {file}",
                    self.agent.name()
                ),
                (_, false) => writeln!(out, "already installed: {file} unchanged"),
            };
        }
        out
    }

    /// The `--json` fields of an uninstall: the agent, and per file whether it changed and
    /// whether it was restored.
    pub fn uninstalled_json(&self, done: &[Uninstalled]) -> serde_json::Value {
        let files: Vec<_> = done
            .iter()
            .map(|d| serde_json::json!({"file": d.file, "changed": d.changed, "restored": d.restored}))
            .collect();
        serde_json::json!({ "agent": self.agent.name(), "files": files })
    }
}
