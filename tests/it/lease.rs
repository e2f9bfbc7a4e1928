//! Task leases through the binary: races, killed holders, build-once.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use crate::util::*;

/// A process to stand for a session's agent; killed by the test.
fn agent() -> std::process::Child {
    Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep")
}

fn token(o: &std::process::Output) -> u64 {
    stdout(o)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no token in {:?} / {:?}", stdout(o), stderr(o)))
}

#[test]
fn sixteen_racers_over_200_rounds_have_one_winner_each_and_growing_tokens() {
    let rounds: usize = std::env::var("CONCUR_TEST_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let t = TestEnv::new();
    assert_code(&t.run(["home"]), 0);
    // 16 long-lived workers, one session each. Round r starts when the test writes `r` to every
    // worker's stdin, and ends when every worker has answered: an honest per-round barrier.
    // A worker whose acquire exits with neither 0 nor 1 appends its stderr to the line, so the
    // assertion below names the cause.
    let script = r#"e=$(mktemp); while read -r r; do out=$("$BIN" lease acquire "task-$r" 2>"$e"); rc=$?; [ $rc -gt 1 ] && out="$out $(cat "$e")"; echo "$r $rc $out"; done; rm -f "$e""#;
    let mut workers: Vec<_> = (0..16)
        .map(|i| {
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .env("BIN", bin())
                .env("CONCUR_HOME", &t.home)
                .env("CONCUR_SESSION", format!("racer-{i}"))
                .env_remove("CLAUDE_CODE_SESSION_ID")
                .env_remove("CLAUDE_SESSION_ID")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn worker")
        })
        .collect();
    let mut inputs: Vec<_> = workers
        .iter_mut()
        .map(|w| w.stdin.take().unwrap())
        .collect();
    let mut outputs: Vec<_> = workers
        .iter_mut()
        .map(|w| BufReader::new(w.stdout.take().unwrap()))
        .collect();
    let mut last = 0u64;
    for r in 0..rounds {
        for i in &mut inputs {
            writeln!(i, "{r}").unwrap();
            i.flush().unwrap();
        }
        let mut winners = Vec::new();
        for (n, o) in outputs.iter_mut().enumerate() {
            let mut line = String::new();
            o.read_line(&mut line).unwrap();
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(
                f.first(),
                Some(&r.to_string().as_str()),
                "worker {n}: {line:?}"
            );
            match f.get(1) {
                Some(&"0") => winners.push(f[2].parse::<u64>().unwrap()),
                Some(&"1") => {}
                _ => panic!("worker {n} round {r}: unexpected {line:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {r}: winners {winners:?}");
        assert!(
            winners[0] > last,
            "round {r}: token {} after {last}",
            winners[0]
        );
        last = winners[0];
    }
    drop(inputs);
    for mut w in workers {
        assert!(w.wait().unwrap().success());
    }
}

#[test]
fn killed_holder_loses_the_lease_at_once() {
    let t = TestEnv::new();
    let mut a = agent();
    let pid = a.id().to_string();
    assert_code(
        &t.run(["session", "start", "--session", "A", "--pid", &pid]),
        0,
    );
    let first = t.run([
        "lease",
        "acquire",
        "deploy",
        "--session",
        "A",
        "--ttl",
        "1h",
    ]);
    assert_code(&first, 0);
    let held = t.run(["lease", "acquire", "deploy", "--session", "B"]);
    assert_code(&held, 1);
    let msg = stderr(&held);
    assert!(
        msg.contains("held by session A") && msg.contains(&format!("pid {pid}")),
        "{msg}"
    );
    a.kill().unwrap();
    a.wait().unwrap();
    // TTL is an hour away: only the holder's death frees it.
    let second = t.run(["lease", "acquire", "deploy", "--session", "B"]);
    assert_code(&second, 0);
    assert!(token(&second) > token(&first));
    // The dead session can still take a free task, but is told its leases are not safe.
    let stale = t.run(["lease", "acquire", "other", "--session", "A"]);
    assert_code(&stale, 0);
    assert!(
        stderr(&stale).contains("warning: session A is registered with pid"),
        "{}",
        stderr(&stale)
    );
}

#[test]
fn live_holder_keeps_an_expired_lease_and_reacquire_keeps_the_token() {
    let t = TestEnv::new();
    let mut a = agent();
    assert_code(
        &t.run([
            "session",
            "start",
            "--session",
            "A",
            "--pid",
            &a.id().to_string(),
        ]),
        0,
    );
    let first = t.run(["lease", "acquire", "job", "--session", "A", "--ttl", "0s"]);
    assert_code(&first, 0);
    assert_code(&t.run(["lease", "acquire", "job", "--session", "B"]), 1);
    let again = t.run(["lease", "acquire", "job", "--session", "A", "--ttl", "1h"]);
    assert_code(&again, 0);
    assert_eq!(token(&again), token(&first));
    a.kill().unwrap();
    a.wait().unwrap();
}

#[test]
fn once_after_complete_is_always_refused() {
    let t = TestEnv::new();
    assert_code(
        &t.run(["lease", "acquire", "build", "--once", "--session", "A"]),
        0,
    );
    assert_code(&t.run(["lease", "complete", "build", "--session", "A"]), 0);
    let mut b = Barrier::new();
    for i in 0..8 {
        let s = format!("S{i}");
        b.spawn(&t.cmd(["lease", "acquire", "build", "--once", "--session", &s]));
    }
    b.spawn(&t.cmd(["lease", "acquire", "build", "--session", "A"]));
    for o in b.run_all() {
        assert_code(&o, 1);
        assert!(
            stderr(&o).contains("completed by session A"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn release_renew_and_show_speak_json() {
    let t = TestEnv::new();
    assert_code(&t.run(["lease", "acquire", "x", "--session", "A"]), 0);
    assert_code(&t.run(["lease", "renew", "x", "--session", "B"]), 1);
    assert_code(
        &t.run(["lease", "renew", "x", "--session", "A", "--ttl", "5m"]),
        0,
    );
    let o = t.run(["lease", "show", "x", "--json"]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["lease"]["session"], "A");
    assert_eq!(v["holder"], "unregistered");
    assert_code(&t.run(["lease", "release", "x", "--session", "B"]), 1);
    assert_code(&t.run(["lease", "release", "x", "--session", "A"]), 0);
    let o = t.run(["lease", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["tasks"].as_array().unwrap().len(), 0);
    // Bad input: exit 4, nothing written.
    assert_code(
        &t.run(["lease", "acquire", "x", "--session", "A", "--ttl", "soon"]),
        4,
    );
    assert_code(&t.run(["lease", "acquire", "x", "--session", "../A"]), 4);
}

#[test]
fn an_enormous_wait_waits_and_acquires_when_the_holder_releases() {
    let t = TestEnv::new();
    assert_code(&t.run(["--session", "a", "lease", "acquire", "w1"]), 0);
    // -w 1e19: more seconds than the clock can add to now; a wait for ever, not a crash.
    let waiter = t
        .cmd(["--session", "b", "lease", "acquire", "w1", "-w", "1e19"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_code(&t.run(["--session", "a", "lease", "release", "w1"]), 0);
    let o = waiter.wait_with_output().unwrap();
    assert_code(&o, 0);
    assert!(token(&o) > 0, "{}", stdout(&o));
}
