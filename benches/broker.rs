//! Broker throughput against direct durable appends, fsyncs per acked append, and broker RSS.
//!
//! - **direct**: 16 writers (threads; each append opens, writes one line, `fdatasync`s and
//!   closes, exactly as 16 processes running `concur::append` would) for a fixed time. Run
//!   first and last; the ratios use the mean of the two.
//! - **broker**: a real `concur broker serve` process; 16 client threads, each holding its own
//!   connection (`concur::broker::Client`), with 1, 8 or 32 appends in flight per connection
//!   (`send_append`/`recv_append` pipelining), with and without retry ids. Every ack means
//!   the line was fdatasync'ed (and, with ids, its dedup record too).
//! - **lines per batch** and **fsyncs per acked append**: from the broker's own counters
//!   (`status`), over each mode's run: data syncs, dedup index syncs and index growth.
//! - **RSS at 100 connections**: `VmRSS` of the broker process with 100 open connections that
//!   have each made a request.
//!
//! Run: `cargo bench --bench broker` (`BENCH_SECS` sets the time per mode, default 3;
//! `BENCH_BROKER_BIN` runs another build of the broker process; files go to a temp dir under
//! `$TMPDIR`, which must be a real disk for the ratio to mean anything).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use concur::Home;
use concur::append::AppendOptions;
use concur::broker::{Client, Line};

const WRITERS: usize = 16;
const LINE: &str = r#"{"event":"tool","session":"s1","n":42,"ok":true}"#;

fn secs() -> Duration {
    let s: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(s)
}

