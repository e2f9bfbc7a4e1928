//! `concur hook claude|codex|gemini|cursor` (an agent's hook, payload on stdin) and
//! `concur hook install`.

use std::path::PathBuf;

use concur::hook::{self, Agent, Answer, Event};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Agent hooks (claude, codex, gemini, cursor): write guard, sessions; hook install
///
/// Reads the agent's hook payload on stdin. Denies file-tool writes to `[guard] protect` paths
/// (fail closed); at SessionStart registers the agent, exports the session id and names the
/// other live sessions in the same directory; at SessionEnd releases the session's leases.
///
/// Example (.claude/settings.json, or let `concur hook install` write it):
///   {"hooks": {"PreToolUse": [{"matcher": "Write|Edit|MultiEdit|NotebookEdit",
///     "hooks": [{"type": "command", "command": "concur hook claude"}]}]}}
///   concur hook install --agent claude --settings .claude/settings.json --dry-run
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Claude Code hook (PreToolUse, SessionStart, SessionEnd)
    Claude,
    /// Codex CLI hook (PreToolUse incl. apply_patch, SessionStart)
    Codex,
    /// Gemini CLI hook (BeforeTool write_file/replace, SessionStart, SessionEnd)
    Gemini,
    /// Cursor hook (preToolUse Write/StrReplace/Edit, conversation_id)
    Cursor,
    /// Git pre-commit hook: refuse a commit staging files another live session reserved
    ///
    /// Installed by `concur hook install --git`; exit 1 names the blocked files and holders.
    GitPreCommit,
    /// Merge concur's hook entries into an agent's settings file (idempotent, locked, atomic,
    /// backup kept as FILE.bak)
    ///
    /// Example: concur hook install --agent claude --settings ~/.claude/settings.json
    Install {
        /// The agent: claude, codex, gemini or cursor
        #[arg(long, value_parser = ["claude", "codex", "gemini", "cursor"], required_unless_present = "git")]
        agent: Option<String>,
        /// The settings file to merge into (created if missing)
        #[arg(long, value_name = "PATH", required_unless_present = "git")]
        settings: Option<PathBuf>,
        /// Install the git pre-commit hook of this repository instead (edit reservations;
        /// an existing pre-commit hook is kept and runs first)
        #[arg(long, conflicts_with_all = ["agent", "settings", "dry_run", "command"])]
        git: bool,
        /// Print the diff and change nothing
        #[arg(long)]
        dry_run: bool,
        /// The hook command to install (default: "concur hook AGENT")
        #[arg(long, value_name = "CMD")]
        command: Option<String>,
    },
}

impl Args {
    /// What the parser makes of exactly `hook NAME` for an agent NAME (no options): agents run
    /// that line for every tool call, so `main` builds it without a parser. `None` for any
    /// other name.
    pub fn for_agent(name: &str) -> Option<Args> {
        let action = match name {
            "claude" => Action::Claude,
            "codex" => Action::Codex,
            "gemini" => Action::Gemini,
            "cursor" => Action::Cursor,
            _ => return None,
        };
        Some(Args { action })
    }
}

fn agent_of(name: &str) -> Agent {
    match name {
        "codex" => Agent::Codex,
        "gemini" => Agent::Gemini,
        "cursor" => Agent::Cursor,
        _ => Agent::Claude,
    }
}

/// Runs `concur hook ...`.
pub fn run(args: Args, ctx: &Ctx) -> Result<Exit, CliError> {
    let agent = match args.action {
        Action::Claude => Agent::Claude,
        Action::Codex => Agent::Codex,
        Action::Gemini => Agent::Gemini,
        Action::Cursor => Agent::Cursor,
        Action::GitPreCommit => return super::git_hook::pre_commit(ctx),
        Action::Install { git: true, .. } => return super::git_hook::install(ctx),
        Action::Install {
            agent: Some(agent),
            settings: Some(settings),
            dry_run,
            command,
            ..
        } => return install(ctx, &agent, &settings, dry_run, command),
        Action::Install { .. } => {
            return Err(CliError::usage(
                "hook install needs --agent and --settings, or --git",
            ));
        }
    };
    let answer = respond(agent, ctx);
    if let Some(s) = &answer.stdout {
        print_line(s);
    }
    if let Some(s) = &answer.stderr {
        eprintln!("{s}");
    }
    Ok(Exit::Code(answer.code))
}

fn respond(agent: Agent, ctx: &Ctx) -> Answer {
    let input = match hook::read_payload(std::io::stdin().lock()) {
        Ok(i) => i,
        Err(why) => return Answer::deny_exit2(&format!("concur guard: {why}")),
    };
    let event = match hook::parse(agent, &input) {
        Ok(ev) => ev,
        Err(why) => return Answer::deny_exit2(&format!("concur guard: {why}; refusing")),
    };
    match &event {
        Event::Write { .. } | Event::Malformed(_) => {
            // Loaded once: the reservation check below needs it too.
            let mut config = None;
            let a = hook::decide(agent, &event, || {
                let c = ctx
                    .config()
                    .map_err(|e| concur::Error::Invalid(e.message))?;
                config = Some(c.clone());
                Ok(c)
            });
            match &event {
                Event::Write { paths, cwd, .. } if !a.is_deny() => {
                    super::reserve_hook::write(agent, ctx, config.as_ref(), &input, paths, cwd)
                }
                _ => a,
            }
        }
        Event::SessionStart { session, cwd } => session_start(agent, ctx, session.as_deref(), cwd),
        Event::SessionEnd { session } => {
            if let Some(id) = session_id(ctx, session.as_deref())
                && let Err(e) = session_end(ctx, &id)
            {
                eprintln!("concur: hook: {e}");
            }
            Answer::allow()
        }
        _ => super::reserve_hook::other(agent, ctx, &input),
    }
}

