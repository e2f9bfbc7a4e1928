//! `concur hook doctor`: would the installed hooks run, for the right process, and refuse when
//! concur is gone? Each answer comes from doing it: the installed command line is launched the
//! way the agent launches hooks (`sh -c` for Claude Code and Cursor, `bash -c` for Codex and
//! Gemini CLI), with this process standing in for the agent.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Agent;
use super::install::{Spec, is_ours, read_opt, specs};

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// What was checked (`settings`, `installed`, `binary`, `agent-pid`, `fails-closed`,
    /// `codex-config`, `cursor`).
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// The checks for one agent's settings file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The agent.
    pub agent: &'static str,
    /// The settings file checked.
    pub settings: PathBuf,
    /// The checks, in order; later ones are skipped when an earlier one makes them moot.
    pub checks: Vec<Check>,
}

impl Report {
    /// True when every check passed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    fn add(&mut self, name: &'static str, ok: bool, detail: impl Into<String>) -> bool {
        self.checks.push(Check {
            name,
            ok,
            detail: detail.into(),
        });
        ok
    }
}

/// Checks the hooks of `agent`, or of every agent whose settings file exists when `None`;
/// `settings_of` names an agent's settings file.
///
/// # Errors
/// As `settings_of`, and when Codex's `config.toml` cannot be located.
pub fn check_agents<E: From<crate::Error>>(
    agent: Option<Agent>,
    mut settings_of: impl FnMut(Agent) -> Result<PathBuf, E>,
    home: &Path,
) -> Result<Vec<Report>, E> {
    let agents = match agent {
        Some(a) => vec![a],
        None => vec![Agent::Claude, Agent::Codex, Agent::Gemini, Agent::Cursor],
    };
    let mut reports = Vec::new();
    for a in agents {
        let file = settings_of(a)?;
        if agent.is_none() && !file.exists() {
            continue;
        }
        let config = if a == Agent::Codex {
            Some(super::codex::config_path()?)
        } else {
            None
        };
        reports.push(check(a, &file, config.as_deref(), home));
    }
    Ok(reports)
}

/// True when there are reports and every check of every one passed.
pub fn healthy(reports: &[Report]) -> bool {
    !reports.is_empty() && reports.iter().all(Report::ok)
}

/// The `--json` fields: `healthy`, and per agent its settings, `ok` and checks.
pub fn to_json(reports: &[Report]) -> serde_json::Value {
    let v: Vec<_> = reports
        .iter()
        .map(|r| serde_json::json!({"agent": r.agent, "settings": r.settings, "ok": r.ok(), "checks": r.checks}))
        .collect();
    serde_json::json!({ "healthy": healthy(reports), "agents": v })
}

/// The reports for people: per agent its settings file, then one line per check.
pub fn text(reports: &[Report]) -> String {
    use std::fmt::Write;
    if reports.is_empty() {
        return "no agent settings found: run concur hook install --agent AGENT\n".into();
    }
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(out, "{} ({})", r.agent, r.settings.display());
        for c in &r.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            let _ = writeln!(out, "  {mark} {:<13} {}", c.name, c.detail);
        }
    }
    out
}

/// The program and flag an agent runs a hook command line with.
pub fn launcher(agent: Agent) -> (&'static str, &'static str) {
    match agent {
        Agent::Claude | Agent::Cursor => ("sh", "-c"),
        Agent::Codex | Agent::Gemini => ("bash", "-c"),
    }
}

/// Checks `agent`'s hooks in `settings`; `codex_config` is Codex's `config.toml`, `home` the
/// concur home its sandbox must be able to write.
pub fn check(agent: Agent, settings: &Path, codex_config: Option<&Path>, home: &Path) -> Report {
    let mut r = Report {
        agent: agent.name(),
        settings: settings.to_path_buf(),
        checks: Vec::new(),
    };
    let text = match read_opt(settings) {
        Ok(Some(t)) => t,
        Ok(None) => {
            r.add("settings", false, "no such file: run concur hook install");
            return r;
        }
        Err(e) => {
            r.add("settings", false, e.to_string());
            return r;
        }
    };
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => {
            r.add("settings", false, "not a JSON object");
            return r;
        }
        Err(e) => {
            r.add("settings", false, format!("not JSON: {e}"));
            return r;
        }
    };
    r.add("settings", true, "parses");
    let Some(command) = installed(&mut r, agent, &v) else {
        return r;
    };
    if !binary(&mut r, &command) {
        return r;
    }
    agent_pid(&mut r, agent, &command);
    fails_closed(&mut r, agent, &command);
    if let Some(config) = codex_config {
        codex(&mut r, config, settings, &text, &command, home);
    }
    r
}

