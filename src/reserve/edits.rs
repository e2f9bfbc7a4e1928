//! Which files each session has edited, for the git guard ([`super::git_guard`]): a session's
//! uncommitted work is protected from another session's `git stash` or `reset --hard` even when
//! it reserved nothing.
//!
//! The edit-time hook records every file-tool write and every literal shell-write target it
//! allows, one line per path, in `<home>/edits/<session>.list` (0600, appended with one
//! `write(2)` on `O_APPEND`, no fsync: it is advice for a guard, lost with a crash of the machine
//! at worst). The record is forgotten when the session ends ([`forget`], called by
//! [`crate::backend::Backend::end_session`], so `session end`, the `SessionEnd` hook and `gc` all
//! do it)
//! and ignored as soon as the session is not alive: only **live registered** sessions' edits
//! count, the same liveness as reservations (pid + start time + boot id).
//!
//! ## Pending, confirmed, withdrawn
//!
//! An edit is recorded when it is allowed (`PreToolUse`), before it happens, and that record
//! counts at once and for as long as the session lives: the agent may be killed between writing
//! the file and its `PostToolUse` hook, and the guard must never miss a real edit. Where the
//! agent reports how the call ended (Claude Code's `PostToolUse` and `PostToolUseFailure`,
//! matched to the `PreToolUse` by the tool call's id), the record is made precise:
//! - `PreToolUse` writes `? ID PATH` ([`record_pending`]): counts, unless withdrawn.
//! - `PostToolUse` writes `+ ID PATH` ([`confirm`]): counts. It also catches an edit whose
//!   `PreToolUse` hook did not run or record (timed out, crashed: agents let the call through).
//! - `PostToolUseFailure` writes `- ID` ([`withdraw`]): the pending edit of that call did not
//!   happen (the tool failed, the user refused or interrupted it) and no longer counts.
//! - A line that is a bare absolute path ([`record`]: shell writes, agents without post-tool
//!   events, payloads without a call id) counts.
//!
//! So a path counts when any call confirmed it, any bare line names it, or any pending call for
//! it was not withdrawn: a failed call withdraws only its own pending line, never another call's
//! edit of the same file.
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

/// Records that `session` edits `files` (absolute paths): counts while the session lives.
///
/// # Errors
/// The home's `edits` directory or the session's list cannot be written.
pub fn record(home: &Home, session: &SessionId, files: &[PathBuf]) -> Result<()> {
    append(home, session, &lines("", files))
}

/// Records that tool call `call` of `session` is about to edit `files`: counts unless
/// [`withdraw`]n. A call id that is not a plain token (`[A-Za-z0-9_.:-]`, up to 128) is
/// recorded as [`record`] does.
///
/// # Errors
/// As [`record`].
pub fn record_pending(
    home: &Home,
    session: &SessionId,
    call: &str,
    files: &[PathBuf],
) -> Result<()> {
    if !is_call_id(call) {
        return record(home, session, files);
    }
    append(home, session, &lines(&format!("? {call} "), files))
}

/// Records that tool call `call` of `session` edited `files` (the agent said it succeeded).
///
/// # Errors
/// As [`record`].
pub fn confirm(home: &Home, session: &SessionId, call: &str, files: &[PathBuf]) -> Result<()> {
    if !is_call_id(call) {
        return record(home, session, files);
    }
    append(home, session, &lines(&format!("+ {call} "), files))
}

/// Records that tool call `call` of `session` failed: its pending edits no longer count.
///
/// # Errors
/// As [`record`].
pub fn withdraw(home: &Home, session: &SessionId, call: &str) -> Result<()> {
    if !is_call_id(call) {
        return Ok(());
    }
    append(home, session, &format!("- {call}\n"))
}

fn is_call_id(call: &str) -> bool {
    !call.is_empty()
        && call.len() <= 128
        && call
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// One line per absolute path of `files` without a newline, each after `prefix`.
fn lines(prefix: &str, files: &[PathBuf]) -> String {
    let mut out = String::new();
    for f in files {
        let s = f.to_string_lossy();
        if f.is_absolute() && !s.contains('\n') {
            out.push_str(prefix);
            out.push_str(&s);
            out.push('\n');
        }
    }
    out
}

/// Appends `lines` to the session's record in one `write(2)`.
fn append(home: &Home, session: &SessionId, lines: &str) -> Result<()> {
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

/// The paths a record's lines count as edited (see the module docs).
fn counted(lines: &[String]) -> Vec<PathBuf> {
    let withdrawn: std::collections::HashSet<&str> =
        lines.iter().filter_map(|l| l.strip_prefix("- ")).collect();
    lines
        .iter()
        .filter_map(|l| {
            if l.starts_with('/') {
                return Some(l.as_str());
            }
            let (kind, rest) = (l.get(..2)?, l.get(2..)?);
            let (call, path) = rest.split_once(' ')?;
            match kind {
                "+ " => Some(path),
                "? " if !withdrawn.contains(call) => Some(path),
                _ => None,
            }
        })
        .map(PathBuf::from)
        .collect()
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
        let lines = BufReader::new(file)
            .lines()
            .collect::<std::io::Result<Vec<String>>>()
            .map_err(Error::with("cannot read edit record", &path))?;
        out.extend(counted(&lines).into_iter().map(|p| (s.id.clone(), p)));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn counted_of(text: &str) -> Vec<String> {
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        counted(&lines)
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_withdrawn_call_no_longer_counts_and_nothing_else_is_withdrawn() {
        let text = "/bare\n? t1 /a\n? t2 /a\n- t1\n? t3 /b\n- t3\n+ t4 /c\n- t4\n? t5 /d\n";
        // /a: t2 is still pending; /b: its one call failed; /c: confirmed; /d: pending.
        assert_eq!(counted_of(text), ["/bare", "/a", "/c", "/d"]);
    }

    #[test]
    fn call_ids_are_plain_tokens() {
        assert!(is_call_id("toolu_01DUabc"));
        assert!(!is_call_id(""));
        assert!(!is_call_id("a b"));
        assert!(!is_call_id("a\nb"));
        assert!(!is_call_id(&"x".repeat(129)));
    }
}
