//! The etcd lease pool of `concur lock --name` and `concur slot` (src/etcd/pool.rs), against a
//! real single-node etcd: leases reused across processes, never one a dead holder left keys on,
//! and a lease the cluster does not know replaced by a fresh one.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use concur::etcd::lock;

use crate::etcd::verb;
use crate::etcd_util::{Cluster, available};
use crate::util::{TestEnv, assert_code};
use concur::etcd::Client;

/// The pool's slot files (`etcd-leases/CLUSTER-TTL/N` in the home), with their contents.
fn records(t: &TestEnv) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(pools) = std::fs::read_dir(t.home.join("etcd-leases")) else {
        return out;
    };
    for pool in pools {
        for slot in std::fs::read_dir(pool.unwrap().path()).unwrap() {
            let p = slot.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            out.push((p, text));
        }
    }
    out.sort();
    out
}

/// The lease id a record names, when it is in `state` (`clean` or `dirty`).
fn lease_in(record: &str, state: &str) -> Option<i64> {
    let mut f = record.split_whitespace();
    (f.next()? == state).then_some(())?;
    i64::from_str_radix(f.next()?, 16).ok()
}

/// Runs `concur ARGS` on `url` in `t` and returns its exit code.
fn code(t: &TestEnv, url: &str, args: &[&str]) -> Option<i32> {
    let o = verb(t, Some(url), args).output().unwrap();
    eprintln!("{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o.status.code()
}

/// A single-node cluster, a client of it and a fresh home, when etcd is installed.
fn setup(test: &str) -> Option<(Cluster, Client, TestEnv, String)> {
    if !available(test) {
        return None;
    }
    let cl = Cluster::start(1);
    let c = cl.client();
    let url = cl.url();
    Some((cl, c, TestEnv::new(), url))
}

#[test]
fn lock_and_slot_processes_reuse_one_lease_and_leave_no_key() {
    let Some((_cl, c, t, url)) = setup("lock_and_slot_processes_reuse_one_lease_and_leave_no_key")
    else {
        return;
    };
    for _ in 0..4 {
        assert_eq!(code(&t, &url, &["lock", "--name", "p", "true"]), Some(0));
        assert_eq!(
            code(&t, &url, &["slot", "s", "--max", "2", "true"]),
            Some(0)
        );
    }
    // Eight holds, one after another: one lease, granted once, back in the pool, keyless.
    let leases = c.leases().unwrap();
    assert_eq!(leases.len(), 1, "{leases:?}");
    let recs = records(&t);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(lease_in(&recs[0].1, "clean"), Some(leases[0]), "{recs:?}");
    assert!(lock::holder(&c, "p").unwrap().is_none());
    let (kvs, _) = c.range_prefix(b"concur/slot/s/h/").unwrap();
    assert!(kvs.is_empty(), "{kvs:?}");
}

#[test]
fn a_dead_holders_lease_is_never_adopted() {
    let Some((_cl, c, t, url)) = setup("a_dead_holders_lease_is_never_adopted") else {
        return;
    };
    // A first hold puts a clean lease in the pool; the holder below adopts it.
    assert_eq!(code(&t, &url, &["lock", "--name", "k", "true"]), Some(0));
    let mut holder = verb(
        &t,
        Some(&url),
        ["lock", "--name", "k", "-c", "echo held; exec sleep 600"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "held\n");
    let dead = lock::holder(&c, "k").unwrap().expect("held").lease;
    let recs = records(&t);
    assert_eq!(lease_in(&recs[0].1, "dirty"), Some(dead), "{recs:?}");
    holder.kill().unwrap();
    holder.wait().unwrap();
    // The dead holder's key stays on its lease until the TTL: the lock is busy. Adopting that
    // lease would have found "our own key" there and taken the lock.
    let o = verb(&t, Some(&url), ["lock", "-n", "--name", "k", "true"])
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert_eq!(lock::holder(&c, "k").unwrap().map(|h| h.lease), Some(dead));
    let recs = records(&t);
    let fresh = lease_in(&recs[0].1, "clean").expect("a new clean lease");
    assert_ne!(fresh, dead, "{recs:?}");
}

#[test]
fn a_pooled_lease_the_cluster_does_not_know_is_replaced() {
    let Some((_cl, c, t, url)) = setup("a_pooled_lease_the_cluster_does_not_know_is_replaced")
    else {
        return;
    };
    assert_eq!(code(&t, &url, &["lock", "--name", "u", "true"]), Some(0));
    let recs = records(&t);
    let real = lease_in(&recs[0].1, "clean").expect("pooled");
    // Revoked behind the pool's back (an operator, `etcdctl lease revoke`): the record still
    // says clean and valid.
    c.revoke(real).unwrap();
    let o = verb(&t, Some(&url), ["lock", "--name", "u", "--json", "true"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(lock::holder(&c, "u").unwrap().is_none());
    // The next hold is pooled again, on a lease the cluster knows.
    assert_eq!(code(&t, &url, &["lock", "--name", "u", "true"]), Some(0));
    let leases = c.leases().unwrap();
    let recs = records(&t);
    let now = lease_in(&recs[0].1, "clean").expect("pooled");
    assert_ne!(now, real);
    assert!(leases.contains(&now), "{leases:?} {recs:?}");
}

/// Whether `strace` can trace here (installed, ptrace allowed); prints why a test is skipped.
fn strace_works(test: &str) -> bool {
    let ok = std::process::Command::new("strace")
        .args(["-o", "/dev/null", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipping {test}: strace is not installed or may not trace (Debian strace)");
    }
    ok
}

#[test]
fn time_an_adopter_spends_stopped_comes_off_its_bound() {
    let name = "time_an_adopter_spends_stopped_comes_off_its_bound";
    if !available(name) || !strace_works(name) {
        return;
    }
    let cl = Cluster::start(1);
    let c = cl.client();
    let t = TestEnv::new();
    let url = cl.url();
    // A fresh lease goes back to the pool with about 9 s of its 10 s TTL left.
    assert_code(
        &verb(&t, Some(&url), ["lock", "--name", "k", "true"])
            .output()
            .unwrap(),
        0,
    );
    // The next holder reads that record, then stalls for 7 s in its first write (the `dirty`
    // mark; a stopped process or a slow home does the same): when it goes on, the server
    // keeps the lease about 3 s more, not 9. A holder that still counted 9 s renewed only after
    // a keepalive period (3.3 s) — after the server had let the lease and the lock go.
    let pid_file = t.path("a.pid");
    let script = format!("echo $$ > {}; echo held; read _", pid_file.display());
    let concur = verb(&t, None, Vec::<&str>::new());
    let mut a = std::process::Command::new("strace");
    a.args(["-o", "/dev/null", "-e", "trace=pwrite64"])
        .args(["-e", "inject=pwrite64:delay_enter=7000000:when=1"])
        .arg(concur.get_program())
        .args(["lock", "--name", "k", "-c", &script])
        .envs(concur.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("CONCUR_BACKEND", &url)
        .current_dir(concur.get_current_dir().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut a = a.spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(a.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line != "held\n" {
        // Slowed so much that its bound passed before it could acquire: it must not have run.
        let st = a.wait().unwrap();
        assert!(!st.success(), "{line:?}");
        return;
    }
    let lease = lock::holder(&c, "k").unwrap().expect("held").lease;
    // A second holder checks, once it gets the lock, whether the first one's command still runs.
    let check = format!(
        "kill -0 $(cat {}) 2>/dev/null && echo overlap || echo alone",
        pid_file.display()
    );
    let b = verb(&t, Some(&url), ["lock", "--name", "k", "-q", "-c", &check])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut b = Some(b);
    // Either the first holder renews its lease (its bound said it must, at once) and keeps the
    // lock until told to finish, or the second gets the lock — then the first's command must
    // be gone.
    let renewed = crate::util::retry(
        "a renewal or a second holder",
        Duration::from_secs(60),
        || {
            if b.as_mut().unwrap().try_wait().unwrap().is_some() {
                return Some(false);
            }
            let left = c.time_to_live(lease).unwrap();
            (left > Duration::from_secs(5)).then_some(true)
        },
    );
    if renewed {
        drop(a.stdin.take()); // the first command ends; the second may go
    }
    let out = b.take().unwrap().wait_with_output().unwrap();
    drop(a.stdin.take());
    a.wait().unwrap();
    assert_code(&out, 0);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "alone\n",
        "renewed: {renewed}"
    );
}

#[test]
fn a_lease_a_retried_write_may_yet_land_on_is_revoked_not_pooled() {
    let Some((_cl, c, t, url)) =
        setup("a_lease_a_retried_write_may_yet_land_on_is_revoked_not_pooled")
    else {
        return;
    };
    // A member that takes the request and never answers (the kernel accepts the connection):
    // the first transaction's outcome is unknown, and the client retries on the real member.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let real = url.trim_start_matches("etcd://");
    let both = format!("etcd://{},{real}", silent.local_addr().unwrap());
    // First hold: the grant times out on the silent member and goes to the real one; the
    // lease goes into this endpoint list's pool.
    assert_eq!(code(&t, &both, &["lock", "--name", "r", "true"]), Some(0));
    let pooled = lease_in(&records(&t)[0].1, "clean").expect("pooled");
    // Second hold adopts it; its acquire is sent to the silent member first. That request
    // could still be applied later and put the lock key back on the lease: so the lease must
    // not go back to the pool.
    assert_eq!(code(&t, &both, &["lock", "--name", "r", "true"]), Some(0));
    let recs = records(&t);
    assert_eq!(lease_in(&recs[0].1, "clean"), None, "{recs:?}");
    let leases = c.leases().unwrap();
    assert!(!leases.contains(&pooled), "{leases:?}");
    drop(silent);
}
