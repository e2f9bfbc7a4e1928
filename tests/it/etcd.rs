//! The etcd primitives against real etcd servers (single node and a 3-node cluster), driven by
//! real concurrent processes: each client is this test binary re-run in the ignored `child`
//! test with a role in its environment, started on the barrier.
//!
//! Every client logs `A <token> <pid>` right after acquiring and `R <token> <pid>` right before
//! releasing (one `O_APPEND` write each, made while holding), so the log's order is the order of
//! the critical sections: the checks find overlaps and token order from it.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use concur::ErrorKind;
use concur::child::{Ended, Supervise};
use concur::etcd::fence::{self, Fence};
use concur::etcd::hold;
use concur::etcd::{Client, Timeouts, Wait, lock, semaphore, token};
use concur::lock::Holder;
use serde_json::json;

use crate::etcd_util::{Cluster, anon_lock, available};
use crate::util::{Barrier, TestEnv, assert_code, retry};

/// The clients' lease TTL: long enough that a heavily loaded machine (keepalives delayed by
/// seconds) does not make holders give up, short enough for the killed-holder test.
const TTL: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- the child process

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"))
}

fn env_n(k: &str) -> usize {
    env(k).parse().expect("number")
}

fn append(path: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    f.write_all(format!("{line}\n").as_bytes()).expect("log");
}

/// A client role, run as its own process by the tests below (ignored when run directly).
#[test]
#[ignore = "a client process started by the etcd tests"]
fn child() {
    let Ok(role) = std::env::var("CT_ROLE") else {
        return;
    };
    let client = Client::with_timeouts(
        &env("CT_URL"),
        Timeouts {
            request: Duration::from_secs(1),
            call: Duration::from_secs(30),
        },
    )
    .unwrap();
    let name = env("CT_NAME");
    let session = format!("s{}", std::process::id());
    match role.as_str() {
        "lock" => role_lock(&client, &name, &session),
        "slot" => role_slot(&client, &name, &session),
        "take" => role_take(&client, &name, &session),
        "cas" => role_cas(&client),
        "hold" => role_hold(&client, &name),
        other => panic!("unknown role {other}"),
    }
}

fn role_lock(client: &Client, name: &str, session: &str) {
    let pid = std::process::id();
    let log = env("CT_LOG");
    let counter = client
        .prefix()
        .iter()
        .copied()
        .chain(*b"counter")
        .collect::<Vec<_>>();
    for _ in 0..env_n("CT_N") {
        let g = lock::lock(
            client,
            None,
            name,
            TTL,
            Wait::Forever,
            &Holder::me(Some(session.to_string()), None),
        )
        .unwrap()
        .unwrap();
        append(&log, &format!("A {} {pid}", g.token()));
        // Unprotected read-modify-write: only mutual exclusion keeps it exact.
        let n = client
            .get(&counter)
            .unwrap()
            .map_or(0, |kv| kv.value_str().parse::<u64>().unwrap());
        client
            .put(&counter, (n + 1).to_string().as_bytes(), 0)
            .unwrap();
        g.check().unwrap();
        append(&log, &format!("R {} {pid}", g.token()));
        g.unlock().unwrap();
    }
}

fn role_slot(client: &Client, name: &str, session: &str) {
    let pid = std::process::id();
    let log = env("CT_LOG");
    let max = env_n("CT_MAX");
    for _ in 0..env_n("CT_N") {
        let p = semaphore::acquire(
            client,
            None,
            name,
            max,
            TTL,
            Wait::Forever,
            &Holder::me(Some(session.to_string()), None),
        )
        .unwrap()
        .unwrap();
        append(&log, &format!("A {} {pid}", p.token()));
        p.lease().check().unwrap();
        append(&log, &format!("R {} {pid}", p.token()));
        p.release().unwrap();
    }
}

fn role_take(client: &Client, name: &str, session: &str) {
    let pid = std::process::id();
    let log = env("CT_LOG");
    let home = concur::Home::at(Path::new(&log).with_file_name(format!("home.{pid}"))).unwrap();
    let session = concur::SessionId::new(session).unwrap();
    for r in 0..env_n("CT_N") {
        let t = token::take(client, &home, &format!("{name}{r}"), Some(&session)).unwrap();
        match t.outcome {
            concur::token::Outcome::Won => append(&log, &format!("W {r} {pid} {}", t.payload)),
            concur::token::Outcome::Taken => {}
            other => panic!("take: {other:?}"),
        }
    }
}

