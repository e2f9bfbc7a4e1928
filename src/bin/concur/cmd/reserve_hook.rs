//! The edit-reservation side of `concur hook AGENT`: called by `hook.rs` for pre-tool events
//! the guard let through.

use std::path::{Path, PathBuf};

use concur::hook::reserve::{
    Edit, cannot_check, decide_shell, decide_write, payload_session, record_ended, shell_command,
    shell_cwd,
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
    let auto = match config {
        Some(c) => c.reserve.auto,
        None => match ctx.config() {
            Ok(c) => c.reserve.auto,
            Err(e) => return cannot_check(agent, "edit", &e.message),
        },
    };
    let home = match ctx.home() {
        Ok(h) => h,
        Err(e) => return cannot_check(agent, "edit", &e.message),
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
    decide_write(home, &edit, paths)
}

/// Any other event: a shell tool's command is checked for writes to reserved paths.
pub fn other(agent: Agent, ctx: &Ctx, payload: &serde_json::Value) -> Answer {
    let Some(command) = shell_command(agent, payload) else {
        return Answer::allow();
    };
    let home = match ctx.home() {
        Ok(h) => h,
        Err(e) => return cannot_check(agent, "command", &e.message),
    };
    let cwd = shell_cwd(agent, payload);
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
