//! History checks (issue 13): leases and tokens taken by real processes, some of them killed
//! at random moments, recorded as histories of timed operations and checked against the
//! specification: never two live holders of one lease, fencing tokens strictly increasing in
//! real-time order, never two winners of one token. A killed operation's outcome is unknown
//! and the checker treats it as either.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use crate::etcd::verb;
use crate::etcd_util::{Cluster, available};
use crate::util::{Barrier as Gate, TestEnv, assert_code};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Acquire,
    Release,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Exit 0 (an acquire's fencing token).
    Ok(u64),
    /// A definite refusal (held by another, not the holder).
    Refused,
    /// Killed before it answered: it may or may not have taken effect.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
struct Op {
    kind: Kind,
    worker: usize,
    start: Duration,
    end: Duration,
    outcome: Outcome,
}

/// Runs `cmd`; with `kill_after`, SIGKILLs it after that long if it is still running.
fn run_op(mut cmd: Command, kill_after: Option<Duration>) -> (Outcome, Option<u64>) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    if let Some(d) = kill_after {
        std::thread::sleep(d);
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
            let _ = child.wait();
            return (Outcome::Unknown, None);
        }
    }
    let o = child.wait_with_output().unwrap();
    match o.status.code() {
        Some(0) => {
            let tok = String::from_utf8_lossy(&o.stdout).trim().parse().ok();
            (Outcome::Ok(tok.unwrap_or(0)), tok)
        }
        Some(_) => (Outcome::Refused, None),
        None => (Outcome::Unknown, None),
    }
}

/// `workers` processes acquire and release lease `task` (TTL `ttl`) until `total` operations
/// ran, a tenth of them killed after a random 0–20 ms.
fn lease_history(t: &TestEnv, be: Option<&str>, total: usize, ttl: Duration) -> Vec<Op> {
    let workers = 6;
    let epoch = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let hist = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(Barrier::new(workers));
    let ttl_arg = format!("{}ms", ttl.as_millis());
    std::thread::scope(|s| {
        for w in 0..workers {
            let (done, hist, gate, ttl_arg) = (
                Arc::clone(&done),
                Arc::clone(&hist),
                Arc::clone(&gate),
                ttl_arg.clone(),
            );
            s.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(w as u64 + 1);
                let session = format!("worker-{w}");
                let mut holding = false;
                gate.wait();
                while done.fetch_add(1, Ordering::SeqCst) < total {
                    let kind = if holding && rng.bool() {
                        Kind::Release
                    } else {
                        Kind::Acquire
                    };
                    let verb_name = if kind == Kind::Acquire {
                        "acquire"
                    } else {
                        "release"
                    };
                    let mut args = vec!["lease", verb_name, "job", "--session", &session];
                    if kind == Kind::Acquire {
                        args.extend(["--ttl", &ttl_arg]);
                    }
                    let cmd = verb(t, be, &args);
                    let kill = (rng.u8(..10) == 0).then(|| Duration::from_millis(rng.u64(..20)));
                    let start = epoch.elapsed();
                    let (outcome, _) = run_op(cmd, kill);
                    let end = epoch.elapsed();
                    holding = match (kind, outcome) {
                        (Kind::Acquire, Outcome::Ok(_)) => true,
                        (Kind::Release, _) => false,
                        _ => holding,
                    };
                    hist.lock().unwrap().push(Op {
                        kind,
                        worker: w,
                        start,
                        end,
                        outcome,
                    });
                }
            });
        }
    });
    let mut h = hist.lock().unwrap().clone();
    h.sort_by_key(|o| o.start);
    h
}

/// The lease specification, checked on a history. Returns the violations found.
fn check_leases(h: &[Op], ttl: Duration) -> Vec<String> {
    let mut bad = Vec::new();
    let wins: Vec<&Op> = h
        .iter()
        .filter(|o| o.kind == Kind::Acquire && matches!(o.outcome, Outcome::Ok(_)))
        .collect();
    let tok = |o: &Op| match o.outcome {
        Outcome::Ok(t) => t,
        _ => 0,
    };
    for a in &wins {
        // The window in which `a`'s holder is certainly live: from its answer until its TTL
        // (counted from before the grant) runs out or its worker starts a release (any
        // release: a killed one may have taken effect).
        let release = h
            .iter()
            .filter(|r| r.kind == Kind::Release && r.worker == a.worker && r.start > a.end)
            .map(|r| r.start)
            .min()
            .unwrap_or(Duration::MAX);
        let live_until = (a.start + ttl).min(release);
        for b in &wins {
            if b.worker == a.worker {
                continue;
            }
            // Fencing tokens strictly increase in real-time order.
            if a.end < b.start && tok(a) >= tok(b) {
                bad.push(format!("token {} answered before {} began", tok(a), tok(b)));
            }
            // Never two live holders: `b` granted entirely inside `a`'s certain window.
            if b.start >= a.end && b.end < live_until {
                bad.push(format!(
                    "worker {} won (token {}) while worker {} held (token {})",
                    b.worker,
                    tok(b),
                    a.worker,
                    tok(a)
                ));
            }
        }
    }
    bad
}