fn role_cas(client: &Client) {
    let key = client
        .prefix()
        .iter()
        .copied()
        .chain(*b"cas")
        .collect::<Vec<_>>();
    for _ in 0..env_n("CT_N") {
        fence::update(client, &key, None, |old| {
            let mut v: serde_json::Value =
                old.map_or_else(|| json!({"n": 0}), |b| serde_json::from_slice(b).unwrap());
            v["n"] = json!(v["n"].as_u64().unwrap() + 1);
            Ok(v.to_string().into_bytes())
        })
        .unwrap();
    }
}

fn role_hold(client: &Client, name: &str) {
    // Acquire, report the token, wait for a line on stdin, then try a fenced write.
    let g = anon_lock(client, name, Duration::from_secs(2), Wait::Forever)
        .unwrap()
        .unwrap();
    append(&env("CT_TOKEN"), &g.token().to_string());
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    let fence = Fence {
        lock: name.to_string(),
        token: g.token(),
    };
    let key = client
        .prefix()
        .iter()
        .copied()
        .chain(*b"fenced")
        .collect::<Vec<_>>();
    let res = match fence::put(client, &fence, &key, b"stale") {
        Ok(_) => "written".to_string(),
        Err(e) if e.kind() == ErrorKind::Precondition => format!("refused: {e}"),
        Err(e) => format!("error: {e}"),
    };
    append(&env("CT_RESULT"), &res);
    append(
        &env("CT_RESULT"),
        &format!("self-valid {}", g.lease().is_valid()),
    );
}

fn child_cmd(url: &str, role: &str, name: &str, extra: &[(&str, String)]) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("test binary"));
    c.args(["etcd::child", "--exact", "--ignored", "--nocapture", "-q"])
        .env("CT_ROLE", role)
        .env("CT_URL", url)
        .env("CT_NAME", name);
    for (k, v) in extra {
        c.env(k, v);
    }
    c
}

#[track_caller]
fn assert_all_ok(outs: &[std::process::Output]) {
    for o in outs {
        assert!(
            o.status.success(),
            "client failed: {:?}\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Checks an A/R log: never more than `max` holders at once; with `increasing`, every
/// acquisition's token is larger than all before it. Returns the number of acquisitions.
#[track_caller]
fn check_log(path: &Path, max: usize, increasing: bool) -> usize {
    let text = std::fs::read_to_string(path).expect("log");
    let mut holding: Vec<i64> = Vec::new();
    let mut last = 0;
    let mut acquired = 0;
    let mut seen = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let mut f = line.split(' ');
        let (kind, tok) = (f.next().unwrap(), f.next().unwrap().parse::<i64>().unwrap());
        match kind {
            "A" => {
                assert!(
                    seen.insert(tok),
                    "line {}: token {tok} granted twice",
                    i + 1
                );
                assert!(
                    holding.len() < max,
                    "line {}: token {tok} acquired while {holding:?} held (max {max})",
                    i + 1
                );
                if increasing {
                    assert!(tok > last, "line {}: token {tok} after {last}", i + 1);
                }
                last = last.max(tok);
                holding.push(tok);
                acquired += 1;
            }
            "R" => {
                let at = holding.iter().position(|&t| t == tok);
                assert!(at.is_some(), "line {}: release of {tok} not held", i + 1);
                holding.remove(at.unwrap());
            }
            _ => panic!("bad log line {line}"),
        }
    }
    assert!(holding.is_empty(), "still held at the end: {holding:?}");
    acquired
}

/// Runs 8 clients of `role` on `key` against `url`, started together on a barrier, and asserts
/// that every one of them succeeded.
fn race8(url: &str, role: &str, key: &str, env: &[(&str, String)]) {
    let mut b = Barrier::new();
    for _ in 0..8 {
        b.spawn(&child_cmd(url, role, key, env));
    }
    assert_all_ok(&b.run_all());
}

fn count_lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |t| t.lines().count())
}

// ---------------------------------------------------------------- single node

