//! `concur read`: a file's content (and etag) from one consistent instant.

use std::io::Write;
use std::path::PathBuf;

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Print a file's content, or with --etag its etag (for `concur write --if-match`)
///
/// The file is opened without following symlinks and read whole; files replaced with
/// `concur write`/`concur json` are never seen half-written. With --json the output is
/// {"ok":true,"content":"...","etag":"..."} (content_base64 instead of content when the file
/// is not UTF-8).
///
/// Exit codes: 0 printed, 4 missing file, 74 I/O error, 77 symlinked target.
///
/// Examples:
///   concur read state/current-task
///   etag=$(concur read --etag notes.md)
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The file to read
    pub file: PathBuf,
    /// Print the content's etag instead of the content
    #[arg(long)]
    pub etag: bool,
}

/// Runs `concur read`.
pub fn run(args: &Args, ctx: &Ctx) -> Result<Exit, CliError> {
    ctx.note_local("read");
    let snap = concur::replace::read(&args.file)?
        .ok_or_else(|| CliError::invalid(format!("no such file ({})", args.file.display())))?;
    if ctx.json {
        ctx.print_json(&snap.to_json(&args.file));
    } else if args.etag {
        print_line(&snap.etag);
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&snap.content);
        let _ = out.flush();
    }
    Ok(Exit::Ok)
}
