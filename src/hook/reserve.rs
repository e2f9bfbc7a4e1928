//! Enforcement at edit time: what `concur hook claude|codex|gemini|cursor` answers for a write
//! to a reserved path.
//!
//! - A file tool (`Write`, `Edit`, Gemini `write_file`, Cursor `StrReplace`, Codex
//!   `apply_patch`, ...) writing a path another live session reserved → deny in the agent's
//!   dialect ([`crate::hook::Answer::deny`]), the reason naming the holder, its reason and expiry
//!   and how to coordinate. With `[reserve] auto = true` a free path is claimed (exclusive) by
//!   the editing session on its first edit and renewed on every further one; a path the session
//!   holds is allowed. A tool's path is always one literal file (`a*b.rs` is the file of that
//!   name, escaped, never a glob), and only a file inside the checkout of the session's
//!   (absolute) cwd is auto-claimed: a directory (`.`, `/`, `../..`), a path outside the
//!   repository, a relative cwd, or a session outside any repository claims nothing; the path
//!   is still checked against the other sessions' reservations.
//! - A shell tool (`Bash`, Gemini `run_shell_command`, Cursor `Shell`/`beforeShellExecution`):
//!   the command is parsed with [`crate::scan::bash::written_paths`] (redirect targets, `tee`,
//!   `sed -i`, `mv`/`cp` destinations, `rm`/`unlink` operands, ...) and each literal target is
//!   checked the same way (never auto-claimed). A command that does not parse is allowed and logged on stderr; a
//!   target with a variable or a wildcard in it is skipped: never a false deny. The scan is
//!   bounded: a command nested deeper than [`SHELL_DEPTH`] or not scanned within
//!   [`SHELL_BUDGET`] is refused (the scanner's walk recurses and is superlinear on long
//!   `&&` chains; a hook that crashed or hung would let the command through).
//! - **Fail closed**: any internal error (database, home, path) on a guarded event denies.
//! - **Override**: one edit of a reserved path goes through when a one-time token named
//!   [`override_token`] exists; the hook consumes it (`rename(2)`: exactly one edit wins) and
//!   records the take in the home's audit ledger. The deny reason prints the exact
//!   `concur token issue` command.
//!
//! Not guaranteed: a shell command that computes its target at run time (`> "$(mktemp)"`,
//! `cd d && echo > f` resolved against the wrong directory) can write unchecked.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sha2::Digest;

use super::{Agent, Answer};
use crate::error::Result;
use crate::home::Home;
use crate::id::SessionId;
use crate::reserve::{Access, Claim, ClaimRequest, DEFAULT_TTL, Mode, Reservations, Target};
use crate::scan::bash::Shape;
use crate::token;

/// The one-time token name that lets one edit of `target` through: `override-` and 32 hex
/// digits of the SHA-256 of its full path (token names cannot hold `/`).
pub fn override_token(target: &Target) -> String {
    let h = sha2::Sha256::digest(target.full().as_bytes());
    format!("override-{}", crate::hex::encode(&h[..16]))
}

/// The session id a payload names (`session_id`, Cursor's `conversation_id`), else what
/// `fallback` finds (called only then: it may walk `/proc` and the registry).
pub fn payload_session(
    agent: Agent,
    payload: &Value,
    fallback: impl FnOnce() -> Option<SessionId>,
) -> Option<SessionId> {
    let id = match agent {
        Agent::Cursor => payload["conversation_id"]
            .as_str()
            .or(payload["session_id"].as_str()),
        _ => payload["session_id"].as_str(),
    };
    id.and_then(|s| SessionId::new(s).ok()).or_else(fallback)
}

/// The shell command of a pre-tool payload for a shell tool, if it is one.
pub fn shell_command(agent: Agent, payload: &Value) -> Option<String> {
    let event = payload["hook_event_name"].as_str().unwrap_or("");
    let tool = payload["tool_name"].as_str().unwrap_or("");
    let shell = match agent {
        Agent::Claude | Agent::Codex => event == "PreToolUse" && tool == "Bash",
        Agent::Gemini => event == "BeforeTool" && tool == "run_shell_command",
        Agent::Cursor => {
            event == "beforeShellExecution" || (event == "preToolUse" && tool == "Shell")
        }
    };
    if !shell {
        return None;
    }
    let cmd = &payload["tool_input"]["command"];
    let cmd = match cmd {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        _ => payload["command"].as_str().unwrap_or("").to_owned(),
    };
    Some(cmd)
}

