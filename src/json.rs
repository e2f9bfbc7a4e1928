//! Locked read-modify-write of a JSON file with a jq filter (run by the jaq crates).
//!
//! `concur json health.json '.fire_count += 1'` is the seed's `update_health` without the lost
//! updates: N concurrent updates make the counter go up by exactly N.
//!
//! ## What is guaranteed
//!
//! - The filter is parsed and compiled, and `--arg`/`--argjson`/`--init` values checked, before
//!   anything is locked or touched.
//! - Under the sidecar lock (`F.lock`, shared with [`crate::replace`] and `flock F.lock` scripts)
//!   the file is read, the filter run, and the result written by atomic replace
//!   ([`ReplaceOptions::replace_locked`]): readers see the old or the new document, never a mix.
//! - Nothing changes (and the call fails with [`Error::Invalid`]) when the existing content is
//!   not JSON, the filter fails at run time (`error`, a type error, `halt`), or it yields no value
//!   or more than one, or a value that JSON cannot represent (NaN, infinity, byte strings).
//! - A missing (or empty) file starts from the [`JsonUpdate::init`] value; without one it is an
//!   error ([`Error::Invalid`]), so a typo in a path does not create a new file.
//! - When the result is byte-for-byte the current content (`.`, a read), the file is not
//!   rewritten.
//!
//! ## What is not
//!
//! - The file is written pretty-printed (two-space indent, keys in the order the filter leaves
//!   them) with a trailing newline; original formatting and comments are not kept.
//! - Numbers are jaq's: integers of any size stay exact, other numbers are 64-bit floats.

use std::path::Path;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;

use crate::error::{Error, Result};
use crate::replace::{self, ReplaceOptions};

/// The outcome of [`JsonUpdate::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// The new value, as compact JSON.
    pub value: String,
    /// The etag of the file's new content (see [`replace::etag`]).
    pub etag: String,
    /// The file did not exist (or was empty) and was created from the init value.
    pub created: bool,
    /// The content changed (false when the filter returned the document as it was).
    pub changed: bool,
}

/// A jq filter to apply to a JSON file under its lock.
///
/// # Examples
/// ```
/// use concur::json::JsonUpdate;
/// let dir = tempfile::tempdir().unwrap();
/// let f = dir.path().join("health.json");
/// let up = JsonUpdate::new(".fire_count += 1").init(r#"{"fire_count":0}"#).unwrap();
/// up.apply(&f).unwrap();
/// let out = up.apply(&f).unwrap();
/// assert_eq!(out.value, r#"{"fire_count":2}"#);
/// ```
#[derive(Debug, Clone)]
pub struct JsonUpdate {
    filter: String,
    vars: Vec<(String, Var)>,
    init: Option<String>,
    replace: ReplaceOptions,
}

#[derive(Debug, Clone)]
enum Var {
    Str(String),
    Json(String),
}

impl JsonUpdate {
    /// An update running `filter` (jq syntax).
    pub fn new(filter: impl Into<String>) -> JsonUpdate {
        JsonUpdate {
            filter: filter.into(),
            vars: Vec::new(),
            init: None,
            replace: ReplaceOptions::new(),
        }
    }

    /// Binds `$name` to the string `value` (jq's `--arg`).
    #[must_use]
    pub fn arg(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.push((name.into(), Var::Str(value.into())));
        self
    }

    /// Binds `$name` to the JSON `value` (jq's `--argjson`).
    ///
    /// # Errors
    /// [`Error::Invalid`] when `value` is not JSON.
    pub fn argjson(mut self, name: impl Into<String>, value: &str) -> Result<Self> {
        let name = name.into();
        check_json(value).map_err(|e| Error::Invalid(format!("--argjson {name}: {e}")))?;
        self.vars.push((name, Var::Json(value.to_owned())));
        Ok(self)
    }

    /// The document to start from when the file is missing or empty.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `value` is not JSON.
    pub fn init(mut self, value: &str) -> Result<Self> {
        check_json(value).map_err(|e| Error::Invalid(format!("--init: {e}")))?;
        self.init = Some(value.to_owned());
        Ok(self)
    }

    /// How the file is replaced and locked (lock file, wait bound, fsync, mode).
    #[must_use]
    pub fn replace_options(mut self, opts: ReplaceOptions) -> Self {
        self.replace = opts;
        self
    }

