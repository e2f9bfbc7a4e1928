//! The broker through the binary: many real client processes, a killed broker, racing starts,
//! a foreign uid.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::*;

/// A test env whose config lets the broker write under `root/`; stops the broker on drop.
struct BrokerEnv {
    t: TestEnv,
    root: PathBuf,
}

impl BrokerEnv {
    fn new() -> BrokerEnv {
        let t = TestEnv::new();
        assert_code(&t.run(["home"]), 0);
        let root = t.path("root");
        std::fs::create_dir(&root).unwrap();
        write_file(
            &t.home.join("concur.toml"),
            &format!("[broker]\nroots = [{:?}]\n", root.to_str().unwrap()),
        );
        BrokerEnv { t, root }
    }

    fn start(&self) {
        let o = self.t.run(["broker", "serve", "--detach"]);
        assert_code(&o, 0);
    }

    /// `broker status --json`, parsed.
    fn status(&self) -> serde_json::Value {
        let o = self.t.run(["broker", "status", "--json"]);
        assert_code(&o, 0);
        serde_json::from_str(stdout(&o).trim()).unwrap()
    }

    fn pid(&self) -> u32 {
        u32::try_from(self.status()["pid"].as_u64().unwrap()).unwrap()
    }

    /// Starts the broker and spawns `n` clients on one barrier (not yet released), each
    /// appending to `root/memory.jsonl` (the returned target); `client(target, c)` makes
    /// client `c`'s command.
    fn start_with_clients(
        &self,
        n: usize,
        client: impl Fn(&Path, usize) -> Command,
    ) -> (PathBuf, Barrier) {
        self.start();
        let target = self.root.join("memory.jsonl");
        let mut b = Barrier::new();
        for c in 0..n {
            b.spawn(&client(&target, c));
        }
        (target, b)
    }

    /// Starts the broker and 8 clients of 1000 lines each (made by `client`, as in
    /// [`Self::start_with_clients`]); once `at` lines are in, stops and kills the broker (see
    /// [`stop_mid_run_then_kill`]) and runs `then`. Checks that every client succeeded, a new
    /// broker runs, and every line is in the file once, in order.
    fn kill_mid_run(
        &self,
        at: usize,
        client: impl Fn(&Path, usize) -> Command,
        then: impl FnOnce(),
    ) {
        let (target, mut b) = self.start_with_clients(8, client);
        let first = self.pid();
        b.release();
        stop_mid_run_then_kill(first, &target, at, 8 * 1000);
        then();
        for o in b.run_all() {
            assert_code(&o, 0);
        }
        assert_ne!(self.pid(), first, "a new broker runs");
        assert_each_once_in_order(&target, 8, 1000);
    }

    /// A client command appending every line of `input` (a file) to `target`.
    fn client(&self, target: &Path, input: &Path, extra: &[&str]) -> Command {
        let env = self.t.cmd(["unused"]);
        let mut script = String::from("exec \"$0\" broker append \"$1\" - --json");
        for e in extra {
            script.push(' ');
            script.push_str(e);
        }
        script.push_str(" < \"$2\"");
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(script).arg(bin()).arg(target).arg(input);
        for (k, v) in env.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        sh.current_dir(self.t.dir.path());
        sh
    }
}

impl Drop for BrokerEnv {
    fn drop(&mut self) {
        let _ = self.t.run(["broker", "stop"]);
    }
}

