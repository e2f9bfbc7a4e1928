//! Shell-script writers for the file-primitive tests: `sh -c SCRIPT` with `$CONCUR` naming the
//! binary under test and the test env's home, so one process can loop over many operations.

use std::process::{Command, Stdio};

use crate::util::{TestEnv, bin};

/// `sh -c script` in the test directory, with `$CONCUR` set to the concur binary.
pub fn sh(t: &TestEnv, script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(script)
        .env("CONCUR", bin())
        .env("CONCUR_HOME", &t.home)
        .env_remove("CONCUR_SESSION")
        .env_remove("CLAUDE_CODE_SESSION_ID")
        .env_remove("CLAUDE_SESSION_ID")
        .env_remove("CONCUR_BACKEND")
        .current_dir(t.dir.path())
        .stdin(Stdio::null());
    c
}
