//! `concur once` on both backends (see `backends.rs`): N callers on a barrier share one run and
//! all get its bytes and status; `--ttl` reuses a successful result; a leader killed with
//! SIGKILL is replaced by exactly one waiter, never two running. On etcd also: output over the
//! result cap is refused with an error for every caller and not run again.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::backends::Backend;
use crate::once::{blocked_waiters, lines, mkfifo};
use crate::util::{Barrier, code, retry, stderr, stdout};

/// `concur once KEY -- sh -c SCRIPT` in the test's directory, on `b`.
fn once_cmd(b: &Backend, key: &str, script: &str) -> Command {
    let mut c = b.cmd(["once", key, "--", "sh", "-c", script]);
    c.current_dir(b.env.dir.path());
    c
}

/// A run's wait for the test: blocks on the fifo `gate` until [`open_gate`]; runs started after
/// that (which a correct `once` never starts) do not block, so a broken one fails the test's
/// count instead of hanging it.
const GATE: &str = "{ [ -e open ] || read x < gate; }";

/// Lets the run blocked on `gate` go on, and every later run through without blocking.
fn open_gate(b: &Backend) {
    std::fs::File::create(b.env.path("open")).unwrap();
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(b.env.path("gate"))
            .unwrap(),
    );
}

/// How many callers of `key` are waiting for its leader: blocked on the key's flock (local),
/// watching the leader key (etcd: the member's watcher gauge; each test has its own cluster).
fn waiting(b: &Backend, key: &str) -> usize {
    match b.etcd_metric("etcd_debugging_mvcc_watcher_total") {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(n) => n as usize,
        None => blocked_waiters(&b.env.home.join(format!("once/{key}.lock"))),
    }
}

on_both_backends! {
    /// Six callers started together: the command runs once, and every caller prints its exact
    /// stdout (binary bytes included) and stderr and exits with its status.
    fn n_callers_one_run_same_bytes_and_status(b) {
        mkfifo(&b.env.path("gate"));
        let n = 6;
        let script = format!(
            r"echo $$ >> runs; {GATE}; printf 'out\000\377put'; printf 'err\n' >&2; exit 7"
        );
        let mut bar = Barrier::new();
        for _ in 0..n {
            bar.spawn(&once_cmd(b, "build", &script));
        }
        bar.release();
        retry("the leader to run", Duration::from_secs(30), || {
            (lines(&b.env.path("runs")).len() == 1).then_some(())
        });
        retry("every other caller to wait", Duration::from_secs(30), || {
            (waiting(b, "build") == n - 1).then_some(())
        });
        open_gate(b);
        let outs: Vec<Output> = bar.run_all();
        assert_eq!(lines(&b.env.path("runs")).len(), 1, "{}: the command ran more than once", b.name());
        for o in &outs {
            assert_eq!(o.stdout, b"out\0\xffput", "{}: {}", b.name(), stderr(o));
            assert_eq!(o.stderr, b"err\n", "{}", b.name());
            assert_eq!(code(o), 7, "{}", b.name());
        }
    }
}

on_both_backends! {
    /// `--ttl` reuses a successful result (nothing runs) and never a failed one; without it,
    /// callers that do not overlap each run the command.
    fn ttl_reuses_success_only(b) {
        let runs = b.env.path("runs");
        let ok = format!("echo $$ >> {}; echo hello", runs.display());
        let json = |ttl: Option<&str>, key: &str, script: &str| {
            let mut args = vec!["once", "--json"];
            if let Some(t) = ttl {
                args.extend(["--ttl", t]);
            }
            args.extend([key, "--", "sh", "-c", script]);
            let o = b.run(args);
            let v: Value = serde_json::from_str(stdout(&o).trim())
                .unwrap_or_else(|_| panic!("{}: {}", b.name(), stderr(&o)));
            (code(&o), v)
        };
        json(None, "plain", &ok);
        json(None, "plain", &ok);
        assert_eq!(lines(&runs).len(), 2, "{}: without --ttl every flight runs", b.name());
        std::fs::remove_file(&runs).unwrap();
        let (c1, v1) = json(Some("1h"), "ttl", &ok);
        let (c2, v2) = json(Some("1h"), "ttl", &ok);
        assert_eq!((c1, c2), (0, 0));
        assert_eq!(v1["role"], "leader");
        assert_eq!(v1["backend"], b.name());
        assert_eq!(v2["role"], "cached", "{}: {v2}", b.name());
        assert_eq!(v2["ran"], false);
        assert_eq!(v2["stdout"], "hello\n");
        assert_eq!(lines(&runs).len(), 1, "{}: a cached result ran again", b.name());
        let fail = format!("echo x >> {}; exit 3", b.env.path("fails").display());
        assert_eq!(json(Some("1h"), "ttl-fail", &fail).0, 3);
        assert_eq!(json(Some("1h"), "ttl-fail", &fail).0, 3);
        assert_eq!(lines(&b.env.path("fails")).len(), 2, "{}: a failed result was reused", b.name());
    }
}