/// How a write is checked.
#[derive(Debug, Clone)]
pub struct Edit<'a> {
    /// The agent (for the deny dialect).
    pub agent: Agent,
    /// The editing session, if known.
    pub session: Option<&'a SessionId>,
    /// The session's working directory (relative paths are against it).
    pub cwd: &'a Path,
    /// `[reserve] auto`: claim free paths on first edit.
    pub auto: bool,
    /// The file-tool call's id when the agent reports how it ended (Claude Code's
    /// `PostToolUse`/`PostToolUseFailure`): the edit is recorded pending, for that report to
    /// confirm or withdraw ([`crate::reserve::edits`]).
    pub call: Option<&'a str>,
}

/// Decides a file-tool write of `paths`: allow, or deny naming the holders. Errors deny.
///
/// The common case comes first: nothing was ever reserved in this home and nothing is to be
/// claimed (`auto` off): no database is opened; the edit is only recorded for the git guard.
pub fn decide_write(home: &Home, edit: &Edit<'_>, paths: &[PathBuf]) -> Answer {
    if !edit.auto && !crate::reserve::may_exist(home) {
        record_edits(home, edit, paths);
        return Answer::allow();
    }
    match check_paths(home, edit, paths, edit.auto) {
        Ok(None) => {
            record_edits(home, edit, paths);
            Answer::allow()
        }
        Ok(Some(reason)) => Answer::deny(edit.agent, &reason),
        Err(e) => cannot_check(edit.agent, "edit", &e.to_string()),
    }
}

/// The answer when reservations cannot be checked: the `what` (`edit`, `command`) is refused
/// (fail closed), saying why.
pub fn cannot_check(agent: Agent, what: &str, why: &str) -> Answer {
    Answer::deny(
        agent,
        &format!("concur reserve: cannot check edit reservations, so the {what} is refused: {why}"),
    )
}

/// The directory a shell tool's command runs in: the payload's `cwd` (Cursor: else its first
/// workspace root), else this process's, else `/`.
pub fn shell_cwd(agent: Agent, payload: &Value) -> PathBuf {
    match agent {
        Agent::Cursor => payload["cwd"]
            .as_str()
            .or(payload["workspace_roots"][0].as_str()),
        _ => payload["cwd"].as_str(),
    }
    .map_or_else(
        || std::env::current_dir().unwrap_or_else(|_| "/".into()),
        PathBuf::from,
    )
}

/// Decides a shell command: its literal write targets are checked like file-tool writes, and
/// its git commands by what they would discard or rewrite ([`crate::reserve::git_guard`]).
pub fn decide_shell(home: &Home, edit: &Edit<'_>, command: &str) -> Answer {
    let reserved = crate::reserve::may_exist(home);
    if !reserved && !crate::reserve::edits::any(home) {
        return Answer::allow();
    }
    match check_git(home, edit, command, reserved) {
        Ok(None) => {}
        Ok(Some(reason)) => return Answer::deny(edit.agent, &reason),
        Err(e) => {
            return Answer::deny(
                edit.agent,
                &format!(
                    "concur reserve: cannot check what this git command would touch, so it is \
                     refused: {e}"
                ),
            );
        }
    }
    if !reserved {
        return Answer::allow();
    }
    let writes = match scan_bounded(command) {
        Ok(Some(w)) => w,
        Ok(None) => {
            // One line of at most ~200 characters, however long the command.
            let shown: String = command.chars().take(200).collect();
            let more = if shown.len() < command.len() {
                " …"
            } else {
                ""
            };
            eprintln!(
                "concur: hook: cannot parse the shell command, allowed unchecked: {}{more}",
                shown.escape_debug()
            );
            return Answer::allow();
        }
        Err(why) => {
            return Answer::deny(
                edit.agent,
                &format!("concur reserve: {why}, so the command is refused"),
            );
        }
    };
    let paths: Vec<PathBuf> = writes
        .iter()
        .map(|w| w.path.as_str())
        .filter(|p| !p.is_empty() && !p.contains(['$', '`', '*', '?', '~', '(', '"', '\'']))
        .map(PathBuf::from)
        .collect();
    if paths.is_empty() {
        return Answer::allow();
    }
    match check_paths(home, edit, &paths, false) {
        Ok(None) => {
            // Shell writes have no post-tool report: recorded as they are allowed.
            let shell = Edit {
                call: None,
                ..edit.clone()
            };
            record_edits(home, &shell, &paths);
            Answer::allow()
        }
        Ok(Some(reason)) => Answer::deny(edit.agent, &reason),
        Err(e) => Answer::deny(
            edit.agent,
            &format!(
                "concur reserve: cannot check edit reservations, so the command is refused: {e}"
            ),
        ),
    }
}

