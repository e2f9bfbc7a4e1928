//! Sessions on every backend: register, list, liveness, and the one way a session ends.
//!
//! A session is always registered in this machine's registry ([`Registry`]): the record every
//! local liveness check reads (lease reclaim, reservations, `pointer list`, gc). On etcd it is
//! *also* registered as the key `session/ID` on a lease a detached keeper renews
//! ([`crate::etcd::session`]), so every machine sees it. [`Sessions`] is that registration, with
//! a local and an etcd implementation; [`Backend::sessions`] gives the one in effect.
//!
//! [`Backend::end_session`] is the one way a session ends — `session end`, the `SessionEnd` hook
//! and [`Backend::gc_sessions`] all call it, whatever the backend. In order it releases the
//! session's reservations (local state on every backend), forgets its edit record (the git
//! guard's), removes its markers and pointer values, releases its task leases in the backend's
//! store ([`Backend::leases`]), ends its backend registration (on etcd: stops the keeper,
//! revokes the lease the key is on), and removes its registry record last, so that a failure
//! half-way (etcd unreachable) leaves a record gc can finish once the process is gone.
//!
//! Slots need nothing here: they are kernel locks (on etcd, keys on their holder's lease),
//! released when their holder exits.
//!
//! Not guaranteed: liveness in [`Sessions::list`] is this machine's (`/proc`) for local records;
//! on etcd a listed session is live because its lease is kept alive, whatever its machine says.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::Backend;
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::session::{Registry, Session, StartOptions};

/// The TTL of a session's etcd lease unless the caller says otherwise; renewed every TTL/3.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// How to start a session.
#[derive(Debug, Clone)]
pub struct Start {
    /// The process, agent and directory recorded in the local registry.
    pub local: StartOptions,
    /// On etcd: the TTL of the session's lease (a dead machine's sessions vanish after it).
    pub ttl: Duration,
    /// On etcd: the concur binary the keeper runs (`concur session keep`); `None` is this
    /// executable, which is right inside the concur CLI.
    pub keeper: Option<PathBuf>,
}

impl Start {
    /// `local` with the default TTL and keeper.
    #[must_use]
    pub fn new(local: StartOptions) -> Start {
        Start {
            local,
            ttl: DEFAULT_TTL,
            keeper: None,
        }
    }
}

/// What [`Sessions::start`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    /// The local record.
    pub session: Session,
    /// On etcd: the registration, `None` when it failed (see `warning`) or the backend is local.
    pub etcd: Option<OnEtcd>,
    /// Why the session is registered on this machine only although a backend is set: etcd
    /// unreachable, keeper not started. The session stands; callers say this as a warning.
    #[serde(skip)]
    pub warning: Option<String>,
}

/// A session's registration on etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnEtcd {
    /// The backend URL.
    pub backend: String,
    /// The session's etcd lease, in hex.
    pub lease: String,
    /// The TTL the server granted.
    pub ttl_ms: u64,
    /// The keeper process's pid.
    pub keeper: u32,
}

/// A session as [`Sessions::list`] shows it, on either backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// The session id.
    pub id: String,
    /// The machine it runs on (etcd); `None` for this machine's registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// That machine's boot id.
    pub boot_id: String,
    /// The process embodying the session, on its machine.
    pub pid: u32,
    /// Its start time in clock ticks since boot, when known (local records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    /// The directory it registered from, on its machine.
    pub cwd: PathBuf,
    /// The agent, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// When it registered, in milliseconds since the Unix epoch (display only).
    pub started_at: u64,
    /// Whether it is live: its process runs (local), its key exists (etcd).
    pub alive: bool,
    /// Whether it runs on this machine (same host name and boot).
    pub this_host: bool,
}

impl Record {
    /// A local registry record and whether its process runs.
    #[must_use]
    pub fn local(s: Session, alive: bool) -> Record {
        Record {
            id: s.id,
            host: None,
            boot_id: s.boot_id,
            pid: s.pid,
            start_time: Some(s.start_time),
            cwd: s.cwd,
            agent: s.agent,
            started_at: s.started_at,
            alive,
            this_host: true,
        }
    }
}

/// How a session's backend registration ended (etcd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Unregistered {
    /// Whether the session had a key (now deleted with its lease).
    pub revoked: bool,
    /// The keeper process stopped, if one ran.
    pub keeper: Option<u32>,
}

