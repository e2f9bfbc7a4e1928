//! Counting semaphores on any backend: [`Slots`], reached as [`Backend::slots`].
//!
//! Locally slot `NAME` with `--max N` is N open-file-description locks under
//! `<home>/slots/NAME/` (see [`crate::slot`]); on etcd it is N holder keys ranked by create
//! revision (see [`crate::etcd::semaphore`]). On both the first use records N and a different N
//! later is invalid input, and never more than N hold at once.

use super::held::Held;
use super::{Backend, Kind, Wait};
use crate::error::Result;
use crate::home::Home;
use crate::lock::Holder;
use crate::slot::Slot;

/// Counting semaphores: at most N holders of a name at once.
pub trait Slots {
    /// Takes one of the `max` slots of `name` for `me`, waiting as `wait` says. `Ok(None)`:
    /// all `max` still held when the wait ended.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] for a bad name, a `max` out of range or other than the one
    /// recorded for `name`; the backend's I/O errors.
    fn acquire(&self, name: &str, max: u32, wait: Wait, me: &Holder) -> Result<Option<Held>>;

    /// The recorded maximum and the holders of slot `name` now.
    ///
    /// # Errors
    /// A bad name; the backend's I/O errors.
    fn status(&self, name: &str) -> Result<SlotStatus>;
}

/// What [`Slots::status`] reports.
#[derive(Debug, Clone, Default)]
pub struct SlotStatus {
    /// The recorded maximum; `None` when nothing has used the name yet.
    pub max: Option<u32>,
    /// The held slots.
    pub held: Vec<SlotHolder>,
}

/// One held slot.
#[derive(Debug, Clone)]
pub struct SlotHolder {
    /// The slot's index (local: which of the N; etcd: its rank).
    pub index: u32,
    /// The holder's fencing token, where the backend has one (etcd).
    pub token: Option<i64>,
    /// What the holder says about itself; `None` while it has not said yet.
    pub holder: Option<Holder>,
}

impl SlotHolder {
    /// The holder's description, `starting` before it wrote one.
    #[must_use]
    pub fn describe(&self) -> String {
        self.holder
            .as_ref()
            .map_or_else(|| "starting".to_owned(), Holder::describe)
    }
}

impl Backend {
    /// The slots of this backend.
    ///
    /// # Errors
    /// The local backend without a home.
    pub fn slots(&self) -> Result<Box<dyn Slots + '_>> {
        match &self.kind {
            Kind::Local => Ok(Box::new(Local {
                home: self.require_home()?,
            })),
            #[cfg(feature = "etcd")]
            Kind::Etcd { client, .. } => {
                Ok(Box::new(super::locks::etcd::Etcd::new(client, self.home())))
            }
        }
    }
}

struct Local<'a> {
    home: &'a Home,
}

impl Slots for Local<'_> {
    fn acquire(&self, name: &str, max: u32, wait: Wait, me: &Holder) -> Result<Option<Held>> {
        let slot = Slot::open(self.home, name, max)?;
        let permit = match wait {
            Wait::No => slot.try_acquire()?,
            Wait::For(d) => slot.acquire_timeout(d)?,
            Wait::Forever => Some(slot.acquire()?),
        };
        let Some(permit) = permit else {
            return Ok(None);
        };
        permit.record(me)?;
        Ok(Some(Held::slot(name, permit)))
    }

    fn status(&self, name: &str) -> Result<SlotStatus> {
        let Some(slot) = Slot::existing(self.home, name)? else {
            return Ok(SlotStatus::default());
        };
        let held = slot
            .status()?
            .into_iter()
            .filter_map(|s| {
                s.holder.map(|holder| SlotHolder {
                    index: s.index,
                    token: None,
                    holder,
                })
            })
            .collect();
        Ok(SlotStatus {
            max: Some(slot.max()),
            held,
        })
    }
}

#[cfg(feature = "etcd")]
mod etcd {
    use super::{Held, Holder, SlotHolder, SlotStatus, Slots, Wait};
    use crate::backend::locks::etcd::{Etcd, HOLD_TTL, timed_out_is_none};
    use crate::error::Result;
    use crate::etcd::semaphore;

    impl Slots for Etcd<'_> {
        fn acquire(&self, name: &str, max: u32, wait: Wait, me: &Holder) -> Result<Option<Held>> {
            crate::slot::check_max(max)?;
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            let pool = self.pool.as_ref();
            let got = semaphore::acquire(self.client, pool, name, max, HOLD_TTL, wait, me);
            Ok(timed_out_is_none(got)?.map(|p| Held::etcd_slot(name, p)))
        }

        fn status(&self, name: &str) -> Result<SlotStatus> {
            let (held, max) = semaphore::holders(self.client, name)?;
            Ok(SlotStatus {
                max: max.and_then(|m| u32::try_from(m).ok()),
                held: held
                    .iter()
                    .zip(0..)
                    .map(|(h, index)| SlotHolder {
                        index,
                        token: Some(h.token),
                        holder: Some(h.holder()),
                    })
                    .collect(),
            })
        }
    }
}
