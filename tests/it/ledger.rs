//! Hash-chained ledgers through the binary: concurrent appends, torn tails, lock timeouts.

use std::io::Write;

use crate::util::*;

#[test]
fn eight_writers_times_200_appends_verify() {
    let t = TestEnv::new();
    let f = t.path("verdicts.jsonl");
    // --no-fsync: the chain's integrity under contention is the lock's doing; 1,600 serialised
    // fdatasyncs would only make the test slow on a busy disk.
    let mut b = Barrier::new();
    for w in 0..8 {
        let script = format!(
            r#"for i in $(seq 200); do "$BIN" ledger append --no-fsync "$F" "{{\"w\":{w},\"i\":$i}}" >/dev/null || exit 1; done"#
        );
        let mut c = std::process::Command::new("sh");
        c.arg("-c")
            .arg(script)
            .env("BIN", bin())
            .env("F", &f)
            .env("CONCUR_HOME", &t.home);
        b.spawn(&c);
    }
    for o in b.run_all() {
        assert_code(&o, 0);
    }
    let o = t.run(["ledger", "verify", f.to_str().unwrap(), "--json"]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["entries"], 1600);
}

/// A ledger `l.jsonl` of `n` entries followed by `torn` (what a killed writer leaves); returns
/// its path and its content before the torn bytes.
fn ledger_with_torn_tail(t: &TestEnv, n: usize, torn: &[u8]) -> (std::path::PathBuf, Vec<u8>) {
    let f = t.path("l.jsonl");
    for i in 0..n {
        let entry = format!("{{\"i\":{i}}}");
        assert_code(&t.run(["ledger", "append", f.to_str().unwrap(), &entry]), 0);
    }
    let before = content(&f).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&f)
        .unwrap()
        .write_all(torn)
        .unwrap();
    (f, before)
}

#[test]
fn torn_tail_is_named_repaired_and_no_complete_line_is_lost() {
    let t = TestEnv::new();
    let (f, before) = ledger_with_torn_tail(&t, 5, b"{\"i\":5,\"hash\":\"ab");
    let fs = f.to_str().unwrap();
    let o = t.run(["ledger", "verify", fs]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("line 6: torn line"), "{}", stderr(&o));
    let o = t.run(["ledger", "repair", fs]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("cut a torn final line"),
        "{}",
        stdout(&o)
    );
    assert_eq!(content(&f).unwrap(), before);
    assert_code(&t.run(["ledger", "verify", fs]), 0);
    // Nothing torn: repair changes nothing.
    assert!(stdout(&t.run(["ledger", "repair", fs])).contains("nothing to repair"));
    assert_eq!(content(&f).unwrap(), before);
}

#[test]
fn the_next_append_cuts_a_torn_tail_says_so_and_goes_on() {
    let t = TestEnv::new();
    let (f, before) = ledger_with_torn_tail(&t, 3, b"{\"i\":3,\"prev\":\"0");
    let fs = f.to_str().unwrap();
    // verify stays strict until someone appends or repairs
    assert_code(&t.run(["ledger", "verify", fs]), 3);
    let o = t.run(["ledger", "append", fs, "{\"i\":4}"]);
    assert_code(&o, 0);
    assert!(stdout(&o).starts_with("4 "), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("cut a torn final line (16 bytes, never acknowledged)"),
        "{}",
        stderr(&o)
    );
    assert!(content(&f).unwrap().starts_with(&before));
    assert_code(&t.run(["ledger", "verify", fs]), 0);
    // --json reports it too; a second append has nothing to cut.
    let o = t.run(["--json", "ledger", "append", fs, "{\"i\":5}"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["seq"], 5);
    assert!(v.get("repaired").is_none(), "{v}");
}

#[test]
fn a_complete_final_entry_missing_its_newline_is_kept() {
    let t = TestEnv::new();
    let f = t.path("l.jsonl");
    let fs = f.to_str().unwrap();
    assert_code(&t.run(["ledger", "append", fs, "{\"i\":0}"]), 0);
    assert_code(&t.run(["ledger", "append", fs, "{\"i\":1}"]), 0);
    let full = content(&f).unwrap();
    let cut = &full[..full.len() - 1];
    std::fs::remove_file(&f).unwrap();
    std::fs::File::create(&f).unwrap().write_all(cut).unwrap();
    assert_code(&t.run(["ledger", "verify", fs]), 3);
    let o = t.run(["ledger", "repair", fs]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("added its missing newline"),
        "{}",
        stdout(&o)
    );
    assert_eq!(content(&f).unwrap(), full);
}

#[test]
fn lock_timeout_fails_with_1_and_writes_nothing() {
    let t = TestEnv::new();
    let f = t.path("l.jsonl");
    let fs = f.to_str().unwrap();
    assert_code(&t.run(["ledger", "append", fs, "{\"i\":0}"]), 0);
    let before = content(&f).unwrap();
    // Hold the sidecar lock with flock(1) until the test closes its stdin.
    let lock = format!("{fs}.lock");
    let mut holder = std::process::Command::new("flock")
        .args([&lock, "-c", "echo locked; read -r _"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let o = t.run(["ledger", "append", fs, "{\"i\":1}", "-w", "0.2"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("timed out"), "{}", stderr(&o));
    assert_eq!(content(&f).unwrap(), before);
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert_code(&t.run(["ledger", "append", fs, "{\"i\":1}"]), 0);
    // Bad input: exit 4, nothing written.
    let before = content(&f).unwrap();
    assert_code(&t.run(["ledger", "append", fs, "[1]"]), 4);
    assert_code(&t.run(["ledger", "append", fs, "{\"prev\":\"x\"}"]), 4);
    assert_code(&t.run(["ledger", "append", fs, "not json"]), 4);
    assert_eq!(content(&f).unwrap(), before);
}

#[test]
fn a_fifo_or_device_as_the_ledger_is_refused_with_77_never_waited_on() {
    let t = TestEnv::new();
    let fifo = t.path("l.jsonl");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let fs = fifo.to_str().unwrap();
    for args in [
        vec!["ledger", "append", fs, "{\"a\":1}"],
        vec!["ledger", "verify", fs],
        vec!["ledger", "verify", "/dev/zero"],
    ] {
        let o = t.run(&args);
        assert_code(&o, 77);
        assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    }
}
