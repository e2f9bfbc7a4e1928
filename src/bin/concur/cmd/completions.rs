//! `concur completions SHELL` and `concur man [VERB]`: shell completions and man pages,
//! generated from the CLI definition itself (clap_complete, clap_mangen), so they never drift
//! from `--help`.

use std::io::Write;

use crate::exit::{CliError, Exit};

/// Print shell completions for concur (bash, zsh, fish, elvish, powershell)
///
/// Examples:
///   concur completions bash > ~/.local/share/bash-completion/completions/concur
///   concur completions zsh > ~/.zfunc/_concur      # with fpath+=(~/.zfunc) in ~/.zshrc
///   concur completions fish > ~/.config/fish/completions/concur.fish
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Print the man page (roff) of concur, or of one verb
///
/// Examples:
///   concur man > ~/.local/share/man/man1/concur.1 && man concur
///   concur man lock | man -l -
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ManArgs {
    /// A verb: its own page (concur-VERB) instead of the top-level one
    pub verb: Option<String>,
}

/// Runs `concur completions`.
pub fn run(a: &Args) -> Result<Exit, CliError> {
    let mut cmd = crate::cli_command();
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "concur", &mut out);
    emit(&out)
}

/// Runs `concur man`.
pub fn run_man(a: &ManArgs) -> Result<Exit, CliError> {
    let mut cmd = crate::cli_command();
    cmd.build();
    let page = match &a.verb {
        None => cmd,
        Some(v) => {
            let sub = cmd
                .find_subcommand(v)
                .filter(|s| !s.is_hide_set())
                .ok_or_else(|| CliError::usage(format!("no verb {v:?}")))?;
            // A page name outlives the command (clap keeps &'static names); the process ends soon.
            let name: &'static str = Box::leak(format!("concur-{v}").into_boxed_str());
            sub.clone().name(name)
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| CliError::new(Exit::Io, "io", format!("cannot render the man page: {e}")))?;
    emit(&out)
}

fn emit(bytes: &[u8]) -> Result<Exit, CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::new(Exit::Io, "io", format!("cannot write stdout: {e}")))?;
    Ok(Exit::Ok)
}
