//! The integration tests: the real `concur` binary, run as many real processes at once.

mod util;

#[macro_use]
mod backends;

mod agents;
mod append;
mod broker;
mod chaos;
mod cli;
mod completions;
mod diagnose;
mod docs;
mod durations;
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
mod git_guard;
#[cfg(feature = "etcd")]
mod history;
mod home;
mod hook;
mod hook_agent;
mod hook_install;
mod hook_limits;
mod hostile;
mod imports;
mod isolate;
mod jq_diff;
mod json;
mod lease;
mod ledger;
mod lock;
mod lock_fd;
mod marker;
mod on_backends;
mod once;
mod once_backends;
mod replace;
mod reserve;
mod scan;
mod session;
mod shell;
mod slot;
mod startup;
mod static_build;
mod sweep;
mod token;
mod torture;
