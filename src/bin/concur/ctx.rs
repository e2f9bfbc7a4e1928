//! What every verb gets: the global options, and lazy access to the home, the session id and the
//! configuration (resolved only by verbs that need them, so start-up stays lean).

use std::cell::OnceCell;
use std::io::Write;
use std::path::PathBuf;

use concur::config::Config;
use concur::{Home, SessionId};

use crate::exit::CliError;

/// Global options and lazily resolved shared state.
#[derive(Debug)]
pub struct Ctx {
    /// `--json`: machine-readable output on stdout.
    pub json: bool,
    /// `--session`, if given.
    pub session_flag: Option<String>,
    /// `--config`, if given.
    pub config_flag: Option<PathBuf>,
    /// `--backend`, if given.
    pub backend_flag: Option<String>,
    home: OnceCell<Home>,
}

impl Ctx {
    /// A context from the parsed global options.
    pub fn new(json: bool, session_flag: Option<String>, config_flag: Option<PathBuf>) -> Ctx {
        Ctx {
            json,
            session_flag,
            config_flag,
            backend_flag: None,
            home: OnceCell::new(),
        }
    }

    /// The checked runtime home (created on first use).
    pub fn home(&self) -> Result<&Home, CliError> {
        if let Some(h) = self.home.get() {
            return Ok(h);
        }
        let h = Home::resolve()?;
        Ok(self.home.get_or_init(|| h))
    }

    /// The session id (validated): `--session`, else the environment ([`SessionId::resolve`]),
    /// else the registered session whose agent process is an ancestor of this one — what a verb
    /// run in an agent's shell tool acts for when the agent exports no id (Gemini CLI).
    pub fn session(&self) -> Result<Option<SessionId>, CliError> {
        if let Some(id) = SessionId::resolve(self.session_flag.as_deref())? {
            return Ok(Some(id));
        }
        // Only a home that exists can hold a registered session: never create one for this.
        let exists = self.home.get().is_some()
            || concur::home::default_path().is_ok_and(|p| p.join("sessions").is_dir());
        if !exists {
            return Ok(None);
        }
        Ok(self.home().ok().and_then(concur::session::of_caller))
    }

    /// The session id, which the verb requires.
    pub fn require_session(&self) -> Result<SessionId, CliError> {
        self.session()?.ok_or_else(|| {
            CliError::usage(
                "no session id: pass --session ID or set CONCUR_SESSION \
                 (no agent session is registered above this process)",
            )
        })
    }

    /// The configuration (defaults when no file exists).
    pub fn config(&self) -> Result<Config, CliError> {
        let home = match &self.config_flag {
            Some(_) => None,
            None => Some(self.home()?.path().to_path_buf()),
        };
        Ok(Config::load(self.config_flag.as_deref(), home.as_deref())?)
    }

    /// Where the backend choice comes from: `--backend`, `--config`.
    fn choice(&self, budget: Option<std::time::Duration>) -> concur::backend::Choice<'_> {
        concur::backend::Choice {
            flag: self.backend_flag.as_deref(),
            config_file: self.config_flag.as_deref(),
            budget,
        }
    }

    /// The coordination backend URL in effect: `--backend`, else `$CONCUR_BACKEND`, else the
    /// config's `[backend] url`; `None` means local files.
    pub fn backend_url(&self) -> Result<Option<String>, CliError> {
        let choice = self.choice(None);
        if let Some(u) = choice.explicit() {
            return Ok(Some(u));
        }
        let home = match &self.config_flag {
            Some(_) => None,
            None => Some(self.home()?),
        };
        Ok(choice.url(home)?)
    }

    /// `--backend` or `$CONCUR_BACKEND` (not the config file).
    fn explicit_backend(&self) -> Option<String> {
        self.choice(None).explicit()
    }

    /// The backend in effect ([`concur::backend::Backend`]), with the home when it resolves.
    pub fn backend(&self) -> Result<concur::backend::Backend, CliError> {
        self.backend_within(None)
    }

    /// Like [`Ctx::backend`], with every backend call (retries on other members included)
    /// bounded by `budget` when given, for callers on a time budget such as an agent's hook.
    pub fn backend_within(
        &self,
        budget: Option<std::time::Duration>,
    ) -> Result<concur::backend::Backend, CliError> {
        let url = self.backend_url()?;
        let home = match url {
            None => Some(self.home()?.clone()),
            Some(_) => self.home().ok().cloned(),
        };
        Ok(concur::backend::Backend::open(
            url.as_deref(),
            home,
            budget,
        )?)
    }

    /// The task-lease store: etcd when that backend is set, else `SQLite` in the home.
    pub fn lease_store(&self) -> Result<Box<dyn concur::lease::Store + Send>, CliError> {
        Ok(self.backend()?.leases()?)
    }

    /// For verbs on local files: when a backend was asked for explicitly, says once on stderr
    /// that this verb stays local.
    pub fn note_local(&self, verb: &str) {
        if let Some(u) = self.explicit_backend() {
            eprintln!(
                "concur: {verb}: note: {verb} works on local files and stays local; backend {u} \
                 applies to lock --name, slot, token, lease, session and json --key"
            );
        }
    }

    /// Prints a verb's JSON result (`{"ok":true, ...fields}`) on stdout.
    #[allow(clippy::unused_self)] // a method so verbs read uniformly: ctx.print_json(..)
    pub fn print_json(&self, value: &serde_json::Value) {
        let mut obj = serde_json::Map::new();
        obj.insert("ok".into(), serde_json::Value::Bool(true));
        if let serde_json::Value::Object(m) = value {
            obj.extend(m.clone());
        }
        print_line(&serde_json::Value::Object(obj).to_string());
    }
}

/// Prints one line on stdout; a closed pipe is not an error (the reader went away).
pub fn print_line(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

/// The current directory; a failure is an I/O error (exit 74).
pub fn cwd() -> Result<PathBuf, CliError> {
    std::env::current_dir().map_err(|e| {
        CliError::new(
            crate::exit::Exit::Io,
            "io",
            format!("cannot read current directory: {e}"),
        )
    })
}
