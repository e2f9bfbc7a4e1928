//! `concur json`: locked read-modify-write of a JSON file with a jq filter.

use std::path::PathBuf;

use concur::fence::Fence;
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
/// With --fence NAME:TOKEN the update is refused (exit 3, nothing written) when TOKEN is
/// below the highest token FILE has accepted for lock NAME (recorded in FILE.fence); with an
/// etcd backend set, also unless lock NAME is held with TOKEN right now.
///
/// With --key NAME there is no FILE: the document NAME is the backend's. Locally it is the
/// file $CONCUR_HOME/json/NAME.json, updated as above; with a backend (--backend,
/// $CONCUR_BACKEND or the config) it is the etcd key PREFIX/json/NAME, the filter's result
/// committed by compare-and-swap on the key's revision (retried on a concurrent change), with
/// --fence checked by etcd in the same transaction.
///
/// Exit codes: 0 updated, 1 lock wait timed out, 2 usage (bad --fence), 3 stale fencing
/// token (nothing written), 4 invalid filter/JSON/result (file unchanged), 74 I/O error
/// (etcd unreachable), 77 symlinked or read-only target.
///
/// Examples:
///   concur json health.json '.fire_count += 1' --init '{"fire_count":0}'
///   concur json state.json '.sessions[$id] = now' --arg id "$CONCUR_SESSION"
///   concur json cfg.json '.limits = $l' --argjson l '{"max":4}'
///   concur json state.json '.'        # a consistent read under the lock
///   concur lock --name deploy -c 'concur json --fence "$CONCUR_FENCE" state.json ".v = 42"'
///   concur json --key counter '.n += 1' --init '{"n":0}'     # $CONCUR_HOME/json/counter.json
///   concur --backend etcd://10.0.0.1:2379 json --key counter '.n += 1' --init '{"n":0}'
///   concur --backend etcd://10.0.0.1:2379 json --key counter .     # read it back
#[derive(Debug, clap::Args)]
#[command(
    verbatim_doc_comment,
    override_usage = "concur json [OPTIONS] FILE FILTER\n       concur json [OPTIONS] --key NAME FILTER"
)]
pub struct Args {
    /// The JSON file (with --key, leave it out: the one argument is the filter)
    #[arg(value_name = "FILE", required_unless_present = "key")]
    pub file: Option<PathBuf>,
    /// The jq filter; must produce exactly one value
    #[arg(value_name = "FILTER", allow_hyphen_values = true)]
    pub filter: Option<String>,
    /// Update the backend's JSON document NAME instead of a file (local: in the home; etcd: a key)
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,
    /// Fenced update: refused (exit 3) if TOKEN is stale for lock NAME. E.g. "$CONCUR_FENCE"
    #[arg(long, value_name = "NAME:TOKEN", value_parser = super::fenced::parse)]
    pub fence: Option<Fence>,
    /// Bind $NAME to the string VALUE
    #[arg(long, num_args = 2, value_names = ["NAME", "VALUE"], allow_hyphen_values = true)]
    pub arg: Vec<String>,
    /// Bind $NAME to the JSON value JSON
    #[arg(long, num_args = 2, value_names = ["NAME", "JSON"], allow_hyphen_values = true)]
    pub argjson: Vec<String>,
    /// Start from this JSON value when FILE is missing or empty
    #[arg(long, value_name = "JSON", allow_hyphen_values = true)]
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
    // A filter that recurses without end exhausts the stack while it runs, before anything is
    // written: exit 4 (bad filter), not a crash.
    let _ = concur::sys::signal::exit_on_stack_overflow(
        "concur: json: the filter recursed too deeply (stack exhausted); nothing was written",
        4,
    );
    let (file, filter) = match (args.key.is_some(), args.file, args.filter) {
        (false, Some(file), Some(filter)) => (Some(file), filter),
        (true, Some(filter), None) => (None, filter.to_string_lossy().into_owned()),
        (true, Some(_), Some(_)) => {
            return Err(CliError::usage(
                "with --key give only the FILTER, no FILE (the document is the backend's)",
            ));
        }
        (true, None, _) | (false, _, _) => {
            return Err(CliError::usage(
                "give FILE and FILTER (or --key NAME FILTER)",
            ));
        }
    };
    if file.is_some() && args.fence.is_none() {
        ctx.note_local("json");
    }
    let mut up = JsonUpdate::new(filter);
    for pair in args.arg.chunks(2) {
        up = up.arg(check_name(&pair[0])?, pair[1].clone());
    }
    for pair in args.argjson.chunks(2) {
        up = up.argjson(check_name(&pair[0])?, &pair[1])?;
    }
    if let Some(init) = &args.init {
        up = up.init(init)?;
    }
    let Some(file) = file else {
        if args.mode.is_some()
            || args.no_fsync
            || args.sidecar.lock_file.is_some()
            || args.sidecar.wait.is_some()
        {
            return Err(CliError::usage(
                "--mode, --no-fsync, --lock-file and -w are file options; not with --key",
            ));
        }
        let name = args.key.as_deref().unwrap_or_default();
        return on_key(ctx, name, args.fence.as_ref(), &up);
    };
    let mut opts = super::write::replace_options(args.mode, args.no_fsync, args.sidecar);
    if let Some(f) = &args.fence {
        opts = opts.fence(super::fenced::local(ctx, f.clone())?);
    }
    let done = up.replace_options(opts).apply(&file)?;
    if ctx.json {
        let value: serde_json::Value =
            serde_json::from_str(&done.value).unwrap_or(serde_json::Value::Null);
        ctx.print_json(&serde_json::json!({
            "file": file,
            "value": value,
            "etag": done.etag,
            "created": done.created,
            "changed": done.changed,
            "fence": super::fenced::json(args.fence.as_ref()),
        }));
    } else {
        print_line(&done.value);
    }
    Ok(Exit::Ok)
}

/// `concur json --key NAME FILTER`: the backend's document NAME.
fn on_key(ctx: &Ctx, name: &str, fence: Option<&Fence>, up: &JsonUpdate) -> Result<Exit, CliError> {
    up.compile()?; // a bad filter is exit 4 before the backend is asked anything
    let backend = ctx.backend()?;
    let done = backend.documents().update(name, fence, up)?;
    if ctx.json {
        let mut v = done.to_json();
        v["backend"] = backend.name().into();
        v["fence"] = super::fenced::json(fence);
        ctx.print_json(&v);
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
