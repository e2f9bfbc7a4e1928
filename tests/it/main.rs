//! The integration tests: the real `concur` binary, run as many real processes at once.

mod util;

mod append;
mod broker;
mod diagnose;
#[cfg(feature = "etcd")]
mod etcd;
#[cfg(feature = "etcd")]
mod etcd_diagnose;
#[cfg(feature = "etcd")]
mod etcd_fence;
#[cfg(feature = "etcd")]
mod etcd_hooks;
#[cfg(feature = "etcd")]
mod etcd_lease_left;
#[cfg(feature = "etcd")]
mod etcd_pool;
#[cfg(feature = "etcd")]
mod etcd_session;
#[cfg(feature = "etcd")]
mod etcd_util;
mod fence;
mod fuzz;
#[cfg(feature = "etcd")]
mod history;
mod home;
mod hook;
mod hook_limits;
mod hostile;
mod isolate;
mod json;
mod lease;
mod ledger;
mod lock;
mod marker;
mod replace;
mod reserve;
mod scan;
mod session;
mod shell;
mod slot;
mod startup;
mod sweep;
mod token;
