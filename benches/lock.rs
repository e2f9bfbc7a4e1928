//! In-process lock costs and handoff latencies.
//!
//! - `lock/uncontended`: `LockOptions::lock()` + drop vs raw open + flock + close, same file.
//! - handoff latency (printed as medians after criterion's runs): the time from a holder's
//!   release to the moment a waiter already blocked in the kernel returns with the lock / slot
//!   permit. The holder waits until the waiter has announced itself and then pauses 1 ms, so
//!   the waiter is blocked in the kernel when the release happens.
//!
//! Run: `cargo bench --bench lock` (set `HANDOFF_ROUNDS` to change the number of handoffs).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use concur::Home;
use concur::lock::LockOptions;
use concur::slot::Slot;
use criterion::Criterion;

fn uncontended(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.lock");
    let mut g = c.benchmark_group("lock/uncontended");
    g.bench_function("concur LockOptions::lock+drop", |b| {
        let opts = LockOptions::new(&path);
        b.iter(|| drop(opts.lock().unwrap()));
    });
    g.bench_function("raw open+flock+close", |b| {
        b.iter(|| {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap();
            concur::sys::lock::flock(&f, concur::sys::lock::Mode::Exclusive).unwrap();
            drop(f);
        });
    });
    g.finish();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Release → blocked waiter returns, for `rounds` handoffs between two threads.
fn handoff<G: Send + 'static>(
    rounds: usize,
    acquire: impl Fn() -> G + Send + Sync + Clone + 'static,
) -> Duration {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let held = acquire();
        let (ready_tx, ready_rx) = mpsc::channel();
        let acq = acquire.clone();
        let waiter = std::thread::spawn(move || {
            ready_tx.send(()).unwrap();
            let g = acq();
            let t1 = Instant::now();
            drop(g);
            t1
        });
        ready_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(1));
        let t0 = Instant::now();
        drop(held);
        let t1 = waiter.join().unwrap();
        samples.push(t1.saturating_duration_since(t0));
    }
    median(samples)
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    uncontended(&mut c);
    c.final_summary();

    let rounds: usize = std::env::var("HANDOFF_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("handoff.lock");
    let lock_median = handoff(rounds, move || LockOptions::new(&path).lock().unwrap());
    let home = Home::at(dir.path().join("home")).unwrap();
    let slot = Slot::open(&home, "bench", 1).unwrap();
    let slot_median = handoff(rounds, move || slot.acquire().unwrap());
    println!(
        "handoff/lock  median release->waiter running: {:>8.1} us ({rounds} rounds)",
        lock_median.as_secs_f64() * 1e6
    );
    println!(
        "handoff/slot  median release->waiter running: {:>8.1} us ({rounds} rounds)",
        slot_median.as_secs_f64() * 1e6
    );
}
