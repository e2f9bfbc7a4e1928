//! The integration tests: the real `concur` binary, run as many real processes at once.

mod util;

mod broker;
mod home;
mod hook;
mod isolate;