#[test]
fn lease_histories_under_kills_have_one_live_holder_and_increasing_tokens() {
    let ttl = Duration::from_millis(400);
    let check = |t: &TestEnv, be: Option<&str>| {
        let h = lease_history(t, be, 1000, ttl);
        assert!(h.len() >= 1000, "{}", h.len());
        let wins = h
            .iter()
            .filter(|o| o.kind == Kind::Acquire && matches!(o.outcome, Outcome::Ok(_)))
            .count();
        let killed = h.iter().filter(|o| o.outcome == Outcome::Unknown).count();
        eprintln!(
            "{be:?}: {} operations, {wins} acquisitions won, {killed} killed",
            h.len()
        );
        assert!(wins > 10, "the history never changed hands: {wins}");
        let bad = check_leases(&h, ttl);
        assert!(
            bad.is_empty(),
            "{be:?}: {} violations: {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
    };
    check(&TestEnv::new(), None);
    if available("lease_histories_under_kills") {
        let cl = Cluster::start(1);
        check(&TestEnv::new(), Some(&cl.url()));
    }
}

/// The checker itself finds what it must: two overlapping holders and a token going back.
#[test]
fn the_lease_checker_finds_overlaps_and_tokens_going_back() {
    let ms = Duration::from_millis;
    let op = |worker, start, end, tok| Op {
        kind: Kind::Acquire,
        worker,
        start: ms(start),
        end: ms(end),
        outcome: Outcome::Ok(tok),
    };
    let overlap = [op(0, 0, 10, 1), op(1, 20, 30, 2)];
    assert_eq!(check_leases(&overlap, ms(400)).len(), 1);
    let back = [op(0, 0, 10, 5), op(1, 500, 510, 3)];
    assert_eq!(check_leases(&back, ms(400)).len(), 1);
    let fine = [op(0, 0, 10, 1), op(1, 500, 510, 2)];
    assert!(check_leases(&fine, ms(400)).is_empty());
}

/// Tokens: per round, 8 takers on a barrier, some killed at a random moment; never two definite
/// winners, and a round with a definite winner has no other.
#[test]
fn token_histories_under_kills_have_at_most_one_winner() {
    let t = TestEnv::new();
    let mut rng = fastrand::Rng::with_seed(7);
    let (mut ops, mut won) = (0, 0);
    for round in 0..60 {
        let name = format!("tok{round}");
        assert_code(&t.run(["token", "issue", &name]), 0);
        let mut b = Gate::new();
        let pids: Vec<i32> = (0..8)
            .map(|_| i32::try_from(b.spawn(&t.cmd(["token", "take", &name])).id()).unwrap())
            .collect();
        let killers: Vec<_> = pids
            .iter()
            .zip((0..8).map(|_| (rng.u8(..4) == 0).then(|| Duration::from_millis(rng.u64(..15)))))
            .filter_map(|(&pid, k)| k.map(|d| (pid, d)))
            .map(|(pid, d)| {
                std::thread::spawn(move || {
                    std::thread::sleep(d);
                    // SAFETY: kill(2) of a child not reaped yet (run_all reaps after).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                })
            })
            .collect();
        let outs = b.run_all();
        for k in killers {
            k.join().unwrap();
        }
        let outcomes: Vec<Outcome> = outs
            .iter()
            .map(|o| match o.status.code() {
                Some(0) => Outcome::Ok(0),
                Some(_) => Outcome::Refused,
                None => Outcome::Unknown,
            })
            .collect();
        ops += outcomes.len();
        let winners = outcomes.iter().filter(|o| **o == Outcome::Ok(0)).count();
        won += winners;
        assert!(
            winners <= 1,
            "round {round}: {winners} winners: {outcomes:?}"
        );
    }
    eprintln!("tokens: {ops} take operations, {won} definite winners in 60 rounds");
    assert!(won > 30);
}
