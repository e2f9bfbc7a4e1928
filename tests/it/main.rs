//! The integration tests: the real `concur` binary, run as many real processes at once.

mod util;

mod broker;
mod diagnose;
mod home;
mod hook;
mod isolate;
mod lease;
mod ledger;
mod marker;
mod session;
