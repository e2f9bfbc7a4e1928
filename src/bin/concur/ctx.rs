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
#[allow(dead_code)] // used by the verbs as they land
pub struct Ctx {
    /// `--json`: machine-readable output on stdout.
    pub json: bool,
    /// `--session`, if given.
    pub session_flag: Option<String>,
    /// `--config`, if given.
    pub config_flag: Option<PathBuf>,
    home: OnceCell<Home>,
}

#[allow(dead_code)] // used by the verbs as they land
impl Ctx {
    /// A context from the parsed global options.
    pub fn new(json: bool, session_flag: Option<String>, config_flag: Option<PathBuf>) -> Ctx {
        Ctx {
            json,
            session_flag,
            config_flag,
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

    /// The session id, if one is set (validated).
    pub fn session(&self) -> Result<Option<SessionId>, CliError> {
        Ok(SessionId::resolve(self.session_flag.as_deref())?)
    }

    /// The session id, which the verb requires.
    pub fn require_session(&self) -> Result<SessionId, CliError> {
        self.session()?.ok_or_else(|| {
            CliError::usage("no session id: pass --session ID or set CONCUR_SESSION")
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
