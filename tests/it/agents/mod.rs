//! End to end through the real agent CLIs: Claude Code, Gemini CLI and Codex, installed by
//! scripts/agents at pinned versions, each pointed at our scripted model server
//! (tests/agents/model), with concur's hooks installed only through `concur hook install`.
//!
//! The agent is never stood in for: every hook call below is made by the agent's own launcher,
//! for a tool call the scripted model asked for. What is checked is what the agent sent back to
//! the model (tool results, denials) and the bytes of the files afterwards.

/// The tests of one agent: the two-session scenario and the fail-closed one, each skipped (or,
/// in CI, failed) when the agent's CLI is not installed.
macro_rules! agent_tests {
    ($agent:expr, $two:ident, $closed:ident) => {
        #[test]
        fn $two() {
            if let Some(bin) = super::cli(&$agent) {
                let lab = super::Lab::new(&$agent, bin);
                super::scenario::two_sessions(&$agent, &lab);
            }
        }

        #[test]
        fn $closed() {
            if let Some(bin) = super::cli(&$agent) {
                super::scenario::fails_closed(&$agent, &bin);
            }
        }
    };
}
use agent_tests;

mod browser;
mod claude;
mod codex;
mod gemini;
mod model;
mod scenario;

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub use model::Model;

/// How long one agent run may take before the test kills it (a hang is a failure, not a sync).
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// One agent CLI: where it is installed, how it is configured and started, the shape of its
/// tool calls.
pub trait Agent {
    /// `--agent` value of `concur hook install` and `concur hook`.
    fn name(&self) -> &'static str;
    /// `<name>-<version>` directory in the agent cache and the executable's name (scripts/agents).
    fn install(&self) -> (&'static str, &'static str);
    /// Writes the agent's own configuration (model endpoint, auth, trust) under `lab.agent_home`.
    fn prepare(&self, lab: &Lab);
    /// The settings file `concur hook install --settings` writes for this agent.
    fn settings(&self, lab: &Lab) -> PathBuf;
    /// The command for one session whose model is at `url`, run in the lab's repository.
    fn command(&self, lab: &Lab, url: &str) -> Command;
    /// Tool calls, in the script's form `{"name": ..., "input": ...}`.
    fn edit(&self, path: &Path, old: &str, new: &str) -> Value;
    fn write(&self, path: &Path, content: &str) -> Value;
    fn shell(&self, command: &str) -> Value;
    fn read(&self, path: &Path) -> Value;
    /// A read the agent needs before it edits an existing file (Claude Code refuses to edit a
    /// file it has not read), or `None`.
    fn prime(&self, path: &Path) -> Option<Value>;
}

/// The agent cache of scripts/agents.
fn agent_cache() -> PathBuf {
    match std::env::var_os("CONCUR_AGENT_CACHE") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/concur/agents"),
    }
}

/// The installed CLI, or `None` (test skipped with a message) when it is missing outside CI.
/// In CI (`CI` set) a missing CLI fails the test: the agent tests must not pass by not running.
pub fn cli(agent: &dyn Agent) -> Option<PathBuf> {
    let (dir, bin) = agent.install();
    installed(agent.name(), dir, bin)
}

/// `<dir>/node_modules/.bin/<bin>` in the agent cache (scripts/agents), or `None` (skipped with
/// a message; a failure in CI) when it is missing.
pub fn installed(what: &str, dir: &str, bin: &str) -> Option<PathBuf> {
    let p = agent_cache().join(dir).join("node_modules/.bin").join(bin);
    if p.exists() {
        return Some(p);
    }
    skip(&format!(
        "{what} is not installed at {} (run scripts/agents, which needs npm)",
        p.display()
    ));
    None
}

/// Says why a test does not run; in CI (`CI` set) that is a failure instead.
pub fn skip(msg: &str) {
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("SKIPPED: {msg}");
}

/// One test's world: a concur home, a git checkout, the agent's own HOME, a bin directory with
/// `concur` for the agents' PATH.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub repo: PathBuf,
    pub agent_home: PathBuf,
    pub bin_dir: PathBuf,
    pub cli: PathBuf,
    /// The PATH the agents run with: concur's bin directory first, then the system's.
    pub path: String,
}