/// The session id: the payload's, else `--session`/the environment.
fn session_id(ctx: &Ctx, payload: Option<&str>) -> Option<concur::SessionId> {
    match payload {
        Some(id) => concur::SessionId::new(id).ok(),
        None => ctx.session().ok().flatten(),
    }
}

/// Registers the agent (this hook's parent) as the session, exports the id, and answers with
/// the other live sessions in the same directory.
fn session_start(agent: Agent, ctx: &Ctx, session: Option<&str>, cwd: &std::path::Path) -> Answer {
    let Some(id) = session_id(ctx, session) else {
        eprintln!("concur: hook: SessionStart without a valid session id");
        return Answer::allow();
    };
    export_session(&id);
    let agent_pid = concur::sys::proc::parent_pid(std::process::id()).unwrap_or(0);
    let context = ctx.home().map_err(|e| e.message).and_then(|h| {
        let others = hook::session::start(h, &id, agent.name(), agent_pid, cwd)
            .map_err(|e| e.to_string())?;
        register_on_backend(ctx, h, &id);
        if others.is_empty() {
            return Ok(String::new()); // no lease store opened
        }
        let leases = ctx
            .lease_store_within(Some(BACKEND_BUDGET))
            .map_err(|e| e.message)?;
        hook::session::context(&others, cwd, &*leases).map_err(|e| e.to_string())
    });
    let reserved = super::reserve_hook::context(ctx, Some(&id), cwd);
    let context = context.map(|t| match (t.is_empty(), reserved.is_empty()) {
        (_, true) => t,
        (true, false) => reserved,
        (false, false) => format!("{t}\n{reserved}"),
    });
    match context {
        Ok(text) if !text.is_empty() => Answer {
            stdout: hook::claude::session_context(agent, &text).map(|v| v.to_string()),
            ..Answer::allow()
        },
        Ok(_) => Answer::allow(),
        Err(e) => {
            eprintln!("concur: hook: {e}");
            Answer::allow()
        }
    }
}

/// The longest a session hook waits on a remote lease store (etcd), retries included: agents
/// give `SessionEnd` hooks 1.5 s in all.
const BACKEND_BUDGET: std::time::Duration = std::time::Duration::from_secs(1);

/// Ends the session and releases its leases in the lease store the backend names.
fn session_end(ctx: &Ctx, id: &concur::SessionId) -> Result<(), String> {
    let home = ctx.home().map_err(|e| e.message)?;
    let leases = ctx
        .lease_store_within(Some(BACKEND_BUDGET))
        .map_err(|e| e.message)?;
    let backend = super::session::backend(ctx, BACKEND_BUDGET).map_err(|e| e.message)?;
    hook::session::end(home, id, &*leases).map_err(|e| e.to_string())?;
    let reg = concur::session::Registry::open(home).map_err(|e| e.to_string())?;
    super::session::end_on_backend(backend, &reg, id)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// With a backend: registers the session (just started locally) there too, kept alive by a
/// detached keeper until the agent exits. A failure is one warning line; the hook still allows.
fn register_on_backend(ctx: &Ctx, home: &concur::Home, id: &concur::SessionId) {
    let backend = match super::session::backend(ctx, BACKEND_BUDGET) {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(e) => {
            eprintln!("concur: hook: warning: {}", e.message);
            return;
        }
    };
    let Ok(reg) = concur::session::Registry::open(home) else {
        return;
    };
    if let Ok(Some(s)) = reg.get(id) {
        super::session::start_on_backend(
            Some(backend),
            &reg,
            &s,
            super::session::DEFAULT_TTL,
            "hook",
        );
    }
}

/// Exports the session id for the agent's later Bash calls (`$CLAUDE_ENV_FILE`).
fn export_session(id: &concur::SessionId) {
    let Some(file) = std::env::var_os("CLAUDE_ENV_FILE") else {
        return;
    };
    let line = format!("export CONCUR_SESSION={id}\n");
    let opts = concur::append::AppendOptions::new().fsync(false);
    if let Err(e) = opts.append(&PathBuf::from(file), line.as_bytes()) {
        eprintln!("concur: hook: {e}");
    }
}

fn install(
    ctx: &Ctx,
    agent: &str,
    settings: &std::path::Path,
    dry_run: bool,
    command: Option<String>,
) -> Result<Exit, CliError> {
    let command = command.unwrap_or_else(|| format!("concur hook {agent}"));
    let done = hook::install::install(settings, agent_of(agent), &command, dry_run)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "settings": done.settings, "changed": done.changed, "backup": done.backup,
            "dry_run": dry_run, "diff": done.diff,
        }));
    } else if dry_run {
        if done.changed {
            print!("{}", done.diff);
        } else {
            print_line("already installed: nothing to change");
        }
    } else if done.changed {
        print_line(&format!(
            "installed {command} hooks in {}",
            settings.display()
        ));
    } else {
        print_line("already installed: nothing to change");
    }
    Ok(Exit::Ok)
}
