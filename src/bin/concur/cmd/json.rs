//! `concur json`: locked read-modify-write of a JSON file with a jq filter.

use std::path::PathBuf;

use concur::json::JsonUpdate;

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Update a JSON file with a jq filter, under its lock, atomically; prints the new value
///
/// Under the sidecar lock FILE.lock: read FILE, run FILTER (jq syntax, run by jaq), replace
/// FILE atomically with the result (pretty-printed), print the result compactly. Concurrent
/// updates never lose each other. A filter that is invalid, fails, or yields no value or
/// several values changes nothing (exit 4); so does invalid JSON in FILE. A missing or empty
/// FILE starts from --init (without --init: exit 4).
///
/// Exit codes: 0 updated, 1 lock wait timed out, 4 invalid filter/JSON/result (file
/// unchanged), 74 I/O error, 77 symlinked or read-only target.
///
/// Examples:
///   concur json health.json '.fire_count += 1' --init '{"fire_count":0}'
///   concur json state.json '.sessions[$id] = now' --arg id "$CONCUR_SESSION"
///   concur json cfg.json '.limits = $l' --argjson l '{"max":4}'
///   concur json state.json '.'        # a consistent read under the lock
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The JSON file
    pub file: PathBuf,
    /// The jq filter; must produce exactly one value
    pub filter: String,
    /// Bind $NAME to the string VALUE
    #[arg(long, num_args = 2, value_names = ["NAME", "VALUE"])]
    pub arg: Vec<String>,
    /// Bind $NAME to the JSON value JSON
    #[arg(long, num_args = 2, value_names = ["NAME", "JSON"])]
    pub argjson: Vec<String>,
    /// Start from this JSON value when FILE is missing or empty
    #[arg(long, value_name = "JSON")]
    pub init: Option<String>,
    /// Permission bits, in octal (default: the existing file's, else 0600)
    #[arg(long, value_name = "OCTAL", value_parser = super::value::mode)]
    pub mode: Option<u32>,
    /// Do not fsync (faster; the update may be lost on power failure)
    #[arg(long)]
    pub no_fsync: bool,
    #[command(flatten)]
    pub sidecar: super::write::Sidecar,
}

/// Runs `concur json`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    ctx.note_local("json");
    let mut up = JsonUpdate::new(args.filter);
    for pair in args.arg.chunks(2) {
        up = up.arg(check_name(&pair[0])?, pair[1].clone());
    }
    for pair in args.argjson.chunks(2) {
        up = up.argjson(check_name(&pair[0])?, &pair[1])?;
    }
    if let Some(init) = &args.init {
        up = up.init(init)?;
    }
    let opts = super::write::replace_options(args.mode, args.no_fsync, args.sidecar);
    let done = up.replace_options(opts).apply(&args.file)?;
    if ctx.json {
        let value: serde_json::Value =
            serde_json::from_str(&done.value).unwrap_or(serde_json::Value::Null);
        ctx.print_json(&serde_json::json!({
            "file": args.file,
            "value": value,
            "etag": done.etag,
            "created": done.created,
            "changed": done.changed,
        }));
    } else {
        print_line(&done.value);
    }
    Ok(Exit::Ok)
}

/// A variable name as jq accepts it: letters, digits and `_`, not starting with a digit.
fn check_name(name: &str) -> Result<String, CliError> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(CliError::invalid(format!("invalid variable name {name:?}")))
    }
}
