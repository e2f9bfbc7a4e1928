//! In-process durable append throughput: `concur::append` (validate-free encoded line, open with
//! `O_APPEND|O_NOFOLLOW`, one `write(2)`, `fdatasync`, close) against the raw floor, a loop of
//! `write(2)` + `fdatasync(2)` on a descriptor kept open. Both fsync every line, so the ratio
//! shows what concur's safety costs on top of the disk flush.
//!
//! Run: `cargo bench --bench append` (files go to a temp dir on the filesystem of `$TMPDIR`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use concur::append::{AppendOptions, encode_json};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn durable_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let line = encode_json(br#"{"event":"tool","session":"s1","n":42,"ok":true}"#).unwrap();
    let mut g = c.benchmark_group("durable_append");
    g.throughput(Throughput::Elements(1));

    let raw_path = dir.path().join("raw.jsonl");
    let mut raw = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&raw_path)
        .unwrap();
    g.bench_function("raw_write_fdatasync", |b| {
        b.iter(|| {
            raw.write_all(&line).unwrap();
            raw.sync_data().unwrap();
        });
    });

    let path = dir.path().join("concur.jsonl");
    let opts = AppendOptions::new();
    g.bench_function("concur_append", |b| {
        b.iter(|| opts.append(&path, &line).unwrap());
    });

    let opts_nofsync = AppendOptions::new().fsync(false);
    let path2 = dir.path().join("concur-nofsync.jsonl");
    g.bench_function("concur_append_no_fsync", |b| {
        b.iter(|| opts_nofsync.append(&path2, &line).unwrap());
    });
    g.finish();
}

criterion_group!(benches, durable_append);
criterion_main!(benches);