/// What [`Backend::end_session`] released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ended {
    /// The session.
    pub session: String,
    /// `"local"` or `"etcd"`: where its task leases and registration were.
    pub backend: &'static str,
    /// Tasks whose leases were released.
    pub leases: Vec<String>,
    /// Reservations released, as `reserve:<full path>`.
    pub reservations: Vec<String>,
    /// Whether its edit record (the git guard's) was forgotten.
    pub edits: bool,
    /// Marker files removed.
    pub markers: Vec<PathBuf>,
    /// Pointer files removed.
    pub pointers: Vec<PathBuf>,
    /// On etcd: its registration ended.
    pub etcd: Option<Unregistered>,
    /// Whether its registry record was removed.
    pub record: bool,
}

/// A session registry on one backend.
pub trait Sessions {
    /// Registers session `id`: the local record always; on etcd also the key and its keeper. A
    /// failure on etcd leaves the local session started, with [`Started::warning`] saying why.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the process does not exist; [`Error::Io`] when the local record
    /// cannot be written.
    fn start(&self, id: &SessionId, how: &Start) -> Result<Started>;

    /// The sessions with their liveness, oldest first: this machine's registry (local), every
    /// machine's live sessions (etcd).
    ///
    /// # Errors
    /// The registry cannot be read; no etcd member answered.
    fn list(&self) -> Result<Vec<Record>>;

    /// Whether session `id` is live: its process runs (local), its key exists (etcd).
    ///
    /// # Errors
    /// No etcd member answered.
    fn is_live(&self, id: &SessionId) -> Result<bool>;

    /// Ends `id`'s backend registration (on etcd: stops its keeper, revokes its lease); `None`
    /// on the local backend, whose registration is the record [`Backend::end_session`] removes.
    ///
    /// # Errors
    /// No etcd member answered (the keeper is stopped all the same).
    fn end(&self, id: &SessionId) -> Result<Option<Unregistered>>;
}

/// The sessions of this machine's registry.
#[derive(Debug, Clone)]
pub struct Local {
    reg: Registry,
}

impl Started {
    /// `session ID started (pid P)[; on URL (keeper pid K)]`, as `session start` says it.
    #[must_use]
    pub fn describe(&self) -> String {
        let on = self.etcd.as_ref().map_or(String::new(), |e| {
            format!("; on {} (keeper pid {})", e.backend, e.keeper)
        });
        format!(
            "session {} started (pid {}){on}",
            self.session.id, self.session.pid
        )
    }
}

impl Record {
    /// The tab-separated line `session list` prints: id, state (host on etcd, `alive` or `DEAD`
    /// locally), pid, agent, age at `now_ms`, working directory.
    #[must_use]
    pub fn line(&self, now_ms: u64) -> String {
        let state = match &self.host {
            Some(h) if self.this_host => format!("{h} (this host)"),
            Some(h) => h.clone(),
            None if self.alive => "alive".to_owned(),
            None => "DEAD".to_owned(),
        };
        format!(
            "{}\t{state}\tpid {}\t{}\t{}\t{}",
            self.id,
            self.pid,
            self.agent.as_deref().unwrap_or("-"),
            crate::time::age(now_ms, self.started_at),
            self.cwd.display()
        )
    }
}

impl Ended {
    /// One line saying what ending a session released, `what` naming how it ended (`ended`,
    /// `removed dead`).
    #[must_use]
    pub fn describe(&self, what: &str) -> String {
        use std::fmt::Write as _;
        let leases = if self.leases.is_empty() {
            "no leases".to_owned()
        } else {
            format!("released leases {}", self.leases.join(", "))
        };
        let mut line = format!(
            "{what} session {}: {} markers, {} pointers, {leases}",
            self.session,
            self.markers.len(),
            self.pointers.len()
        );
        if !self.reservations.is_empty() {
            let _ = write!(
                line,
                ", released reservations {}",
                self.reservations.join(", ")
            );
        }
        match self.etcd {
            Some(u) if u.revoked => line.push_str(", etcd registration revoked"),
            Some(_) => line.push_str(", not registered on etcd"),
            None => {}
        }
        line
    }
}

impl Local {
    /// The registry `reg`.
    #[must_use]
    pub fn new(reg: Registry) -> Local {
        Local { reg }
    }
}

