//! The session hooks, `isolate --exclusive` and `lease acquire -w` on the configured backend:
//! each scenario runs on the local store and on a real single-node etcd (`on_both_backends`),
//! and the etcd waiter is checked to watch rather than poll (etcd's own lease-grant counter).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::etcd::{on_both_backends, out_token, verb};
use crate::etcd_util::{Cluster, available, hook_claude, unreachable_url};
use crate::util::{TestEnv, assert_code, bin, retry, stderr, stdout};

/// Whether the LOCAL lease store (no backend) mentions `what`.
fn local_leases_mention(t: &TestEnv, what: &str) -> bool {
    let o = t.run(["--json", "lease", "list"]);
    assert_code(&o, 0);
    stdout(&o).contains(what)
}

#[test]
fn hook_session_start_lists_and_session_end_releases_leases_on_both_backends() {
    on_both_backends("hook_session_leases", |t, be| {
        let cwd = t.dir.path().to_str().unwrap().to_owned();
        let ev = |id: &str, event: &str| {
            json!({"session_id": id, "transcript_path": "/t", "cwd": cwd,
                   "hook_event_name": event, "source": "startup"})
        };
        let run = |args: &[&str]| verb(t, be, args).output().unwrap();
        // sess-a starts (its agent is the hook's parent: this live test process) and takes a lease.
        let o = hook_claude(t, be, &ev("sess-a", "SessionStart"));
        assert_code(&o, 0);
        assert!(o.stdout.is_empty(), "{be:?}: alone: {}", stdout(&o));
        let first = run(&["lease", "acquire", "build:web", "--session", "sess-a"]);
        assert_code(&first, 0);
        if be.is_some() {
            assert!(
                !local_leases_mention(t, "build:web"),
                "the lease went to etcd, not the local store"
            );
        }
        // sess-b starts in the same directory: told who holds what, from the backend's store.
        let o = hook_claude(t, be, &ev("sess-b", "SessionStart"));
        assert_code(&o, 0);
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{be:?}: {e}: {} / {}", stdout(&o), stderr(&o)));
        let text = v["hookSpecificOutput"]["additionalContext"]
            .as_str()
            .unwrap();
        assert!(
            text.contains("session sess-a") && text.contains("holding leases: build:web"),
            "{be:?}: {text}"
        );
        assert_code(
            &run(&["lease", "acquire", "build:web", "--session", "sess-b"]),
            1,
        );
        // sess-a ends: its lease is released in the backend's store, sess-b can take it.
        let o = hook_claude(t, be, &ev("sess-a", "SessionEnd"));
        assert_code(&o, 0);
        assert!(stderr(&o).is_empty(), "{be:?}: {}", stderr(&o));
        let second = run(&["lease", "acquire", "build:web", "--session", "sess-b"]);
        assert_code(&second, 0);
        assert!(out_token(&second) > out_token(&first), "{be:?}");
        let o = hook_claude(t, be, &ev("sess-c", "SessionStart"));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let text = v["hookSpecificOutput"]["additionalContext"]
            .as_str()
            .unwrap();
        assert!(
            !text.contains("sess-a") && text.contains("session sess-b"),
            "{be:?}: {text}"
        );
    });
}

#[test]
fn isolate_exclusive_refuses_a_second_session_at_once_on_both_backends() {
    on_both_backends("isolate_exclusive_on_backend", |t, be| {
        let isolate = |session: &str, cmd: &str| {
            verb(
                t,
                be,
                [
                    "--session",
                    session,
                    "isolate",
                    "--exclusive",
                    "browser",
                    "--",
                    cmd,
                ],
            )
        };
        let mut c = isolate("first", "cat");
        c.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut holder = c.spawn().unwrap();
        retry(
            "the first session holds the lease",
            Duration::from_secs(30),
            || {
                let o = verb(t, be, ["--json", "lease", "show", "isolate:browser"])
                    .output()
                    .unwrap();
                let v: Value = serde_json::from_slice(&o.stdout).ok()?;
                (v["lease"]["session"] == "first").then_some(())
            },
        );
        if be.is_some() {
            assert!(!local_leases_mention(t, "isolate:browser"), "held on etcd");
        }
        let o = isolate("second", "true").output().unwrap();
        assert_code(&o, 1);
        assert!(
            stderr(&o).contains("held by session first"),
            "{be:?}: {}",
            stderr(&o)
        );
        holder.stdin.take().unwrap().write_all(b"bye").unwrap();
        let out = holder.wait_with_output().unwrap();
        assert_eq!(out.stdout, b"bye", "{be:?}");
        assert!(out.status.success(), "{be:?}: {out:?}");
        // The ended instance released its lease: the second session runs now.
        assert_code(&isolate("second", "true").output().unwrap(), 0);
    });
}

