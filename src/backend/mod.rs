//! The coordination backend: local files in the runtime home, or an etcd cluster.
//!
//! Every coordination verb that can span machines (named locks, slots, tokens, task leases,
//! sessions, `json --key`, `once`) reaches its backend through one value, [`Backend`], resolved
//! once: `--backend URL`, else `$CONCUR_BACKEND`, else `[backend] url` in `concur.toml`, else
//! local. Each capability is a trait with a local and an etcd implementation; a verb calls its
//! trait and never asks which backend is in effect:
//!
//! | capability | trait | reached by |
//! |---|---|---|
//! | named locks | [`locks::Locks`] | [`Backend::locks`] |
//! | counting slots | [`slots::Slots`] | [`Backend::slots`] |
//! | one-time tokens (audited takes) | [`tokens::Tokens`] | [`Backend::tokens`] |
//! | keyed JSON documents, fencing | [`documents::Documents`] | [`Backend::documents`] |
//! | sessions, and the one session-end path | [`sessions::Sessions`] | [`Backend::sessions`], [`Backend::end_session`] |
//! | single-flight | [`once::Flights`] | [`Backend::flights`] |
//! | task leases | [`crate::lease::Store`] | [`Backend::leases`] |
//!
//! Waiting is one policy everywhere ([`Wait`]); a lock or slot held while a command runs is
//! one runner, [`crate::hold`], on every backend.
//!
//! ## Adding a backend
//! Open this module: add a variant to `Kind` and build it in [`Backend::open`] from its URL
//! scheme, then give each trait above an implementation beside the local and etcd ones (each
//! accessor's `match` gains one arm). The etcd adapters are about 210 lines in all (locks 49,
//! sessions 82, slots 32, documents 24, tokens 16, once 9) plus the lease store; everything
//! else they call is the backend's own client and primitives (for etcd, `crate::etcd`). The
//! tests in `tests/it/on_backends.rs` run every promise on each backend through one harness
//! (`on_both_backends!`): a new backend joins it there.
//!
//! Verbs on files the caller names (`append`, `write`, `json FILE`, `lock FILE`) are local by
//! nature and do not go through here.

pub mod held;
pub mod locks;
pub mod once;
pub mod slots;

use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::home::Home;

pub mod documents;
pub mod sessions;
pub mod tokens;

pub use crate::wait::Wait;

/// Where a backend choice came from: the explicit flag, the environment, the configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Choice<'a> {
    /// `--backend URL`.
    pub flag: Option<&'a str>,
    /// `--config FILE`; else `concur.toml` in the home is read.
    pub config_file: Option<&'a Path>,
    /// Bound every backend call (retries on other members included) by this, for callers on a
    /// time budget such as an agent's hook.
    pub budget: Option<Duration>,
}

impl Choice<'_> {
    /// `--backend`, else `$CONCUR_BACKEND` (empty means unset): a choice made for this call,
    /// without reading any file.
    #[must_use]
    pub fn explicit(&self) -> Option<String> {
        self.flag
            .map(str::to_string)
            .or_else(|| std::env::var("CONCUR_BACKEND").ok())
            .filter(|u| !u.is_empty())
    }

    /// The backend URL in effect: [`Choice::explicit`], else the configuration's `[backend]
    /// url` (read from `config_file`, else from `home`). `None` means local files.
    ///
    /// # Errors
    /// A configuration file that cannot be read or parsed.
    pub fn url(&self, home: Option<&Home>) -> Result<Option<String>> {
        if let Some(u) = self.explicit() {
            return Ok(Some(u));
        }
        let config = Config::load(self.config_file, home.map(Home::path))?;
        Ok(config.backend.url.filter(|u| !u.is_empty()))
    }
}

/// The backend in effect for one call: local files in the home, or an etcd cluster.
#[derive(Debug, Clone)]
pub struct Backend {
    kind: Kind,
    /// The runtime home: the local store, and on etcd the session registry and lease pool.
    home: Option<Home>,
}

#[derive(Debug, Clone)]
enum Kind {
    Local,
    #[cfg(feature = "etcd")]
    Etcd {
        client: crate::etcd::Client,
        url: String,
    },
}

