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
        let mut v = serde_json::json!({ "file": args.file, "etag": snap.etag, "bytes": snap.content.len() });
        match std::str::from_utf8(&snap.content) {
            Ok(s) => v["content"] = s.into(),
            Err(_) => v["content_base64"] = base64(&snap.content).into(),
        }
        ctx.print_json(&v);
    } else if args.etag {
        print_line(&snap.etag);
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&snap.content);
        let _ = out.flush();
    }
    Ok(Exit::Ok)
}

/// Standard base64 with padding (RFC 4648), for non-UTF-8 content in --json output.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(super::base64(i.as_bytes()), o);
        }
    }
}
