//! Single-flight (`concur once KEY -- CMD`) on every backend: of the callers of a key that
//! arrive while its command runs, one runs it and the others get its stdout, stderr and exit
//! status.
//!
//! Local files: [`crate::once::Once`] (a `flock(2)` handoff and a result file in the home, for
//! the processes of one machine). etcd: [`crate::etcd::once::EtcdOnce`] (a leader key on the
//! leader's lease and a result key, for processes on any machine of the cluster). Both keep the
//! same promises: one runner at a time, a killed runner replaced by exactly one waiter, a
//! successful result reused for `--ttl`.

use std::process::Command;
use std::time::Duration;

use super::{Backend, Kind};
use crate::error::Result;
use crate::once::{Flight, Once};

/// Single-flight of commands by key.
pub trait Flights {
    /// Runs `cmd` once for every caller of `key` that arrives while it runs, or reuses a
    /// successful result younger than `ttl`. With `tee`, a leader copies the command's output to
    /// this process's stdout and stderr as it comes.
    ///
    /// # Errors
    /// A bad key; the backend cannot be reached; the command cannot start (an [`crate::Error::Io`]
    /// with action [`crate::once::CANNOT_RUN`]); the backend's own limits (etcd: the output
    /// over [`crate::etcd::once::RESULT_CAP`]).
    fn run(&self, key: &str, ttl: Option<Duration>, cmd: Command, tee: bool) -> Result<Flight>;
}

/// Local files: one machine's processes share a flight.
struct Local<'a>(&'a crate::home::Home);

impl Flights for Local<'_> {
    fn run(&self, key: &str, ttl: Option<Duration>, cmd: Command, tee: bool) -> Result<Flight> {
        Once::new(self.0, key)?.ttl(ttl).run(cmd, tee)
    }
}

#[cfg(feature = "etcd")]
struct Etcd<'a>(&'a crate::etcd::Client);

#[cfg(feature = "etcd")]
impl Flights for Etcd<'_> {
    fn run(&self, key: &str, ttl: Option<Duration>, cmd: Command, tee: bool) -> Result<Flight> {
        crate::etcd::once::EtcdOnce::new(self.0, key, ttl)?.run(cmd, tee)
    }
}

impl Backend {
    /// Single-flight on this backend.
    ///
    /// # Errors
    /// The local backend without a home.
    ///
    /// # Examples
    /// ```
    /// use concur::backend::Backend;
    /// use concur::home::Home;
    /// use concur::once::Role;
    /// use std::process::Command;
    /// let dir = tempfile::tempdir()?;
    /// let backend = Backend::local(Home::at(dir.path().join("home"))?);
    /// let mut cmd = Command::new("sh");
    /// cmd.args(["-c", "echo fresh-token"]);
    /// let flight = backend.flights()?.run("token-refresh", None, cmd, false)?;
    /// assert_eq!(flight.role, Role::Leader);
    /// assert_eq!(flight.result.stdout, b"fresh-token\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flights(&self) -> Result<Box<dyn Flights + '_>> {
        match &self.kind {
            Kind::Local => Ok(Box::new(Local(self.require_home()?))),
            #[cfg(feature = "etcd")]
            Kind::Etcd { client, .. } => Ok(Box::new(Etcd(client))),
        }
    }
}
