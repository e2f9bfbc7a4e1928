//! `concur hook claude|codex|gemini|cursor` (an agent's hook, payload on stdin) and
//! `concur hook install|uninstall|doctor|plugin` (in `hook_setup.rs`).

use std::path::PathBuf;

use concur::hook::{self, Agent, Answer, Event};

use crate::ctx::{Ctx, print_line};
use crate::exit::{CliError, Exit};

/// Agent hooks (claude, codex, gemini, cursor): write guard, reservations, sessions; install
///
/// Reads the agent's hook payload on stdin. Denies file-tool edits and shell-tool writes to
/// `[guard] protect` paths and to files another live session reserved (fail closed); at
/// SessionStart registers the agent process, exports the session id and names the other live
/// sessions; at SessionEnd ends the session as `concur session end` does (leases, reservations,
/// markers, etcd registration).
///
/// Set up (user-level settings by default; --project for the checkout's own):
///   concur hook install --agent claude --dry-run     # show the diff
///   concur hook install --agent claude               # ~/.claude/settings.json
///   concur hook doctor                               # would the hooks run, fail closed?
///   concur hook uninstall --agent claude             # put the file back as it was
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Claude Code hook (PreToolUse Write/Edit/MultiEdit/NotebookEdit/Bash, SessionStart,
    /// SessionEnd)
    Claude,
    /// Codex CLI hook (PreToolUse Edit/Write/apply_patch/Bash, SessionStart)
    Codex,
    /// Gemini CLI hook (BeforeTool write_file/replace/edit/run_shell_command, SessionStart,
    /// SessionEnd)
    Gemini,
    /// Cursor hook (preToolUse, beforeShellExecution, sessionStart; conversation_id)
    Cursor,
    /// Git pre-commit hook: refuse a commit staging files another live session reserved
    ///
    /// Installed by `concur hook install --git`; exit 1 names the blocked files and holders.
    GitPreCommit,
    /// Merge concur's hook entries into an agent's settings (idempotent, locked, atomic,
    /// backup kept as FILE.bak; FILE.concur-install remembers what was there for uninstall)
    ///
    /// Installs the file tools and the shell tool of the agent, and its session events. The
    /// command is a fail-closed wrapper around this concur's absolute path: if the binary is
    /// gone, the tool call is refused (exit 2), not let through. For codex, also trusts the
    /// hooks, turns them on and makes the concur home writable from the sandbox (config.toml).
    ///
    /// Examples:
    ///   concur hook install --agent claude            # ~/.claude/settings.json
    ///   concur hook install --agent codex --project   # ./.codex/hooks.json + ~/.codex/config.toml
    #[command(verbatim_doc_comment)]
    Install {
        /// The agent: claude, codex, gemini or cursor
        #[arg(long, value_parser = AGENTS, required_unless_present = "git")]
        agent: Option<String>,
        #[command(flatten)]
        target: Target,
        /// Install the git pre-commit hook of this repository instead (edit reservations;
        /// an existing pre-commit hook is kept and runs first)
        #[arg(long, conflicts_with_all = ["agent", "settings", "project", "dry_run", "command", "binary"])]
        git: bool,
        /// Print the diff and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Install this command line verbatim instead of the fail-closed wrapper
        #[arg(long, value_name = "CMD", conflicts_with = "binary")]
        command: Option<String>,
        /// The concur binary the wrapper runs (default: this one)
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
    },
    /// Remove concur's hooks: the file is put back byte for byte when nothing else changed it
    /// since the install, else only concur's entries are taken out
    ///
    /// Example: concur hook uninstall --agent claude
    Uninstall {
        /// The agent: claude, codex, gemini or cursor
        #[arg(long, value_parser = AGENTS)]
        agent: String,
        #[command(flatten)]
        target: Target,
    },
    /// Check that the installed hooks would run: settings parse, binary executable, the agent
    /// pid a hook launched like the agent launches it records, a missing binary fails closed
    ///
    /// Exit 0 when every check passes, 3 otherwise.
    ///
    /// Example: concur hook doctor --agent claude --json
    Doctor {
        /// The agent (default: every agent whose settings exist)
        #[arg(long, value_parser = AGENTS)]
        agent: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Write a Claude Code plugin (DIR/.claude-plugin/plugin.json + DIR/hooks/hooks.json)
    /// running concur's hooks: an alternative to merging settings
    ///
    /// Example: concur hook plugin ~/concur-plugin && claude --plugin-dir ~/concur-plugin
    Plugin {
        /// The plugin directory (created)
        dir: PathBuf,
        /// The concur binary the hooks run (default: this one)
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
    },
}

const AGENTS: [&str; 4] = ["claude", "codex", "gemini", "cursor"];

/// Which settings file: the agent's user-level one by default.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The settings file (default: the agent's user-level one, e.g. ~/.claude/settings.json)
    #[arg(long, value_name = "PATH", conflicts_with = "project")]
    pub settings: Option<PathBuf>,
    /// Use the checkout's own settings (.claude/settings.json, .codex/hooks.json,
    /// .gemini/settings.json, .cursor/hooks.json) in DIR, default: the git root above the
    /// current directory
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    #[allow(clippy::option_option)] // absent / `--project` / `--project DIR`
    pub project: Option<Option<PathBuf>>,
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
            target,
            dry_run,
            command,
            binary,
            ..
        } => {
            let how = super::hook_setup::How {
                command,
                binary,
                dry_run,
            };
            return super::hook_setup::install(ctx, agent_of(&agent), &target, how);
        }
        Action::Install { .. } => {
            return Err(CliError::usage("hook install needs --agent, or --git"));
        }
        Action::Uninstall { agent, target } => {
            return super::hook_setup::uninstall(ctx, agent_of(&agent), &target);
        }
        Action::Doctor { agent, target } => {
            return super::hook_setup::doctor(ctx, agent.as_deref().map(agent_of), &target);
        }
        Action::Plugin { dir, binary } => return super::hook_setup::plugin(ctx, &dir, binary),
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
    let payload = match hook::payload(&input) {
        Ok(v) => v,
        Err(why) => return Answer::deny_exit2(&format!("concur guard: {why}; refusing")),
    };
    let event = hook::claude::classify(agent, &payload);
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
                    super::reserve_hook::write(agent, ctx, config.as_ref(), &payload, paths, cwd)
                }
                _ => a,
            }
        }
        Event::SessionStart { session, cwd } => session_start(agent, ctx, session.as_deref(), cwd),
        Event::SessionEnd { session } => {
            if let Some(id) = session_id(ctx, session.as_deref())
                && let Err(e) =
                    backend(ctx).and_then(|b| b.end_session(&id).map_err(|e| e.to_string()))
            {
                eprintln!("concur: hook: {e}");
            }
            Answer::allow()
        }
        Event::Foreign => Answer::allow(),
        Event::WriteEnded {
            paths,
            cwd,
            call,
            ok,
        } => super::reserve_hook::ended(agent, ctx, &payload, paths, cwd, call.as_deref(), *ok),
        _ => super::reserve_hook::other(agent, ctx, &payload),
    }
}

