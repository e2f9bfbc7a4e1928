//! `concur --backend etcd://… diagnose`: the built-in targets whose concur writer coordinates
//! through an etcd cluster instead of local files.
//!
//! | target | concur writer on etcd | what it stands for |
//! |---|---|---|
//! | `json-counter` (alias `lock`) | the naive read-modify-write, done under an etcd lock (`concur lock --name`) | lock |
//! | `semaphore` (alias `slot`) | an etcd semaphore (`concur slot NAME --max N`) | slot |
//! | `token` | an etcd token, issued per round, taken (`concur token take NAME`) | token |
//! | `task-start` | the etcd lease store (`concur lease acquire TASK --once`, `complete`) | task-start |
//!
//! Every other target works on local files by nature (append, replace, ledger, ...) and is
//! skipped on etcd. The naive writers are unchanged: they never used a lock in the first place.
//! The shared state the invariant is checked on stays a local fixture (the writers all run on
//! this machine); only the coordination moves to etcd.
//!
//! What it guarantees: a run works under a fresh key prefix (`<prefix>diagnose-<random>/`,
//! round `r` under `…/r<r>/`), so it never meets another run's or a user's keys, and removes its
//! keys afterwards ([`Run::cleanup`]); an unreachable cluster is reported before any writer runs
//! ([`Run::start`]). What it does not: a writer killed on purpose (the semaphore's killed holder)
//! leaves its holder key until its etcd lease runs out (the TTL, [`KILLED_TTL`] or the server's
//! minimum if larger); the probe after it waits up to three such TTLs for that, the etcd
//! counterpart of the kernel freeing a dead holder's lock at once.

use std::time::Duration;

use super::WriterSpec;
use crate::error::{Error, Result};
use crate::lease::Store;

/// Target-name aliases accepted with `--targets` on etcd: the verb each target's concur writer
/// uses there.
pub const ALIASES: [(&str, &str); 2] = [("lock", "json-counter"), ("slot", "semaphore")];

/// The lease TTL of lock and slot holders (as `concur lock --name` and `concur slot`): long
/// against any stall of a loaded machine, so a live holder's lease never runs out mid-hold.
pub const HOLD_TTL: Duration = Duration::from_secs(10);

/// The lease TTL of the holder that the semaphore target kills with SIGKILL: short, so its
/// slot comes free soon (the probe waits for it). etcd may raise it to its minimum TTL.
pub const KILLED_TTL: Duration = Duration::from_secs(2);

/// The target name an alias stands for (`lock` → `json-counter`); other names unchanged.
pub fn resolve(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(a, _)| *a == name)
        .map_or(name, |(_, t)| t)
}

/// The backend URL of round `round` of a run on `run_url`: a key prefix of its own.
pub fn round_url(run_url: &str, round: usize) -> String {
    format!("{}/r{round}", run_url.trim_end_matches('/'))
}

/// One diagnose run's place on an etcd cluster: the endpoints, and a fresh key prefix.
#[cfg(feature = "etcd")]
#[derive(Debug)]
pub struct Run {
    url: String,
    prefix: String,
    client: crate::etcd::Client,
}

