//! The built-in targets: one file per pattern from the seed's isolation sweep.
//!
//! Each naive writer does the racy thing the way a real hook does it, including the "work" a
//! hook does between reading and writing (parsing, validating): that pause is part of the
//! pattern, not a synchronisation trick, and it is what makes the race show up on every run
//! instead of once a week.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::{Mark, RoundCheck, Target, WriterRun};
use crate::error::{Error, Result};

mod broker;
mod edit_race;
mod hash_ledger;
mod header_once;
mod json_counter;
mod jsonl_append;
mod replace;
mod semaphore;
mod session_pointer;
mod single_flight;
mod sqlite;
mod task_start;
mod token;

/// Every built-in target, in the order the suite runs them.
pub fn all() -> Vec<&'static dyn Target> {
    vec![
        &json_counter::JsonCounter,
        &jsonl_append::JsonlAppend,
        &token::Token,
        &semaphore::Semaphore,
        &header_once::HeaderOnce,
        &replace::Replace,
        &hash_ledger::HashLedger,
        &task_start::TaskStart,
        &session_pointer::SessionPointer,
        &sqlite::Sqlite,
        &broker::Broker,
        &edit_race::EditRace,
        &single_flight::SingleFlight,
    ]
}

/// The built-in target called `name`, or by its alias (`lock` is json-counter, `slot` is
/// semaphore: [`super::etcd::ALIASES`]), on every backend.
pub fn find(name: &str) -> Option<&'static dyn Target> {
    let name = super::etcd::resolve(name);
    all().into_iter().find(|t| t.name() == name)
}

/// The "work" a naive hook does between two steps (parsing, validating, calling jq).
pub(crate) fn work(micros: u64) {
    std::thread::sleep(Duration::from_micros(micros));
}

/// Writes a fixture file plainly (setup only, before any writer runs).
pub(crate) fn put(path: &Path, content: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(Error::with("cannot create fixture", path))?;
    f.write_all(content)
        .map_err(Error::with("cannot write fixture", path))
}

/// Reads a file as text; `None` when it is missing.
pub(crate) fn read_text(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", path, e)),
    }
}

/// At most this many marks per round, so a badly broken run keeps a readable picture.
pub(crate) const MAX_MARKS: usize = 12;

/// What [`tally_lines`] found in a file of JSON lines tagged `w` (writer) and `i` (index).
pub(crate) struct Lines {
    /// Every `(writer, index)` found whole.
    pub seen: HashSet<(u64, u64)>,
    /// Lines cut short, unparseable, or with a body of the wrong length.
    pub torn: usize,
    /// Whole lines whose `(writer, index)` was already seen.
    pub dup: usize,
    /// Whole lines that came after a line of the same writer with an index as high or higher.
    pub reordered: usize,
    /// How many of the `n` expected lines were not found whole.
    pub lost: usize,
}

/// Tallies the lines of the file at `path` (missing: empty), `n` expected: a line counts as
/// whole when it ends in a newline, parses as JSON with `w` and `i`, and its string field
/// `body` is `len` bytes long.
pub(crate) fn tally_lines(path: &Path, body: &str, len: usize, n: usize) -> Result<Lines> {
    let text = read_text(path)?.unwrap_or_default();
    let mut t = Lines {
        seen: HashSet::new(),
        torn: 0,
        dup: 0,
        reordered: 0,
        lost: 0,
    };
    let mut last: HashMap<u64, u64> = HashMap::new();
    for l in text.split_inclusive('\n') {
        let v: Option<serde_json::Value> = serde_json::from_str(l.trim_end_matches('\n')).ok();
        let key = v
            .as_ref()
            .filter(|v| l.ends_with('\n') && v[body].as_str().is_some_and(|m| m.len() == len))
            .and_then(|v| Some((v["w"].as_u64()?, v["i"].as_u64()?)));
        let Some((w, i)) = key else {
            t.torn += 1;
            continue;
        };
        if !t.seen.insert((w, i)) {
            t.dup += 1;
        }
        if last.get(&w).is_some_and(|&p| p >= i) {
            t.reordered += 1;
        }
        last.insert(w, i);
    }
    t.lost = n.saturating_sub(t.seen.len());
    Ok(t)
}

/// Marks the `op` events (data `{"i": …}`) whose line is not among `seen`, at most
/// [`MAX_MARKS`].
pub(crate) fn unseen_lines(runs: &[WriterRun], seen: &HashSet<(u64, u64)>) -> Vec<Mark> {
    runs.iter()
        .flat_map(|r| {
            r.events_of("op").filter_map(move |e| {
                let i = e.data["i"].as_u64()?;
                (!seen.contains(&(r.writer as u64, i))).then(|| Mark {
                    round: r.round,
                    at: e.end,
                    writer: Some(r.writer),
                    label: format!("line {}/{i} torn or lost", r.writer),
                })
            })
        })
        .take(MAX_MARKS)
        .collect()
}

/// How [`exactly_one`] names what it counts.
pub(crate) struct OneOf<'a> {
    /// The `op` event's boolean field that says this writer did it (`"won"`).
    pub field: &'a str,
    /// What one doing is called (`"winner"`; the plural adds an `s`).
    pub noun: &'a str,
    /// The violation when nobody did it.
    pub none: &'a str,
    /// The violation when more than one did.
    pub many: &'a str,
    /// The label of each doing after the first, given its writer.
    pub again: fn(usize) -> String,
    /// At most this many marks.
    pub limit: usize,
}

/// Checks that exactly one `op` event of the round has `field` true; every one after the first
/// (in time) is marked.
pub(crate) fn exactly_one(runs: &[WriterRun], one: &OneOf<'_>) -> RoundCheck {
    let mut hits: Vec<(u64, usize, usize)> = runs
        .iter()
        .flat_map(|r| {
            r.events_of("op")
                .filter(|e| e.data[one.field].as_bool() == Some(true))
                .map(move |e| (e.end, r.writer, r.round))
        })
        .collect();
    hits.sort_unstable();
    let noun = one.noun;
    match hits.len() {
        1 => RoundCheck::held(format!("1 {noun}")),
        0 => RoundCheck::broke(one.none, format!("0 {noun}s"), Vec::new()),
        k => {
            let marks = hits
                .iter()
                .skip(1)
                .take(one.limit)
                .map(|&(at, w, round)| Mark {
                    round,
                    at,
                    writer: Some(w),
                    label: (one.again)(w),
                })
                .collect();
            RoundCheck::broke(one.many, format!("{k} {noun}s"), marks)
        }
    }
}