/// Once `target` holds at least `at` lines, freezes the broker `pid` (SIGSTOP), checks that
/// the clients still have lines to send (fewer than `total` written), and kills it -9.
fn stop_mid_run_then_kill(pid: u32, target: &Path, at: usize, total: usize) {
    let count = || std::fs::read_to_string(target).map_or(0, |t| t.lines().count());
    retry("some acked lines", Duration::from_secs(60), || {
        (count() >= at).then_some(())
    });
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: kill takes plain integers; the pid is the broker this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let n = count();
    assert!(
        n < total,
        "the clients finished ({n} lines) before the broker was stopped"
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
}

/// Test fixture writing (not a concurrency-safe write; nothing else touches these files).
pub(crate) fn write_file(p: &Path, text: &str) {
    use std::io::Write;
    std::fs::File::create(p)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap();
}

/// Writes client `c`'s input: `n` lines `{"c":c,"k":k}`.
fn client_input(dir: &Path, c: usize, n: usize) -> PathBuf {
    let p = dir.join(format!("in-{c}.jsonl"));
    let mut text = String::new();
    for k in 0..n {
        writeln!(text, "{{\"c\":{c},\"k\":{k}}}").unwrap();
    }
    write_file(&p, &text);
    p
}

/// Checks that the file holds exactly `clients × per` lines, each (c, k) once, and every
/// client's lines in the order it sent them.
fn assert_each_once_in_order(file: &Path, clients: usize, per: usize) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut next: HashMap<u64, u64> = HashMap::new();
    let mut count = 0;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("torn line {line:?}: {e}"));
        let (c, k) = (v["c"].as_u64().unwrap(), v["k"].as_u64().unwrap());
        let want = next.entry(c).or_insert(0);
        assert_eq!(k, *want, "client {c}: line {k} out of order or duplicated");
        *want += 1;
        count += 1;
    }
    assert_eq!(count, clients * per, "line count");
    assert_eq!(next.len(), clients);
    assert!(next.values().all(|&n| usize::try_from(n).unwrap() == per));
}

#[test]
fn thirty_two_clients_two_hundred_appends_each_every_line_once_in_order() {
    let e = BrokerEnv::new();
    let (target, b) = e.start_with_clients(32, |target, c| {
        let input = client_input(e.t.dir.path(), c, 200);
        e.client(target, &input, &["--id", &format!("c{c}")])
    });
    for o in b.run_all() {
        assert_code(&o, 0);
        assert_eq!(stdout(&o).lines().count(), 200, "one ack per line");
    }
    assert_each_once_in_order(&target, 32, 200);
    let v = e.status();
    assert_eq!(v["appends"], 6400);
    assert_eq!(v["duplicates"], 0);
    // Every batch with ids costs one data fdatasync and one index record write-out (or, where
    // the index cannot ride on the data's sync, an index fdatasync), plus one fdatasync when
    // the index grows by a chunk of zeros (1 MiB: at most once here); never more.
    let num = |k: &str| v[k].as_u64().unwrap();
    let (fsyncs, writes, batches) = (num("fsyncs"), num("index_writes"), num("batches"));
    assert!(
        (batches..=2 * batches + 1).contains(&fsyncs),
        "{fsyncs} fsyncs for {batches} batches"
    );
    assert!(
        (2 * batches..=2 * batches + 1).contains(&(fsyncs + writes)),
        "{fsyncs} fsyncs and {writes} index write-outs for {batches} batches"
    );
}

#[test]
fn broker_killed_mid_run_loses_and_duplicates_nothing() {
    let e = BrokerEnv::new();
    // The clients' --autostart restarts the broker.
    let client = |target: &Path, c| {
        let input = client_input(e.t.dir.path(), c, 1000);
        e.client(target, &input, &["--id", &format!("k{c}"), "--autostart"])
    };
    e.kill_mid_run(300, client, || {});
}

