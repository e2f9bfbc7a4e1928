//! The long fuzz run: `FUZZ_RUNS` cases (default 1,000,000) of each target named on the
//! command line (all without names), one line of counts per target.
//!
//! ```text
//! FUZZ_RUNS=1000000 nice cargo run --release --example fuzz [TARGET...]
//! ```
//!
//! A panic prints the input and fails; a case over 1 s prints the input and aborts.

#[path = "../tests/fuzz/targets.rs"]
mod targets;

fn main() {
    let runs: u64 = std::env::var("FUZZ_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let names: Vec<String> = std::env::args().skip(1).collect();
    for t in targets::all() {
        if !names.is_empty() && !names.iter().any(|n| n == t.name) {
            continue;
        }
        let start = std::time::Instant::now();
        let s = targets::fuzz(&t, runs, seed);
        println!(
            "{:<13} cases {:>9}  accepted {:>9}  skipped {:>7}  crashes 0  hangs 0  slowest {:>7.2} ms  longest {:>7} B  wall {:>6.1} s",
            t.name,
            s.cases,
            s.accepted,
            s.skipped,
            s.slowest.as_secs_f64() * 1e3,
            s.longest,
            start.elapsed().as_secs_f64()
        );
    }
}