/// The lines of the hook entries of `event` in `v` (nested `hooks` groups or Cursor's flat
/// list), with the group's matcher.
fn lines(v: &serde_json::Value, event: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for e in v["hooks"][event].as_array().into_iter().flatten() {
        let matcher = e["matcher"].as_str().map(str::to_owned);
        if let Some(c) = e["command"].as_str() {
            out.push((matcher.clone(), c.to_owned()));
        }
        for h in e["hooks"].as_array().into_iter().flatten() {
            if let Some(c) = h["command"].as_str() {
                out.push((matcher.clone(), c.to_owned()));
            }
        }
    }
    out
}

/// Every event concur installs has a concur entry whose matcher covers concur's tools; returns
/// the command line.
fn installed(r: &mut Report, agent: Agent, v: &serde_json::Value) -> Option<String> {
    let mut command = None;
    let mut missing = Vec::new();
    for Spec { event, matcher, .. } in specs(agent) {
        let found = lines(v, event)
            .into_iter()
            .find(|(_, c)| is_ours(c, agent, ""));
        match found {
            Some((m, c)) => {
                if let (Some(want), Some(have)) = (matcher, m.as_deref()) {
                    let have: Vec<&str> = have.split('|').collect();
                    let lacking: Vec<&str> =
                        want.split('|').filter(|t| !have.contains(t)).collect();
                    if !lacking.is_empty() {
                        missing.push(format!("{event} does not match {}", lacking.join(", ")));
                    }
                }
                command.get_or_insert(c);
            }
            None => missing.push(format!("no concur hook for {event}")),
        }
    }
    let ok = missing.is_empty() && command.is_some();
    let detail = if ok {
        format!("{} events", specs(agent).len())
    } else {
        format!("{}: run concur hook install", missing.join("; "))
    };
    r.add("installed", ok, detail);
    command
}

/// The concur binary a hook command line runs: the wrapper's `c=PATH`, else the first word
/// looked up on `PATH`.
pub fn binary_of(command: &str) -> Option<PathBuf> {
    if let Some(rest) = command.strip_prefix("c=") {
        let path = if let Some(q) = rest.strip_prefix('\'') {
            // 'a'\''b' quoting: up to the `';` that ends the assignment.
            let end = q.find("'; ")?;
            q[..end].replace("'\\''", "'")
        } else {
            rest.split(';').next()?.to_owned()
        };
        return Some(PathBuf::from(path));
    }
    let first = command.split_whitespace().next()?;
    if first.contains('/') {
        return Some(PathBuf::from(first));
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(first))
            .find(|c| is_executable(c))
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn binary(r: &mut Report, command: &str) -> bool {
    match binary_of(command) {
        Some(b) if is_executable(&b) => r.add("binary", true, b.display().to_string()),
        Some(b) => r.add(
            "binary",
            false,
            format!("{} is missing or not executable", b.display()),
        ),
        None => r.add(
            "binary",
            false,
            format!("cannot find the concur binary of {command:?} on PATH"),
        ),
    }
}

/// Runs `command` the way `agent` runs hooks, `payload` on stdin, in a scratch concur home.
fn launch(
    agent: Agent,
    command: &str,
    payload: &serde_json::Value,
    home: &Path,
    path_env: Option<&str>,
) -> std::io::Result<std::process::Output> {
    // A hook that exits before reading its payload must not kill this process with SIGPIPE.
    crate::sys::signal::ignore_sigpipe();
    let (prog, flag) = launcher(agent);
    let mut c = Command::new(prog);
    c.args([flag, command])
        .env("CONCUR_HOME", home)
        .env_remove("CLAUDE_ENV_FILE")
        .env_remove("CONCUR_BACKEND")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = path_env {
        c.env("PATH", p);
    }
    let mut child = c.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(payload.to_string().as_bytes());
    }
    child.wait_with_output()
}

fn scratch() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("concur-doctor").tempdir()
}