#[test]
fn two_concurrent_serves_end_with_one_broker() {
    let e = BrokerEnv::new();
    let mut b = Barrier::new();
    for _ in 0..4 {
        b.spawn(&e.t.cmd(["broker", "serve", "--detach"]));
    }
    let outs = b.run_all();
    let won = outs.iter().filter(|o| code(o) == 0).count();
    assert_eq!(won, 1, "exactly one broker started");
    for o in outs.iter().filter(|o| code(o) != 0) {
        assert_code(o, 1);
        assert!(stderr(o).contains("already running"), "{}", stderr(o));
    }
    let pid = e.pid();
    let o = e.t.run(["broker", "stop", "--json"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains(&pid.to_string()));
    assert!(
        !e.t.home.join("broker.sock").exists(),
        "socket removed on stop"
    );
    assert_code(&e.t.run(["broker", "status"]), 3);
}

#[test]
fn targets_outside_the_roots_are_refused_and_nothing_is_written() {
    let e = BrokerEnv::new();
    e.start();
    let outside = e.t.path("outside.jsonl");
    let o =
        e.t.run(["broker", "append", outside.to_str().unwrap(), "{}"]);
    assert_code(&o, 77);
    assert!(
        stderr(&o).contains("not under any of the [broker] roots"),
        "{}",
        stderr(&o)
    );
    let dotdot = format!("{}/../outside.jsonl", e.root.display());
    assert_code(&e.t.run(["broker", "append", &dotdot, "{}"]), 4);
    std::os::unix::fs::symlink(e.t.dir.path(), e.root.join("escape")).unwrap();
    let via_link = e.root.join("escape/outside.jsonl");
    assert_code(
        &e.t.run(["broker", "append", via_link.to_str().unwrap(), "{}"]),
        77,
    );
    let bad = e.root.join("x.jsonl");
    assert_code(
        &e.t.run(["broker", "append", bad.to_str().unwrap(), "{nope"]),
        4,
    );
    assert!(!outside.exists() && !bad.exists());
}

#[test]
fn fallback_direct_appends_when_no_broker_runs() {
    let e = BrokerEnv::new();
    let target = e.root.join("log.jsonl");
    let t = target.to_str().unwrap();
    assert_code(&e.t.run(["broker", "append", t, "{\"a\":1}"]), 74);
    let o =
        e.t.run(["broker", "append", t, "{\"a\":2}", "--fallback", "direct"]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("appending directly"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "{\"a\":2}\n");
}

#[test]
fn a_retry_with_the_same_id_while_the_broker_is_down_and_after_it_is_back_is_written_once() {
    let e = BrokerEnv::new();
    let target = e.root.join("log.jsonl");
    let t = target.to_str().unwrap();
    let send = |line: &str| {
        let args = [
            "append",
            "--broker",
            "--id",
            "job-1",
            "--fallback",
            "direct",
            t,
            line,
        ];
        e.t.run(args)
    };
    assert_code(&send("{\"a\":1}"), 0);
    let o = send("{\"a\":1}");
    assert_code(&o, 0);
    assert!(stdout(&o).contains("duplicate job-1"), "{}", stdout(&o));
    // The broker, started now, knows the id too; and a direct retry after it stopped as well.
    e.start();
    let o =
        e.t.run(["append", "--broker", "--id", "job-1", t, "{\"a\":1}"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("duplicate job-1"), "{}", stdout(&o));
    assert_code(
        &e.t.run(["append", "--broker", "--id", "job-2", t, "{\"a\":2}"]),
        0,
    );
    assert_code(&e.t.run(["broker", "stop"]), 0);
    assert!(stdout(&send("{\"a\":1}")).contains("duplicate job-1"));
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "{\"a\":1}\n{\"a\":2}\n"
    );
}

#[test]
fn a_bad_special_or_non_utf8_config_exits_4_before_a_daemon_starts() {
    let e = BrokerEnv::new();
    let fifo = e.t.path("fifo.toml");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let bad = e.t.path("bad.toml");
    std::fs::File::create(&bad)
        .unwrap()
        .write_all(b"[broker]\nroots = [\"\xff\"]\n")
        .unwrap();
    let typo = e.t.path("typo.toml");
    write_file(&typo, "[brokr]\n");
    for (config, why) in [
        (fifo.to_str().unwrap(), "is a FIFO, not a regular file"),
        ("/dev/zero", "is not a regular file"),
        (bad.to_str().unwrap(), "not UTF-8"),
        (typo.to_str().unwrap(), "unknown field"),
    ] {
        let o = e.t.run(["--config", config, "broker", "serve", "--detach"]);
        assert_code(&o, 4);
        assert!(stderr(&o).contains(why), "{config}: {}", stderr(&o));
    }
    // The home's own concur.toml as a FIFO: the same, not a hang.
    let home_config = e.t.home.join("concur.toml");
    std::fs::remove_file(&home_config).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(&home_config)
            .status()
            .unwrap()
            .success()
    );
    assert_code(&e.t.run(["broker", "serve", "--detach"]), 4);
    assert_code(&e.t.run(["broker", "status"]), 3);
}

#[test]
fn foreign_uid_is_refused_by_peer_credentials() {
    // The system python, not a per-user shim that `nobody` may not be able to run.
    let python = Path::new("/usr/bin/python3");
    if !is_root() || !python.exists() || Command::new("setpriv").arg("--version").output().is_err()
    {
        eprintln!("skipped: needs root, setpriv and /usr/bin/python3 to run a client as nobody");
        return;
    }
    let e = BrokerEnv::new();
    e.start();
    // Open the path to the socket for `nobody` (test-only loosening: traverse-only dirs and a
    // 0666 socket), so that only the broker's SO_PEERCRED check stands in the way.
    let mode = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(e.t.dir.path(), 0o711).unwrap();
    mode(&e.t.home, 0o711).unwrap();
    let sock = e.t.home.join("broker.sock");
    mode(&sock, 0o666).unwrap();
    let target = e.root.join("x.jsonl");
    let req = format!(
        "{{\"op\":\"append\",\"file\":{:?},\"json\":{{}}}}\n",
        target.to_str().unwrap()
    );
    // The broker answers a foreign peer at once and hangs up, so the send may meet a closed
    // socket; the refusal is already waiting to be read either way.
    let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n\
                  try:\n    s.sendall(sys.argv[2].encode())\nexcept OSError:\n    pass\n\
                  print(s.makefile().readline(),end='')\n";
    let o = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(python)
        .arg("-c")
        .arg(script)
        .arg(&sock)
        .arg(&req)
        .output()
        .unwrap();
    mode(&e.t.home, 0o700).unwrap();
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["kind"], "permission", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("peer uid"),
        "{v}"
    );
    assert!(!target.exists(), "nothing written for a foreign uid");
}