impl Sessions for Local {
    fn start(&self, id: &SessionId, how: &Start) -> Result<Started> {
        Ok(Started {
            session: self.reg.start(id, &how.local)?,
            etcd: None,
            warning: None,
        })
    }

    fn list(&self) -> Result<Vec<Record>> {
        Ok(self
            .reg
            .list()?
            .into_iter()
            .map(|(s, alive)| Record::local(s, alive))
            .collect())
    }

    fn is_live(&self, id: &SessionId) -> Result<bool> {
        Ok(self.reg.liveness(id) == crate::session::Liveness::Alive)
    }

    fn end(&self, _id: &SessionId) -> Result<Option<Unregistered>> {
        Ok(None)
    }
}

/// The sessions of an etcd cluster, each also in this machine's registry.
#[cfg(feature = "etcd")]
#[derive(Debug, Clone)]
pub struct Etcd {
    client: crate::etcd::Client,
    url: String,
    reg: Registry,
}

#[cfg(feature = "etcd")]
impl Etcd {
    /// Sessions on the cluster `client` (reached at `url`, which the keeper is given), with
    /// this machine's registry `reg`.
    #[must_use]
    pub fn new(client: crate::etcd::Client, url: String, reg: Registry) -> Etcd {
        Etcd { client, url, reg }
    }
}

#[cfg(feature = "etcd")]
impl Sessions for Etcd {
    fn start(&self, id: &SessionId, how: &Start) -> Result<Started> {
        let session = self.reg.start(id, &how.local)?;
        let exe = match &how.keeper {
            Some(p) => Ok(p.clone()),
            None => std::env::current_exe()
                .map_err(|e| Error::io("cannot find own executable", "/proc/self/exe", e)),
        };
        let on = exe.and_then(|exe| {
            crate::etcd::session::start(&self.client, &self.url, &self.reg, &session, how.ttl, &exe)
        });
        Ok(match on {
            Ok(st) => Started {
                session,
                etcd: Some(OnEtcd {
                    backend: self.url.clone(),
                    lease: format!("{:x}", st.lease),
                    ttl_ms: st.ttl_ms,
                    keeper: st.keeper,
                }),
                warning: None,
            },
            Err(e) => Started {
                warning: Some(format!(
                    "session {id} not registered on {} ({e}); it is registered on this machine \
                     only",
                    self.url
                )),
                session,
                etcd: None,
            },
        })
    }

    fn list(&self) -> Result<Vec<Record>> {
        Ok(crate::etcd::session::sessions(&self.client)?
            .into_iter()
            .map(|i| Record {
                this_host: i.is_this_host(),
                id: i.id,
                host: Some(i.host),
                boot_id: i.boot_id,
                pid: i.pid,
                start_time: None,
                cwd: i.cwd,
                agent: i.agent,
                started_at: i.started_at,
                alive: true,
            })
            .collect())
    }

    fn is_live(&self, id: &SessionId) -> Result<bool> {
        crate::etcd::session::is_live(&self.client, id)
    }

    fn end(&self, id: &SessionId) -> Result<Option<Unregistered>> {
        let e = crate::etcd::session::end(&self.client, &self.reg, id)?;
        Ok(Some(Unregistered {
            revoked: e.revoked,
            keeper: e.keeper,
        }))
    }
}

impl Backend {
    /// The session registry of this backend (this machine's registry is opened in both cases).
    ///
    /// # Errors
    /// No runtime home; the registry directory cannot be created.
    pub fn sessions(&self) -> Result<Box<dyn Sessions>> {
        let reg = Registry::open(self.require_home()?)?;
        #[cfg(feature = "etcd")]
        if let (Some(client), Some(url)) = (self.etcd(), self.url()) {
            return Ok(Box::new(Etcd::new(client.clone(), url.to_string(), reg)));
        }
        Ok(Box::new(Local::new(reg)))
    }

