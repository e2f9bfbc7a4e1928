//! Edit reservations in-process, with 1,000 reservations by 20 other sessions in place:
//! a claim (+ release) of one file, and the "may S write P?" check the edit-time hook runs.
//! A claim is one `BEGIN IMMEDIATE` transaction with `synchronous=FULL` (an fsync per commit),
//! so its throughput is mostly the disk's; the check is one read, no write lock.
//!
//! `cargo bench --bench reserve` (set `TMPDIR` to choose the disk; the default is `/tmp`).

use std::time::Duration;

use concur::reserve::{Access, Claim, ClaimRequest, Mode, Reservations, Target};
use concur::{Home, SessionId};
use criterion::{Criterion, criterion_group, criterion_main};

fn setup() -> (tempfile::TempDir, std::path::PathBuf, Reservations) {
    let d = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(d.path()).unwrap();
    std::fs::create_dir_all(dir.join("repo/.git")).unwrap();
    let home = Home::at(dir.join("home")).unwrap();
    let r = Reservations::open(&home).unwrap();
    let repo = dir.join("repo");
    for s in 1..=20 {
        let mut targets = Vec::new();
        for f in 1..=45 {
            targets.push(Target::resolve(&format!("src/s{s}/file{f}.rs"), &repo).unwrap());
        }
        for g in 1..=5 {
            targets.push(Target::resolve(&format!("src/s{s}/gen{g}/**"), &repo).unwrap());
        }
        let req = ClaimRequest {
            session: SessionId::new(&format!("sess-{s}")).unwrap(),
            targets,
            mode: Mode::Exclusive,
            ttl: Duration::from_secs(3600),
            reason: None,
            cwd: String::new(),
        };
        assert!(matches!(r.claim(&req).unwrap(), Claim::Granted(_)));
    }
    assert_eq!(r.list().unwrap().len(), 1000);
    (d, repo, r)
}

fn claim(c: &mut Criterion) {
    let (_d, repo, r) = setup();
    let me = SessionId::new("bench").unwrap();
    let req = ClaimRequest {
        session: me.clone(),
        targets: vec![Target::resolve("src/free/new.rs", &repo).unwrap()],
        mode: Mode::Exclusive,
        ttl: Duration::from_secs(3600),
        reason: None,
        cwd: String::new(),
    };
    c.bench_function("reserve/claim+release one file (1,000 held)", |b| {
        b.iter(|| {
            assert!(matches!(r.claim(&req).unwrap(), Claim::Granted(_)));
            assert_eq!(r.release(&me, Some(&req.targets)).unwrap().len(), 1);
        });
    });
}

fn check(c: &mut Criterion) {
    let (_d, repo, r) = setup();
    let me = SessionId::new("bench").unwrap();
    let free = Target::resolve("src/free/new.rs", &repo).unwrap();
    let held = Target::resolve("src/s7/gen3/x.rs", &repo).unwrap();
    c.bench_function("reserve/check free path (1,000 held)", |b| {
        b.iter(|| {
            assert_eq!(r.check(Some(&me), &free).unwrap(), Access::Free);
        });
    });
    c.bench_function("reserve/check reserved path (1,000 held)", |b| {
        b.iter(|| {
            assert!(matches!(
                r.check(Some(&me), &held).unwrap(),
                Access::Denied(_)
            ));
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = claim, check
}
criterion_main!(benches);
