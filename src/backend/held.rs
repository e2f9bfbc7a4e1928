//! What an acquire on any backend gives: one [`Held`] for a lock or a slot permit, local or
//! on etcd, with its fencing token, its slot index and whether it can be lost.

use crate::error::Result;

/// A held lock or slot permit, whatever the backend. Dropping it releases (best effort);
/// [`Held::release`] reports a failure. A local hold is a kernel lock, released by the kernel
/// too when the process dies; an etcd hold lives on a lease kept alive by this process.
#[derive(Debug)]
pub struct Held {
    name: String,
    token: Option<i64>,
    index: Option<u32>,
    guard: Guard,
}

#[derive(Debug)]
enum Guard {
    Lock(crate::lock::LockGuard),
    Slot(crate::slot::Permit),
    #[cfg(feature = "etcd")]
    EtcdLock(crate::etcd::LockGuard),
    #[cfg(feature = "etcd")]
    EtcdSlot(crate::etcd::Permit),
}

impl Held {
    pub(crate) fn lock(name: &str, guard: crate::lock::LockGuard, token: i64) -> Held {
        Held::new(name, Some(token), None, Guard::Lock(guard))
    }

    pub(crate) fn slot(name: &str, permit: crate::slot::Permit) -> Held {
        let index = permit.index();
        Held::new(name, None, Some(index), Guard::Slot(permit))
    }

    #[cfg(feature = "etcd")]
    pub(crate) fn etcd_lock(guard: crate::etcd::LockGuard) -> Held {
        let name = guard.name().to_string();
        Held::new(&name, Some(guard.token()), None, Guard::EtcdLock(guard))
    }

    #[cfg(feature = "etcd")]
    pub(crate) fn etcd_slot(name: &str, permit: crate::etcd::Permit) -> Held {
        let index = u32::try_from(permit.rank()).unwrap_or(u32::MAX);
        Held::new(
            name,
            Some(permit.token()),
            Some(index),
            Guard::EtcdSlot(permit),
        )
    }

    fn new(name: &str, token: Option<i64>, index: Option<u32>, guard: Guard) -> Held {
        Held {
            name: name.to_string(),
            token,
            index,
            guard,
        }
    }

    /// The lock's or slot's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fencing token: larger than every earlier holder's of this name (a lock on either
    /// backend, a slot on etcd). `NAME:TOKEN` is what `concur write --fence` takes.
    #[must_use]
    pub fn token(&self) -> Option<i64> {
        self.token
    }

    /// Which of the N slots a permit holds (`0 .. N`); `None` for a lock.
    #[must_use]
    pub fn index(&self) -> Option<u32> {
        self.index
    }

    /// The etcd lease the hold lives on: it is lost when the lease is. `None` for a local hold,
    /// which cannot be lost while this process lives.
    #[cfg(feature = "etcd")]
    #[must_use]
    pub fn lease(&self) -> Option<&crate::etcd::Lease> {
        match &self.guard {
            Guard::EtcdLock(g) => Some(g.lease()),
            Guard::EtcdSlot(p) => Some(p.lease()),
            Guard::Lock(_) | Guard::Slot(_) => None,
        }
    }

    /// Whether the hold may still be counted on: always for a local hold; on etcd while the
    /// lease's own validity bound has not passed.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        #[cfg(feature = "etcd")]
        if let Some(lease) = self.lease() {
            return lease.is_valid();
        }
        true
    }

    /// Releases now.
    ///
    /// # Errors
    /// The unlock call failed, or (etcd) no member answered: the lease then runs out after its
    /// TTL.
    pub fn release(self) -> Result<()> {
        match self.guard {
            Guard::Lock(g) => g.unlock(),
            Guard::Slot(p) => {
                drop(p);
                Ok(())
            }
            #[cfg(feature = "etcd")]
            Guard::EtcdLock(g) => g.unlock(),
            #[cfg(feature = "etcd")]
            Guard::EtcdSlot(p) => p.release(),
        }
    }
}