    /// Parses and compiles the filter and checks the bound values, touching nothing.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad filter or a bad `--argjson` value.
    pub fn compile(&self) -> Result<Program> {
        let mut names: Vec<String> = self.vars.iter().map(|(n, _)| format!("${n}")).collect();
        // jq's $ENV: the environment as an object (built only when the filter names it).
        let env = self.filter.contains("$ENV") && !names.iter().any(|n| n == "$ENV");
        if env {
            names.push("$ENV".into());
        }
        let arena = Arena::default();
        let std_defs = || {
            jaq_core::defs()
                .chain(jaq_std::defs())
                .chain(jaq_json::defs())
        };
        // The filter with jq's path updates (crate::jq) where it parses as a plain one; as
        // written otherwise, and for the error message when the rewritten one does not load.
        let rewritten = crate::jq::main_def(&self.filter).and_then(|main| {
            let defs = std_defs().chain(crate::jq::prelude()).map(widen);
            let defs = defs.chain([main]);
            let main = File {
                code: crate::jq::MAIN,
                path: (),
            };
            Loader::new(defs).load(&arena, main).ok()
        });
        let modules = if let Some(m) = rewritten {
            m
        } else {
            let program = File {
                code: self.filter.as_str(),
                path: (),
            };
            Loader::new(std_defs())
                .load(&arena, program)
                .map_err(|errs| Error::Invalid(load_errors(&self.filter, &errs)))?
        };
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let filter = Compiler::default()
            .with_funs(funs)
            .with_global_vars(names.iter().map(String::as_str))
            .compile(modules)
            .map_err(|errs| {
                let what: Vec<String> = errs
                    .iter()
                    .flat_map(|(_, es)| es.iter())
                    .map(|(name, undef)| format!("undefined {} {name}", undef.as_str()))
                    .collect();
                Error::Invalid(format!("invalid filter: {}", what.join(", ")))
            })?;
        let vals: Vec<Val> = self
            .vars
            .iter()
            .map(|(_, v)| match v {
                Var::Str(s) => Ok(Val::from(s.clone())),
                Var::Json(j) => parse(j.as_bytes(), "--argjson value"),
            })
            .collect::<Result<_>>()?;
        let mut vals = vals;
        if env {
            let map: serde_json::Map<String, serde_json::Value> = std::env::vars_os()
                .map(|(k, v)| {
                    let v = v.to_string_lossy().into_owned();
                    (k.to_string_lossy().into_owned(), v.into())
                })
                .collect();
            let text = serde_json::Value::Object(map).to_string();
            vals.push(parse(text.as_bytes(), "$ENV")?);
        }
        Ok(Program {
            filter,
            vals,
            init: self.init.clone(),
        })
    }

    /// Runs the filter on the file's document under the sidecar lock and writes the result.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad filter, bad existing JSON, a filter error or a result that
    /// is not exactly one JSON value (the file is unchanged); [`Error::Timeout`] when the lock
    /// was not had in time; [`Error::Precondition`] when a fence set in the replace options
    /// refuses the write; [`Error::Io`] or a permission error from reading or replacing.
    pub fn apply(&self, path: &Path) -> Result<Updated> {
        let program = self.compile()?;
        let _guard = self.replace.lock(path)?;
        let current = replace::read(path)?;
        let what = format!("existing content of {}", path.display());
        let Some(out) = program.run(current.as_ref().map(|s| s.content.as_slice()), &what)? else {
            return Err(Error::Invalid(format!(
                "{} does not exist or is empty (pass --init JSON to start from a value)",
                path.display()
            )));
        };
        let pretty = out.pretty();
        let changed = current.as_ref().is_none_or(|s| s.content != pretty);
        let etag = if changed {
            self.replace.replace_locked(path, &pretty)?.etag
        } else {
            // Fenced even when nothing changes: a stale holder learns it is stale.
            self.replace.check_fence(path)?;
            replace::etag(&pretty)
        };
        Ok(Updated {
            value: out.value,
            etag,
            created: out.created,
            changed,
        })
    }
}

/// A compiled filter with its variables bound ([`JsonUpdate::compile`]), to run on documents
/// wherever they are stored (a file, an etcd key).
pub struct Program {
    filter: jaq_core::Filter<data::JustLut<Val>>,
    vals: Vec<Val>,
    init: Option<String>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("vars", &self.vals.len())
            .field("init", &self.init)
            .finish_non_exhaustive()
    }
}

/// One run of a [`Program`]: the single value it produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// The value, as compact JSON.
    pub value: String,
    /// The input was missing or empty and the init value was used.
    pub created: bool,
    val: Val,
}

impl Output {
    /// The value pretty-printed (two-space indent) with a trailing newline, as files get it.
    pub fn pretty(&self) -> Vec<u8> {
        pretty(&self.val)
    }
}

