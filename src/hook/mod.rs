//! Agent hook adapters: `concur hook claude|codex|gemini|cursor` reads the agent's hook payload
//! on stdin and answers in that agent's dialect.
//!
//! - **`PreToolUse`** (Gemini `BeforeTool`, Cursor `preToolUse`) for a file-writing tool whose
//!   path is protected by `[guard]` → deny, with a reason naming the concur command to use
//!   instead ([`guard`]). Anything else → allow: exit 0, no output.
//! - **`SessionStart`** → the agent process (the hook's nearest ancestor that is not a shell or
//!   wrapper: pid + start time, see [`crate::session::agent_process`]) is registered
//!   as the session, `export CONCUR_SESSION=<id>` is appended to `$CLAUDE_ENV_FILE` when set,
//!   and `additionalContext` names the other live sessions in the same directory and the leases
//!   they hold (nothing is printed when there are none) — [`session`].
//! - **`SessionEnd`** → the session ends and its leases are released.
//! - **`PostToolUse`**, **`PostToolUseFailure`** (Claude Code) of a file tool → the session's
//!   edit record is confirmed or withdrawn ([`crate::reserve::edits`]); nothing is printed.
//!
//! The leases are read and released in whichever [`crate::lease::Store`] the caller passes (the
//! CLI passes the one the backend names: local `SQLite`, or etcd). The `PreToolUse` path never
//! touches a lease store or a backend.
//!
//! ## Fail closed
//! Agents let a tool call through when a hook crashes, times out or exits with an unexpected
//! code. So every failure on a guarded event is turned into a deny by this module: a payload
//! that is not a JSON object, a file tool without a path, an unreadable or malformed config.
//! A payload that is not JSON at all cannot be attributed to an event and is denied with exit 2
//! and the reason on stderr, which every supported agent treats as a deny.
//!
//! ## Not guaranteed
//! - The guard sees file tools only; shell redirections (`echo >> F`) bypass it.

pub mod claude;
pub mod codex;
pub mod doctor;
pub mod guard;
pub mod install;
pub mod plugin;
pub mod reserve;
pub mod session;
pub mod setup;

use std::path::PathBuf;

use crate::config::Config;
use crate::error::Result;

pub use guard::Guard;

/// The agent whose dialect a payload is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Agent {
    /// Claude Code.
    Claude,
    /// `OpenAI` Codex CLI (Claude's wire format, plus `apply_patch`).
    Codex,
    /// Gemini CLI.
    Gemini,
    /// Cursor.
    Cursor,
}

impl Agent {
    /// The agent's name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Agent::Claude => "claude",
            Agent::Codex => "codex",
            Agent::Gemini => "gemini",
            Agent::Cursor => "cursor",
        }
    }
}

/// What a payload asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A file-writing tool is about to write these paths.
    Write {
        /// The tool's name.
        tool: String,
        /// The paths it writes (relative ones are against `cwd`).
        paths: Vec<PathBuf>,
        /// The session's working directory.
        cwd: PathBuf,
    },
    /// A file-writing tool's call ended (Claude Code `PostToolUse`, `PostToolUseFailure`): for
    /// the edit record only, never a decision.
    WriteEnded {
        /// The paths it wrote (relative ones are against `cwd`).
        paths: Vec<PathBuf>,
        /// The session's working directory.
        cwd: PathBuf,
        /// The tool call's id (`tool_use_id`), which its `PreToolUse` had too.
        call: Option<String>,
        /// Whether the tool succeeded (`PostToolUse`).
        ok: bool,
    },
    /// A guarded event whose payload cannot be understood.
    Malformed(String),
    /// A session starts.
    SessionStart {
        /// The agent's session id, if the payload has one.
        session: Option<String>,
        /// Its working directory.
        cwd: PathBuf,
    },
    /// A session ends.
    SessionEnd {
        /// The agent's session id, if the payload has one.
        session: Option<String>,
    },
    /// A payload of another agent than the hook was installed for: Cursor also runs Claude
    /// Code's `.claude/settings.json` hooks, with its own payloads. Answered with silence, so
    /// the Cursor hook (`concur hook cursor`) is the one that decides — never both.
    Foreign,
    /// Anything else: allowed without a word.
    Other,
}

