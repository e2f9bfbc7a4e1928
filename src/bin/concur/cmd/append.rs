//! `concur append`: one whole, durable line onto a shared log.

use std::io::Read;
use std::path::PathBuf;

use concur::append::{self, AppendOptions, Appended};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Append one whole JSON (or text) line to a shared log, durably
///
/// The entry is validated and written as one compact JSON line (or one raw text line with
/// --raw) with a single write(2) on O_APPEND, fsynced before success. Lines over 4096 bytes
/// also take the sidecar lock FILE.lock (the one `flock FILE.lock ...` scripts use).
///
/// Exit codes: 0 written or duplicate, 1 lock wait timed out, 4 invalid input (nothing
/// written), 74 I/O error such as a full disk (no partial line left), 77 symlinked target.
///
/// Examples:
///   concur append events.jsonl '{"event":"start","session":"s1"}'
///   echo '{"id":"job-7","status":"done"}' | concur append --dedup-key id results.jsonl -
///   concur append --raw --header '# messages 2026-05-18' daily.md "user: hello"
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The log file (created 0600 if missing)
    pub file: PathBuf,
    /// The entry: JSON (or text with --raw); `-` or absent reads it from stdin
    #[arg(allow_hyphen_values = true)]
    pub entry: Option<String>,
    /// Append a text line instead of JSON (newline, NUL and invalid UTF-8 are refused)
    #[arg(long)]
    pub raw: bool,
    /// Create the file with this header line first if it does not exist (exactly once, even
    /// when several writers race to create it)
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub header: Option<String>,
    /// Skip the entry if one with the same value of this JSON field is already in the file
    /// (idempotent retries; takes the sidecar lock)
    #[arg(long, value_name = "FIELD")]
    pub dedup_key: Option<String>,
    /// Refuse entries longer than this many bytes (exit 4)
    #[arg(long, value_name = "BYTES", default_value_t = append::DEFAULT_MAX_LINE)]
    pub max_line: usize,
    /// Do not fdatasync before reporting success (faster; the line may be lost on power failure)
    #[arg(long)]
    pub no_fsync: bool,
    /// Permission bits for a newly created file, in octal
    #[arg(long, value_name = "OCTAL", value_parser = super::value::mode)]
    pub mode: Option<u32>,
    /// Lock file to use instead of FILE.lock
    #[arg(long, value_name = "PATH")]
    pub lock_file: Option<PathBuf>,
    /// Wait at most this long for the sidecar lock (e.g. 10, 500ms, 1m); exit 1 on timeout
    #[arg(short = 'w', long = "wait", value_name = "SECS", value_parser = super::value::duration)]
    pub wait: Option<std::time::Duration>,
    /// Send the line through the home's broker (group commit; see `concur broker --help`)
    #[arg(long, conflicts_with_all = ["header", "dedup_key", "lock_file", "no_fsync", "mode"])]
    pub broker: bool,
    /// With --broker: retry id (a line sent again with the same id is written once)
    #[arg(long, value_name = "ID", requires = "broker")]
    pub id: Option<String>,
    /// With --broker: start the broker when none runs
    #[arg(long, requires = "broker")]
    pub autostart: bool,
    /// With --broker: `direct` appends directly (sidecar lock) when no broker can be reached
    #[arg(long, value_name = "MODE", value_parser = ["direct"], requires = "broker")]
    pub fallback: Option<String>,
}

/// Runs `concur append`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    ctx.note_local("append");
    let input = match args.entry.as_deref() {
        None | Some("-") => read_stdin(args.max_line, args.raw)?,
        Some(s) => s.as_bytes().to_vec(),
    };
    let line = if args.raw {
        append::encode_raw(&input)?
    } else {
        append::encode_json(&input)?
    };
    if args.broker {
        return super::broker::append(&via_broker(args, line)?, ctx);
    }
    let mut opts = AppendOptions::new()
        .fsync(!args.no_fsync)
        .max_line(args.max_line)
        .wait(args.wait);
    if let Some(h) = args.header {
        opts = opts.header(h);
    }
    if let Some(k) = args.dedup_key {
        opts = opts.dedup_key(k);
    }
    if let Some(m) = args.mode {
        opts = opts.mode(m);
    }
    if let Some(l) = args.lock_file {
        opts = opts.lock_file(l);
    }
    let outcome = opts.append(&args.file, &line)?;
    if ctx.json {
        ctx.print_json(&outcome.to_json(&args.file, line.len()));
    } else if outcome == Appended::Duplicate {
        print_line("duplicate");
    }
    Ok(Exit::Ok)
}

/// The `concur broker append` arguments for `concur append --broker`.
fn via_broker(args: Args, mut line: Vec<u8>) -> Result<super::broker::AppendArgs, CliError> {
    line.pop(); // the newline the encoder added
    let line = String::from_utf8(line).map_err(|_| CliError::invalid("entry is not UTF-8"))?;
    Ok(super::broker::AppendArgs {
        file: args.file,
        line,
        raw: args.raw,
        id: args.id,
        autostart: args.autostart,
        fallback: args.fallback,
        one_line: true,
    })
}

/// Reads the entry from stdin, refusing more than `max` bytes (plus a trailing newline) without
/// reading further. A raw line loses one trailing newline (`echo text | concur append --raw F -`).
fn read_stdin(max: usize, raw: bool) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(2);
    std::io::stdin()
        .lock()
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::new(Exit::Io, "io", format!("cannot read stdin: {e}")))?;
    if raw {
        if buf.ends_with(b"\r\n") {
            buf.truncate(buf.len() - 2);
        } else if buf.ends_with(b"\n") {
            buf.pop();
        }
    } else {
        while buf.last().is_some_and(u8::is_ascii_whitespace) {
            buf.pop();
        }
    }
    if buf.len() > max {
        return Err(CliError::invalid(format!(
            "entry on stdin is over the {max}-byte limit (--max-line)"
        )));
    }
    Ok(buf)
}
