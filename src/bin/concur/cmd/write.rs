//! `concur write`: atomic (optionally conditional) whole-file replace.

use std::io::Read;
use std::path::PathBuf;

use concur::fence::Fence;
use concur::replace::ReplaceOptions;

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Replace a file's whole content atomically (readers never see it empty or half-written)
///
/// The new content (the CONTENT argument, or stdin when it is `-` or absent) goes to a temp
/// file in the same directory, which is fsynced and renamed over FILE; the directory is
/// fsynced after. The existing mode is kept (new files: 0600 or --mode). Runs under the
/// sidecar lock FILE.lock. Prints the new etag.
///
/// With --if-match ETAG (from `concur read --etag`), the file is replaced only if its content
/// still has that etag: a lost update becomes exit 3 instead of silently overwriting.
///
/// With --fence NAME:TOKEN, the write is refused (exit 3, nothing written) when TOKEN is
/// below the highest token FILE has accepted for lock NAME (recorded in FILE.fence under the
/// same lock); with an etcd backend set, also unless lock NAME is held with TOKEN right now.
/// A command run under `concur lock --name NAME` gets NAME:TOKEN in $CONCUR_FENCE.
///
/// Empty content is refused (exit 4, nothing written) unless --allow-empty: a failed command
/// in `produce | concur write F -` leaves stdin empty, and that must not empty F. Run such
/// pipelines under `set -o pipefail` so the failure is seen too.
///
/// Exit codes: 0 replaced, 1 lock wait timed out, 2 usage (bad --fence), 3 etag differs or
/// stale fencing token (nothing written), 4 invalid input (empty content), 74 I/O error (file unchanged),
/// 77 symlinked or read-only target.
///
/// Examples:
///   concur write state/current-task "task-42"
///   etag=$(concur read --etag notes.md)
///   set -o pipefail
///   edit_somehow < notes.md | concur write --if-match "$etag" notes.md -
///   concur write --allow-empty state/queue ''
///   concur lock --name deploy -c 'concur write --fence "$CONCUR_FENCE" release.txt v42'
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The file to replace
    pub file: PathBuf,
    /// The new content, written as is; `-` or absent reads it from stdin
    #[arg(allow_hyphen_values = true)]
    pub content: Option<String>,
    /// Replace only if the current content has this etag (else exit 3)
    #[arg(long, value_name = "ETAG")]
    pub if_match: Option<String>,
    /// Fenced write: refused (exit 3) if TOKEN is below the highest FILE accepted for lock NAME
    /// or, with an etcd backend, if lock NAME is not held with TOKEN now. E.g. "$CONCUR_FENCE"
    #[arg(long, value_name = "NAME:TOKEN", value_parser = super::fenced::parse)]
    pub fence: Option<Fence>,
    /// Permission bits, in octal (default: the existing file's, else 0600)
    #[arg(long, value_name = "OCTAL", value_parser = super::value::mode)]
    pub mode: Option<u32>,
    /// Do not fsync (faster; the new content may be lost on power failure)
    #[arg(long)]
    pub no_fsync: bool,
    /// Write empty content too (by default empty content is refused, exit 4: in
    /// `produce | concur write F -` it usually means `produce` failed)
    #[arg(long)]
    pub allow_empty: bool,
    #[command(flatten)]
    pub sidecar: Sidecar,
}

/// The sidecar-lock flags `write` and `json` share.
#[derive(Debug, clap::Args)]
pub struct Sidecar {
    /// Lock file to use instead of FILE.lock
    #[arg(long, value_name = "PATH")]
    pub lock_file: Option<PathBuf>,
    /// Wait at most this long for the sidecar lock (e.g. 10, 500ms, 1m); exit 1 on timeout
    #[arg(short = 'w', long = "wait", value_name = "SECS", value_parser = super::value::duration)]
    pub wait: Option<std::time::Duration>,
}

/// The replace options that `--mode`, `--no-fsync` and the sidecar flags ask for.
pub fn replace_options(mode: Option<u32>, no_fsync: bool, sidecar: Sidecar) -> ReplaceOptions {
    let mut opts = ReplaceOptions::new().fsync(!no_fsync).wait(sidecar.wait);
    if let Some(m) = mode {
        opts = opts.mode(m);
    }
    if let Some(l) = sidecar.lock_file {
        opts = opts.lock_file(l);
    }
    opts
}

/// Runs `concur write`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    if args.fence.is_none() {
        ctx.note_local("write");
    }
    let content = match args.content {
        None => read_stdin()?,
        Some(s) if s == "-" => read_stdin()?,
        Some(s) => s.into_bytes(),
    };
    if content.is_empty() && !args.allow_empty {
        return Err(CliError::new(
            Exit::Invalid,
            "invalid",
            format!(
                "refusing empty content ({}): file unchanged (did the command feeding stdin \
                 fail? see set -o pipefail); --allow-empty writes an empty file",
                args.file.display()
            ),
        ));
    }
    let mut opts = replace_options(args.mode, args.no_fsync, args.sidecar);
    if let Some(e) = args.if_match {
        opts = opts.if_match(e);
    }
    if let Some(f) = &args.fence {
        opts = opts.fence(super::fenced::local(ctx, f.clone())?);
    }
    let done = opts.replace(&args.file, &content)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "file": args.file,
            "etag": done.etag,
            "bytes": content.len(),
            "created": done.created,
            "fence": super::fenced::json(args.fence.as_ref()),
        }));
    } else {
        print_line(&done.etag);
    }
    Ok(Exit::Ok)
}

fn read_stdin() -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut buf)
        .map_err(|e| CliError::new(Exit::Io, "io", format!("cannot read stdin: {e}")))?;
    Ok(buf)
}