#[test]
fn etcd_lock_admits_one_holder_among_8_processes() {
    if !available("etcd_lock_admits_one_holder_among_8_processes") {
        return;
    }
    let cl = Cluster::start(1);
    let log = cl.dir.path().join("lock.log");
    race8(
        &cl.url(),
        "lock",
        "L",
        &[("CT_N", "8".into()), ("CT_LOG", log.display().to_string())],
    );
    assert_eq!(check_log(&log, 1, true), 64);
    let c = cl.client();
    let counter = c.get(b"concur/counter").unwrap().unwrap();
    assert_eq!(
        counter.value_str(),
        "64",
        "an unprotected increment was lost"
    );
    assert!(lock::holder(&c, "L").unwrap().is_none(), "lock left held");
}

#[test]
fn etcd_slot_never_admits_more_than_max() {
    if !available("etcd_slot_never_admits_more_than_max") {
        return;
    }
    let cl = Cluster::start(1);
    let log = cl.dir.path().join("slot.log");
    race8(
        &cl.url(),
        "slot",
        "S",
        &[
            ("CT_N", "6".into()),
            ("CT_MAX", "3".into()),
            ("CT_LOG", log.display().to_string()),
        ],
    );
    assert_eq!(check_log(&log, 3, false), 48);
    let c = cl.client();
    let (holders, max) = semaphore::holders(&c, "S").unwrap();
    assert_eq!((holders.len(), max), (0, Some(3)));
    let e =
        semaphore::acquire(&c, None, "S", 4, TTL, Wait::No, &Holder::me(None, None)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
}

#[test]
fn etcd_token_has_exactly_one_winner_per_round() {
    if !available("etcd_token_has_exactly_one_winner_per_round") {
        return;
    }
    let cl = Cluster::start(1);
    let c = cl.client();
    let rounds = 40;
    for r in 0..rounds {
        token::issue(
            &c,
            &format!("t{r}"),
            &json!({ "round": r }),
            None,
            None,
            false,
        )
        .unwrap();
    }
    let log = cl.dir.path().join("take.log");
    race8(
        &cl.url(),
        "take",
        "t",
        &[
            ("CT_N", rounds.to_string()),
            ("CT_LOG", log.display().to_string()),
        ],
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let mut wins = vec![0; rounds];
    for line in text.lines() {
        let r: usize = line.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(line.ends_with(&format!("{{\"round\":{r}}}")), "{line}");
        wins[r] += 1;
    }
    assert_eq!(wins, vec![1; rounds], "winners per round");
}

#[test]
fn etcd_token_expiry_and_absence_are_told_apart() {
    if !available("etcd_token_expiry_and_absence_are_told_apart") {
        return;
    }
    let cl = Cluster::start(1);
    let c = cl.client();
    let t = TestEnv::new();
    let home = concur::Home::at(&t.home).unwrap();
    let never = token::take(&c, &home, "never", None).unwrap();
    assert_eq!(never.outcome, concur::token::Outcome::Absent);
    token::issue(
        &c,
        "short",
        &json!(1),
        Some(Duration::from_secs(1)),
        None,
        false,
    )
    .unwrap();
    let e = token::issue(&c, "short", &json!(2), None, None, false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    // etcd deletes the key when the token's lease runs out; no clock compared here.
    retry("token lease expiry", Duration::from_secs(30), || {
        c.get(b"concur/token/short")
            .unwrap()
            .is_none()
            .then_some(())
    });
    let short = token::take(&c, &home, "short", None).unwrap();
    assert_eq!(short.outcome, concur::token::Outcome::Expired);
    let e = short.refusal().unwrap();
    assert_eq!(e.kind(), ErrorKind::Precondition, "{e}");
    assert!(e.to_string().contains("expired"), "{e}");
}

#[test]
fn etcd_cas_update_loses_no_increment() {
    if !available("etcd_cas_update_loses_no_increment") {
        return;
    }
    let cl = Cluster::start(1);
    race8(&cl.url(), "cas", "x", &[("CT_N", "15".into())]);
    let kv = cl.client().get(b"concur/cas").unwrap().unwrap();
    assert_eq!(kv.value_str(), r#"{"n":120}"#);
}

#[test]
fn etcd_busy_lock_names_its_holder_and_timed_wait_fails() {
    if !available("etcd_busy_lock_names_its_holder_and_timed_wait_fails") {
        return;
    }
    let cl = Cluster::start(1);
    let c = cl.client();
    let g = lock::lock(
        &c,
        None,
        "busy",
        TTL,
        Wait::No,
        &Holder::me(Some("holder-1".to_string()), None),
    )
    .unwrap()
    .unwrap();
    assert!(anon_lock(&c, "busy", TTL, Wait::No).unwrap().is_none());
    let h = lock::holder(&c, "busy").unwrap().unwrap();
    assert_eq!(h.token, g.token());
    assert!(
        h.describe().contains("session holder-1"),
        "{}",
        h.describe()
    );
    let e = anon_lock(&c, "busy", TTL, Wait::For(Duration::from_millis(300))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
    let first = g.token();
    g.unlock().unwrap();
    let g2 = anon_lock(&c, "busy", TTL, Wait::No).unwrap().unwrap();
    assert!(g2.token() > first);
    let e = anon_lock(&c, "../x", TTL, Wait::No).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
}

#[test]
fn etcd_killed_holder_frees_the_lock_when_its_lease_expires() {
    if !available("etcd_killed_holder_frees_the_lock_when_its_lease_expires") {
        return;
    }
    let cl = Cluster::start(1);
    let tokfile = cl.dir.path().join("token");
    let mut child = child_cmd(
        &cl.url(),
        "hold",
        "K",
        &[
            ("CT_TOKEN", tokfile.display().to_string()),
            ("CT_RESULT", cl.dir.path().join("r").display().to_string()),
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let t1: i64 = retry("holder token", Duration::from_secs(30), || {
        std::fs::read_to_string(&tokfile).ok()?.trim().parse().ok()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let c = cl.client();
    let g = anon_lock(&c, "K", TTL, Wait::For(Duration::from_secs(30)))
        .unwrap()
        .unwrap();
    assert!(g.token() > t1);
}

// ---------------------------------------------------------------- 3-node cluster

#[test]
fn etcd_paused_holder_is_fenced_out_after_its_ttl() {
    if !available("etcd_paused_holder_is_fenced_out_after_its_ttl") {
        return;
    }
    let cl = Cluster::start(3);
    let tokfile = cl.dir.path().join("token");
    let result = cl.dir.path().join("result");
    let mut child = child_cmd(
        &cl.url(),
        "hold",
        "F",
        &[
            ("CT_TOKEN", tokfile.display().to_string()),
            ("CT_RESULT", result.display().to_string()),
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let t1: i64 = retry("holder token", Duration::from_secs(30), || {
        std::fs::read_to_string(&tokfile).ok()?.trim().parse().ok()
    });
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let c = cl.client();
    let g = anon_lock(&c, "F", TTL, Wait::For(Duration::from_secs(60)))
        .unwrap()
        .unwrap();
    assert!(g.token() > t1, "new token {} not above {t1}", g.token());
    let fence = Fence {
        lock: "F".into(),
        token: g.token(),
    };
    fence::put(&c, &fence, b"concur/fenced", b"fresh").unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(child.wait().unwrap().success());
    let r = std::fs::read_to_string(&result).unwrap();
    assert!(r.starts_with("refused: fencing token"), "{r}");
    assert!(
        r.contains(&format!("now held with token {}", g.token())),
        "{r}"
    );
    assert_eq!(
        c.get(b"concur/fenced").unwrap().unwrap().value_str(),
        "fresh",
        "the stale write got through"
    );
}

#[test]
fn etcd_leader_killed_mid_run_operations_resume_never_two_holders() {
    if !available("etcd_leader_killed_mid_run_operations_resume_never_two_holders") {
        return;
    }
    let mut cl = Cluster::start(3);
    let lock_log = cl.dir.path().join("lock.log");
    let slot_log = cl.dir.path().join("slot.log");
    let mut b = Barrier::new();
    for i in 0..8 {
        let (role, log) = if i % 2 == 0 {
            ("lock", &lock_log)
        } else {
            ("slot", &slot_log)
        };
        b.spawn(&child_cmd(
            &cl.url(),
            role,
            if role == "lock" { "L" } else { "S" },
            &[
                ("CT_N", "12".into()),
                ("CT_MAX", "2".into()),
                ("CT_LOG", log.display().to_string()),
            ],
        ));
    }
    b.release();
    let progress = || count_lines(&lock_log) + count_lines(&slot_log);
    retry("progress before the kill", Duration::from_secs(60), || {
        (progress() >= 20).then_some(())
    });
    let leader = cl.leader();
    cl.kill(leader);
    let at_kill = progress();
    retry(
        "progress after the leader died",
        Duration::from_secs(60),
        || (progress() >= at_kill + 20).then_some(()),
    );
    cl.spawn(leader);
    let outs = b.run_all();
    assert_all_ok(&outs);
    assert_eq!(check_log(&lock_log, 1, true), 48);
    assert_eq!(check_log(&slot_log, 2, false), 48);
    assert_eq!(
        cl.client()
            .get(b"concur/counter")
            .unwrap()
            .unwrap()
            .value_str(),
        "48"
    );
    // The restarted member catches up with the others.
    retry(
        "restarted member catches up",
        Duration::from_secs(60),
        || {
            let revs = cl.revisions();
            (revs[leader] > 0 && revs.iter().all(|&r| r == revs[0])).then_some(())
        },
    );
}

fn run_held(lease: &concur::etcd::Lease, cmd: Command) -> Ended {
    hold::run(lease, cmd, &Supervise::default())
        .unwrap()
        .unwrap()
}

fn sleep_300() -> Command {
    let mut c = Command::new("sleep");
    c.arg("300");
    c
}

#[test]
fn etcd_command_under_a_lost_lease_is_killed() {
    if !available("etcd_command_under_a_lost_lease_is_killed") {
        return;
    }
    let cl = Cluster::start(1);
    let c = cl.client();
    let g = anon_lock(&c, "H", Duration::from_secs(2), Wait::No)
        .unwrap()
        .unwrap();
    let mut quiet = Command::new("true");
    quiet.stdout(Stdio::null());
    let out = run_held(g.lease(), quiet);
    assert!(out.status.success() && !out.lost, "{out:?}");
    // Someone (an operator, a partition's expiry) removes the lease while the command runs.
    c.revoke(g.lease().id()).unwrap();
    let out = run_held(g.lease(), sleep_300());
    assert!(out.lost, "{out:?}");
    assert!(lock::holder(&c, "H").unwrap().is_none());
}

#[test]
fn etcd_command_is_killed_when_a_keepalive_finds_the_lease_gone_not_at_the_old_bound() {
    let test = "etcd_command_is_killed_when_a_keepalive_finds_the_lease_gone";
    if !available(test) {
        return;
    }
    let cl = Cluster::start(1);
    let c = cl.client();
    // TTL 15 s: renewed every 5 s; the holder's own bound is 13.5 s after the grant.
    let g = anon_lock(&c, "H", Duration::from_secs(15), Wait::No)
        .unwrap()
        .unwrap();
    let bound = g.lease().valid_until();
    // Revoked at once: another holder may take the lock now. The holder learns it at its next
    // keepalive (within 5 s) and must kill the command then, not run it on until its old bound.
    c.revoke(g.lease().id()).unwrap();
    let out = run_held(g.lease(), sleep_300());
    assert!(out.lost, "{out:?}");
    let now = concur::sys::proc::boot_clock();
    assert!(
        now < bound,
        "the command ran on until the holder's old bound ({bound:?}, now {now:?}) after a \
         keepalive had found its lease revoked"
    );
}

// ---------------------------------------------------------------- the verbs, on both backends

/// Runs `scenario` once on the local backend and once on a fresh single-node etcd (when etcd is
/// installed): the same verbs, the same expectations. `backend` is `None` for local.
pub(crate) fn on_both_backends(test: &str, scenario: impl Fn(&TestEnv, Option<&str>)) {
    scenario(&TestEnv::new(), None);
    if available(test) {
        let cl = Cluster::start(1);
        scenario(&TestEnv::new(), Some(&cl.url()));
    }
}

/// `concur ARGS` in `t`, on `backend` when given.
pub(crate) fn verb<I, S>(t: &TestEnv, backend: Option<&str>, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = t.cmd(args);
    if let Some(b) = backend {
        c.env("CONCUR_BACKEND", b);
    }
    c
}

#[test]
fn verbs_token_take_has_one_winner_per_round_on_both_backends() {
    on_both_backends("verbs_token_take_has_one_winner_per_round", |t, be| {
        for round in 0..12 {
            let name = format!("tok{round}");
            let data = format!("{{\"round\":{round}}}");
            let o = verb(t, be, ["token", "issue", &name, "--data", &data])
                .output()
                .unwrap();
            assert_code(&o, 0);
            let mut b = Barrier::new();
            for _ in 0..8 {
                b.spawn(&verb(t, be, ["token", "take", &name]));
            }
            let outs = b.run_all();
            let won: Vec<_> = outs.iter().filter(|o| o.status.code() == Some(0)).collect();
            let lost = outs.iter().filter(|o| o.status.code() == Some(1)).count();
            assert_eq!((won.len(), lost), (1, 7), "{be:?} round {round}: {outs:?}");
            let payload: serde_json::Value = serde_json::from_slice(&won[0].stdout).unwrap();
            assert_eq!(payload, json!({ "round": round }), "{be:?}");
        }
    });
}

#[test]
fn verbs_named_lock_runs_commands_one_at_a_time_on_both_backends() {
    on_both_backends("verbs_named_lock_runs_commands_one_at_a_time", |t, be| {
        let log = t.path("cs.log");
        let script = format!("echo A $$ >> {0}; echo R $$ >> {0}", log.display());
        let mut b = Barrier::new();
        for _ in 0..8 {
            b.spawn(&verb(t, be, ["lock", "--name", "cs", "-c", &script]));
        }
        let outs = b.run_all();
        for o in &outs {
            assert_code(o, 0);
        }
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 16, "{be:?}");
        for pair in lines.chunks(2) {
            let (a, r) = (pair[0], pair[1]);
            assert!(
                a.starts_with("A ") && r.starts_with("R ") && a[2..] == r[2..],
                "{be:?}: critical sections overlap:\n{text}"
            );
        }
    });
}

#[test]
fn verbs_busy_named_lock_fails_fast_with_the_conflict_code_on_both_backends() {
    on_both_backends("verbs_busy_named_lock_fails_fast", |t, be| {
        let gate = t.path("gate");
        let ready = t.path("ready");
        // The holder signals it holds, then waits until the test lets it go.
        let script = format!(
            "touch {}; while [ ! -e {} ]; do sleep 0.01; done",
            ready.display(),
            gate.display()
        );
        let mut holder = verb(t, be, ["lock", "--name", "busy", "-c", &script])
            .spawn()
            .unwrap();
        retry("holder holds", Duration::from_secs(30), || {
            ready.exists().then_some(())
        });
        let o = verb(t, be, ["lock", "-n", "-E", "7", "--name", "busy", "true"])
            .output()
            .unwrap();
        assert_code(&o, 7);
        let o = verb(t, be, ["lock", "-w", "0.2", "--name", "busy", "true"])
            .output()
            .unwrap();
        assert_code(&o, 1);
        std::fs::File::create(&gate).unwrap();
        assert!(holder.wait().unwrap().success());
        let o = verb(t, be, ["lock", "-n", "--name", "busy", "true"])
            .output()
            .unwrap();
        assert_code(&o, 0);
    });
}

pub(crate) fn out_token(o: &std::process::Output) -> u64 {
    let s = String::from_utf8_lossy(&o.stdout);
    s.trim().parse().unwrap_or_else(|_| {
        panic!(
            "no token in {s:?} / {:?}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn verbs_lease_race_has_one_winner_per_round_and_growing_tokens_on_both_backends() {
    on_both_backends("verbs_lease_race_has_one_winner_per_round", |t, be| {
        let mut last = 0;
        for round in 0..10 {
            let task = format!("task-{round}");
            let mut b = Barrier::new();
            for i in 0..8 {
                let s = format!("racer-{i}");
                b.spawn(&verb(t, be, ["lease", "acquire", &task, "--session", &s]));
            }
            let outs = b.run_all();
            let won: Vec<_> = outs.iter().filter(|o| o.status.code() == Some(0)).collect();
            assert_eq!(won.len(), 1, "{be:?} round {round}: {outs:?}");
            for o in outs.iter().filter(|o| o.status.code() != Some(0)) {
                assert_code(o, 1);
                assert!(
                    String::from_utf8_lossy(&o.stderr).contains("held by session racer-"),
                    "{be:?}: {o:?}"
                );
            }
            let tok = out_token(won[0]);
            assert!(tok > last, "{be:?} round {round}: token {tok} after {last}");
            last = tok;
        }
    });
}

#[test]
fn verbs_lease_reacquire_release_complete_once_on_both_backends() {
    on_both_backends("verbs_lease_reacquire_release_complete_once", |t, be| {
        let run = |args: &[&str]| verb(t, be, args).output().unwrap();
        let first = run(&["lease", "acquire", "build", "--once", "--session", "A"]);
        assert_code(&first, 0);
        let again = run(&["lease", "acquire", "build", "--session", "A", "--ttl", "1h"]);
        assert_code(&again, 0);
        assert_eq!(
            out_token(&again),
            out_token(&first),
            "{be:?}: re-acquire keeps the token"
        );
        assert_code(&run(&["lease", "acquire", "build", "--session", "B"]), 1);
        assert_code(&run(&["lease", "renew", "build", "--session", "B"]), 1);
        assert_code(&run(&["lease", "renew", "build", "--session", "A"]), 0);
        let show = run(&["--json", "lease", "show", "build"]);
        assert_code(&show, 0);
        let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
        assert_eq!(v["lease"]["session"], "A", "{be:?}: {v}");
        assert_code(&run(&["lease", "complete", "build", "--session", "A"]), 0);
        let after = run(&["lease", "acquire", "build", "--session", "B"]);
        assert_code(&after, 1);
        assert!(
            String::from_utf8_lossy(&after.stderr).contains("completed"),
            "{be:?}: {after:?}"
        );
        // An ordinary task: release frees it, the next holder gets a larger token.
        let a = run(&["lease", "acquire", "t2", "--session", "A"]);
        assert_code(&a, 0);
        assert_code(&run(&["lease", "release", "t2", "--session", "A"]), 0);
        let b = run(&["lease", "acquire", "t2", "--session", "B"]);
        assert_code(&b, 0);
        assert!(out_token(&b) > out_token(&a), "{be:?}");
    });
}

#[test]
fn verbs_lease_of_a_killed_session_is_reclaimed_at_once_on_both_backends() {
    on_both_backends(
        "verbs_lease_of_a_killed_session_is_reclaimed_at_once",
        |t, be| {
            let run = |args: &[&str]| verb(t, be, args).output().unwrap();
            let mut agent = Command::new("sleep").arg("1000").spawn().unwrap();
            let pid = agent.id().to_string();
            assert_code(
                &run(&["session", "start", "--session", "A", "--pid", &pid]),
                0,
            );
            let first = run(&[
                "lease",
                "acquire",
                "deploy",
                "--session",
                "A",
                "--ttl",
                "1h",
            ]);
            assert_code(&first, 0);
            assert_code(&run(&["lease", "acquire", "deploy", "--session", "B"]), 1);
            agent.kill().unwrap();
            agent.wait().unwrap();
            // The TTL is an hour away: only the holder's death frees it.
            let second = run(&["lease", "acquire", "deploy", "--session", "B"]);
            assert_code(&second, 0);
            assert!(out_token(&second) > out_token(&first), "{be:?}");
        },
    );
}

#[test]
fn verbs_slot_never_runs_more_than_max_on_both_backends() {
    on_both_backends("verbs_slot_never_runs_more_than_max", |t, be| {
        let log = t.path("slot.log");
        let script = format!("echo A $$ >> {0}; echo R $$ >> {0}", log.display());
        let mut b = Barrier::new();
        for _ in 0..8 {
            b.spawn(&verb(t, be, ["slot", "sl", "--max", "2", "-c", &script]));
        }
        for o in b.run_all() {
            assert_code(&o, 0);
        }
        let text = std::fs::read_to_string(&log).unwrap();
        let mut running = 0;
        for line in text.lines() {
            running += if line.starts_with('A') { 1 } else { -1 };
            assert!(
                (0..=2).contains(&running),
                "{be:?}: over 2 at once:\n{text}"
            );
        }
        assert_eq!((text.lines().count(), running), (16, 0), "{be:?}");
        let mismatch = verb(t, be, ["slot", "sl", "--max", "3", "true"])
            .output()
            .unwrap();
        assert_code(&mismatch, 4);
        let st = verb(t, be, ["--json", "slot", "status", "sl"])
            .output()
            .unwrap();
        assert_code(&st, 0);
        let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        assert_eq!(
            (v["max"].as_u64(), v["held"].as_u64()),
            (Some(2), Some(0)),
            "{be:?}: {v}"
        );
    });
}
