//! Real etcd servers for the tests: single node or a 3-node cluster on loopback, free ports, a
//! temporary data dir per member, stopped by pid (never by name). Tests skip with a printed
//! message when the `etcd` binary (Debian `etcd-server`) is not installed.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use concur::etcd::{Client, Timeouts};
use serde_json::Value;

use crate::etcd::verb;
use crate::util::{TestEnv, retry};

/// One member's addresses and process.
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
}

/// A running cluster; dropping it kills every member it started.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<Member>,
    initial: String,
    token: String,
}

/// A free loopback port (bound and released; a clash is retried by [`Cluster::start`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// An `etcd://` URL on a loopback port nothing listens on (bound, then released): every
/// request to it is refused.
pub fn unreachable_url() -> String {
    format!("etcd://127.0.0.1:{}", free_port())
}

/// `concur hook claude` with `payload` on stdin, on `backend` when given.
pub fn hook_claude(t: &TestEnv, backend: Option<&str>, payload: &Value) -> Output {
    let mut c = verb(t, backend, ["hook", "claude"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(payload.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Whether `etcd` is installed; prints why a test is skipped when not. With
/// `CONCUR_REQUIRE_ETCD=1` (set by scripts/test once it has installed etcd, and so in CI) a
/// missing etcd fails the test instead: a suite that skips its etcd half must not pass green.
pub fn available(test: &str) -> bool {
    let ok = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CONCUR_REQUIRE_ETCD").is_none_or(|v| v != "1"),
            "{test}: etcd is not installed (Debian package etcd-server) and CONCUR_REQUIRE_ETCD=1"
        );
        eprintln!("skipping {test}: etcd is not installed (Debian package etcd-server)");
    }
    ok
}

impl Cluster {
    /// Starts `n` members and waits until they agree on a leader.
    pub fn start(n: usize) -> Cluster {
        for attempt in 0..3 {
            if let Some(c) = Cluster::try_start(n) {
                return c;
            }
            eprintln!("etcd cluster start attempt {attempt} failed (port clash?), retrying");
        }
        panic!("could not start a {n}-node etcd cluster");
    }

    fn try_start(n: usize) -> Option<Cluster> {
        let dir = tempfile::tempdir().expect("tempdir");
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                data: dir.path().join(format!("m{i}.etcd")),
                log: dir.path().join(format!("m{i}.log")),
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("concur-test-{}-{}", std::process::id(), free_port());
        let mut c = Cluster {
            dir,
            members,
            initial,
            token,
        };
        for i in 0..n {
            c.spawn(i);
        }
        let client = c.client();
        let mut ready = false;
        for _ in 0..1500 {
            let st = client.status();
            let leader = st[0].leader;
            if leader != 0 && st.iter().all(|s| s.error.is_none() && s.leader == leader) {
                ready = true;
                break;
            }
            let exited = c.members.iter_mut().any(|m| {
                m.child
                    .as_mut()
                    .is_some_and(|ch| ch.try_wait().ok().flatten().is_some())
            });
            if exited {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if ready {
            Some(c)
        } else {
            for m in &c.members {
                eprintln!(
                    "--- {} log:\n{}",
                    m.name,
                    std::fs::read_to_string(&m.log).unwrap_or_default()
                );
            }
            None
        }
    }

    /// Starts (or restarts, on its existing data dir) member `i`.
    pub fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("etcd log");
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let child = Command::new("etcd")
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            // Fast elections keep failover tests short; still far above loopback latency.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.members[i].child = Some(child);
    }

    /// `etcd://127.0.0.1:P1,...` for every member.
    pub fn url(&self) -> String {
        let eps: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect();
        format!("etcd://{}", eps.join(","))
    }

    /// A client with short per-request timeouts (failover tests should not wait long).
    pub fn client(&self) -> Client {
        Client::with_timeouts(
            &self.url(),
            Timeouts {
                request: Duration::from_secs(1),
                call: Duration::from_secs(30),
            },
        )
        .expect("client")
    }

    /// The index of the current leader.
    pub fn leader(&self) -> usize {
        let client = self.client();
        retry("an etcd leader", Duration::from_secs(30), || {
            let st = client.status();
            let leader = st.iter().find(|s| s.leader != 0)?.leader;
            st.iter().position(|s| s.member_id == leader)
        })
    }

    /// Kills member `i` with SIGKILL (by pid) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The value of a counter or gauge in member `i`'s `/metrics` (Prometheus text), e.g.
    /// `etcd_debugging_lease_granted_total`: evidence of how many requests a client made.
    pub fn metric(&self, i: usize, name: &str) -> f64 {
        let port = self.members[i].client_port;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("etcd member");
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("metrics request");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("etcd has no metric {name}"))
    }

    /// The applied revision of each member (0 when it does not answer).
    pub fn revisions(&self) -> Vec<i64> {
        self.client().status().iter().map(|s| s.revision).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// `lock::lock` on `c` without a pool, for a holder that says nothing about itself.
pub fn anon_lock(
    c: &concur::etcd::Client,
    name: &str,
    ttl: std::time::Duration,
    wait: concur::etcd::Wait,
) -> concur::Result<Option<concur::etcd::LockGuard>> {
    concur::etcd::lock::lock(
        c,
        None,
        name,
        ttl,
        wait,
        &concur::lock::Holder::me(None, None),
    )
}