/// Records an allowed write of `paths` as the session's edits (for the git guard): pending on
/// `edit.call` when the agent will report how the call ended, else plain. A failure does not
/// refuse the edit (the record protects this session's own work from others' git, it does not
/// protect anyone from this edit); it is said on stderr.
pub fn record_edits(home: &Home, edit: &Edit<'_>, paths: &[PathBuf]) {
    let Some(session) = edit.session else {
        return;
    };
    let abs = absolute(edit.cwd, paths);
    let recorded = match edit.call {
        Some(call) => crate::reserve::edits::record_pending(home, session, call, &abs),
        None => crate::reserve::edits::record(home, session, &abs),
    };
    if let Err(e) = recorded {
        eprintln!("concur: hook: cannot record this session's edit for the git guard: {e}");
    }
}

/// Records how a file-tool call of `edit.session` ended (a post-tool report): `ok` confirms its
/// edit of `paths`, a failure withdraws what its `PreToolUse` recorded pending. Never denies
/// (the call is over); a failure is said on stderr.
pub fn record_ended(home: &Home, edit: &Edit<'_>, paths: &[PathBuf], ok: bool) {
    let Some(session) = edit.session else {
        return;
    };
    let recorded = match (edit.call, ok) {
        (Some(call), true) => {
            crate::reserve::edits::confirm(home, session, call, &absolute(edit.cwd, paths))
        }
        (Some(call), false) => crate::reserve::edits::withdraw(home, session, call),
        (None, true) => crate::reserve::edits::record(home, session, &absolute(edit.cwd, paths)),
        (None, false) => Ok(()),
    };
    if let Err(e) = recorded {
        eprintln!("concur: hook: cannot record how this session's edit ended: {e}");
    }
}

fn absolute(cwd: &Path, paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                cwd.join(p)
            }
        })
        .collect()
}

