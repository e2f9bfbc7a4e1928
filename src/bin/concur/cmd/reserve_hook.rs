//! The edit-reservation side of `concur hook AGENT`: called by `hook.rs` for pre-tool events
//! the guard let through.

use std::path::{Path, PathBuf};

use concur::hook::reserve::{
    Edit, decide_shell, decide_write, payload_session, record_edits, record_ended, shell_command,
};
use concur::hook::{Agent, Answer};

use concur::config::Config;

use crate::ctx::Ctx;

/// A file tool writing `paths`: deny when another live session reserved one (fail closed).
/// `config` is the configuration the guard already loaded, if it did.
pub fn write(
    agent: Agent,
    ctx: &Ctx,
    config: Option<&Config>,
    payload: &serde_json::Value,
    paths: &[PathBuf],
    cwd: &Path,
) -> Answer {
    let refuse = |e: String| {
        Answer::deny(
            agent,
            &format!("concur reserve: cannot check edit reservations, so the edit is refused: {e}"),
        )
    };
    let auto = match config {
        Some(c) => c.reserve.auto,
        None => match ctx.config() {
            Ok(c) => c.reserve.auto,
            Err(e) => return refuse(e.message),
        },
    };
    let home = match ctx.home() {
        Ok(h) => h,
        Err(e) => return refuse(e.message),
    };
    let session = payload_session(agent, payload, || ctx.session().ok().flatten());
    let edit = Edit {
        agent,
        session: session.as_ref(),
        cwd,
        auto,
        // Claude Code reports how the call ended (the post-tool hooks concur installs).
        call: (agent == Agent::Claude)
            .then(|| payload["tool_use_id"].as_str())
            .flatten(),
    };
    // The common case: nothing was ever reserved in this home and nothing is to be claimed:
    // no database is opened; the edit is only recorded for the git guard.
    if !auto && !concur::reserve::may_exist(home) {
        record_edits(home, &edit, paths);
        return Answer::allow();
    }
    decide_write(home, &edit, paths)
}

/// Any other event: a shell tool's command is checked for writes to reserved paths.
pub fn other(agent: Agent, ctx: &Ctx, payload: &serde_json::Value) -> Answer {
    let Some(command) = shell_command(agent, payload) else {
        return Answer::allow();
    };
    let home = match ctx.home() {
        Ok(h) => h,
        Err(e) => {
            return Answer::deny(
                agent,
                &format!(
                    "concur reserve: cannot check edit reservations, so the command is refused: {}",
                    e.message
                ),
            );
        }
    };
    let cwd = match agent {
        Agent::Cursor => payload["cwd"]
            .as_str()
            .or(payload["workspace_roots"][0].as_str()),
        _ => payload["cwd"].as_str(),
    }
    .map_or_else(
        || std::env::current_dir().unwrap_or_else(|_| "/".into()),
        PathBuf::from,
    );
    let session = payload_session(agent, payload, || ctx.session().ok().flatten());
    let edit = Edit {
        agent,
        session: session.as_ref(),
        cwd: &cwd,
        auto: false,
        call: None,
    };
    decide_shell(home, &edit, &command)
}

/// A file tool's call ended: its edit record is confirmed (`ok`) or withdrawn. Always allows.
pub fn ended(
    agent: Agent,
    ctx: &Ctx,
    payload: &serde_json::Value,
    paths: &[PathBuf],
    cwd: &Path,
    call: Option<&str>,
    ok: bool,
) -> Answer {
    let home = match ctx.home() {
        Ok(h) => h,
        Err(e) => {
            eprintln!(
                "concur: hook: cannot record how the edit ended: {}",
                e.message
            );
            return Answer::allow();
        }
    };
    let session = payload_session(agent, payload, || ctx.session().ok().flatten());
    let edit = Edit {
        agent,
        session: session.as_ref(),
        cwd,
        auto: false,
        call,
    };
    record_ended(home, &edit, paths, ok);
    Answer::allow()
}

/// The other sessions' reservations in `cwd`'s repository, for the `SessionStart` context.
pub fn context(ctx: &Ctx, session: Option<&concur::SessionId>, cwd: &Path) -> String {
    ctx.home()
        .map_err(|e| e.message)
        .and_then(|h| {
            concur::hook::reserve::session_context(h, session, cwd).map_err(|e| e.to_string())
        })
        .unwrap_or_else(|e| {
            eprintln!("concur: hook: {e}");
            String::new()
        })
}
