//! Broker throughput against direct durable appends, fsyncs per acked append, and broker RSS.
//!
//! - **direct**: 16 writers (threads; each append opens, writes one line, `fdatasync`s and
//!   closes, exactly as 16 processes running `concur::append` would) for a fixed time.
//! - **broker**: a real `concur broker serve` process; 16 client threads, each holding one
//!   connection (`concur::broker::Client`), append with retry ids for the same time. Every ack
//!   means the line was fdatasync'ed.
//! - **broker, no ids**: the same without retry ids (no dedup index, one fdatasync per batch).
//! - **fsyncs per acked append**: the broker's own counters (data + dedup index syncs), for the
//!   run with ids.
//! - **RSS at 100 connections**: `VmRSS` of the broker process with 100 open connections that
//!   have each made a request.
//!
//! Run: `cargo bench --bench broker` (`BENCH_SECS` sets the time per mode, default 3;
//! `BENCH_BROKER_BIN` runs another build of the broker process; files go to a temp dir under
//! `$TMPDIR`, which must be a real disk for the ratio to mean anything).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
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

/// Runs `WRITERS` threads calling `op(thread, n)` until the time is up; returns ops/s.
fn run(threads: usize, op: impl Fn(usize, u64) + Send + Sync + 'static) -> f64 {
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
                    op(t, n);
                    n += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    std::thread::sleep(secs());
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = count.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
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
        // BENCH_BROKER_BIN runs another build of the broker (e.g. target/release/concur).
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

    fn status(&self) -> serde_json::Map<String, serde_json::Value> {
        Client::connect(&self.home).unwrap().status().unwrap()
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

fn main() {
    // `cargo bench` passes `--bench`; accept and ignore harness arguments.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();

    let direct_file: PathBuf = root.join("direct.jsonl");
    let line = concur::append::encode_json(LINE.as_bytes()).unwrap();
    let direct = run(WRITERS, move |_, _| {
        AppendOptions::new().append(&direct_file, &line).unwrap();
    });

    let broker = Broker::start(&dir.path().join("home"), &root);
    let target = root.join("broker.jsonl");
    let clients: Vec<std::sync::Mutex<Client>> = (0..WRITERS)
        .map(|_| std::sync::Mutex::new(Client::connect(&broker.home).unwrap()))
        .collect();
    let clients = Arc::new(clients);
    let c2 = Arc::clone(&clients);
    let line = Line::JsonText(LINE.to_owned());
    let via = run(WRITERS, move |t, n| {
        let mut c = c2[t].lock().unwrap();
        let id = format!("w{t}-{n}");
        let ack = c.append(&target, &line, Some(&id)).unwrap();
        assert!(!ack.duplicate);
    });
    let st = broker.status();
    let target2 = root.join("broker-noid.jsonl");
    let c3 = Arc::clone(&clients);
    let line2 = Line::JsonText(LINE.to_owned());
    let via_noid = run(WRITERS, move |t, _| {
        let mut c = c3[t].lock().unwrap();
        c.append(&target2, &line2, None).unwrap();
    });
    let num = |k: &str| st.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    #[allow(clippy::cast_precision_loss)]
    let fsyncs_per_append = num("fsyncs") as f64 / num("appends").max(1) as f64;
    #[allow(clippy::cast_precision_loss)]
    let per_batch = num("appends") as f64 / num("batches").max(1) as f64;

    let mut conns: Vec<Client> = (0..100)
        .map(|_| Client::connect(&broker.home).unwrap())
        .collect();
    for c in &mut conns {
        c.status().unwrap();
    }
    let rss = broker.rss_kib();
    drop(clients);

    println!(
        "broker bench ({WRITERS} writers, {:.1} s per mode)",
        secs().as_secs_f64()
    );
    println!("  direct durable appends/s (16 writers):      {direct:>10.0}");
    println!("  broker durable appends/s (16 connections):  {via:>10.0}");
    println!(
        "  ratio broker / direct:                       {:>10.2}x",
        via / direct
    );
    println!("  broker without retry ids (1 fsync/batch):    {via_noid:>10.0}");
    println!(
        "  ratio broker (no ids) / direct:              {:>10.2}x",
        via_noid / direct
    );
    println!("  appends per batch (group commit):            {per_batch:>10.2}");
    println!("  fsyncs per acked append (data + dedup index): {fsyncs_per_append:>9.3}");
    #[allow(clippy::cast_precision_loss)]
    let mib = rss as f64 / 1024.0;
    println!("  broker RSS with 100 connections:             {mib:>10.1} MiB");
}