/// The git guard: `Ok(Some(reason))` when a git command in `command` would discard or rewrite
/// a file another live session reserved.
fn check_git(
    home: &Home,
    edit: &Edit<'_>,
    command: &str,
    reserved: bool,
) -> Result<Option<String>> {
    let runs = crate::reserve::git_guard::git_runs(command);
    if runs.is_empty() {
        return Ok(None);
    }
    let edited = crate::reserve::edits::of_others(home, edit.session)?;
    for run in runs {
        let touched = crate::reserve::git_guard::touched(&run, edit.cwd)?;
        if touched.is_empty() {
            continue;
        }
        if let Some(reason) = check_edited(home, edit, &touched, &edited)? {
            return Ok(Some(format!(
                "concur reserve: `{}` would discard or rewrite files another live session \
                 edited in this checkout, so it is refused.\n{reason}",
                run.shown
            )));
        }
        if !reserved {
            continue;
        }
        // Files are literal names; the whole checkout or a directory is a `**` glob.
        let targets = touched
            .iter()
            .map(|p| {
                let p = p.to_string_lossy();
                if p.ends_with("/**") {
                    Target::resolve(&p, edit.cwd)
                } else {
                    Target::resolve_literal(&p, edit.cwd)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(reason) = check_targets(home, edit, targets, false)? {
            return Ok(Some(format!(
                "concur reserve: `{}` would discard or rewrite files another live session \
                 reserved in this checkout, so it is refused.\n{reason}",
                run.shown
            )));
        }
    }
    Ok(None)
}

/// The git guard on other live sessions' edits: `Ok(Some(reason))` when `touched` (files, or
/// `DIR/**`) covers a file another live session edited, unless that file's one-time override
/// token is taken now (audited).
fn check_edited(
    home: &Home,
    edit: &Edit<'_>,
    touched: &[PathBuf],
    edited: &[(String, PathBuf)],
) -> Result<Option<String>> {
    let covers = |f: &Path| {
        touched.iter().any(|t| {
            t == f
                || t.to_str()
                    .and_then(|s| s.strip_suffix("/**"))
                    .is_some_and(|dir| f.starts_with(dir))
        })
    };
    let hits: Vec<&(String, PathBuf)> = edited.iter().filter(|(_, f)| covers(f)).collect();
    let Some((first_session, first)) = hits.first() else {
        return Ok(None);
    };
    let target = Target::resolve_literal(&first.to_string_lossy(), edit.cwd)?;
    let name = override_token(&target);
    if token::take_override(home, &name, edit.session)?.outcome == token::Outcome::Won {
        return Ok(None);
    }
    let mut reason = String::new();
    for (s, f) in hits.iter().take(10) {
        let _ = writeln!(reason, "- {} edited by session {s}", f.display());
    }
    if hits.len() > 10 {
        let _ = writeln!(reason, "- ... and {} more", hits.len() - 10);
    }
    let _ = write!(
        reason,
        "Coordinate: ask session {first_session} to commit or finish first, wait until it ends, \
         or let this one command through with a one-time override: `concur token issue {name}`."
    );
    Ok(Some(reason))
}

/// The longest run of shell operator characters (`<>|&;`, blanks between them not counting)
/// the shell scan takes on.
pub const MAX_OPERATOR_RUN: usize = 64;

/// The longest run of `<>|&;` in `command`, blanks inside the run not breaking it.
fn operator_run(command: &str) -> usize {
    let (mut run, mut max) = (0usize, 0usize);
    for b in command.bytes() {
        match b {
            b'<' | b'>' | b'|' | b'&' | b';' => {
                run += 1;
                max = max.max(run);
            }
            b' ' | b'\t' => {}
            _ => run = 0,
        }
    }
    max
}

/// The longest the shell scan of one command may take before the command is refused.
pub const SHELL_BUDGET: Duration = Duration::from_millis(500);

/// The deepest syntax tree the shell scan walks (its walk recurses once a level).
pub const SHELL_DEPTH: usize = 256;

/// [`crate::scan::bash::written_paths`] under a work budget, a depth bound and a time budget,
/// on a thread of its own with a large stack: `Err` when the parse needs more than its work
/// budget, the command is nested deeper than [`SHELL_DEPTH`], the scan takes longer than
/// [`SHELL_BUDGET`], or it fails; `Ok(None)` when it does not parse.
///
/// # Errors
/// The reason the command cannot be checked.
/// A scan over budget is left running on its thread (the hook process exits right after).
pub fn scan_bounded(
    command: &str,
) -> std::result::Result<Option<Vec<crate::scan::bash::Write>>, String> {
    // A long run of operators with nothing between them (`> > > >…`) is where the parser's error
    // recovery costs most; no command a person or an agent writes has one. Refused at once.
    let run = operator_run(command);
    if run > MAX_OPERATOR_RUN {
        return Err(format!(
            "the shell command has a run of {run} operators with nothing between them (more \
             than {MAX_OPERATOR_RUN}) and cannot be checked"
        ));
    }
    let cmd = command.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("shell-scan".into())
        .stack_size(64 << 20)
        .spawn(move || {
            let r = match crate::scan::bash::shape(&cmd) {
                Shape::Unparsed => Ok(None),
                Shape::Costly => Err("the shell command is too costly to parse and cannot be \
                                      checked"
                    .to_owned()),
                Shape::Depth(d) if d > SHELL_DEPTH => Err(format!(
                    "the shell command is nested {d} levels deep (more than {SHELL_DEPTH}) and \
                     cannot be checked"
                )),
                Shape::Depth(_) => Ok(crate::scan::bash::written_paths(&cmd)),
            };
            let _ = tx.send(r);
        })
        .map_err(|e| format!("cannot start the shell scan ({e})"))?;
    match rx.recv_timeout(SHELL_BUDGET) {
        Ok(r) => r,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "the shell command could not be checked within {} ms",
            SHELL_BUDGET.as_millis()
        )),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err("the shell scan failed on this command".into())
        }
    }
}

