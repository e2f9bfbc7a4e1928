//! The integration tests: the real `concur` binary, run as many real processes at once.

mod util;

mod append;
mod home;
mod hostile;
mod json;
mod replace;
mod shell;
mod token;