/// The session id: the payload's, else `--session`/the environment.
fn session_id(ctx: &Ctx, payload: Option<&str>) -> Option<concur::SessionId> {
    match payload {
        Some(id) => concur::SessionId::new(id).ok(),
        None => ctx.session().ok().flatten(),
    }
}

/// `SessionStart`: [`hook::session::on_start`] with this call's backend and reservations.
fn session_start(agent: Agent, ctx: &Ctx, session: Option<&str>, cwd: &std::path::Path) -> Answer {
    let Some(id) = session_id(ctx, session) else {
        eprintln!("concur: hook: SessionStart without a valid session id");
        return Answer::allow();
    };
    hook::session::on_start(agent, &id, cwd, backend(ctx), || {
        super::reserve_hook::context(ctx, Some(&id), cwd)
    })
}

/// The longest a session hook waits on a remote lease store (etcd), retries included: agents
/// give `SessionEnd` hooks 1.5 s in all.
const BACKEND_BUDGET: std::time::Duration = std::time::Duration::from_secs(1);

/// The backend of a session hook, its calls bounded by [`BACKEND_BUDGET`]. A backend that
/// cannot be opened (a malformed URL) is one warning line and the local backend: a session hook
/// never breaks the agent, and the session still starts and ends on this machine.
fn backend(ctx: &Ctx) -> Result<concur::backend::Backend, String> {
    ctx.backend_within(Some(BACKEND_BUDGET)).or_else(|e| {
        eprintln!("concur: hook: warning: {}", e.message);
        Ok(concur::backend::Backend::local(
            ctx.home().map_err(|e| e.message)?.clone(),
        ))
    })
}