#[test]
fn append_with_broker_flag_keeps_key_order_and_dedups_by_id() {
    let e = BrokerEnv::new();
    let target = e.root.join("log.jsonl");
    let t = target.to_str().unwrap();
    let line = "{ \"z\": 1, \"a\": 2.50 }";
    let run = || {
        e.t.run(["append", "--broker", "--autostart", "--id", "once", t, line])
    };
    assert_code(&run(), 0);
    let o = run();
    assert_code(&o, 0);
    assert_eq!(stdout(&o).trim(), "duplicate once");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "{\"z\":1,\"a\":2.50}\n"
    );
    let o =
        e.t.run(["append", "--broker", "--dedup-key", "id", t, "{}"]);
    assert_code(&o, 2);
}

#[test]
fn diagnose_broker_target_shows_naive_torn_and_broker_safe() {
    let t = TestEnv::new();
    let o = t.run(["diagnose", "--targets", "broker", "--mode", "both"]);
    assert_code(&o, 0);
    let out = stdout(&o);
    let naive = out.lines().find(|l| l.contains("naive")).unwrap();
    let safe = out.lines().find(|l| l.contains("concur")).unwrap();
    assert!(!naive.contains("SAFE"), "{out}");
    assert!(safe.contains("SAFE"), "{out}");
}