#[cfg(feature = "etcd")]
impl Run {
    /// Checks that the cluster at `url` (`etcd://h:p[,h:p…][/prefix]`) answers a linearizable
    /// read, and picks a fresh key prefix under the URL's own (`<prefix>diagnose-<random>/`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed URL; [`Error::Io`] naming the endpoints when no member
    /// answers (or none has a leader) within a few seconds.
    pub fn start(url: &str) -> Result<Run> {
        use crate::etcd::{Client, Timeouts, parse_url};
        let (endpoints, base) = parse_url(url)?;
        let prefix = format!("{base}diagnose-{}", crate::etcd::nonce());
        let run_url = format!("etcd://{}/{prefix}", endpoints.join(","));
        let quick = Timeouts {
            request: Duration::from_secs(2),
            call: Duration::from_secs(5),
        };
        let client = Client::with_timeouts(&run_url, quick)?;
        let unreachable = |why: String| {
            Error::io(
                "cannot reach the etcd cluster",
                format!("etcd://{}", endpoints.join(",")),
                std::io::Error::new(std::io::ErrorKind::NotConnected, why),
            )
        };
        // Refused connections answer at once; a member without a leader answers the status
        // call but not the read below, which retries until the call deadline.
        let status = client.status();
        if status.iter().all(|s| s.error.is_some()) {
            let why: Vec<String> = status
                .iter()
                .map(|s| {
                    let why = s.error.as_deref().unwrap_or("?");
                    let why = why.split(" (os error").next().unwrap_or(why);
                    format!("{}: {why}", s.endpoint)
                })
                .collect();
            return Err(unreachable(why.join("; ")));
        }
        client
            .get(client.prefix())
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Run {
            url: run_url,
            prefix: format!("{prefix}/"),
            client,
        })
    }

    /// The run's backend URL (endpoints and its fresh prefix), for [`super::Harness::backend`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The run's key prefix (`concur/diagnose-<random>/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Deletes every key under the run's prefix; returns how many.
    ///
    /// # Errors
    /// [`Error::Io`] when the cluster stopped answering.
    pub fn cleanup(&self) -> Result<usize> {
        let (kvs, _) = self.client.range_prefix(self.prefix.as_bytes())?;
        let mut n = 0;
        for kv in kvs {
            if self.client.delete(&kv.key)? {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Issues token `name` under the round's prefix `url` (the token target's etcd fixture).
///
/// # Errors
/// [`Error::Io`] when etcd does not answer; [`Error::Invalid`] in a build without etcd.
pub(crate) fn issue_token(url: &str, name: &str) -> Result<()> {
    #[cfg(feature = "etcd")]
    {
        let client = crate::etcd::Client::new(url)?;
        crate::etcd::token::issue(&client, name, &serde_json::Value::Null, None, None, false)?;
        Ok(())
    }
    #[cfg(not(feature = "etcd"))]
    {
        let _ = name;
        Err(without(url))
    }
}

#[cfg(not(feature = "etcd"))]
fn without(url: &str) -> Error {
    Error::Invalid(format!(
        "backend {url}: this concur was built without the etcd feature"
    ))
}

/// A protected writer's connection to the round's etcd prefix.
#[derive(Debug)]
pub(crate) struct Etcd {
    #[cfg(feature = "etcd")]
    client: crate::etcd::Client,
    #[cfg(not(feature = "etcd"))]
    never: std::convert::Infallible,
}

/// A slot held on etcd.
#[derive(Debug)]
pub(crate) struct Permit {
    #[cfg(feature = "etcd")]
    permit: crate::etcd::Permit,
    #[cfg(not(feature = "etcd"))]
    never: std::convert::Infallible,
}

impl Permit {
    /// The holder's rank among the slot's holders (below `max`).
    pub(crate) fn rank(&self) -> usize {
        #[cfg(feature = "etcd")]
        return self.permit.rank();
        #[cfg(not(feature = "etcd"))]
        match self.never {}
    }

    /// Releases the slot (revokes the holder's lease).
    pub(crate) fn release(self) {
        #[cfg(feature = "etcd")]
        let _ = self.permit.release();
        #[cfg(not(feature = "etcd"))]
        match self.never {}
    }
}

impl Etcd {
    /// The writer's etcd connection when its spec names a backend, `None` for a local run.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed URL or a build without etcd.
    pub(crate) fn for_spec(spec: &WriterSpec) -> Result<Option<Etcd>> {
        let Some(url) = spec.backend.as_deref() else {
            return Ok(None);
        };
        #[cfg(feature = "etcd")]
        return Ok(Some(Etcd {
            client: crate::etcd::Client::new(url)?,
        }));
        #[cfg(not(feature = "etcd"))]
        Err(without(url))
    }

    /// Runs `f` while holding etcd lock `name` (waiting for it); `f` gets the fencing token.
    ///
    /// # Errors
    /// [`Error::Io`] when etcd does not answer; `f`'s own error.
    pub(crate) fn locked<T>(&self, name: &str, f: impl FnOnce(i64) -> Result<T>) -> Result<T> {
        #[cfg(feature = "etcd")]
        {
            use crate::etcd::{Wait, lock};
            use crate::lock::Holder;
            let me = || Holder::me(None, None);
            let guard = lock::lock(&self.client, None, name, HOLD_TTL, Wait::Forever, &me())?
                .ok_or_else(|| Error::Conflict(format!("etcd lock {name} not granted")))?;
            let out = f(guard.token());
            // The work is done; the lease going (revoke) frees the lock. A failed revoke is
            // reported: the next holder would wait out the TTL.
            guard.unlock()?;
            out
        }
        #[cfg(not(feature = "etcd"))]
        {
            let _ = (name, f);
            match self.never {}
        }
    }

    /// Takes etcd token `name`: `true` when this writer won it, `false` when another did.
    ///
    /// # Errors
    /// [`Error::Io`] when etcd does not answer; [`Error::Precondition`] when it expired.
    pub(crate) fn take_token(&self, name: &str) -> Result<bool> {
        #[cfg(feature = "etcd")]
        match crate::etcd::token::attempt(&self.client, name, None)?
            .0
            .outcome
        {
            crate::token::Outcome::Won => Ok(true),
            crate::token::Outcome::Expired => {
                Err(Error::Precondition(format!("token {name} expired")))
            }
            _ => Ok(false),
        }
        #[cfg(not(feature = "etcd"))]
        {
            let _ = name;
            match self.never {}
        }
    }

    /// The TTL the server actually grants for `ttl` (etcd raises a TTL below its minimum): a
    /// lease granted and revoked at once.
    ///
    /// # Errors
    /// [`Error::Io`] when etcd does not answer.
    pub(crate) fn granted_ttl(&self, ttl: Duration) -> Result<Duration> {
        #[cfg(feature = "etcd")]
        {
            let (id, granted) = self.client.grant(ttl)?;
            self.client.revoke(id)?;
            Ok(granted.max(ttl))
        }
        #[cfg(not(feature = "etcd"))]
        {
            let _ = ttl;
            match self.never {}
        }
    }

    /// Takes one of `max` slots of `name` on a lease of `ttl`: waiting up to `wait` (`None`:
    /// until granted), or not at all when `wait` is zero. `Ok(None)`: no slot within the wait.
    ///
    /// # Errors
    /// [`Error::Io`] when etcd does not answer.
    pub(crate) fn slot(
        &self,
        name: &str,
        max: usize,
        ttl: Duration,
        wait: Option<Duration>,
    ) -> Result<Option<Permit>> {
        #[cfg(feature = "etcd")]
        {
            use crate::etcd::{Wait, semaphore};
            use crate::lock::Holder;
            let me = || Holder::me(None, None);
            let w = match wait {
                None => Wait::Forever,
                Some(d) if d.is_zero() => Wait::No,
                Some(d) => Wait::For(d),
            };
            match semaphore::acquire(&self.client, None, name, max, ttl, w, &me()) {
                Ok(p) => Ok(p.map(|permit| Permit { permit })),
                Err(Error::Timeout { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        }
        #[cfg(not(feature = "etcd"))]
        {
            let _ = (name, max, ttl, wait);
            match self.never {}
        }
    }

    /// The task-lease store on etcd (what `concur lease` uses with a backend).
    pub(crate) fn task_store(&self) -> Box<dyn Store> {
        #[cfg(feature = "etcd")]
        return Box::new(crate::etcd::tasks::EtcdStore::new(
            self.client.clone(),
            None,
        ));
        #[cfg(not(feature = "etcd"))]
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_name_the_verb_and_rounds_get_their_own_prefix() {
        assert_eq!(resolve("lock"), "json-counter");
        assert_eq!(resolve("slot"), "semaphore");
        assert_eq!(resolve("token"), "token");
        assert_eq!(
            round_url("etcd://127.0.0.1:2379/concur/diagnose-ab", 3),
            "etcd://127.0.0.1:2379/concur/diagnose-ab/r3"
        );
    }
}
