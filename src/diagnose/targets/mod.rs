//! The built-in targets: one file per pattern from the seed's isolation sweep.
//!
//! Each naive writer does the racy thing the way a real hook does it, including the "work" a
//! hook does between reading and writing (parsing, validating): that pause is part of the
//! pattern, not a synchronisation trick, and it is what makes the race show up on every run
//! instead of once a week.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::Target;
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
    ]
}

/// The built-in target called `name`.
pub fn find(name: &str) -> Option<&'static dyn Target> {
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
