//! The session registry on a real single-node etcd: `session start` (and the `SessionStart`
//! hook) register the session on etcd, kept alive by a detached keeper process; the keeper
//! revokes as soon as the agent process dies (well before the TTL); `session end` revokes and
//! stops the keeper; an unreachable etcd leaves the local session started with one warning.
//!
//! Agents are `sleep` children of the test. No keeper outlives a test: [`Keepers`] kills the
//! ones it knows (by pid, after checking the pid still runs `session keep`) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::{Value, json};

use crate::etcd::verb;
use crate::etcd_util::{Cluster, available, hook_claude, unreachable_url};
use crate::util::{TestEnv, assert_code, retry, stderr, stdout};

/// Kills and reaps a dummy agent process.
struct Agent(Child);

impl Agent {
    fn sleep() -> Agent {
        Agent(Command::new("sleep").arg("1000").spawn().unwrap())
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `pid` runs (a zombie does not: keepers are reparented and may not be reaped).
fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        let state = st[st.rfind(')').unwrap() + 1..].split_whitespace().next();
        !matches!(state, Some("Z" | "X"))
    })
}

/// Whether `pid` is a concur keeper (`concur ... session keep ...`).
fn is_keeper(pid: u64) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == b"keep"))
}

/// The keepers a test started; killed (if still keepers) when the test ends, pass or fail.
struct Keepers {
    sessions: PathBuf,
    pids: Vec<u64>,
}

impl Keepers {
    fn new(t: &TestEnv) -> Keepers {
        Keepers {
            sessions: t.home.join("sessions"),
            pids: Vec::new(),
        }
    }

    fn add(&mut self, pid: u64) -> u64 {
        assert!(is_keeper(pid), "pid {pid} is not a keeper");
        self.pids.push(pid);
        pid
    }

    /// The keeper recorded for session `id` (`sessions/ID.keeper`).
    fn of(&mut self, id: &str) -> u64 {
        let p = self.sessions.join(format!("{id}.keeper"));
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        self.add(v["pid"].as_u64().unwrap())
    }
}