impl Backend {
    /// Local files in `home`.
    #[must_use]
    pub fn local(home: Home) -> Backend {
        Backend {
            kind: Kind::Local,
            home: Some(home),
        }
    }

    /// The backend `choice` names, with `home` for what stays on this machine.
    ///
    /// # Errors
    /// An unreadable configuration, a URL that is not a backend this build knows.
    pub fn resolve(choice: &Choice<'_>, home: Option<Home>) -> Result<Backend> {
        let url = choice.url(home.as_ref())?;
        Backend::open(url.as_deref(), home, choice.budget)
    }

    /// The backend at `url` (`None`: local files in `home`).
    ///
    /// # Errors
    /// A URL this build has no backend for; a malformed etcd URL.
    pub fn open(
        url: Option<&str>,
        home: Option<Home>,
        budget: Option<Duration>,
    ) -> Result<Backend> {
        let Some(url) = url else {
            return Ok(Backend {
                kind: Kind::Local,
                home,
            });
        };
        #[cfg(feature = "etcd")]
        {
            let mut t = crate::etcd::Timeouts::default();
            if let Some(call) = budget {
                t.request = t.request.min(call / 2);
                t.call = t.call.min(call);
            }
            let client = crate::etcd::Client::with_timeouts(url, t)?;
            Ok(Backend {
                kind: Kind::Etcd {
                    client,
                    url: url.to_string(),
                },
                home,
            })
        }
        #[cfg(not(feature = "etcd"))]
        {
            let _ = (home, budget);
            Err(Error::Invalid(format!(
                "backend {url}: this concur was built without the etcd feature"
            )))
        }
    }

    /// `"local"` or `"etcd"`, as `--json` outputs name it.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Local => "local",
            #[cfg(feature = "etcd")]
            Kind::Etcd { .. } => "etcd",
        }
    }

    /// Whether this is the local backend.
    #[must_use]
    pub fn is_local(&self) -> bool {
        matches!(self.kind, Kind::Local)
    }

    /// The backend URL; `None` for local files.
    #[must_use]
    pub fn url(&self) -> Option<&str> {
        match &self.kind {
            Kind::Local => None,
            #[cfg(feature = "etcd")]
            Kind::Etcd { url, .. } => Some(url),
        }
    }

    /// The runtime home, when one was given.
    #[must_use]
    pub fn home(&self) -> Option<&Home> {
        self.home.as_ref()
    }

    /// The runtime home, which the local backend needs.
    ///
    /// # Errors
    /// [`Error::Invalid`] when none was given.
    pub fn require_home(&self) -> Result<&Home> {
        self.home
            .as_ref()
            .ok_or_else(|| Error::Invalid("no runtime home for the local backend".into()))
    }

    /// The etcd client, on the etcd backend.
    #[cfg(feature = "etcd")]
    #[must_use]
    pub fn etcd(&self) -> Option<&crate::etcd::Client> {
        match &self.kind {
            Kind::Local => None,
            Kind::Etcd { client, .. } => Some(client),
        }
    }

    /// The task-lease store: `SQLite` in the home, or etcd.
    ///
    /// # Errors
    /// The local store cannot be opened.
    pub fn leases(&self) -> Result<Box<dyn crate::lease::Store + Send>> {
        match &self.kind {
            Kind::Local => Ok(Box::new(crate::lease::sqlite::SqliteStore::open(
                self.require_home()?,
            )?)),
            #[cfg(feature = "etcd")]
            Kind::Etcd { client, .. } => {
                let registry = self
                    .home
                    .as_ref()
                    .and_then(|h| crate::session::Registry::open(h).ok());
                Ok(Box::new(crate::etcd::tasks::EtcdStore::new(
                    client.clone(),
                    registry,
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_url_is_local() {
        let dir = std::env::temp_dir().join(format!("concur-backend-{}", std::process::id()));
        let home = Home::at(&dir).unwrap();
        let b = Backend::open(None, Some(home), None).unwrap();
        assert!(b.is_local());
        assert_eq!(b.name(), "local");
        assert_eq!(b.url(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