impl Lab {
    pub fn new(agent: &dyn Agent, cli: PathBuf) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let lab = Lab {
            home: root.join("concur-home"),
            repo: root.join("repo"),
            agent_home: root.join("agent-home"),
            bin_dir: root.join("bin"),
            path: format!(
                "{}:/usr/local/bin:/usr/bin:/bin",
                root.join("bin").display()
            ),
            cli,
            dir,
        };
        for d in [&lab.home, &lab.repo, &lab.agent_home, &lab.bin_dir] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::os::unix::fs::symlink(crate::util::bin(), lab.bin_dir.join("concur")).unwrap();
        // the user's login profile puts concur on the PATH, as `cargo install`'s ~/.cargo/env
        // line does (agents whose shell tool runs a login shell reset PATH from /etc/profile)
        put_file(
            &lab.agent_home.join(".profile"),
            &format!("PATH=\"{}:$PATH\"\n", lab.bin_dir.display()),
        );
        let git = Command::new("git")
            .args(["init", "-q"])
            .current_dir(&lab.repo)
            .output()
            .unwrap();
        assert!(git.status.success(), "git init: {git:?}");
        agent.prepare(&lab);
        lab
    }

    /// A command with the lab's clean environment (nothing of the test runner's own agent
    /// session leaks in), run in the repository.
    pub fn env_cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", &self.path)
            .env("HOME", &self.agent_home)
            .env("CONCUR_HOME", &self.home)
            .env("LANG", "C.UTF-8")
            .current_dir(&self.repo)
            .stdin(Stdio::null());
        c
    }

    /// `concur ARGS...` as the user at the terminal: no session.
    pub fn concur<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.env_cmd(crate::util::bin())
            .args(args)
            .output()
            .unwrap()
    }

    /// Writes `$CONCUR_HOME/concur.toml`.
    pub fn config(&self, text: &str) {
        put_file(&self.home.join("concur.toml"), text);
    }

    /// The one documented way in: `concur hook install --agent A --settings F`.
    pub fn install_hooks(&self, agent: &dyn Agent) {
        self.install_hooks_with(agent, &crate::util::bin());
    }

    /// `concur hook install` run from the concur binary at `concur` (the one the user has).
    pub fn install_hooks_with(&self, agent: &dyn Agent, concur: &Path) {
        let settings = self.settings_arg(agent);
        let o = self
            .env_cmd(concur)
            .args(
                ["hook", "install", "--agent", agent.name(), "--settings"]
                    .iter()
                    .map(OsStr::new)
                    .chain([settings.as_os_str()]),
            )
            .output()
            .unwrap();
        assert!(o.status.success(), "concur hook install: {o:?}");
    }

    fn settings_arg(&self, agent: &dyn Agent) -> PathBuf {
        let s = agent.settings(self);
        std::fs::create_dir_all(s.parent().unwrap()).unwrap();
        s
    }

    /// A path in the repository.
    pub fn file(&self, name: &str) -> PathBuf {
        self.repo.join(name)
    }

    pub fn put(&self, name: &str, text: &str) {
        put_file(&self.file(name), text);
    }

    pub fn bytes(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.file(name)).ok()
    }

    /// Starts one session of the agent against `model`'s script for `session`.
    pub fn start(&self, agent: &dyn Agent, model: &Model, session: &str) -> Run {
        let mut c = agent.command(self, &model.url(session));
        // its own process group: a crash is the whole agent going (Gemini CLI runs as a child of
        // its launcher), and nothing is left behind
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        Run {
            name: session.to_string(),
            child: Some(c.spawn().expect("start agent CLI")),
        }
    }
}

/// A running agent CLI process.
pub struct Run {
    pub name: String,
    child: Option<Child>,
}

impl Run {
    /// Waits for the agent to exit (killing it after [`RUN_LIMIT`]) and returns its output.
    pub fn finish(mut self) -> Output {
        let mut child = self.child.take().unwrap();
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let t = std::thread::spawn(move || {
            let e = std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = err.read_to_end(&mut v);
                v
            });
            let mut o = Vec::new();
            let _ = out.read_to_end(&mut o);
            let status = child.wait().unwrap();
            let _ = tx.send(());
            Output {
                status,
                stdout: o,
                stderr: e.join().unwrap(),
            }
        });
        if rx.recv_timeout(RUN_LIMIT).is_err() {
            // not reaped yet (the waiting thread has not returned), so the pid is still ours
            // SAFETY: kill has no memory-safety preconditions; -pid is the agent's group.
            unsafe { libc::kill(-pid.cast_signed(), libc::SIGKILL) };
            let o = t.join().unwrap();
            panic!(
                "{} did not finish within {RUN_LIMIT:?}: {}",
                self.name,
                show(&o)
            );
        }
        t.join().unwrap()
    }

    /// SIGKILL to the agent's whole process group, as a crash would: no `SessionEnd` hook runs.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        kill_group(&child);
        child.wait().unwrap();
    }
}

/// SIGKILL to the process group `child` leads (it is not reaped yet, so the id is still its).
fn kill_group(child: &Child) {
    // SAFETY: kill has no memory-safety preconditions; a negative pid names a process group.
    unsafe { libc::kill(-child.id().cast_signed(), libc::SIGKILL) };
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            kill_group(c);
            let _ = c.wait();
        }
    }
}

/// Creates or truncates `path` with `text` (test fixtures: no atomicity needed).
pub fn put_file(path: &Path, text: &str) {
    std::io::Write::write_all(&mut std::fs::File::create(path).unwrap(), text.as_bytes()).unwrap();
}

/// An agent's output for a failure message.
pub fn show(o: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
