//! Named exclusive locks on any backend: [`Locks`], reached as [`Backend::locks`].
//!
//! Locally a named lock is a `flock(2)` lock on `<home>/locks/NAME` (see [`crate::lock`]),
//! released by the kernel when its holder dies, with a fencing token counted in the home
//! ([`crate::fence::next_local`]). On etcd it is the key `lock/NAME` on the holder's lease (see
//! [`crate::etcd::lock`]), its token the key's create revision. Both record who holds them
//! ([`Holder`]) so that a waiter can say whom it waits for.

use super::held::Held;
use super::{Backend, Kind, Wait};
use crate::error::Result;
use crate::home::Home;
use crate::lock::{Holder, LockOptions};

/// Named exclusive locks.
pub trait Locks {
    /// Takes lock `name` for `me`, waiting as `wait` says. `Ok(None)`: still held by another
    /// when the wait ended ([`Wait::No`], or the time ran out).
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] for a bad name; the backend's I/O errors.
    fn acquire(&self, name: &str, wait: Wait, me: &Holder) -> Result<Option<Held>>;

    /// Who holds lock `name` now (empty: free, or the holder said nothing).
    ///
    /// # Errors
    /// As [`Locks::acquire`].
    fn holders(&self, name: &str) -> Result<Vec<Holder>>;
}

impl Backend {
    /// The named locks of this backend.
    ///
    /// # Errors
    /// The local backend without a home.
    pub fn locks(&self) -> Result<Box<dyn Locks + '_>> {
        match &self.kind {
            Kind::Local => Ok(Box::new(Local {
                home: self.require_home()?,
            })),
            #[cfg(feature = "etcd")]
            Kind::Etcd { client, .. } => Ok(Box::new(etcd::Etcd::new(client, self.home()))),
        }
    }
}

struct Local<'a> {
    home: &'a Home,
}

impl Locks for Local<'_> {
    fn acquire(&self, name: &str, wait: Wait, me: &Holder) -> Result<Option<Held>> {
        let file = LockOptions::named(self.home, name)?.open()?;
        let got = match wait {
            Wait::No => file.try_acquire()?,
            Wait::For(d) => file.acquire_timeout(d)?,
            Wait::Forever => file.acquire().map(|()| true)?,
        };
        if !got {
            return Ok(None);
        }
        let mut guard = file.into_guard();
        guard.record(self.home, me)?;
        let fence = crate::fence::next_local(self.home, name, &guard)?;
        Ok(Some(Held::lock(name, guard, fence.token)))
    }

    fn holders(&self, name: &str) -> Result<Vec<Holder>> {
        LockOptions::named(self.home, name)?
            .open()?
            .holders(Some(self.home))
    }
}

#[cfg(feature = "etcd")]
pub(crate) mod etcd {
    use std::time::Duration;

    use super::{Held, Holder, Locks, Wait};
    use crate::error::{Error, Result};
    use crate::etcd::{Client, Pool, lock};
    use crate::home::Home;

    /// The etcd lease TTL of lock and slot holders: a holder that stops renewing (crashed,
    /// partitioned) frees its lock this long after its last renewal.
    pub const HOLD_TTL: Duration = Duration::from_secs(10);

    /// Locks (and slots, see `slots.rs`) on etcd, on leases from the home's pool when there is
    /// a home (see [`crate::etcd::pool`]).
    pub(crate) struct Etcd<'a> {
        pub(crate) client: &'a Client,
        pub(crate) pool: Option<Pool>,
    }

    impl<'a> Etcd<'a> {
        pub(crate) fn new(client: &'a Client, home: Option<&Home>) -> Etcd<'a> {
            let pool = home.and_then(|h| Pool::open(h, client, HOLD_TTL).ok());
            Etcd { client, pool }
        }
    }

    /// A wait that ran out is "still held", as on the local backend.
    pub(crate) fn timed_out_is_none<T>(r: Result<Option<T>>) -> Result<Option<T>> {
        match r {
            Err(Error::Timeout { .. }) => Ok(None),
            r => r,
        }
    }

    impl Locks for Etcd<'_> {
        fn acquire(&self, name: &str, wait: Wait, me: &Holder) -> Result<Option<Held>> {
            let pool = self.pool.as_ref();
            let got = lock::lock(self.client, pool, name, HOLD_TTL, wait, me);
            Ok(timed_out_is_none(got)?.map(Held::etcd_lock))
        }

        fn holders(&self, name: &str) -> Result<Vec<Holder>> {
            Ok(lock::holder(self.client, name)?
                .map(|h| h.holder())
                .into_iter()
                .collect())
        }
    }
}