/// Launches the hook's `SessionStart` like the agent would, this process standing in for the
/// agent, and reads which pid it registered.
fn agent_pid(r: &mut Report, agent: Agent, command: &str) {
    let result = (|| -> Result<String, String> {
        let dir = scratch().map_err(|e| e.to_string())?;
        let home = dir.path().join("home");
        let id = format!("concur-doctor-{}", std::process::id());
        let payload = match agent {
            Agent::Cursor => serde_json::json!({"conversation_id": id,
                "hook_event_name": "sessionStart", "workspace_roots": [dir.path()]}),
            _ => serde_json::json!({"session_id": id, "hook_event_name": "SessionStart",
                "cwd": dir.path()}),
        };
        let out = launch(agent, command, &payload, &home, None).map_err(|e| e.to_string())?;
        let rec = std::fs::read_to_string(home.join("sessions").join(format!("{id}.json")))
            .map_err(|_| {
                format!(
                    "the hook registered no session (exit {:?}): {}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            })?;
        let v: serde_json::Value = serde_json::from_str(&rec).map_err(|e| e.to_string())?;
        let pid = v["pid"].as_u64().unwrap_or(0);
        let me = u64::from(std::process::id());
        if pid == me {
            Ok(format!(
                "a hook launched with {} records pid {pid}: the process that launched it (the agent)",
                launcher(agent).0
            ))
        } else {
            Err(format!(
                "a hook launched with {} records pid {pid}, not the launching process {me}",
                launcher(agent).0
            ))
        }
    })();
    match result {
        Ok(d) => r.add("agent-pid", true, d),
        Err(d) => r.add("agent-pid", false, d),
    };
}

/// Runs the hook for a file write with its binary gone (a wrapper pointing at a missing path,
/// or a bare command with an empty `PATH`): it must exit 2.
fn fails_closed(r: &mut Report, agent: Agent, command: &str) {
    let Ok(dir) = scratch() else {
        r.add("fails-closed", false, "cannot create a scratch directory");
        return;
    };
    let missing = dir.path().join("gone").join("concur");
    let (cmd, path_env) = match binary_of(command) {
        Some(b) if command.starts_with("c=") => {
            let quoted = crate::reserve::git::shell_quote(&b.to_string_lossy());
            let gone = crate::reserve::git::shell_quote(&missing.to_string_lossy());
            (command.replacen(&quoted, &gone, 1), None)
        }
        _ => (command.to_owned(), Some("/nonexistent")),
    };
    let (event, tool) = match agent {
        Agent::Gemini => ("BeforeTool", "write_file"),
        Agent::Cursor => ("preToolUse", "Write"),
        _ => ("PreToolUse", "Write"),
    };
    let payload = serde_json::json!({"session_id": "concur-doctor", "hook_event_name": event,
        "tool_name": tool, "tool_input": {"file_path": missing}, "cwd": dir.path()});
    match launch(agent, &cmd, &payload, &dir.path().join("home"), path_env) {
        Ok(o) if o.status.code() == Some(2) => r.add(
            "fails-closed",
            true,
            "with the binary gone the hook exits 2 (the tool call is refused)",
        ),
        Ok(o) => r.add(
            "fails-closed",
            false,
            format!(
                "with the binary gone the hook exits {:?}, which lets the tool call through: \
                 reinstall with concur hook install (a fail-closed wrapper)",
                o.status.code()
            ),
        ),
        Err(e) => r.add(
            "fails-closed",
            false,
            format!("cannot launch the hook: {e}"),
        ),
    };
}

/// Codex: hooks on, concur's handlers trusted with the hash Codex computes, the concur home
/// among the sandbox's writable roots.
fn codex(
    r: &mut Report,
    config: &Path,
    hooks_json: &Path,
    hooks: &str,
    command: &str,
    home: &Path,
) {
    let text = read_opt(config).ok().flatten().unwrap_or_default();
    let doc: toml::Table = match toml::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            r.add("codex-config", false, format!("{}: {e}", config.display()));
            return;
        }
    };
    let mut wrong = Vec::new();
    if doc
        .get("features")
        .and_then(|f| f.get("hooks"))
        .and_then(toml::Value::as_bool)
        == Some(false)
    {
        wrong.push("[features] hooks = false".to_owned());
    }
    let v: serde_json::Value = serde_json::from_str(hooks).unwrap_or_default();
    let state = doc.get("hooks").and_then(|h| h.get("state"));
    for t in super::codex::trusted(hooks_json, &v, command) {
        let have = state
            .and_then(|s| s.get(&t.key))
            .and_then(|e| e.get("trusted_hash"))
            .and_then(toml::Value::as_str);
        if have != Some(t.hash.as_str()) {
            wrong.push(format!("{} is not trusted (codex exec skips it)", t.key));
        }
    }
    let root = home.to_string_lossy();
    let writable = doc
        .get("sandbox_workspace_write")
        .and_then(|s| s.get("writable_roots"))
        .and_then(toml::Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(&root)));
    if !writable {
        wrong.push(format!(
            "{root} is not in [sandbox_workspace_write] writable_roots"
        ));
    }
    if wrong.is_empty() {
        r.add(
            "codex-config",
            true,
            format!(
                "{}: hooks on and trusted, concur home writable",
                config.display()
            ),
        );
    } else {
        r.add(
            "codex-config",
            false,
            format!(
                "{}: {}: run concur hook install --agent codex",
                config.display(),
                wrong.join("; ")
            ),
        );
    }
}
