//! The integration tests: the real `concur` binary, run as many real processes at once.

mod util;

mod home;
mod lease;
mod ledger;
mod marker;
mod scan;
mod session;
mod sweep;