/// `concur lease acquire TASK --session holder --ttl 1h` in a shell that then waits for a line
/// on its stdin before `concur lease release`: the holder, driven through pipes.
fn holder(t: &TestEnv, url: &str, task: &str) -> (Child, u64) {
    let script = format!(
        "\"$0\" lease acquire {task} --session holder --ttl 1h || exit 1; read go; \
         exec \"$0\" lease release {task} --session holder"
    );
    let mut h = Command::new("sh")
        .args(["-c", &script])
        .arg(bin())
        .env("CONCUR_HOME", &t.home)
        .env("CONCUR_BACKEND", url)
        .env_remove("CONCUR_SESSION")
        .current_dir(t.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(h.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let token = line.trim().parse().unwrap_or_else(|_| panic!("{line:?}"));
    (h, token)
}

/// Kills and reaps a child left running when a test fails half-way.
struct Reap(Option<Child>);

impl Reap {
    fn get(&mut self) -> &mut Child {
        self.0.as_mut().expect("child present")
    }

    fn take(mut self) -> Child {
        self.0.take().expect("child present")
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn etcd_lease_wait_watches_and_acquires_after_the_holder_releases() {
    if !available("etcd_lease_wait_watches_and_acquires_after_the_holder_releases") {
        return;
    }
    let cl = Cluster::start(1);
    let url = cl.url();
    let grants = || cl.metric(0, "etcd_debugging_lease_granted_total");
    let t = TestEnv::new();
    let (h, held_token) = holder(&t, &url, "deploy");
    let mut h = Reap(Some(h));
    let acquire = |wait: &str| {
        verb(
            &t,
            Some(&url),
            ["lease", "acquire", "deploy", "-w", wait, "--session", "w"],
        )
    };
    // A timed wait runs out, naming the holder.
    let o = acquire("0.3").output().unwrap();
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("held by session holder"),
        "{}",
        stderr(&o)
    );

    let start = grants();
    let mut c = acquire("120");
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let waiter = Reap(Some(c.spawn().unwrap()));
    // Every acquire attempt grants an etcd lease: the waiter's first one shows it has begun.
    retry(
        "the waiter's first attempt",
        Duration::from_secs(30),
        || (grants() > start).then_some(()),
    );
    // A poller (5 ms backing off to 200 ms) would make about nine more attempts in this second;
    // a watcher makes none: its quiet re-check is 5 s away (one is allowed for a machine that
    // stalled for seconds between the first attempt and this read).
    let before = grants();
    std::thread::sleep(Duration::from_secs(1));
    let during = grants() - before;
    assert!(
        during <= 1.0,
        "the waiter polled: {during} acquire attempts in 1 s"
    );
    assert!(
        cl.metric(0, "etcd_debugging_mvcc_watcher_total") >= 1.0,
        "the waiter watches the holder key"
    );

    h.get().stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(h.take().wait().unwrap().success(), "holder released");
    let o = waiter.take().wait_with_output().unwrap();
    assert_code(&o, 0);
    let token = out_token(&o);
    assert!(token > held_token, "token {token} after {held_token}");
}

#[test]
fn etcd_lease_wait_acquires_when_the_holders_ttl_runs_out() {
    if !available("etcd_lease_wait_acquires_when_the_holders_ttl_runs_out") {
        return;
    }
    let cl = Cluster::start(1);
    let url = cl.url();
    let t = TestEnv::new();
    let run = |args: &[&str]| verb(&t, Some(&url), args).output().unwrap();
    // A holder that never renews (and is not a registered session: only the TTL frees it).
    let first = run(&[
        "lease",
        "acquire",
        "job",
        "--session",
        "gone",
        "--ttl",
        "2s",
    ]);
    assert_code(&first, 0);
    let o = run(&["lease", "acquire", "job", "-w", "60", "--session", "next"]);
    assert_code(&o, 0);
    assert!(out_token(&o) > out_token(&first));
    let show = run(&["--json", "lease", "show", "job"]);
    let v: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["lease"]["session"], "next", "{v}");
}

#[test]
fn hook_session_end_with_an_unreachable_backend_exits_0_and_says_why() {
    let t = TestEnv::new();
    // Every request is refused, retried until the budget.
    let url = unreachable_url();
    let o = hook_claude(
        &t,
        Some(&url),
        &json!({"session_id": "s1", "cwd": "/", "hook_event_name": "SessionEnd"}),
    );
    assert_code(&o, 0);
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    assert!(
        stderr(&o).starts_with("concur: hook: ") && stderr(&o).contains(&url),
        "{}",
        stderr(&o)
    );
}

#[test]
fn etcd_lease_wait_takes_over_when_the_local_holders_session_dies() {
    if !available("etcd_lease_wait_takes_over_when_the_local_holders_session_dies") {
        return;
    }
    let cl = Cluster::start(1);
    let url = cl.url();
    let t = TestEnv::new();
    let run = |args: &[&str]| verb(&t, Some(&url), args).output().unwrap();
    // The holder is a registered session of this machine; its lease would last an hour.
    let agent = Reap(Some(Command::new("sleep").arg("1000").spawn().unwrap()));
    let pid = agent.0.as_ref().unwrap().id().to_string();
    assert_code(
        &run(&["session", "start", "--session", "A", "--pid", &pid]),
        0,
    );
    let first = run(&["lease", "acquire", "db", "--session", "A", "--ttl", "1h"]);
    assert_code(&first, 0);
    let start = cl.metric(0, "etcd_debugging_lease_granted_total");
    let mut c = verb(
        &t,
        Some(&url),
        ["lease", "acquire", "db", "-w", "120", "--session", "B"],
    );
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let waiter = Reap(Some(c.spawn().unwrap()));
    retry(
        "the waiter's first attempt",
        Duration::from_secs(30),
        || (cl.metric(0, "etcd_debugging_lease_granted_total") > start).then_some(()),
    );
    let show = run(&["--json", "lease", "show", "db"]);
    let v: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(
        v["lease"]["session"], "A",
        "the waiter waits while A lives: {v}"
    );
    // The holder's agent dies: nothing changes in etcd, the local registry sees it.
    drop(agent);
    let o = waiter.take().wait_with_output().unwrap();
    assert_code(&o, 0);
    assert!(out_token(&o) > out_token(&first));
}
