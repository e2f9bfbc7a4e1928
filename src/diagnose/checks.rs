//! The check kinds for users' own scripts (`--check KIND:ARGS`), evaluated after each round in
//! the round's state directory.
//!
//! | kind | holds when |
//! |---|---|
//! | `counter:FILE:JQPATH` | the number at JQPATH (`.a.b`, `.items[0]`) equals the number of runs |
//! | `lines:FILE[:REGEX]` | the lines (matching REGEX) number the runs |
//! | `jsonl:FILE` | every line is whole, valid JSON, and they number the runs |
//! | `header:FILE:TEXT` | exactly one line equals TEXT, and it is the first |
//! | `winners:FILE` | exactly one line (one winner per round) |
//! | `unique:FILE` | no line appears twice |
//! | `empty:FILE` | FILE is absent or empty |
//! | `max:N:FILE` | the running sum of `+1`/`-1` lines never goes above N |
//! | `--check-cmd CMD` | `sh -c CMD` run in the state directory exits 0 |

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use regex::Regex;

use crate::error::{Error, Result};

/// One parsed check.
#[derive(Debug, Clone)]
pub struct Check {
    /// As the user wrote it (`counter:n.json:.count`), or `cmd:CMD`.
    pub spec: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Counter(PathBuf, Vec<Step>),
    Lines(PathBuf, Option<Regex>),
    Jsonl(PathBuf),
    Header(PathBuf, String),
    Winners(PathBuf),
    Unique(PathBuf),
    Empty(PathBuf),
    Max(i64, PathBuf),
    Cmd(String),
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// What a check saw in one round.
#[derive(Debug, Clone)]
pub struct Eval {
    /// The violation's name, or `None` when the check held.
    pub violation: Option<&'static str>,
    /// What was observed (`value 37`, `3 lines`).
    pub observed: String,
}

fn bad(spec: &str, why: &str) -> Error {
    Error::Invalid(format!("bad --check {spec:?}: {why}"))
}

fn rel(spec: &str, file: &str) -> Result<PathBuf> {
    if file.is_empty() {
        return Err(bad(spec, "missing FILE"));
    }
    let p = PathBuf::from(file);
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(bad(
            spec,
            "FILE must be relative to the state directory, without '..'",
        ));
    }
    Ok(p)
}

fn parse_path(spec: &str, path: &str) -> Result<Vec<Step>> {
    if !path.starts_with('.') {
        return Err(bad(spec, "JQPATH must start with '.' (e.g. .count)"));
    }
    let mut steps = Vec::new();
    for part in path[1..].split('.').filter(|p| !p.is_empty()) {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            steps.push(Step::Key(name.to_owned()));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| bad(spec, "unclosed '[' in JQPATH"))?;
            let idx = r[..end]
                .parse()
                .map_err(|_| bad(spec, "index in JQPATH must be a number"))?;
            steps.push(Step::Index(idx));
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return Err(bad(spec, "unsupported JQPATH (use .a.b or .a[0])"));
        }
    }
    Ok(steps)
}

impl Check {
    /// Parses `KIND:ARGS`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the check and what is wrong with it.
    ///
    /// # Examples
    /// ```
    /// use concur::diagnose::checks::Check;
    /// assert!(Check::parse("counter:n.json:.count").is_ok());
    /// assert!(Check::parse("max:2:holders.log").is_ok());
    /// assert!(Check::parse("bogus:x").is_err());
    /// ```
    pub fn parse(spec: &str) -> Result<Check> {
        let (kind, rest) = spec
            .split_once(':')
            .ok_or_else(|| bad(spec, "expected KIND:ARGS"))?;
        let two = || -> Result<(&str, &str)> {
            rest.split_once(':')
                .ok_or_else(|| bad(spec, "expected two arguments"))
        };
        let kind = match kind {
            "counter" => {
                let (f, p) = two()?;
                Kind::Counter(rel(spec, f)?, parse_path(spec, p)?)
            }
            "lines" => match rest.split_once(':') {
                Some((f, re)) => Kind::Lines(
                    rel(spec, f)?,
                    Some(Regex::new(re).map_err(|e| bad(spec, &e.to_string()))?),
                ),
                None => Kind::Lines(rel(spec, rest)?, None),
            },
            "jsonl" => Kind::Jsonl(rel(spec, rest)?),
            "header" => {
                let (f, t) = two()?;
                Kind::Header(rel(spec, f)?, t.to_owned())
            }
            "winners" => Kind::Winners(rel(spec, rest)?),
            "unique" => Kind::Unique(rel(spec, rest)?),
            "empty" => Kind::Empty(rel(spec, rest)?),
            "max" => {
                let (n, f) = two()?;
                let n = n.parse().map_err(|_| bad(spec, "N must be a number"))?;
                Kind::Max(n, rel(spec, f)?)
            }
            _ => {
                return Err(bad(
                    spec,
                    "unknown kind (counter, lines, jsonl, header, winners, unique, empty, max)",
                ));
            }
        };
        Ok(Check {
            spec: spec.to_owned(),
            kind,
        })
    }

