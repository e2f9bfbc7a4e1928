//! The integration tests: the real `concur` binary, run as many real processes at once.

mod util;

mod home;
mod scan;
mod sweep;