/// Runs `threads` threads calling `op(thread, n)` (which returns how many appends it
/// completed) until the time is up; returns appends/s.
fn run(threads: usize, op: impl Fn(usize, u64) -> u64 + Send + Sync + 'static) -> f64 {
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (op, stop, count, start) = (
                Arc::clone(&op),
                Arc::clone(&stop),
                Arc::clone(&count),
                Arc::clone(&start),
            );
            std::thread::spawn(move || {
                start.wait();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    count.fetch_add(op(t, n), Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    std::thread::sleep(secs());
    stop.store(true, Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)]
    let rate = count.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
    for h in handles {
        h.join().unwrap();
    }
    rate
}

struct Broker {
    child: Child,
    home: Home,
}

impl Broker {
    fn start(home_dir: &Path, root: &Path) -> Broker {
        let home = Home::at(home_dir).unwrap();
        let cfg = format!("[broker]\nroots = [{:?}]\n", root.to_str().unwrap());
        let mut f = std::fs::File::create(home.join("concur.toml")).unwrap();
        std::io::Write::write_all(&mut f, cfg.as_bytes()).unwrap();
        // BENCH_BROKER_BIN runs another build of the broker (e.g. the release one:
        // `scripts/cargo-exe --release --bin concur`).
        let bin = std::env::var_os("BENCH_BROKER_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_concur")),
            PathBuf::from,
        );
        let child = Command::new(bin)
            .args(["broker", "serve"])
            .env("CONCUR_HOME", home.path())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while Client::connect(&home).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "broker did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Broker { child, home }
    }

    fn counters(&self) -> [u64; 4] {
        let st = Client::connect(&self.home).unwrap().status().unwrap();
        let num = |k: &str| st.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        [
            num("appends"),
            num("batches"),
            num("fsyncs"),
            num("index_writes"),
        ]
    }

    fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// One broker mode's result.
struct Measured {
    window: usize,
    ids: bool,
    rate: f64,
    per_batch: f64,
    fsyncs_per_append: f64,
    index_writes_per_append: f64,
}

/// 16 connections, each keeping `window` appends in flight, for the bench time.
fn broker_mode(broker: &Broker, root: &Path, window: usize, ids: bool) -> Measured {
    let target = root.join(format!(
        "broker-w{window}-{}.jsonl",
        if ids { "ids" } else { "noids" }
    ));
    let clients: Arc<Vec<Mutex<Client>>> = Arc::new(
        (0..WRITERS)
            .map(|_| Mutex::new(Client::connect(&broker.home).unwrap()))
            .collect(),
    );
    let before = broker.counters();
    let c = Arc::clone(&clients);
    let line = Line::JsonText(LINE.to_owned());
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let rate = run(WRITERS, move |t, _| {
        let mut c = c[t].lock().unwrap();
        while c.in_flight() < window {
            let n = sent[t].fetch_add(1, Ordering::Relaxed);
            let id = ids.then(|| format!("w{window}-{t}-{n}"));
            c.send_append(&target, &line, id.as_deref()).unwrap();
        }
        let ack = c.recv_append().unwrap().unwrap();
        assert!(!ack.duplicate);
        1
    });
    // Drain what is still in flight before reading the counters.
    for c in clients.iter() {
        let mut c = c.lock().unwrap();
        while c.in_flight() > 0 {
            c.recv_append().unwrap().unwrap();
        }
    }
    let after = broker.counters();
    let [appends, batches, fsyncs, index_writes] = [0, 1, 2, 3].map(|i| after[i] - before[i]);
    #[allow(clippy::cast_precision_loss)]
    let per_append = |n: u64| n as f64 / appends.max(1) as f64;
    #[allow(clippy::cast_precision_loss)]
    Measured {
        window,
        ids,
        rate,
        per_batch: appends as f64 / batches.max(1) as f64,
        fsyncs_per_append: per_append(fsyncs),
        index_writes_per_append: per_append(index_writes),
    }
}

fn direct_mode(root: &Path, name: &str) -> f64 {
    let file: PathBuf = root.join(name);
    let line = concur::append::encode_json(LINE.as_bytes()).unwrap();
    run(WRITERS, move |_, _| {
        AppendOptions::new().append(&file, &line).unwrap();
        1
    })
}

fn main() {
    // `cargo bench` passes `--bench`; accept and ignore harness arguments.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();

    let direct_first = direct_mode(&root, "direct-1.jsonl");
    let broker = Broker::start(&dir.path().join("home"), &root);
    let mut modes = Vec::new();
    for window in [1, 8, 32] {
        for ids in [true, false] {
            modes.push(broker_mode(&broker, &root, window, ids));
        }
    }
    let direct_last = direct_mode(&root, "direct-2.jsonl");
    let direct = f64::midpoint(direct_first, direct_last);
    drop(broker);

    // RSS: a fresh broker, 100 connections, each has appended one line (with an id).
    let broker = Broker::start(&dir.path().join("home-rss"), &root);
    let target = root.join("rss.jsonl");
    let line = Line::JsonText(LINE.to_owned());
    let conns: Vec<Client> = (0..100)
        .map(|n| {
            let mut c = Client::connect(&broker.home).unwrap();
            c.append(&target, &line, Some(&format!("rss-{n}"))).unwrap();
            c
        })
        .collect();
    let rss = broker.rss_kib();
    drop(conns);

    println!(
        "broker bench ({WRITERS} writers, {:.1} s per mode)",
        secs().as_secs_f64()
    );
    println!(
        "  direct durable appends/s, 16 threads: {direct:.0} (first {direct_first:.0}, last {direct_last:.0})"
    );
    println!(
        "  | in flight per connection | retry ids | appends/s | ratio to direct | lines per batch | fsyncs per acked append | index write-outs per acked append |"
    );
    println!("  |---|---|---|---|---|---|---|");
    for m in &modes {
        println!(
            "  | {} | {} | {:.0} | **{:.2}x** | {:.1} | {:.4} | {:.4} |",
            m.window,
            if m.ids { "yes" } else { "no" },
            m.rate,
            m.rate / direct,
            m.per_batch,
            m.fsyncs_per_append,
            m.index_writes_per_append
        );
    }
    #[allow(clippy::cast_precision_loss)]
    let mib = rss as f64 / 1024.0;
    println!("  broker RSS with 100 connections (fresh broker, one append each): {mib:.1} MiB");
}