    /// A `--check-cmd` check.
    pub fn command(cmd: &str) -> Check {
        Check {
            spec: format!("cmd:{cmd}"),
            kind: Kind::Cmd(cmd.to_owned()),
        }
    }

    /// What holds, in words, for `runs` runs per round.
    pub fn expected(&self, runs: usize) -> String {
        match &self.kind {
            Kind::Counter(..) => format!("value == {runs}"),
            Kind::Lines(..) => format!("{runs} lines"),
            Kind::Jsonl(_) => format!("{runs} valid JSON lines"),
            Kind::Header(..) => "1 header, first".into(),
            Kind::Winners(_) => "1 winner per round".into(),
            Kind::Unique(_) => "no duplicate lines".into(),
            Kind::Empty(_) => "absent or empty".into(),
            Kind::Max(n, _) => format!("<= {n} at once"),
            Kind::Cmd(_) => "exit 0".into(),
        }
    }

    /// Evaluates the check in state directory `dir` after a round of `runs` runs.
    ///
    /// # Errors
    /// When a file exists but cannot be read.
    pub fn eval(&self, dir: &Path, runs: usize) -> Result<Eval> {
        let read = |f: &Path| -> Result<Option<String>> {
            let p = dir.join(f);
            match std::fs::read(&p) {
                Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io("cannot read", &p, e)),
            }
        };
        let held = |ok: bool, name: &'static str, observed: String| Eval {
            violation: (!ok).then_some(name),
            observed,
        };
        Ok(match &self.kind {
            Kind::Counter(f, steps) => counter(read(f)?, f, steps, runs),
            Kind::Lines(f, re) => {
                let text = read(f)?.unwrap_or_default();
                let n = text
                    .lines()
                    .filter(|l| match re {
                        Some(re) => re.is_match(l),
                        None => !l.is_empty(),
                    })
                    .count();
                held(
                    n == runs,
                    if n < runs {
                        "LOST_LINES"
                    } else {
                        "EXTRA_LINES"
                    },
                    format!("{n} lines"),
                )
            }
            Kind::Jsonl(f) => jsonl(&read(f)?.unwrap_or_default(), runs),
            Kind::Header(f, t) => {
                let text = read(f)?.unwrap_or_default();
                let n = text.lines().filter(|l| l == t).count();
                let first = text.lines().next() == Some(t.as_str());
                let name = if n > 1 {
                    "DUPLICATE_HEADER"
                } else {
                    "MISSING_HEADER"
                };
                held(
                    n == 1 && first,
                    name,
                    format!(
                        "{n} headers, first line {}",
                        if first { "is" } else { "is not" }
                    ),
                )
            }
            Kind::Winners(f) => {
                let n = read(f)?
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| !l.is_empty())
                    .count();
                let name = if n > 1 {
                    "MULTIPLE_WINNERS"
                } else {
                    "NO_WINNER"
                };
                let noun = if n == 1 { "winner" } else { "winners" };
                held(n == 1, name, format!("{n} {noun}"))
            }
            Kind::Unique(f) => {
                let text = read(f)?.unwrap_or_default();
                let mut seen = HashSet::new();
                let dups = text.lines().filter(|l| !seen.insert(*l)).count();
                held(dups == 0, "DUPLICATES", format!("{dups} duplicate lines"))
            }
            Kind::Empty(f) => {
                let len = read(f)?.map_or(0, |t| t.len());
                held(len == 0, "NOT_EMPTY", format!("{len} bytes"))
            }
            Kind::Max(max, f) => {
                let text = read(f)?.unwrap_or_default();
                let (mut cur, mut peak) = (0i64, 0i64);
                for l in text.lines() {
                    cur += l
                        .split_whitespace()
                        .next()
                        .and_then(|d| d.parse::<i64>().ok())
                        .unwrap_or(0);
                    peak = peak.max(cur);
                }
                held(peak <= *max, "OVER_ADMISSION", format!("peak {peak}"))
            }
            Kind::Cmd(cmd) => run_cmd(cmd, dir)?,
        })
    }
}

