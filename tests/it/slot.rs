//! `concur slot` as real processes.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use crate::util::*;

#[test]
fn never_more_than_max_holders_at_once() {
    admission_run(10, 3);
}

/// The same invariant at scale: `CONCUR_STRESS=N cargo nextest run --run-ignored only slot_stress`.
#[test]
#[ignore = "stress run; scale with CONCUR_STRESS"]
fn slot_stress_never_over_admits() {
    let n: usize = std::env::var("CONCUR_STRESS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    admission_run(16, n);
}

fn admission_run(procs: usize, rounds: usize) {
    let t = TestEnv::new();
    // Each hold logs +1 after taking the slot and -1 before giving it back, one O_APPEND
    // write each, so every prefix of the log is an upper bound of the holders at that moment.
    let body = "echo +1 >> log; sleep 0.02; echo -1 >> log";
    let script = format!(
        "i=0; while [ $i -lt {rounds} ]; do \"$0\" slot ingest --max 2 -q -c '{body}' || exit 1; i=$((i+1)); done"
    );
    let mut b = Barrier::new();
    for _ in 0..procs {
        let mut c = std::process::Command::new("sh");
        c.arg("-c")
            .arg(&script)
            .arg(bin())
            .env("CONCUR_HOME", &t.home)
            .current_dir(t.dir.path());
        b.spawn(&c);
    }
    for o in b.run_all() {
        assert_code(&o, 0);
    }
    let log = std::fs::read_to_string(t.path("log")).unwrap();
    let (mut sum, mut peak) = (0i32, 0i32);
    for line in log.lines() {
        sum += line.parse::<i32>().unwrap();
        assert!(sum <= 2, "more than 2 holders at once:\n{log}");
        peak = peak.max(sum);
    }
    assert_eq!(sum, 0);
    assert_eq!(log.lines().count(), 2 * procs * rounds);
    assert!(peak >= 1);
}

#[test]
fn killed_slot_holder_frees_its_slot_for_the_waiter() {
    let t = TestEnv::new();
    let mut holder = t.cmd([
        "--session",
        "sess-H",
        "slot",
        "one",
        "--max",
        "1",
        "-c",
        "echo ready; exec sleep 1000",
    ]);
    holder.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut holder = holder.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");

    let o = t.run(["--json", "slot", "status", "one"]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["held"], 1);
    assert_eq!(v["holders"][0]["pid"], holder.id());
    assert_eq!(v["holders"][0]["session"], "sess-H");

    let mut waiter = t.cmd(["slot", "one", "--max", "1", "--", "echo", "got"]);
    waiter.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut waiter = waiter.spawn().unwrap();
    let mut err = BufReader::new(waiter.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(
        line.contains(&format!("pid {} (session sess-H", holder.id())),
        "{line}"
    );
    holder.kill().unwrap();
    let _ = holder.wait();
    let mut out = String::new();
    waiter
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "got\n");
    assert!(waiter.wait().unwrap().success());
}

#[test]
fn mismatched_max_busy_and_timeout_codes() {
    let t = TestEnv::new();
    assert_code(&t.run(["slot", "s", "--max", "1", "true"]), 0);
    let o = t.run(["slot", "s", "--max", "3", "true"]);
    assert_code(&o, 4);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert_code(&t.run(["slot", "bad/name", "--max", "1", "true"]), 4);

    let mut holder = t.cmd(["slot", "s", "--max", "1", "-c", "echo ready; read x; true"]);
    holder.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut holder = holder.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_code(&t.run(["slot", "s", "--max", "1", "-n", "true"]), 1);
    assert_code(
        &t.run(["slot", "s", "--max", "1", "-n", "-E", "75", "true"]),
        75,
    );
    let o = t.run([
        "slot",
        "s",
        "--max",
        "1",
        "-w",
        "0.1",
        "-E",
        "9",
        "-c",
        "touch ran",
    ]);
    assert_code(&o, 9);
    assert!(!t.path("ran").exists(), "the command ran after a timeout");
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    assert_code(&t.run(["slot", "s", "--max", "1", "-n", "-c", "exit 6"]), 6);
}
