//! `concur once` as real processes: N callers on a barrier, one run, everyone the same bytes and
//! status; a leader killed with SIGKILL mid-run is replaced by exactly one waiter, never two
//! running; TTL reuse; bad input.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

/// How many processes are blocked waiting for the flock on `lock` (from /proc/locks).
pub fn blocked_waiters(lock: &Path) -> usize {
    let Ok(meta) = std::fs::metadata(lock) else {
        return 0;
    };
    let ino = format!(":{} ", meta.ino());
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("->") && l.contains(&ino))
        .count()
}

pub fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `concur once KEY -- sh -c SCRIPT` in the test's directory.
fn once_cmd(t: &TestEnv, key: &str, script: &str) -> Command {
    let mut c = t.cmd(["once", key, "--", "sh", "-c", script]);
    c.current_dir(t.dir.path());
    c
}

/// Opens the gate fifo for writing and closes it: the run blocked reading it goes on.
pub fn open_gate(t: &TestEnv) {
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(t.path("gate"))
            .unwrap(),
    );
}

pub fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(st.success());
}

#[test]
fn n_callers_at_once_one_run_and_all_get_its_bytes_and_status() {
    let t = TestEnv::new();
    mkfifo(&t.path("gate"));
    let n = 6;
    let script =
        r"echo $$ >> runs; read x < gate; printf 'out\000\377put'; printf 'err\n' >&2; exit 7";
    let mut b = Barrier::new();
    for _ in 0..n {
        b.spawn(&once_cmd(&t, "build", script));
    }
    b.release();
    let lock = t.home.join("once/build.lock");
    // The leader is inside the command and every other caller is blocked on the key.
    retry("the leader to run", Duration::from_secs(20), || {
        (lines(&t.path("runs")).len() == 1).then_some(())
    });
    retry(
        "every other caller to wait",
        Duration::from_secs(20),
        || (blocked_waiters(&lock) == n - 1).then_some(()),
    );
    open_gate(&t);
    let outs: Vec<Output> = b.run_all();
    assert_eq!(
        lines(&t.path("runs")).len(),
        1,
        "the command ran more than once"
    );
    for o in &outs {
        assert_eq!(o.stdout, b"out\0\xffput", "{}", stderr(o));
        assert_eq!(o.stderr, b"err\n");
        assert_eq!(code(o), 7);
    }
    let result = t.home.join("once/build.result");
    let mode = std::fs::metadata(&result).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_killed_leader_is_replaced_by_exactly_one_waiter_never_two_running() {
    let t = TestEnv::new();
    mkfifo(&t.path("gate"));
    let n = 5;
    // Each run holds `probe` for its whole life: a second run while one is alive records OVERLAP.
    // The shell is the only process of a run (`read` is a builtin), so killing it frees the probe.
    let script = r"exec 9>probe; flock -n 9 || echo OVERLAP >> bad
echo $PPID >> runs; read x < gate; echo done-by-$PPID";
    let mut b = Barrier::new();
    for _ in 0..n {
        b.spawn(&once_cmd(&t, "refresh", script));
    }
    b.release();
    let lock = t.home.join("once/refresh.lock");
    let leader: i32 = retry("the leader to run", Duration::from_secs(20), || {
        lines(&t.path("runs")).first().and_then(|l| l.parse().ok())
    });
    retry("the others to wait", Duration::from_secs(20), || {
        (blocked_waiters(&lock) == n - 1).then_some(())
    });
    // SAFETY: kill has no memory-safety preconditions; the pid is our grandchild's.
    assert_eq!(unsafe { libc::kill(leader, libc::SIGKILL) }, 0);
    let second: i32 = retry("a waiter to take over", Duration::from_secs(20), || {
        lines(&t.path("runs")).get(1).and_then(|l| l.parse().ok())
    });
    retry("the rest to wait for it", Duration::from_secs(20), || {
        (blocked_waiters(&lock) == n - 2).then_some(())
    });
    assert_eq!(lines(&t.path("runs")).len(), 2);
    open_gate(&t);
    let outs = b.run_all();
    assert_eq!(
        lines(&t.path("runs")).len(),
        2,
        "{:?}",
        lines(&t.path("runs"))
    );
    assert!(!t.path("bad").exists(), "two runs overlapped");
    let want = format!("done-by-{second}\n");
    let mut killed = 0;
    for o in &outs {
        if o.status.signal() == Some(libc::SIGKILL) {
            killed += 1;
        } else {
            assert_eq!(code(o), 0, "{}", stderr(o));
            assert_eq!(stdout(o), want);
        }
    }
    assert_eq!(killed, 1, "only the killed leader fails");
}

#[test]
fn ttl_reuses_a_successful_result_and_never_a_failed_one() {
    let t = TestEnv::new();
    let ok = "echo $$ >> runs; echo hello";
    for _ in 0..3 {
        let o = once_cmd(&t, "cached", ok)
            .args::<[&str; 0], &str>([])
            .output()
            .unwrap();
        let _ = o;
    }
    // Without --ttl, callers that do not overlap each run the command.
    assert_eq!(lines(&t.path("runs")).len(), 3);
    let with_ttl = |key: &str, script: &str| {
        let o = t.run([
            "once", "--json", "--ttl", "1h", key, "--", "sh", "-c", script,
        ]);
        let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        (code(&o), v)
    };
    std::fs::remove_file(t.path("runs")).unwrap();
    let ok_abs = format!("echo $$ >> {}; echo hello", t.path("runs").display());
    let (c1, v1) = with_ttl("ttl", &ok_abs);
    let (c2, v2) = with_ttl("ttl", &ok_abs);
    assert_eq!((c1, c2), (0, 0));
    assert_eq!(v1["role"], "leader");
    assert_eq!(v2["role"], "cached");
    assert_eq!(v2["ran"], false);
    assert_eq!(v2["stdout"], "hello\n");
    assert_eq!(lines(&t.path("runs")).len(), 1);
    let fail = format!("echo x >> {}; exit 3", t.path("fails").display());
    assert_eq!(with_ttl("ttl-fail", &fail).0, 3);
    assert_eq!(with_ttl("ttl-fail", &fail).0, 3);
    assert_eq!(
        lines(&t.path("fails")).len(),
        2,
        "a failed result is not reused"
    );
}

#[test]
fn json_reports_role_status_and_output() {
    let t = TestEnv::new();
    let o = t.run([
        "once",
        "--json",
        "j",
        "--",
        "sh",
        "-c",
        "echo o; echo e >&2; exit 5",
    ]);
    assert_eq!(code(&o), 5);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["role"], "leader");
    assert_eq!(v["ran"], true);
    assert_eq!(v["exit"], 5);
    assert_eq!(v["stdout"], "o\n");
    assert_eq!(v["stderr"], "e\n");
}

