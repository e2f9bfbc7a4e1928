//! `concur diagnose --chaos`: a race no plain run catches is caught with a fixed seed, the
//! schedule that broke it names the calls; concur's own writers stay SAFE under the same
//! perturbation; a seed replays the same delays.

use serde_json::Value;

use crate::diagnose::diagnose_doc;
use crate::util::*;

/// The daily-log hook of issue 17: check, then create with `>` (truncating), then append.
const HEADER_RACE: &str =
    r#"cd "$CONCUR_STATE_DIR"; [ -f log ] || echo '# header' > log; echo entry >> log"#;

#[test]
fn chaos_catches_the_daily_log_header_race_with_a_fixed_seed_and_shows_the_schedule() {
    let t = TestEnv::new();
    let (c, v) = diagnose_doc(
        &t,
        &[
            "--chaos",
            "--seed",
            "1",
            "--rounds",
            "50",
            "--writers",
            "4",
            "--cmd",
            &format!("bash -c '{}'", HEADER_RACE.replace('\'', r"'\''")),
            "--check",
            "header:log:# header",
            "--check",
            "lines:log:^entry$",
        ],
    );
    assert_eq!(v["chaos"]["seed"], 1, "{v}");
    let rs = v["results"].as_array().unwrap();
    assert_eq!(rs[0]["verdict"], "SAFE", "every run must exit 0: {v}");
    let broken: Vec<&Value> = rs[1..].iter().filter(|r| r["verdict"] != "SAFE").collect();
    assert!(!broken.is_empty(), "the header race was not caught: {v}");
    assert_eq!(c, 3, "{v}");
    // The schedule: the seed, the round, and the writers' calls on the log.
    let b = broken
        .iter()
        .find_map(|r| r.get("chaos"))
        .unwrap_or_else(|| panic!("no schedule: {v}"));
    assert_eq!(b["seed"], 1);
    let calls = b["schedule"].as_array().unwrap();
    assert!(
        calls.iter().all(|c| c["path"] == "log" || c["path"] == "."),
        "only calls on the round's files: {b}"
    );
    let writers: std::collections::BTreeSet<u64> = calls
        .iter()
        .map(|c| c["writer"].as_u64().unwrap())
        .collect();
    assert!(writers.len() >= 2, "one writer cannot race itself: {b}");
    assert!(
        calls
            .iter()
            .any(|c| c["call"].as_str().unwrap().contains("stat") && c["ret"] == "ENOENT"),
        "the check (a stat finding no log) must be in the schedule: {b}"
    );
}

#[test]
fn concur_writers_stay_safe_under_chaos() {
    let t = TestEnv::new();
    let (c, v) = diagnose_doc(&t, &["--chaos", "--seed", "3", "--mode", "concur"]);
    let rs = v["results"].as_array().unwrap();
    assert!(rs.len() >= 10, "{v}");
    for r in rs {
        assert_eq!(r["verdict"], "SAFE", "{r}");
        assert!(r.get("chaos").is_none(), "{r}");
    }
    assert_eq!(c, 0, "{v}");
}

#[test]
fn naive_writers_are_still_caught_under_chaos_with_the_schedule() {
    let t = TestEnv::new();
    let (_, v) = diagnose_doc(
        &t,
        &[
            "--chaos",
            "--seed",
            "9",
            "--mode",
            "naive",
            "--targets",
            "token,header-once,json-counter",
        ],
    );
    for r in v["results"].as_array().unwrap() {
        let verdict = r["verdict"].as_str().unwrap();
        assert!(
            !["SAFE", "NOT REPRODUCED", "ERROR"].contains(&verdict),
            "{r}"
        );
        assert!(
            !r["chaos"]["schedule"].as_array().unwrap().is_empty(),
            "{r}"
        );
    }
}

/// The delays one lone writer's calls got, in order (a check that always fails makes the
/// schedule be reported).
fn delays(t: &TestEnv, seed: &str) -> Vec<u64> {
    let (_, v) = diagnose_doc(
        t,
        &[
            "--chaos",
            "--seed",
            seed,
            "--writers",
            "1",
            "--cmd",
            r#"cd "$CONCUR_STATE_DIR"; for i in 1 2 3 4 5 6 7 8; do echo $i >> f; done; cat f > g"#,
            "--check-cmd",
            "false",
        ],
    );
    let s = &v["results"][1]["chaos"]["schedule"];
    let d: Vec<u64> = s
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|c| c["delay_us"].as_u64().unwrap())
        .collect();
    assert!(d.len() >= 10, "{v}");
    d
}

#[test]
fn a_seed_replays_the_same_delays_and_another_seed_draws_others() {
    let t = TestEnv::new();
    let a = delays(&t, "42");
    assert_eq!(a, delays(&t, "42"));
    assert!(a.iter().any(|&d| d > 0), "{a:?}");
    assert_ne!(a, delays(&t, "43"));
}

#[test]
fn seed_without_chaos_is_a_usage_error() {
    let t = TestEnv::new();
    let o = t.run(["diagnose", "--seed", "1"]);
    assert_code(&o, 2);
}

#[test]
fn the_table_is_followed_by_the_seed_and_the_schedule_that_broke_it() {
    let t = TestEnv::new();
    let o = t.run([
        "diagnose",
        "--chaos",
        "--seed",
        "4",
        "--targets",
        "token",
        "--mode",
        "naive",
    ]);
    let out = stdout(&o);
    assert!(out.starts_with("TARGET "), "{out}");
    assert!(
        out.contains("chaos: seed 4 (replay the same delays with --chaos --seed 4)"),
        "{out}"
    );
    assert!(out.contains("token naive broke in round 0"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with('+') && l.contains(" w")),
        "{out}"
    );
}
