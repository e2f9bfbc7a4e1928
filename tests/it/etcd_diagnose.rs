//! `concur --backend etcd://… diagnose`: on a real single-node etcd, the naive writers are
//! caught and the concur writers (lock, slot, token, task-start through etcd) are SAFE, the
//! run's keys are gone afterwards; an unreachable cluster is one line and exit 74 before any
//! writer runs; a local-only target asked for on etcd is a usage error.

use serde_json::Value;

use crate::etcd_util::{Cluster, available, unreachable_url};
use crate::util::*;

/// The etcd targets, as their rows are named.
const ON_ETCD: [&str; 4] = ["json-counter", "token", "semaphore", "task-start"];

fn parse(o: &std::process::Output) -> Value {
    serde_json::from_str(stdout(o).trim())
        .unwrap_or_else(|e| panic!("bad json ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

#[test]
fn etcd_diagnose_catches_the_naive_writers_and_the_etcd_ones_are_safe() {
    if !available("etcd_diagnose_catches_the_naive_writers_and_the_etcd_ones_are_safe") {
        return;
    }
    let cl = Cluster::start(1);
    let t = TestEnv::new();
    let report = t.path("report.html");
    let report_arg = report.display().to_string();
    let url = cl.url();
    let o = t.run([
        "--backend",
        &url,
        "diagnose",
        "--json",
        "--ops",
        "8",
        "--rounds",
        "3",
        "--timeout",
        "60",
        "--report",
        &report_arg,
    ]);
    let v = parse(&o);
    assert_eq!(code(&o), 0, "{v}\nstderr: {}", stderr(&o));
    assert_eq!(v["backend"], url.as_str(), "{v}");
    let prefix = v["etcd_prefix"].as_str().expect("etcd_prefix");
    assert!(prefix.starts_with("concur/diagnose-"), "{prefix}");
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 8, "{v}");
    for target in ON_ETCD {
        let row = |mode: &str| {
            results
                .iter()
                .find(|r| r["target"] == target && r["mode"] == mode)
                .unwrap_or_else(|| panic!("no {target}/{mode} in {v}"))
        };
        let naive = row("naive")["verdict"].as_str().unwrap();
        assert!(
            !["SAFE", "NOT REPRODUCED", "ERROR"].contains(&naive),
            "naive {target} not caught: {}",
            row("naive")
        );
        assert_eq!(row("concur")["verdict"], "SAFE", "{}", row("concur"));
    }
    // The killed holder's slot came free through its etcd lease running out.
    let sem = results
        .iter()
        .find(|r| r["target"] == "semaphore" && r["mode"] == "concur")
        .unwrap();
    assert!(
        sem["observed"].as_str().unwrap().contains("etcd lease"),
        "{sem}"
    );
    // Every other target is listed as skipped, with the reason.
    let skipped = v["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 9, "{v}");
    for s in skipped {
        assert_eq!(s["reason"], "local-only target, skipped on etcd");
        assert!(!ON_ETCD.contains(&s["target"].as_str().unwrap()), "{s}");
    }
    // The run cleaned its keys up: nothing is left under the default prefix.
    assert!(v["keys_removed"].as_u64().unwrap() > 0, "{v}");
    let (left, _) = cl.client().range_prefix(b"concur/").unwrap();
    let names: Vec<String> = left
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    assert!(names.is_empty(), "keys left behind: {names:?}");
    let page = std::fs::read_to_string(&report).expect("report");
    assert!(
        page.contains(&format!("backend: {url}")),
        "no backend in report"
    );
    assert!(
        page.contains("skipped (local-only targets"),
        "no skipped list"
    );
}

#[test]
fn etcd_diagnose_text_names_the_backend_and_the_lock_and_slot_aliases_work() {
    if !available("etcd_diagnose_text_names_the_backend_and_the_lock_and_slot_aliases_work") {
        return;
    }
    let cl = Cluster::start(1);
    let t = TestEnv::new();
    // A URL with its own key prefix: the run's prefix goes under it.
    let url = format!("{}/team-a", cl.url());
    let o = t.run([
        "--backend",
        &url,
        "diagnose",
        "--targets",
        "lock,slot",
        "--mode",
        "concur",
        "--rounds",
        "1",
        "--ops",
        "4",
    ]);
    assert_code(&o, 0);
    let out = stdout(&o);
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("backend: {url} (key prefix team-a/diagnose-")),
        "{out}"
    );
    let rows: Vec<&str> = out.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[0].starts_with("json-counter  concur"), "{out}");
    assert!(rows[1].starts_with("semaphore     concur"), "{out}");
    assert!(rows.iter().all(|r| r.contains(" SAFE ")), "{out}");
    assert!(
        !out.contains("skipped"),
        "explicit targets skip nothing: {out}"
    );
    let (left, _) = cl.client().range_prefix(b"team-a/").unwrap();
    assert!(left.is_empty(), "{} keys left behind", left.len());
}

#[test]
fn etcd_diagnose_unreachable_cluster_is_one_line_and_exit_74() {
    let t = TestEnv::new();
    let url = unreachable_url();
    let endpoint = url.strip_prefix("etcd://").unwrap();
    let o = t.run(["--backend", &url, "diagnose", "--targets", "token"]);
    assert_code(&o, 74);
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("concur: diagnose: cannot reach the etcd cluster"),
        "{err}"
    );
    assert!(err.contains(endpoint), "{err}");
    assert_eq!(stdout(&o), "", "nothing reported");
    // --json: the error document, no results.
    let o = t.run(["--backend", &url, "diagnose", "--json"]);
    assert_code(&o, 74);
    let v = parse(&o);
    assert_eq!(v["ok"], false, "{v}");
    assert!(v.get("results").is_none(), "{v}");
}

#[test]
fn etcd_diagnose_refuses_local_only_targets_and_cmd_before_connecting() {
    let t = TestEnv::new();
    // Nothing listens there: a usage error must come first (exit 2, not 74).
    let url = unreachable_url();
    for targets in ["jsonl-append", "token,replace", "ledger-nope"] {
        let o = t.run(["--backend", &url, "diagnose", "--targets", targets]);
        assert_code(&o, 2);
        let err = stderr(&o);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains("local-only") || err.contains("unknown target"),
            "{err}"
        );
        assert!(
            err.contains("json-counter (lock)"),
            "lists the etcd targets: {err}"
        );
        assert_eq!(stdout(&o), "");
    }
    let o = t.run([
        "--backend",
        &url,
        "diagnose",
        "--cmd",
        "true",
        "--check",
        "empty:x",
    ]);
    assert_code(&o, 2);
}

#[test]
fn concur_backend_in_the_environment_leaves_diagnose_local() {
    let t = TestEnv::new();
    let url = unreachable_url();
    // `diagnose [--json] --targets token --mode concur --rounds 1` with CONCUR_BACKEND set.
    let run = |json: &[&str]| {
        let args = ["diagnose", "--targets", "token", "--mode", "concur"];
        let o = t
            .cmd(json.iter().chain(&args).chain(&["--rounds", "1"]))
            .env("CONCUR_BACKEND", &url)
            .output()
            .expect("run concur");
        assert_code(&o, 0);
        o
    };
    let o = run(&["--json"]);
    let v = parse(&o);
    assert_eq!(v["backend"], "local", "{v}");
    assert_eq!(v["results"][0]["verdict"], "SAFE", "{v}");
    // Without --json, a note says so.
    let o = run(&[]);
    assert!(
        stderr(&o).contains("runs the local suite"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).starts_with("TARGET"), "{}", stdout(&o));
}