fn verdict(ok: bool, name: &'static str, observed: String) -> Eval {
    Eval {
        violation: (!ok).then_some(name),
        observed,
    }
}

fn counter(text: Option<String>, f: &Path, steps: &[Step], runs: usize) -> Eval {
    let Some(text) = text else {
        return verdict(false, "LOST_UPDATES", format!("{} missing", f.display()));
    };
    let v: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let mut cur = v.as_ref();
    for s in steps {
        cur = match s {
            Step::Key(k) => cur.and_then(|c| c.get(k.as_str())),
            Step::Index(i) => cur.and_then(|c| c.get(*i)),
        };
    }
    match cur.and_then(serde_json::Value::as_f64) {
        #[allow(clippy::cast_precision_loss)] // run counts are far below 2^52
        Some(n) => verdict(
            (n - runs as f64).abs() < f64::EPSILON,
            "LOST_UPDATES",
            format!("value {n}"),
        ),
        None if v.is_none() => verdict(false, "LOST_UPDATES", "not valid JSON".into()),
        None => verdict(false, "LOST_UPDATES", "no number at path".into()),
    }
}

fn jsonl(text: &str, runs: usize) -> Eval {
    let mut good = 0;
    let mut bad_lines = 0;
    for l in text.split_inclusive('\n') {
        let ok =
            l.ends_with('\n') && serde_json::from_str::<serde_json::Value>(l.trim_end()).is_ok();
        if ok {
            good += 1;
        } else if !l.trim().is_empty() {
            bad_lines += 1;
        }
    }
    let name = if bad_lines > 0 {
        "TORN_LINES"
    } else {
        "LOST_LINES"
    };
    verdict(
        bad_lines == 0 && good == runs,
        name,
        format!("{good} valid, {bad_lines} invalid lines"),
    )
}

fn run_cmd(cmd: &str, dir: &Path) -> Result<Eval> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .env("CONCUR_STATE_DIR", dir)
        .stdin(Stdio::null())
        .output()
        .map_err(Error::with("cannot run --check-cmd in", dir))?;
    let why = super::run::describe_exit(out.status, &String::from_utf8_lossy(&out.stderr));
    Ok(verdict(out.status.success(), "CHECK_FAILED", why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jq_paths_parse_keys_and_indexes() {
        let c = Check::parse("counter:a.json:.a.b[1]").unwrap();
        let d = tempfile::tempdir().unwrap();
        let mut f = std::fs::File::create(d.path().join("a.json")).unwrap();
        std::io::Write::write_all(&mut f, br#"{"a":{"b":[0,3]}}"#).unwrap();
        assert!(c.eval(d.path(), 3).unwrap().violation.is_none());
        assert_eq!(c.eval(d.path(), 4).unwrap().violation, Some("LOST_UPDATES"));
    }

    #[test]
    fn escaping_paths_are_refused() {
        assert!(Check::parse("empty:../x").is_err());
        assert!(Check::parse("empty:/etc/passwd").is_err());
        assert!(Check::parse("counter:x.json:count").is_err());
    }
}