impl Program {
    /// Runs the filter on `current` (`None` or blank: the init value). `what` names the input
    /// in error messages. `Ok(None)`: no input and no init value.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `current` is not JSON, the filter fails, or it yields no value,
    /// several values, or a value that JSON cannot represent.
    pub fn run(&self, current: Option<&[u8]>, what: &str) -> Result<Option<Output>> {
        let (input, created) = match current {
            Some(c) if !c.trim_ascii().is_empty() => (parse(c, what)?, false),
            _ => match &self.init {
                Some(init) => (parse(init.as_bytes(), "--init value")?, true),
                None => return Ok(None),
            },
        };
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new(self.vals.clone()));
        let mut outputs = self.filter.id.run((ctx, input));
        let value = match outputs.next() {
            None => return Err(Error::Invalid("filter produced no value".into())),
            Some(Ok(v)) => v,
            Some(Err(exn)) => return Err(Error::Invalid(exn_message(exn))),
        };
        match outputs.next() {
            None => {}
            Some(Err(exn)) => return Err(Error::Invalid(exn_message(exn))),
            Some(Ok(_)) => {
                return Err(Error::Invalid(
                    "filter produced more than one value (wrap it in [...] or pick one)".into(),
                ));
            }
        }
        let compact = value.to_string();
        check_json(&compact).map_err(|_| {
            Error::Invalid(format!(
                "filter produced a value that is not JSON: {compact}"
            ))
        })?;
        Ok(Some(Output {
            value: compact,
            created,
            val: value,
        }))
    }
}

/// A definition of the standard library as one of the filter's lifetime.
fn widen<'s>(d: jaq_core::load::parse::Def<&'static str>) -> jaq_core::load::parse::Def<&'s str> {
    d
}

/// Two-space indented JSON with a trailing newline.
fn pretty(v: &Val) -> Vec<u8> {
    let pp = jaq_json::write::Pp {
        indent: Some("  ".to_string()),
        sep_space: true,
        ..jaq_json::write::Pp::default()
    };
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = jaq_json::write::write(&mut out, &pp, 0, v);
    out.push(b'\n');
    out
}

fn check_json(text: &str) -> std::result::Result<(), String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(drop)
        .map_err(|e| format!("invalid JSON: {e}"))
}

fn parse(bytes: &[u8], what: &str) -> Result<Val> {
    jaq_json::read::parse_single(bytes)
        .map_err(|e| Error::Invalid(format!("{what} is not valid JSON: {e}")))
}

fn exn_message(exn: jaq_core::Exn<'_, Val>) -> String {
    match exn.get_err() {
        Ok(e) => format!("filter failed: {e}"),
        Err(exn) => match exn.get_halt() {
            Ok(code) => format!("filter called halt (code {code})"),
            Err(_) => "filter failed".into(),
        },
    }
}

fn offset(code: &str, at: &str) -> usize {
    (at.as_ptr() as usize).saturating_sub(code.as_ptr() as usize)
}

fn load_errors(code: &str, errs: &jaq_core::load::Errors<&str, ()>) -> String {
    use jaq_core::load::Error as E;
    let mut parts = Vec::new();
    for (_, e) in errs {
        match e {
            E::Io(es) => parts.extend(es.iter().map(|(p, m)| format!("{p}: {m}"))),
            E::Lex(es) => parts.extend(es.iter().map(|(exp, at)| {
                format!("expected {} at offset {}", exp.as_str(), offset(code, at))
            })),
            E::Parse(es) => parts.extend(es.iter().map(|(exp, at)| {
                format!("expected {} at offset {}", exp.as_str(), offset(code, at))
            })),
        }
    }
    format!("invalid filter {code:?}: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.json");
        if !content.is_empty() {
            ReplaceOptions::new()
                .replace(&p, content.as_bytes())
                .unwrap();
        }
        (d, p)
    }

    #[test]
    fn args_and_argjson_are_bound() {
        let (_d, p) = file(r#"{"a":1}"#);
        let out = JsonUpdate::new(".name = $n | .list = $l")
            .arg("n", "x")
            .argjson("l", "[1,2]")
            .unwrap()
            .apply(&p)
            .unwrap();
        assert_eq!(out.value, r#"{"a":1,"name":"x","list":[1,2]}"#);
    }

    #[test]
    fn bad_filters_and_results_change_nothing() {
        let (_d, p) = file("{\"a\": 1}\n");
        for f in [
            ".a +",
            "error(\"no\")",
            ".a, .a",
            "empty",
            "nosuchfn",
            ".a | nan",
            "$x",
        ] {
            let e = JsonUpdate::new(f).apply(&p).expect_err(f);
            assert!(matches!(e, Error::Invalid(_)), "{f}: {e}");
            assert_eq!(std::fs::read(&p).unwrap(), b"{\"a\": 1}\n", "{f}");
        }
    }

    #[test]
    fn missing_file_needs_init() {
        let (_d, p) = file("");
        assert!(JsonUpdate::new(".").apply(&p).is_err());
        assert!(!p.exists());
        let out = JsonUpdate::new(".n += 1")
            .init(r#"{"n":0}"#)
            .unwrap()
            .apply(&p)
            .unwrap();
        assert!(out.created);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\n  \"n\": 1\n}\n");
    }
}
