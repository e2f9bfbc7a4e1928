//! The etcd lease pool of `concur lock --name` and `concur slot` (src/etcd/pool.rs), against a
//! real single-node etcd: leases reused across processes, never one a dead holder left keys on,
//! and a lease the cluster does not know replaced by a fresh one.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::Stdio;

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
