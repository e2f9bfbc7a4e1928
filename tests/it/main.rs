//! The integration tests: the real `concur` binary, run as many real processes at once.

mod util;

mod diagnose;
mod home;
mod lease;
mod ledger;
mod marker;
mod reserve;
mod session;
