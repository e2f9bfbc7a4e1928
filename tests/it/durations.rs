//! Every duration option takes the same spellings (`90`, `1.5s`, `5m`); the `flock` program
//! keeps flock(1)'s seconds-only `-w`.

use crate::util::TestEnv;

fn code(o: &std::process::Output) -> i32 {
    o.status.code().expect("exit code")
}

#[test]
fn every_duration_option_takes_units() {
    let t = TestEnv::new();
    let f = t.path("f.lock");
    let f = f.to_str().unwrap();
    let ledger = t.path("l.jsonl");
    let ledger = ledger.to_str().unwrap();
    let runs: &[&[&str]] = &[
        &["lock", "-w", "5m", "--max-hold", "5m", f, "true"],
        &["lock", "-w", "1.5s", "--max-hold", "90", f, "true"],
        &[
            "slot",
            "dur",
            "--max",
            "1",
            "-w",
            "1.5s",
            "--max-hold",
            "1m",
            "--",
            "true",
        ],
        &["lease", "acquire", "task-a", "-w", "1m", "--session", "s-1"],
        &["ledger", "append", ledger, "{\"a\":1}", "-w", "2s"],
        &["ledger", "repair", ledger, "-w", "500ms"],
    ];
    for args in runs {
        let o = t.run(*args);
        assert_eq!(
            code(&o),
            0,
            "concur {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn a_bad_duration_is_a_usage_error_that_names_it() {
    let t = TestEnv::new();
    let f = t.path("f.lock");
    let f = f.to_str().unwrap();
    for args in [
        vec!["lock", "--max-hold", "5x", f, "true"],
        vec!["lock", "--max-hold", "0", f, "true"],
        vec!["lock", "-w", "-1", f, "true"],
        vec![
            "lease",
            "acquire",
            "task-a",
            "-w",
            "soon",
            "--session",
            "s-1",
        ],
        vec!["broker", "stop", "--wait", "1y"],
    ] {
        let o = t.run(&args);
        assert_eq!(code(&o), 2, "concur {args:?}");
        assert!(
            !t.path("f.lock").exists(),
            "concur {args:?} created the lock file"
        );
    }
}

#[test]
fn the_flock_program_keeps_seconds_only() {
    use std::os::unix::process::CommandExt;
    let t = TestEnv::new();
    let f = t.path("f.lock");
    let flock = |w: &str| {
        std::process::Command::new(crate::util::bin())
            .arg0("flock")
            .args(["-w", w])
            .arg(&f)
            .arg("true")
            .env("CONCUR_HOME", &t.home)
            .output()
            .unwrap()
    };
    assert_eq!(code(&flock("2.5")), 0, "flock -w 2.5 is flock(1) syntax");
    assert_ne!(
        code(&flock("5m")),
        0,
        "flock -w 5m must be refused as flock(1) refuses it"
    );
}