/// A hook's answer: what to print and the exit code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// One line for stdout, if any.
    pub stdout: Option<String>,
    /// One line for stderr, if any.
    pub stderr: Option<String>,
    /// The exit code (0 allow or JSON answer, 2 deny-by-exit-code).
    pub code: u8,
}

impl Answer {
    /// Allow silently.
    pub fn allow() -> Answer {
        Answer::default()
    }

    /// Deny in `agent`'s JSON dialect.
    pub fn deny(agent: Agent, reason: &str) -> Answer {
        Answer {
            stdout: Some(claude::deny_json(agent, reason).to_string()),
            stderr: None,
            code: 0,
        }
    }

    /// Deny by exit code 2 with the reason on stderr (understood by every agent).
    pub fn deny_exit2(reason: &str) -> Answer {
        Answer {
            stdout: None,
            stderr: Some(reason.to_owned()),
            code: 2,
        }
    }

    /// Whether this answer denies.
    pub fn is_deny(&self) -> bool {
        self.code == 2
            || self
                .stdout
                .as_deref()
                .is_some_and(|s| s.contains("\"deny\""))
    }
}

/// The largest payload a hook reads: 1 MiB. A larger one is refused unread (exit 2), so every
/// answer comes in bounded time and memory; a file tool writing more than this in one call is
/// refused too.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Reads a payload of at most [`MAX_PAYLOAD`] bytes; `Err` carries why it is refused (too
/// large, unreadable), for [`Answer::deny_exit2`].
///
/// # Errors
/// A message for a payload over the limit or a read error.
pub fn read_payload(r: impl std::io::Read) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read as _;
    let mut input = Vec::new();
    r.take(MAX_PAYLOAD as u64 + 1)
        .read_to_end(&mut input)
        .map_err(|e| format!("cannot read the hook payload: {e}"))?;
    if input.len() > MAX_PAYLOAD {
        return Err(format!(
            "the hook payload is larger than {MAX_PAYLOAD} bytes (1 MiB), so the call is refused"
        ));
    }
    Ok(input)
}

/// Parses a payload; `Err` carries why it is unusable (not JSON, not an object).
///
/// # Errors
/// A message for a payload that is not a JSON object.
pub fn parse(agent: Agent, input: &[u8]) -> std::result::Result<Event, String> {
    Ok(claude::classify(agent, &payload(input)?))
}

/// The payload as a JSON object (parsed once: [`claude::classify`] and the reservation checks
/// read the same value), or why it is not one.
///
/// # Errors
/// The payload is not JSON, or not an object.
pub fn payload(input: &[u8]) -> std::result::Result<serde_json::Value, String> {
    let v: serde_json::Value =
        serde_json::from_slice(input).map_err(|e| format!("hook payload is not JSON ({e})"))?;
    if !v.is_object() {
        return Err("hook payload is not a JSON object".into());
    }
    Ok(v)
}

/// Decides a `PreToolUse`-style event: deny when a path is protected, or when the guard
/// cannot be consulted (fail closed). `config` is only called for file-writing tools.
pub fn decide(agent: Agent, event: &Event, config: impl FnOnce() -> Result<Config>) -> Answer {
    match event {
        Event::Malformed(why) => Answer::deny(
            agent,
            &format!("concur guard: refusing a malformed file-tool call: {why}"),
        ),
        Event::Write { tool, paths, cwd } => {
            let guard = match config() {
                Ok(c) => Guard::from_config(&c),
                Err(e) => {
                    return Answer::deny(
                        agent,
                        &format!(
                            "concur guard: cannot read the guard configuration, so {tool} is refused: {e}"
                        ),
                    );
                }
            };
            for p in paths {
                if let Some(pattern) = guard.protects(p, cwd) {
                    let reason = format!(
                        "concur guard: {} is protected (matches {pattern}): {}",
                        p.display(),
                        guard.reason()
                    );
                    return Answer::deny(agent, &reason);
                }
            }
            Answer::allow()
        }
        _ => Answer::allow(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_error_on_a_file_tool_denies() {
        let e = Event::Write {
            tool: "Write".into(),
            paths: vec!["/x".into()],
            cwd: "/".into(),
        };
        let a = decide(Agent::Claude, &e, || {
            Err(crate::Error::Invalid("bad".into()))
        });
        assert!(a.is_deny());
        let a = decide(Agent::Claude, &Event::Other, || unreachable!());
        assert_eq!(a, Answer::allow());
    }
}
