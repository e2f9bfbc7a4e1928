//! Ledger append cost against the size of the ledger: 1 k vs 1 M existing lines. Append reads
//! only the tail, so the two should cost the same. Measured without fdatasync so that the disk's
//! flush time does not hide the read cost (`Options { fsync: false }`); the chain is real (every
//! line hashed), built in-process before measuring.
//!
//! `cargo bench --bench ledger` (needs ~150 MB free in `TMPDIR` for the 1 M-line file).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use concur::ledger::{GENESIS, Options, append, canonical, line_hash};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value};

/// Writes a valid chain of `n` lines to `path`.
fn build(path: &Path, n: u64) {
    let mut w = BufWriter::new(std::fs::File::create(path).unwrap());
    let mut prev = GENESIS.to_owned();
    for seq in 1..=n {
        let mut m = Map::new();
        m.insert("task".into(), Value::from(format!("T-{seq}")));
        m.insert("verdict".into(), Value::from("pass"));
        m.insert("seq".into(), Value::from(seq));
        m.insert("prev".into(), Value::from(prev.clone()));
        let h = line_hash(&prev, &m);
        m.insert("hash".into(), Value::from(h.clone()));
        writeln!(w, "{}", canonical(&Value::Object(m))).unwrap();
        prev = h;
    }
    w.flush().unwrap();
}

fn ledger_append(c: &mut Criterion) {
    let d = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("ledger/append");
    let entry = serde_json::json!({"task": "T-x", "verdict": "pass"});
    let opts = Options {
        wait: Some(Duration::from_secs(10)),
        fsync: false,
    };
    for n in [1_000u64, 1_000_000] {
        let f = d.path().join(format!("l{n}.jsonl"));
        build(&f, n);
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{n} lines")),
            &f,
            |b, f| {
                b.iter(|| append(f, &entry, opts).unwrap());
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = ledger_append
}
criterion_main!(benches);