    /// Ends session `id` everywhere: its reservations, edit record, markers, pointer values, task
    /// leases, backend registration and registry record (the order is in the module comment).
    ///
    /// Ending a session that was never registered, or already ended, releases what it still
    /// holds and reports the rest empty.
    ///
    /// # Errors
    /// The first failure; what was released before it stays released, and the record stays.
    pub fn end_session(&self, id: &SessionId) -> Result<Ended> {
        let home = self.require_home()?;
        let reservations = crate::reserve::release_session(home, id)?;
        let edits = crate::reserve::edits::forget(home, id)?;
        let markers = crate::marker::Markers::new(home, std::collections::BTreeMap::new())
            .remove_session(id)?;
        let pointers = crate::marker::Pointers::new(home).remove_session(id)?;
        let leases = self.leases()?.release_session(id)?;
        let etcd = self.sessions()?.end(id)?;
        let record = Registry::open(home)?.remove(id)?;
        Ok(Ended {
            session: id.to_string(),
            backend: self.name(),
            leases,
            reservations,
            edits,
            markers,
            pointers,
            etcd,
            record,
        })
    }

    /// Ends every session of this machine's registry whose process is gone, each with
    /// [`Backend::end_session`] (on etcd also revoking a key its keeper left behind).
    ///
    /// # Errors
    /// The first failure.
    pub fn gc_sessions(&self) -> Result<Vec<Ended>> {
        let reg = Registry::open(self.require_home()?)?;
        let mut out = Vec::new();
        for (s, alive) in reg.list()? {
            if alive {
                continue;
            }
            let Ok(id) = SessionId::new(&s.id) else {
                continue;
            };
            out.push(self.end_session(&id)?);
        }
        Ok(out)
    }

    /// The keeper loop of a session started on etcd (`concur session keep`, hidden): renews
    /// the session's lease until its process exits or the session ends (see
    /// [`crate::etcd::session::keep`]), then forgets its keeper record.
    ///
    /// # Errors
    /// [`Error::Invalid`] on the local backend, which has no keeper.
    pub fn keep_session(&self, id: &SessionId, keeper: &Keeper) -> Result<()> {
        #[cfg(feature = "etcd")]
        if let Some(client) = self.etcd() {
            let reg = Registry::open(self.require_home()?)?;
            crate::etcd::session::keep(
                client,
                &reg,
                id,
                keeper.lease,
                keeper.ttl,
                keeper.pid,
                keeper.start_time,
            );
            return crate::etcd::session::forget_keeper(&reg, id, std::process::id());
        }
        let _ = (id, keeper);
        Err(Error::Invalid("session keep needs an etcd backend".into()))
    }
}

/// What a keeper keeps alive ([`Backend::keep_session`]).
#[derive(Debug, Clone, Copy)]
pub struct Keeper {
    /// The session's etcd lease.
    pub lease: i64,
    /// Its TTL.
    pub ttl: Duration,
    /// The agent process.
    pub pid: u32,
    /// Its start time (clock ticks since boot).
    pub start_time: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, crate::Home) {
        let d = tempfile::tempdir().unwrap();
        let h = crate::Home::at(d.path().join("h")).unwrap();
        (d, h)
    }

    #[test]
    fn a_local_session_starts_lists_and_ends_through_the_one_path() {
        let (_d, h) = home();
        let b = Backend::local(h.clone());
        let id = SessionId::new("s1").unwrap();
        let started = b
            .sessions()
            .unwrap()
            .start(
                &id,
                &Start::new(StartOptions {
                    pid: Some(std::process::id()),
                    ..StartOptions::default()
                }),
            )
            .unwrap();
        assert_eq!((started.etcd, started.warning), (None, None));
        let s = b.sessions().unwrap();
        assert!(s.is_live(&id).unwrap());
        let list = s.list().unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].alive && list[0].this_host && list[0].host.is_none());
        crate::marker::Markers::new(&h, std::collections::BTreeMap::new())
            .set(&id, "m", None)
            .unwrap();
        let e = b.end_session(&id).unwrap();
        assert_eq!((e.backend, e.record, e.markers.len()), ("local", true, 1));
        assert!(!s.is_live(&id).unwrap());
        assert!(s.list().unwrap().is_empty());
        // Ending again releases nothing and says so.
        let again = b.end_session(&id).unwrap();
        assert!(!again.record && again.markers.is_empty() && !again.edits);
    }

    #[test]
    fn keep_needs_etcd() {
        let (_d, h) = home();
        let e = Backend::local(h)
            .keep_session(
                &SessionId::new("s").unwrap(),
                &Keeper {
                    lease: 1,
                    ttl: DEFAULT_TTL,
                    pid: 1,
                    start_time: 0,
                },
            )
            .unwrap_err();
        assert!(e.to_string().contains("etcd"), "{e}");
    }
}