impl Drop for Keepers {
    fn drop(&mut self) {
        for &pid in &self.pids {
            if running(pid) && is_keeper(pid) {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
    }
}

/// `--json session list` on `url`: id → entry.
fn listed(t: &TestEnv, url: &str) -> Vec<Value> {
    let o = verb(t, Some(url), ["--json", "session", "list"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["backend"], "etcd", "{v}");
    v["sessions"].as_array().unwrap().clone()
}

fn ids(list: &[Value]) -> Vec<&str> {
    list.iter().map(|s| s["id"].as_str().unwrap()).collect()
}

fn start(t: &TestEnv, url: &str, id: &str, agent: &Agent) -> Value {
    let o = verb(
        t,
        Some(url),
        [
            "--json",
            "session",
            "start",
            "--session",
            id,
            "--pid",
            &agent.pid(),
            "--agent",
            "claude",
            "--ttl",
            "10m",
        ],
    )
    .output()
    .unwrap();
    assert_code(&o, 0);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn etcd_session_start_registers_and_agent_death_or_end_removes_promptly() {
    if !available("etcd_session_start_registers_and_agent_death_or_end_removes_promptly") {
        return;
    }
    let cl = Cluster::start(1);
    let url = cl.url();
    let t = TestEnv::new();
    let mut keepers = Keepers::new(&t);
    let a = Agent::sleep();
    let b = Agent::sleep();
    let sa = start(&t, &url, "A", &a);
    let sb = start(&t, &url, "B", &b);
    let ka = keepers.add(sa["etcd"]["keeper"].as_u64().unwrap());
    let kb = keepers.add(sb["etcd"]["keeper"].as_u64().unwrap());
    assert_eq!(sa["etcd"]["ttl_ms"], 600_000, "{sa}");

    // Both listed on etcd, on this host, with their agents' pids.
    let list = listed(&t, &url);
    assert_eq!(ids(&list), ["A", "B"], "{list:?}");
    for (s, agent) in list.iter().zip([&a, &b]) {
        assert_eq!(s["this_host"], true, "{s}");
        assert_eq!(s["pid"].to_string(), agent.pid(), "{s}");
        assert_eq!(s["agent"], "claude", "{s}");
        assert_eq!(s["cwd"], json!(t.dir.path()), "{s}");
    }
    // The local registry has them too, and works without the backend.
    let local = t.run(["--json", "session", "list"]);
    assert_code(&local, 0);
    assert!(stdout(&local).contains("\"id\":\"A\"") && stdout(&local).contains("\"id\":\"B\""));

    // A starts again (same agent): a new lease and keeper; the old keeper is stopped and the
    // old lease revoked without taking the key with it.
    let again = start(&t, &url, "A", &a);
    let ka2 = keepers.add(again["etcd"]["keeper"].as_u64().unwrap());
    assert_ne!(again["etcd"]["lease"], sa["etcd"]["lease"]);
    retry("A's first keeper exits", Duration::from_secs(30), || {
        (!running(ka)).then_some(())
    });
    let list = listed(&t, &url);
    assert_eq!(ids(&list), ["B", "A"], "oldest first: A restarted last");
    let ka = ka2;

    // A's agent dies: its keeper revokes at once — long before the 10-minute TTL — and exits.
    drop(a);
    retry("A gone from etcd", Duration::from_secs(60), || {
        (ids(&listed(&t, &url)) == ["B"]).then_some(())
    });
    retry("A's keeper exits", Duration::from_secs(30), || {
        (!running(ka)).then_some(())
    });
    assert!(running(kb), "B's keeper still runs");

    // B ends: revoked by `end` itself (gone as soon as it returns), its keeper stopped.
    let o = verb(
        &t,
        Some(&url),
        ["--json", "session", "end", "--session", "B"],
    )
    .output()
    .unwrap();
    assert_code(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["ended"]["etcd"],
        json!({"revoked": true, "keeper": kb}),
        "{v}"
    );
    assert!(listed(&t, &url).is_empty());
    retry("B's keeper exits", Duration::from_secs(30), || {
        (!running(kb)).then_some(())
    });
    drop(b);
}

#[test]
fn etcd_session_start_with_etcd_unreachable_starts_locally_with_one_warning() {
    let t = TestEnv::new();
    let url = unreachable_url();
    let a = Agent::sleep();
    let o = verb(
        &t,
        Some(&url),
        [
            "--json",
            "session",
            "start",
            "--session",
            "A",
            "--pid",
            &a.pid(),
        ],
    )
    .output()
    .unwrap();
    assert_code(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["etcd"], Value::Null, "{v}");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("concur: session: warning: ") && err.contains(&url),
        "{err}"
    );
    assert!(!t.home.join("sessions/A.keeper").exists(), "no keeper");
    let local = t.run(["--json", "session", "list"]);
    assert!(
        stdout(&local).contains("\"id\":\"A\""),
        "{}",
        stdout(&local)
    );

    // The SessionStart hook likewise: the agent is not broken, the session is local.
    let o = hook_claude(
        &t,
        Some(&url),
        &json!({"session_id": "H", "cwd": t.dir.path(), "hook_event_name": "SessionStart"}),
    );
    assert_code(&o, 0);
    // (Session A, alive in the same directory, makes the hook also list its leases: that read
    // fails too, on a line of its own.)
    let err = stderr(&o);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].starts_with("concur: hook: warning: session H not registered on ")
            && warnings[0].contains(&url),
        "{err}"
    );
    assert!(
        err.lines().all(|l| l.starts_with("concur: hook: ")),
        "{err}"
    );
    assert!(t.home.join("sessions/H.json").exists());
    assert!(!t.home.join("sessions/H.keeper").exists(), "no keeper");

    // A malformed backend URL is invalid input: exit 4, nothing registered.
    let o = verb(
        &t,
        Some("http://x"),
        ["session", "start", "--session", "B", "--pid", &a.pid()],
    )
    .output()
    .unwrap();
    assert_code(&o, 4);
    assert!(!t.home.join("sessions/B.json").exists());
}

#[test]
fn etcd_session_hooks_register_on_start_and_revoke_on_end() {
    if !available("etcd_session_hooks_register_on_start_and_revoke_on_end") {
        return;
    }
    let cl = Cluster::start(1);
    let url = cl.url();
    let t = TestEnv::new();
    let mut keepers = Keepers::new(&t);
    let cwd: &Path = t.dir.path();
    let ev = |event: &str| {
        json!({"session_id": "hooked", "transcript_path": "/t", "cwd": cwd,
               "hook_event_name": event, "source": "startup"})
    };
    let o = hook_claude(&t, Some(&url), &ev("SessionStart"));
    assert_code(&o, 0);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    let k = keepers.of("hooked");
    // The agent is the hook's parent: this test process.
    let list = listed(&t, &url);
    assert_eq!(ids(&list), ["hooked"], "{list:?}");
    assert_eq!(list[0]["pid"], std::process::id(), "{list:?}");
    assert_eq!(list[0]["this_host"], true);

    let o = hook_claude(&t, Some(&url), &ev("SessionEnd"));
    assert_code(&o, 0);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    assert!(listed(&t, &url).is_empty());
    retry("the keeper exits", Duration::from_secs(30), || {
        (!running(k)).then_some(())
    });
}

/// With a backend set, `session end` (and the `SessionEnd` hook) end the session everywhere:
/// the local reservations go too, as docs/reserve.md promises. Reservations are local state
/// whatever the backend, so ending through the etcd store must not leave them behind.
#[test]
fn etcd_session_end_releases_the_sessions_local_reservations() {
    if !available("etcd_session_end_releases_the_sessions_local_reservations") {
        return;
    }
    let cl = Cluster::start(1);
    let url = cl.url();
    let t = TestEnv::new();
    std::fs::create_dir_all(t.path("repo/.git")).unwrap();
    let file = t.path("repo/a.txt");
    let mut keepers = Keepers::new(&t);
    let a = Agent::sleep();
    let b = Agent::sleep();
    keepers.add(start(&t, &url, "A", &a)["etcd"]["keeper"].as_u64().unwrap());
    keepers.add(start(&t, &url, "B", &b)["etcd"]["keeper"].as_u64().unwrap());
    let reserve = |who: &str| {
        verb(
            &t,
            Some(&url),
            ["reserve", file.to_str().unwrap(), "--session", who],
        )
        .output()
        .unwrap()
    };
    assert_code(&reserve("A"), 0);
    assert_code(&reserve("B"), 1);

    for (how, end) in [("session end", true), ("SessionEnd hook", false)] {
        if end {
            let o = verb(&t, Some(&url), ["session", "end", "--session", "A"])
                .output()
                .unwrap();
            assert_code(&o, 0);
        } else {
            assert_code(&reserve("A"), 0);
            let o = hook_claude(
                &t,
                Some(&url),
                &json!({"session_id": "A", "hook_event_name": "SessionEnd",
                        "cwd": t.dir.path(), "reason": "other"}),
            );
            assert_code(&o, 0);
        }
        let list = t.run(["--json", "reservations"]);
        assert_code(&list, 0);
        assert!(
            !stdout(&list).contains(r#""session":"A""#),
            "{how}: A's reservation outlived its session: {}",
            stdout(&list)
        );
        let o = reserve("B");
        assert_code(&o, 0);
        let o = verb(
            &t,
            Some(&url),
            ["release", file.to_str().unwrap(), "--session", "B"],
        )
        .output()
        .unwrap();
        assert_code(&o, 0);
        if end {
            keepers.add(start(&t, &url, "A", &a)["etcd"]["keeper"].as_u64().unwrap());
        }
    }
}