#[test]
fn bad_input_exits_with_the_documented_codes_and_writes_nothing() {
    let t = TestEnv::new();
    let o = t.run(["once", "bad/key", "--", "true"]);
    assert_code(&o, 4);
    assert!(stderr(&o).starts_with("concur: once: "), "{}", stderr(&o));
    assert!(!t.home.join("once/bad").exists());
    assert_code(&t.run(["once", "k"]), 2);
    assert_code(&t.run(["once", "--ttl", "5x", "k", "--", "true"]), 4);
    assert_code(&t.run(["once", "-c", "true", "k", "--", "true"]), 2);
    assert!(!t.home.join("once/k.result").exists());
    let o = t.run(["once", "k", "--", "/nonexistent/cmd"]);
    assert_code(&o, 69);
    assert!(!t.home.join("once/k.result").exists());
}

/// True once `pid` has exited (a zombie not yet reaped counts as exited).
fn exited(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

#[test]
fn no_takeover_while_a_dead_leaders_command_still_has_a_child_running() {
    let t = TestEnv::new();
    mkfifo(&t.path("gate"));
    mkfifo(&t.path("gate2"));
    let n = 3;
    // The leader's command leaves a straggler (a subshell blocked on gate2) that inherits the
    // probe lock and the key's lock descriptor. Killing the leader kills the command, not the
    // straggler: no waiter may run while it lives.
    let script = r"exec 9>probe; flock -n 9 || echo OVERLAP >> bad
echo $PPID >> runs; (read y < gate2) & read x < gate; echo done-by-$PPID";
    let mut b = Barrier::new();
    for _ in 0..n {
        b.spawn(&once_cmd(&t, "straggle", script));
    }
    b.release();
    let lock = t.home.join("once/straggle.lock");
    let leader: i32 = retry("the leader to run", Duration::from_secs(20), || {
        lines(&t.path("runs")).first().and_then(|l| l.parse().ok())
    });
    retry("the others to wait", Duration::from_secs(20), || {
        (blocked_waiters(&lock) == n - 1).then_some(())
    });
    // SAFETY: kill has no memory-safety preconditions; the pid is our grandchild's.
    assert_eq!(unsafe { libc::kill(leader, libc::SIGKILL) }, 0);
    retry("the leader to die", Duration::from_secs(20), || {
        assert_eq!(
            lines(&t.path("runs")).len(),
            1,
            "a waiter took over while the dead leader's straggler still ran"
        );
        exited(leader).then_some(())
    });
    assert_eq!(blocked_waiters(&lock), n - 1, "the key must still be held");
    assert_eq!(lines(&t.path("runs")).len(), 1);
    // The straggler ends: now exactly one waiter takes over, and nothing overlapped.
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(t.path("gate2"))
            .unwrap(),
    );
    let second: i32 = retry("a waiter to take over", Duration::from_secs(20), || {
        lines(&t.path("runs")).get(1).and_then(|l| l.parse().ok())
    });
    retry(
        "the takeover's straggler to wait on gate2",
        Duration::from_secs(20),
        || (blocked_waiters(&lock) == n - 2).then_some(()),
    );
    open_gate(&t);
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(t.path("gate2"))
            .unwrap(),
    );
    let outs = b.run_all();
    assert!(!t.path("bad").exists(), "two runs overlapped");
    assert_eq!(lines(&t.path("runs")).len(), 2);
    let ok: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
    assert_eq!(ok.len(), n - 1);
    for o in ok {
        assert_eq!(stdout(o), format!("done-by-{second}\n"));
    }
}
