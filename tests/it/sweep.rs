//! `concur sweep` on examples/agent-system: seed-style tables whose counts equal the rows.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::util::*;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/agent-system")
}

fn sweep_json(t: &TestEnv, inventory: Option<&str>) -> Value {
    let mut args = vec!["sweep".to_string(), example().display().to_string()];
    if let Some(i) = inventory {
        args.extend([
            "--inventory".into(),
            example().join(i).display().to_string(),
        ]);
    }
    args.extend(["--format".into(), "json".into()]);
    let o = t.run(&args);
    assert_code(&o, 0);
    serde_json::from_str(stdout(&o).trim()).unwrap()
}

fn status_of<'a>(v: &'a Value, id: &str) -> &'a str {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no row {id}"))["status"]
        .as_str()
        .unwrap()
}

/// The summary counts, recomputed from the rows, must equal the printed summary.
fn assert_counts_equal_rows(v: &Value) {
    let mut want: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for r in v["rows"].as_array().unwrap() {
        want.entry(r["priority"].as_str().unwrap().into())
            .or_default()
            .entry(r["status"].as_str().unwrap().into())
            .or_default()
            .push(r["id"].as_str().unwrap().into());
    }
    let summary = v["summary"].as_object().unwrap();
    assert_eq!(summary.len(), want.len());
    for (prio, by) in &want {
        let got = &summary[prio];
        let total: usize = by.values().map(Vec::len).sum();
        assert_eq!(got["total"].as_u64().unwrap(), total as u64, "{prio}");
        let got_by: BTreeMap<String, Vec<String>> =
            serde_json::from_value(got["by_status"].clone()).unwrap();
        assert_eq!(&got_by, by, "{prio}");
    }
}

#[test]
fn concur_versions_sweep_applied_with_counts_from_rows() {
    let t = TestEnv::new();
    let v = sweep_json(&t, None);
    assert_counts_equal_rows(&v);
    assert_eq!(v["rows"].as_array().unwrap().len(), 14);
    for r in v["rows"].as_array().unwrap() {
        let want = if r["id"] == "P1-10" {
            "DEFERRED"
        } else {
            "APPLIED"
        };
        assert_eq!(r["status"], want, "{r}");
        if r["id"] != "P1-10" {
            assert!(!r["writers"].as_array().unwrap().is_empty(), "{r}");
        }
    }
}

#[test]
fn naive_versions_sweep_at_risk_where_the_seed_had_problems() {
    let t = TestEnv::new();
    let v = sweep_json(&t, Some("naive.toml"));
    assert_counts_equal_rows(&v);
    for id in [
        "P1-1", "P1-4", "P1-7", "P1-8", "P1-11", "P1-13", "P2-3", "P2-4", "P2-5", "P2-6",
    ] {
        assert_eq!(status_of(&v, id), "AT-RISK", "{id}");
    }
    // short O_APPEND lines are what the seed verified as fine
    for id in ["P1-2", "P1-3", "P1-12"] {
        assert_eq!(status_of(&v, id), "APPLIED", "{id}");
    }
    assert_eq!(status_of(&v, "P1-10"), "DEFERRED");
}

#[test]
fn markdown_sweep_matches_snapshot() {
    let t = TestEnv::new();
    let o = t.run(["sweep", example().to_str().unwrap()]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("## P1 Table (10 resources)"));
    assert!(out.contains("- **P1 APPLIED:** 9 ("));
    insta::assert_snapshot!("sweep_md", out);
}

#[test]
fn diagnose_verdicts_join_the_rows() {
    let t = TestEnv::new();
    let inv = t.path("inv.toml");
    std::fs::File::create(&inv).unwrap();
    let text = "[[sweep.resource]]\nid = \"P1-1\"\nname = \"health\"\n\
                path = \"$HOME/.agent/ingest-health.json\"\npattern = \"concur json\"\n\
                writers = [\"concur/\"]\ntarget = \"no-such-target\"\n";
    let mut f = std::fs::OpenOptions::new().write(true).open(&inv).unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    let o = t.run([
        "sweep",
        example().to_str().unwrap(),
        "--inventory",
        inv.to_str().unwrap(),
        "--diagnose",
        "--format",
        "json",
    ]);
    assert_code(&o, 0);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let row = &v["rows"][0];
    // a target diagnose cannot run is reported, and never counted as verified
    assert_eq!(row["status"], "APPLIED", "{row}");
    assert!(
        row["evidence"]
            .as_str()
            .unwrap()
            .contains("diagnose no-such-target: "),
        "{row}"
    );
}

#[test]
fn bad_inventories_are_refused_with_the_documented_codes() {
    let t = TestEnv::new();
    let inv = t.path("bad.toml");
    let mut f = std::fs::File::create(&inv).unwrap();
    std::io::Write::write_all(
        &mut f,
        b"[[sweep.resource]]\nid='P1-1'\nname='n'\npath='p'\npattern='x'\nstauts='APPLIED'\n",
    )
    .unwrap();
    let o = t.run([
        "sweep",
        example().to_str().unwrap(),
        "--inventory",
        inv.to_str().unwrap(),
    ]);
    assert_code(&o, 4);
    assert!(stderr(&o).contains("stauts"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    // no inventory at all: a usage error naming where it looked
    let empty = t.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = t.run(["sweep", empty.to_str().unwrap()]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("concur.toml"), "{}", stderr(&o));
}

#[test]
fn a_safe_diagnose_verdict_makes_a_clean_row_verified() {
    let t = TestEnv::new();
    let inv = t.path("inv.toml");
    let mut f = std::fs::File::create(&inv).unwrap();
    std::io::Write::write_all(
        &mut f,
        b"[[sweep.resource]]\nid = \"P1-8\"\nname = \"token\"\n\
          path = \"/tmp/opus-override-token | concur:token/opus-override\"\n\
          pattern = \"concur token take\"\nwriters = [\"concur/\"]\ntarget = \"token\"\n",
    )
    .unwrap();
    let o = t.run([
        "sweep",
        example().to_str().unwrap(),
        "--inventory",
        inv.to_str().unwrap(),
        "--diagnose",
        "--format",
        "json",
    ]);
    assert_code(&o, 0);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let row = &v["rows"][0];
    assert_eq!(row["status"], "VERIFIED", "{row}");
    assert!(
        row["evidence"]
            .as_str()
            .unwrap()
            .contains("diagnose token: SAFE"),
        "{row}"
    );
    assert_counts_equal_rows(&v);
}
