//! Which files each session has edited, for the git guard ([`super::git_guard`]): a session's
//! uncommitted work is protected from another session's `git stash` or `reset --hard` even when
//! it reserved nothing.
//!
//! The edit-time hook records every file-tool write and every literal shell-write target it
//! allows, one absolute path a line, in `<home>/edits/<session>.list` (0600, appended with one
//! `write(2)` on `O_APPEND`, no fsync: it is advice for a guard, lost with a crash of the machine
//! at worst). The record is forgotten when the session ends ([`forget`], called by
//! [`crate::backend::Backend::end_session`], so `session end`, the `SessionEnd` hook and `gc` all
//! do it)
//! and ignored as soon as the session is not alive: only **live registered** sessions' edits
//! count, the same liveness as reservations (pid + start time + boot id).
//!
//! Not guaranteed: an edit the hook did not see (an editor, a script that never asks), and a file
//! whose path holds a newline (not recorded).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::SessionId;
use crate::sys;

const DIR: &str = "edits";

fn file_of(dir: &Path, session: &SessionId) -> PathBuf {
    dir.join(format!("{}.list", session.as_str()))
}

/// Records that `session` edits `files` (absolute paths).
///
/// # Errors
/// The home's `edits` directory or the session's list cannot be written.
pub fn record(home: &Home, session: &SessionId, files: &[PathBuf]) -> Result<()> {
    let mut lines = String::new();
    for f in files {
        let s = f.to_string_lossy();
        if f.is_absolute() && !s.contains('\n') {
            lines.push_str(&s);
            lines.push('\n');
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    // The directory is made (and checked) once, by the first edit of the home.
    let path = file_of(&home.join(DIR), session);
    let file = match sys::fs::open(&path, sys::fs::Open::append(0o600)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            home.subdir(DIR)?;
            sys::fs::open(&path, sys::fs::Open::append(0o600))
        }
        r => r,
    }
    .map_err(Error::with("cannot open edit record", &path))?;
    sys::fs::write_once(&file, lines.as_bytes())
        .map(drop)
        .map_err(Error::with("cannot write edit record", &path))
}

/// Whether any session has an edit record (the hook then runs the git guard even where nothing
/// is reserved).
pub fn any(home: &Home) -> bool {
    std::fs::read_dir(home.join(DIR)).is_ok_and(|mut d| d.next().is_some())
}

/// The files edited by live registered sessions other than `me`: (session, file) pairs.
///
/// # Errors
/// The registry or a record cannot be read.
pub fn of_others(home: &Home, me: Option<&SessionId>) -> Result<Vec<(String, PathBuf)>> {
    let dir = home.join(DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (s, alive) in crate::session::Registry::open(home)?.list()? {
        if !alive || Some(s.id.as_str()) == me.map(SessionId::as_str) {
            continue;
        }
        let Ok(id) = SessionId::new(&s.id) else {
            continue;
        };
        let path = file_of(&dir, &id);
        let file = match sys::fs::open(&path, sys::fs::Open::READ) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("cannot open edit record", &path, e)),
        };
        for line in BufReader::new(file).lines() {
            let line = line.map_err(Error::with("cannot read edit record", &path))?;
            if !line.is_empty() {
                out.push((s.id.clone(), PathBuf::from(line)));
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Forgets what `session` edited (session end); returns whether there was a record.
///
/// # Errors
/// The record exists and cannot be removed.
pub fn forget(home: &Home, session: &SessionId) -> Result<bool> {
    let path = file_of(&home.join(DIR), session);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("cannot remove edit record", &path, e)),
    }
}
