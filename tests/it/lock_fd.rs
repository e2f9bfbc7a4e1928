//! Descriptor numbers a user names (`concur lock 9`, `flock 9`, `lockf 9`, `-F`): a descriptor
//! the shell opened is locked through, a number that is not open is refused before anything is
//! borrowed, and a lock handed to a program that replaces the locker stays held while it runs.

use std::process::{Command, Output};

use crate::lock::link;
use crate::util::*;

/// Runs `script` under `sh` in the test directory, with `$C` (concur), `$FLOCK` and `$LOCKF`
/// (links to it) set.
fn sh(t: &TestEnv, script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("C", bin())
        .env("FLOCK", link(t, "flock"))
        .env("LOCKF", link(t, "lockf"))
        .env("CONCUR_HOME", &t.home)
        .env_remove("CONCUR_SESSION")
        .current_dir(t.dir.path())
        .output()
        .unwrap()
}

#[test]
fn a_descriptor_number_that_is_not_open_is_refused() {
    let t = TestEnv::new();
    for (cmd, want, msg) in [
        (
            "$C lock 9",
            65,
            "concur: lock: cannot use descriptor (fd 9): Bad file descriptor\n",
        ),
        ("$C lock -w 1 9", 65, ""),
        ("$FLOCK 9", 65, "flock: 9: Bad file descriptor\n"),
        (
            "$LOCKF 9",
            73,
            "lockf: cannot lock fd 9: Bad file descriptor\n",
        ),
        (
            "$LOCKF /dev/fd/9 true",
            73,
            "lockf: cannot lock fd 9: Bad file descriptor\n",
        ),
    ] {
        let o = sh(&t, &format!("exec 9>&-; {cmd}"));
        assert_eq!(code(&o), want, "{cmd}: {}", stderr(&o));
        if !msg.is_empty() {
            assert_eq!(stderr(&o), msg, "{cmd}");
        }
    }
    let written = std::fs::read_dir(&t.home).map_or(0, Iterator::count);
    assert_eq!(written, 0, "a refused descriptor wrote nothing");
}

#[test]
fn lockf_locks_through_an_inherited_descriptor() {
    let t = TestEnv::new();
    let o = sh(
        &t,
        "exec 9>>f; $LOCKF 9 || exit 10; $C lock -n f true; echo held=$?; \
         exec 9>&-; $C lock -n f true; echo closed=$?; \
         exec 8>>f; $LOCKF /dev/fd/8 sh -c '$C lock -n f true; echo during=$?'; \
         $C lock -n f true; echo after=$?",
    );
    assert_eq!(
        stdout(&o),
        "held=1\nclosed=0\nduring=1\nafter=0\n",
        "{}",
        stderr(&o)
    );
}

#[test]
fn no_fork_keeps_the_lock_across_the_exec() {
    let t = TestEnv::new();
    for locker in ["$C lock", "$FLOCK"] {
        let o = sh(
            &t,
            &format!(
                "{locker} -F f -c '$C lock -n f true; echo inner=$?'; $C lock -n f true; echo after=$?"
            ),
        );
        assert_eq!(stdout(&o), "inner=1\nafter=0\n", "{locker}: {}", stderr(&o));
    }
}