on_both_backends! {
    /// Five callers; the leader (the `concur once` process) gets SIGKILL mid-run. Exactly one
    /// waiter takes over, the others get the takeover's result, and no two runs overlap: each
    /// run records `enter` and holds a probe lock for its whole life, and a run that finds the
    /// probe taken records OVERLAP.
    fn killed_leader_exactly_one_takeover_no_overlap(b) {
        mkfifo(&b.env.path("gate"));
        let n = 5;
        let script = format!(
            r"exec 9>probe; flock -n 9 || echo OVERLAP >> bad
echo enter $PPID >> log; {GATE}; echo leave $PPID >> log; echo done-by-$PPID"
        );
        let mut bar = Barrier::new();
        for _ in 0..n {
            bar.spawn(&once_cmd(b, "refresh", &script));
        }
        bar.release();
        let log = b.env.path("log");
        let leader: i32 = retry("the leader to run", Duration::from_secs(30), || {
            lines(&log).first()?.strip_prefix("enter ")?.parse().ok()
        });
        retry("the others to wait", Duration::from_secs(30), || {
            (waiting(b, "refresh") == n - 1).then_some(())
        });
        // SAFETY: kill has no memory-safety preconditions; the pid is a child's.
        assert_eq!(unsafe { libc::kill(leader, libc::SIGKILL) }, 0);
        let second: i32 = retry("a waiter to take over", Duration::from_secs(30), || {
            lines(&log).get(1)?.strip_prefix("enter ")?.parse().ok()
        });
        retry("the rest to wait for it", Duration::from_secs(30), || {
            (waiting(b, "refresh") == n - 2).then_some(())
        });
        open_gate(b);
        let outs = bar.run_all();
        assert!(!b.env.path("bad").exists(), "{}: two runs overlapped", b.name());
        assert_eq!(
            lines(&log),
            [format!("enter {leader}"), format!("enter {second}"), format!("leave {second}")],
            "{}: exactly one takeover",
            b.name()
        );
        let mut killed = 0;
        for o in &outs {
            if o.status.signal() == Some(libc::SIGKILL) {
                killed += 1;
            } else {
                assert_eq!(code(o), 0, "{}: {}", b.name(), stderr(o));
                assert_eq!(stdout(o), format!("done-by-{second}\n"), "{}", b.name());
            }
        }
        assert_eq!(killed, 1, "{}: only the killed leader fails", b.name());
    }
}

/// On etcd a result is capped (1 MiB of stdout and stderr): the leader and its waiters get a
/// clear error (exit 4) naming the cap; the oversize flight is not run again by a waiter.
#[cfg(feature = "etcd")]
#[test]
fn etcd_output_over_the_cap_is_refused_for_every_caller() {
    let Some(b) = Backend::etcd("once_backends::etcd_output_over_the_cap") else {
        return;
    };
    mkfifo(&b.env.path("gate"));
    let script = format!("echo $$ >> runs; {GATE}; head -c 1100000 /dev/zero");
    let mut bar = Barrier::new();
    for _ in 0..3 {
        // --json: the leader does not copy the megabyte to its stdout as it comes (the barrier
        // reads the children's pipes only once each has exited, one after the other).
        let mut c = b.cmd(["once", "--json", "big", "--", "sh", "-c", &script]);
        c.current_dir(b.env.dir.path());
        bar.spawn(&c);
    }
    bar.release();
    retry("the leader to run", Duration::from_secs(30), || {
        (lines(&b.env.path("runs")).len() == 1).then_some(())
    });
    retry("the others to wait", Duration::from_secs(30), || {
        (waiting(&b, "big") == 2).then_some(())
    });
    open_gate(&b);
    for o in bar.run_all() {
        let said = format!("{}{}", stdout(&o), stderr(&o));
        assert_eq!(code(&o), 4, "{said}");
        assert!(
            said.contains("over the etcd backend's cap of 1048576 bytes"),
            "{said}"
        );
    }
    assert_eq!(lines(&b.env.path("runs")).len(), 1);
}