#[test]
fn sigterm_drains_every_acked_line_is_in_the_file() {
    let e = BrokerEnv::new();
    e.start();
    let target = e.root.join("memory.jsonl");
    let mut b = Barrier::new();
    for c in 0..6 {
        // Enough lines that the stop lands mid-run even though the clients pipeline.
        let input = client_input(e.t.dir.path(), c, 1000);
        b.spawn(&e.client(&target, &input, &["--id", &format!("t{c}")]));
    }
    b.release();
    retry("some lines acked", Duration::from_secs(60), || {
        let n = std::fs::read_to_string(&target).map_or(0, |t| t.lines().count());
        (n >= 100).then_some(())
    });
    assert_code(&e.t.run(["broker", "stop"]), 0);
    assert!(!e.t.home.join("broker.sock").exists(), "socket removed");
    let text = std::fs::read_to_string(&target).unwrap();
    let written: std::collections::HashSet<(u64, u64)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("whole lines only");
            (v["c"].as_u64().unwrap(), v["k"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(written.len(), text.lines().count(), "no duplicates");
    let mut acked = 0;
    for o in b.run_all() {
        for l in stdout(&o).lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v["ok"] == false {
                continue; // the client's own error once the broker was gone
            }
            let id = v["id"].as_str().unwrap(); // tC-N: line N-1 of client C
            let (c, n) = id[1..].split_once('-').unwrap();
            let key = (c.parse().unwrap(), n.parse::<u64>().unwrap() - 1);
            assert!(written.contains(&key), "acked {id} missing after drain");
            acked += 1;
        }
    }
    assert!(acked >= 100, "{acked} acks");
}

#[test]
fn ledger_append_through_the_broker_keeps_the_chain() {
    let e = BrokerEnv::new();
    let f = e.root.join("verdicts.jsonl");
    let fs = f.to_str().unwrap();
    let mut b = Barrier::new();
    for i in 0..6 {
        let entry = format!("{{\"verdict\":\"pass\",\"n\":{i}}}");
        b.spawn(&e.t.cmd(["ledger", "append", "--broker", "--autostart", fs, &entry]));
    }
    for o in b.run_all() {
        assert_code(&o, 0);
    }
    assert_code(&e.t.run(["ledger", "verify", fs]), 0);
    assert_eq!(std::fs::read_to_string(&f).unwrap().lines().count(), 6);
    let outside = e.t.path("v.jsonl");
    let o = e.t.run([
        "ledger",
        "append",
        "--broker",
        outside.to_str().unwrap(),
        "{}",
    ]);
    assert_code(&o, 77);
    assert!(!outside.exists());
}

/// A pipelining client (Python, standard library): appends `{"c":C,"k":K}` for K in 0..N with
/// ids `cC-K`, keeping up to W requests in flight, and checks that the answers come back in
/// request order. When the connection breaks it reconnects (polling for a broker, bounded) and
/// resends everything unanswered with the same ids. Prints how many answers were duplicates.
const PIPELINE_CLIENT: &str = r#"
import json, socket, sys, time
sock, target, c, n, w = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def req(k):
    line = json.dumps({"c": c, "k": k}, separators=(",", ":"))
    return (json.dumps({"op": "append", "file": target, "line": line, "id": f"c{c}-{k}"}) + "\n").encode()
done, dups, tries = 0, 0, 0
while done < n:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sock)
    except OSError:
        s.close()
        tries += 1
        if tries > 6000:
            sys.exit("no broker came back")
        time.sleep(0.005)
        continue
    f, sent = s.makefile("rb"), done
    try:
        while done < n:
            top = min(done + w, n)
            if sent < top:
                s.sendall(b"".join(req(k) for k in range(sent, top)))
                sent = top
            line = f.readline()
            if not line.endswith(b"\n"):
                raise OSError("connection closed")
            r = json.loads(line)
            if not r["ok"] or r["id"] != f"c{c}-{done}":
                sys.exit(f"answer out of order or refused: {r} (expected c{c}-{done})")
            dups += bool(r.get("duplicate"))
            done += 1
    except OSError:
        pass
    s.close()
print(dups)
"#;

impl BrokerEnv {
    /// A pipelining client process (see [`PIPELINE_CLIENT`]).
    fn pipeline_client(&self, target: &Path, c: usize, n: usize, window: usize) -> Command {
        let mut py = Command::new("python3");
        py.arg("-c")
            .arg(PIPELINE_CLIENT)
            .arg(self.t.home.join("broker.sock"))
            .arg(target)
            .arg(c.to_string())
            .arg(n.to_string())
            .arg(window.to_string());
        py
    }
}

#[test]
fn pipelined_clients_get_answers_in_order_and_every_line_once_in_order() {
    let e = BrokerEnv::new();
    let (target, b) = e.start_with_clients(16, |target, c| e.pipeline_client(target, c, 300, 32));
    for o in b.run_all() {
        assert_code(&o, 0);
        assert_eq!(stdout(&o).trim(), "0", "no duplicates without a restart");
    }
    assert_each_once_in_order(&target, 16, 300);
    let v = e.status();
    assert_eq!(v["appends"], 4800);
    assert!(v["batches"].as_u64().unwrap() <= 4800);
}

#[test]
fn pipelined_clients_survive_a_broker_killed_mid_run_without_loss_or_duplicate() {
    let e = BrokerEnv::new();
    let client = |target: &Path, c| e.pipeline_client(target, c, 1000, 16);
    e.kill_mid_run(400, client, || {
        // The pidfile lock is released when the killed broker is gone; then a new one can start.
        retry(
            "the killed broker's lock released",
            Duration::from_secs(20),
            || {
                let o = e.t.run(["broker", "serve", "--detach"]);
                (code(&o) == 0).then_some(())
            },
        );
    });
}

