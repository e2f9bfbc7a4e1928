//! The integration tests: the real `concur` binary, run as many real processes at once.

mod util;

#[cfg(feature = "etcd")]
mod etcd;
#[cfg(feature = "etcd")]
mod etcd_util;
mod home;
mod lease;
mod ledger;
mod marker;
mod session;