/// `Ok(None)` to allow, `Ok(Some(reason))` to deny.
fn check_paths(
    home: &Home,
    edit: &Edit<'_>,
    paths: &[PathBuf],
    auto: bool,
) -> Result<Option<String>> {
    // Nothing was ever reserved here and nothing is to be claimed: no database to open.
    if !auto && !crate::reserve::may_exist(home) {
        return Ok(None);
    }
    // A tool's path names one file: `*` in it is part of the name.
    let targets = paths
        .iter()
        .map(|p| Target::resolve_literal(&p.to_string_lossy(), edit.cwd))
        .collect::<Result<Vec<_>>>()?;
    check_targets(home, edit, targets, auto)
}

/// [`check_paths`] on resolved targets (the git guard's may be globs: `ROOT/**`).
fn check_targets(
    home: &Home,
    edit: &Edit<'_>,
    targets: Vec<Target>,
    auto: bool,
) -> Result<Option<String>> {
    let r = Reservations::open(home)?;
    let checkout = if auto { checkout_root(edit.cwd) } else { None };
    let mut claims = Vec::new();
    for target in targets {
        match r.check(edit.session, &target)? {
            Access::Free | Access::Own => {
                if checkout.as_deref() == Some(target.root.as_str()) && !target.is_glob() {
                    claims.push(target);
                }
            }
            Access::Denied(holders) => {
                let name = override_token(&target);
                if token::take_override(home, &name, edit.session)?.outcome == token::Outcome::Won {
                    continue;
                }
                let mut reason = format!(
                    "concur reserve: {} is reserved by another session, so this edit is refused.",
                    target.pattern
                );
                for h in &holders {
                    let _ = write!(reason, "\n- {}", h.describe());
                }
                let _ = write!(
                    reason,
                    "\nCoordinate: wait until it is released (`concur reservations`), ask that \
                     session, or let one edit through with a one-time override: \
                     `concur token issue {name}`."
                );
                return Ok(Some(reason));
            }
        }
    }
    if auto
        && let Some(session) = edit.session
        && !claims.is_empty()
    {
        let req = ClaimRequest {
            session: session.clone(),
            targets: claims,
            mode: Mode::Exclusive,
            ttl: DEFAULT_TTL,
            reason: Some("auto-claimed on edit".into()),
            cwd: edit.cwd.display().to_string(),
        };
        if let Claim::Refused(conflicts) = r.claim(&req)? {
            // Another session claimed it between our check and our claim, or holds it shared.
            let mut reason =
                String::from("concur reserve: another session reserved this file just now:");
            for c in &conflicts {
                let _ = write!(reason, "\n- {}", c.held.describe());
            }
            return Ok(Some(reason));
        }
    }
    Ok(None)
}

/// The repository root of an absolute `cwd`, the only place auto-claims are made: `None` for
/// a relative cwd or one outside any repository (root `/`).
fn checkout_root(cwd: &Path) -> Option<String> {
    if !cwd.is_absolute() {
        return None;
    }
    let here = Target::resolve_literal(&cwd.to_string_lossy(), Path::new("/")).ok()?;
    (here.root != "/").then_some(here.root)
}

/// Lines for the `SessionStart` context: the other sessions' reservations in the repository
/// of `cwd` (empty when there are none).
///
/// # Errors
/// Store errors.
pub fn session_context(home: &Home, session: Option<&SessionId>, cwd: &Path) -> Result<String> {
    let here = Target::resolve(&cwd.to_string_lossy(), Path::new("/"))?;
    let theirs: Vec<_> = Reservations::open(home)?
        .list()?
        .into_iter()
        .filter(|r| Some(r.session.as_str()) != session.map(SessionId::as_str))
        .filter(|r| r.root == here.root)
        .collect();
    if theirs.is_empty() {
        return Ok(String::new());
    }
    let mut text = format!(
        "concur: other sessions reserved {} path(s) in this repository; edits to them are refused:",
        theirs.len()
    );
    for r in &theirs {
        let _ = write!(text, "\n- {}", r.describe());
    }
    text.push_str(
        "\nReserve what you will edit first: `concur reserve PATH|GLOB... --reason TEXT`.",
    );
    Ok(text)
}