#[test]
fn a_refused_request_in_a_pipelined_burst_is_answered_in_its_place() {
    let e = BrokerEnv::new();
    e.start();
    let target = e.root.join("log.jsonl");
    let outside = e.t.path("outside.jsonl");
    let mut reqs = String::new();
    for (f, text, id) in [
        (target.as_path(), "a", "p-1"),
        (outside.as_path(), "b", "p-2"),
        (target.as_path(), "c", "p-3"),
    ] {
        writeln!(
            reqs,
            "{{\"op\":\"append\",\"file\":{:?},\"text\":{text:?},\"id\":{id:?}}}",
            f.to_str().unwrap()
        )
        .unwrap();
    }
    let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n\
                  s.sendall(sys.argv[2].encode())\ns.shutdown(socket.SHUT_WR)\n\
                  print(s.makefile().read(),end='')\n";
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(e.t.home.join("broker.sock"))
        .arg(&reqs)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let answers: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 3, "one answer per request, also after EOF");
    assert_eq!(answers[0]["id"], "p-1");
    assert_eq!(answers[0]["ok"], true);
    assert_eq!(answers[1]["id"], "p-2");
    assert_eq!(answers[1]["ok"], false);
    assert_eq!(answers[1]["error"]["kind"], "permission");
    assert_eq!(answers[2]["id"], "p-3");
    assert_eq!(answers[2]["ok"], true);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "a\nc\n");
    assert!(!outside.exists());
}

#[test]
fn a_broker_lost_mid_append_that_cannot_be_restarted_exits_unreachable() {
    use std::io::BufRead;
    let e = BrokerEnv::new();
    // A stand-in broker that reads the request and dies without answering.
    let listener = std::os::unix::net::UnixListener::bind(e.t.home.join("broker.sock")).unwrap();
    let target = e.root.join("log.jsonl");
    let client =
        e.t.cmd(["broker", "append", target.to_str().unwrap(), r#"{"n":1}"#])
            .args(["--id", "x-1", "--autostart"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let mut request = String::new();
    std::io::BufReader::new(&conn)
        .read_line(&mut request)
        .unwrap();
    assert!(request.contains("x-1"), "{request}");
    // No broker can start any more (a broken concur.toml), so every reconnect fails.
    write_file(&e.t.home.join("concur.toml"), "broker = 7\n");
    drop(conn);
    drop(listener);
    let o = client.wait_with_output().unwrap();
    assert_code(&o, 74);
    assert!(stderr(&o).contains("cannot start broker"), "{}", stderr(&o));
    assert!(!target.exists());
}

#[test]
fn lines_in_flight_behind_a_refusal_are_resent_when_the_broker_dies() {
    use std::io::{BufRead, Write};
    let e = BrokerEnv::new();
    // A stand-in broker that refuses the first of two pipelined lines and dies before
    // answering the second; --autostart then starts a real broker.
    let sock = e.t.home.join("broker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let target = e.root.join("log.jsonl");
    let mut client =
        e.t.cmd(["broker", "append", target.to_str().unwrap(), "-"])
            .args(["--id", "r", "--autostart"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"n\":1}\n{\"n\":2}\n")
        .unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
    let mut request = String::new();
    reader.read_line(&mut request).unwrap();
    assert!(request.contains("\"r-1\""), "{request}");
    request.clear();
    reader.read_line(&mut request).unwrap();
    assert!(request.contains("\"r-2\""), "{request}");
    conn.write_all(
        b"{\"ok\":false,\"id\":\"r-1\",\"error\":{\"kind\":\"permission\",\"message\":\"no\"}}\n",
    )
    .unwrap();
    drop(reader);
    drop(conn);
    drop(listener);
    let o = client.wait_with_output().unwrap();
    assert_code(&o, 77);
    assert_eq!(
        std::fs::read_to_string(&target).unwrap_or_default(),
        "{\"n\":2}\n",
        "the line sent behind the refusal is resent to the new broker"
    );
}
