//! The integration tests: the real `concur` binary, run as many real processes at once.

mod util;

mod append;
mod diagnose;
mod home;
mod hostile;
mod json;
mod lease;
mod ledger;
mod lock;
mod marker;
mod replace;
mod scan;
mod session;
mod shell;
mod slot;
mod sweep;
mod token;
