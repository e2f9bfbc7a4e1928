//! `concur scan` on the fixture corpus (tests/fixtures/scan): snapshots of every output
//! format, and the positive and negative cases the scanner must get right.

use std::path::PathBuf;

use serde_json::Value;

use crate::util::*;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scan")
}

fn scan_json(t: &TestEnv, extra: &[&str]) -> Value {
    let mut args = vec!["scan".to_string(), fixtures().display().to_string()];
    args.extend(["--format".into(), "json".into()]);
    args.extend(extra.iter().map(ToString::to_string));
    let o = t.run(&args);
    assert_code(&o, 0);
    serde_json::from_str(stdout(&o).trim()).expect("scan --format json prints JSON")
}

fn findings(v: &Value) -> &Vec<Value> {
    v["findings"].as_array().unwrap()
}

/// The findings at `file:line`.
fn at<'a>(v: &'a Value, file: &str, line: u64) -> Vec<&'a Value> {
    findings(v)
        .iter()
        .filter(|f| f["file"] == file && f["line_start"].as_u64() == Some(line))
        .collect()
}

/// The finding with `pattern` at `file:line`: the site's finding, or one of its notes (one
/// finding per site: the weaker patterns there are notes `pattern (risk): reason`), returned as
/// the site's finding with that pattern, risk and reason.
fn one(v: &Value, file: &str, line: u64, pattern: &str) -> Value {
    let all = at(v, file, line);
    if let Some(f) = all.iter().find(|f| f["pattern"] == pattern) {
        return (*f).clone();
    }
    for f in &all {
        for n in f["notes"].as_array().into_iter().flatten() {
            let n = n.as_str().unwrap();
            let Some(rest) = n.strip_prefix(&format!("{pattern} (")) else {
                continue;
            };
            let (risk, reason) = rest.split_once("): ").unwrap();
            let mut g = (*f).clone();
            g["pattern"] = pattern.into();
            g["risk"] = risk.into();
            g["reason"] = reason.into();
            return g;
        }
    }
    panic!("no {pattern} at {file}:{line}: {all:#?}")
}

#[test]
fn json_output_matches_snapshot() {
    let t = TestEnv::new();
    let v = scan_json(&t, &[]);
    insta::assert_snapshot!("scan_json", serde_json::to_string_pretty(&v).unwrap());
}

#[test]
fn table_output_matches_snapshot() {
    let t = TestEnv::new();
    let o = t.run(["scan", fixtures().to_str().unwrap()]);
    assert_code(&o, 0);
    insta::assert_snapshot!("scan_table", stdout(&o));
}

#[test]
fn markdown_output_matches_snapshot() {
    let t = TestEnv::new();
    let o = t.run(["scan", fixtures().to_str().unwrap(), "--format", "md"]);
    assert_code(&o, 0);
    insta::assert_snapshot!("scan_md", stdout(&o));
}

#[test]
fn json_findings_have_exactly_the_documented_fields() {
    let t = TestEnv::new();
    let v = scan_json(&t, &[]);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["findings", "inventory"]);
    for f in findings(&v) {
        let mut k: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        assert_eq!(
            k,
            [
                "confidence",
                "file",
                "line_end",
                "line_start",
                "locked",
                "notes",
                "path",
                "pattern",
                "reason",
                "risk",
                "template"
            ]
        );
        assert!(!f["reason"].as_str().unwrap().contains('\n'));
    }
}

#[test]
fn every_pattern_is_found_and_every_language_is_parsed() {
    let t = TestEnv::new();
    let v = scan_json(&t, &[]);
    for p in [
        "append",
        "overwrite",
        "read-modify-write",
        "check-then-act",
        "mkdir-lock",
        "mkdir-lock-fallthrough",
        "flock",
        "atomic-rename",
        "exclusive-create",
        "predictable-tmp",
        "sqlite",
        "socket",
    ] {
        assert!(
            findings(&v).iter().any(|f| f["pattern"] == p),
            "no {p} finding"
        );
    }
    for prefix in ["bash/", "js/", "ts/", "python/", "hooks/"] {
        assert!(
            findings(&v)
                .iter()
                .any(|f| f["file"].as_str().unwrap().starts_with(prefix)),
            "nothing found under {prefix}"
        );
    }
}

#[test]
fn flock_wrapped_writes_are_not_high() {
    let t = TestEnv::new();
    let v = scan_json(&t, &[]);
    // ( flock -x 9; jq ... > new; mv new f ) 9>f.lock
    for f in at(&v, "bash/patterns.sh", 27) {
        assert_eq!(f["locked"], true, "{f}");
        assert_eq!(f["risk"], "safe", "{f}");
    }
    // exec 9>f.lock; flock 9; echo >> f
    assert_eq!(one(&v, "bash/patterns.sh", 35, "append")["locked"], true);
    // the unlocked jq + mv is medium (high only in hook code: nothing here runs as a hook)
    assert_eq!(
        one(&v, "bash/patterns.sh", 19, "read-modify-write")["risk"],
        "medium"
    );
    // proper-lockfile in JS, fcntl.flock in a with and FileLock in Python
    assert_eq!(
        one(&v, "js/patterns.js", 37, "read-modify-write")["risk"],
        "safe"
    );
    assert_eq!(
        one(&v, "python/patterns.py", 46, "overwrite")["locked"],
        true
    );
}

#[test]
fn os_replace_from_mkstemp_is_safe_and_str_replace_is_not_a_rename() {
    let t = TestEnv::new();
    let v = scan_json(&t, &[]);
    let r = one(&v, "python/patterns.py", 41, "atomic-rename");
    assert_eq!(r["risk"], "safe");
    // os.replace from a fixed ".tmp" name is not
    assert_eq!(
        one(&v, "python/patterns.py", 54, "atomic-rename")["risk"],
        "medium"
    );
    // Path.replace is a rename
    one(&v, "python/patterns.py", 60, "atomic-rename");
    // name.replace("-", "_") is string manipulation
    for line in 63..=66 {
        assert!(at(&v, "python/patterns.py", line).is_empty(), "line {line}");
    }
}

#[test]
fn js_options_objects_carry_the_mode() {
    let t = TestEnv::new();
    let v = scan_json(&t, &[]);
    assert_eq!(at(&v, "js/patterns.js", 19)[0]["pattern"], "append");
    assert_eq!(
        at(&v, "js/patterns.js", 23)[0]["pattern"],
        "exclusive-create"
    );
    assert_eq!(
        at(&v, "js/patterns.js", 24)[0]["pattern"],
        "exclusive-create"
    );
    assert_eq!(
        one(&v, "js/patterns.js", 30, "read-modify-write")["risk"],
        "medium"
    );
}

#[test]
fn bash_traps_are_handled() {
    let t = TestEnv::new();
    let v = scan_json(&t, &[]);
    // `flock L cat in | sort > out`: sort writes, outside the lock
    assert_eq!(one(&v, "bash/traps.sh", 4, "overwrite")["locked"], false);
    // `flock L echo > f` truncates before the lock; `>>` appends under it
    assert_eq!(one(&v, "bash/traps.sh", 6, "overwrite")["locked"], false);
    assert_eq!(one(&v, "bash/traps.sh", 8, "append")["locked"], true);
    // only the first word after `>` is the target
    let f = one(&v, "bash/traps.sh", 10, "overwrite");
    assert_eq!(f["template"], "$HOME/.agent/first");
    // not writes: >&2, 2>/dev/null, > /dev/null
    for line in [12, 13, 14] {
        assert!(at(&v, "bash/traps.sh", line).is_empty(), "line {line}");
    }
    // heredoc, bash -c, trap and flock -c strings are parsed again
    assert_eq!(
        one(&v, "bash/traps.sh", 18, "overwrite")["template"],
        "/tmp/heredoc-state.json"
    );
    assert_eq!(
        one(&v, "bash/traps.sh", 21, "append")["template"],
        "$HOME/.agent/bash-c.log"
    );
    assert_eq!(
        one(&v, "bash/traps.sh", 22, "append")["template"],
        "$HOME/.agent/trap.log"
    );
    assert_eq!(one(&v, "bash/traps.sh", 24, "overwrite")["locked"], true);
}

#[test]
fn hook_scripts_without_extension_are_found_by_shebang_and_marked() {
    let t = TestEnv::new();
    let v = scan_json(&t, &[]);
    let f = one(&v, "hooks/gate", 5, "read-modify-write");
    assert_eq!(f["risk"], "high");
    assert!(
        f["reason"].as_str().unwrap().contains("runs as a hook"),
        "{f}"
    );
}

#[test]
fn templates_group_writers_across_languages() {
    let t = TestEnv::new();
    let v = scan_json(&t, &[]);
    let inv = v["inventory"].as_array().unwrap();
    let health = inv
        .iter()
        .find(|r| r["template"] == "$HOME/.agent/health.json")
        .expect("health.json resource");
    let files: Vec<&str> = health["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(files.contains(&"bash/patterns.sh"));
    assert!(files.contains(&"js/patterns.js"));
    assert!(files.contains(&"python/patterns.py"));
    assert_eq!(health["risk"], "medium");
    assert_eq!(health["fix"], "concur json");
}

#[test]
fn concur_verbs_are_recognised_as_safe() {
    let t = TestEnv::new();
    let v = scan_json(&t, &[]);
    for line in 96..=100 {
        let fs = at(&v, "bash/patterns.sh", line);
        assert!(!fs.is_empty(), "line {line}");
        assert!(
            fs.iter().all(|f| f["risk"] == "safe"),
            "line {line}: {fs:#?}"
        );
    }
}

#[test]
fn parse_errors_lower_confidence_and_are_not_fatal() {
    let t = TestEnv::new();
    let o = t.run(["scan", fixtures().to_str().unwrap(), "--format", "json"]);
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("1 parse problems in 1 files"),
        "{}",
        stderr(&o)
    );
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(one(&v, "bash/broken.sh", 2, "append")["confidence"], "low");
    assert_eq!(
        one(&v, "bash/patterns.sh", 9, "append")["confidence"],
        "high"
    );
}

#[test]
fn min_risk_filters_findings() {
    let t = TestEnv::new();
    let v = scan_json(&t, &["--min-risk", "high"]);
    assert!(!findings(&v).is_empty());
    assert!(findings(&v).iter().all(|f| f["risk"] == "high"));
}

#[test]
fn a_missing_path_is_a_clear_error() {
    let t = TestEnv::new();
    let o = t.run(["scan", "no-such-dir"]);
    assert_ne!(code(&o), 0);
    let err = stderr(&o);
    assert!(
        err.starts_with("concur: scan: ") && err.contains("no-such-dir"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

/// The plugin fixture (tests/fixtures/scan-plugin): hooks registered in a plugin's
/// `hooks/hooks.json` under `${CLAUDE_PLUGIN_ROOT}`, a module they import, lock helpers in
/// Python and a sourced bash library, idempotent acts, and a test file.
fn plugin_json(t: &TestEnv, extra: &[&str]) -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scan-plugin");
    let mut args = vec![
        "scan".to_string(),
        dir.display().to_string(),
        "--json".into(),
    ];
    args.extend(extra.iter().map(ToString::to_string));
    let o = t.run(&args);
    assert_code(&o, 0);
    serde_json::from_str(stdout(&o).trim()).unwrap()
}

#[test]
fn plugin_hooks_and_the_modules_they_import_are_hook_code() {
    let t = TestEnv::new();
    let v = plugin_json(&t, &[]);
    // lib/store.py is imported by the plugin hook: its unlocked read-modify-write is high
    let f = one(&v, "lib/store.py", 11, "read-modify-write");
    assert_eq!(f["risk"], "high", "{f}");
    assert!(f["reason"].as_str().unwrap().contains("runs as a hook"));
    // a real check-then-act in the hook stays high
    assert_eq!(
        one(&v, "hooks/scripts/save.py", 36, "check-then-act")["risk"],
        "high"
    );
}

#[test]
fn lock_helpers_cover_their_callers_writes() {
    let t = TestEnv::new();
    let v = plugin_json(&t, &[]);
    // Python: `_acquire_lock(f)` wraps fcntl.flock; the write after it is locked
    let f = one(&v, "hooks/scripts/save.py", 23, "overwrite");
    assert_eq!(f["locked"], true, "{f}");
    assert_eq!(f["risk"], "safe", "{f}");
    // `open(p, "r+")` does not truncate: no finding at all there
    assert!(at(&v, "hooks/scripts/save.py", 20).is_empty());
    // bash: staging_lock_acquire from a sourced library takes a mkdir lock
    let f = one(&v, "hooks/scripts/stamp.sh", 11, "read-modify-write");
    assert_eq!(f["risk"], "safe", "{f}");
    // after staging_lock_release the same update is unlocked again
    assert_eq!(
        one(&v, "hooks/scripts/stamp.sh", 14, "read-modify-write")["risk"],
        "high"
    );
}

#[test]
fn idempotent_acts_are_not_check_then_act() {
    let t = TestEnv::new();
    let v = plugin_json(&t, &[]);
    // `[ -d d ] || mkdir -p d`, `[ -f x ] && rm -f x`, `touch`: nothing reported
    for line in [5, 6, 8] {
        assert!(
            at(&v, "hooks/scripts/stamp.sh", line).is_empty(),
            "line {line}"
        );
    }
    // `[ -f x ] || echo '{}' > x`: a constant write, low, no check-then-act
    let f = at(&v, "hooks/scripts/stamp.sh", 7);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["risk"], "low");
    // Python: exists then write_text("{}"), unlink in try/except OSError
    assert_eq!(at(&v, "hooks/scripts/save.py", 30)[0]["risk"], "low");
    assert!(at(&v, "hooks/scripts/save.py", 33).is_empty());
}

#[test]
fn tests_are_left_out_unless_asked_and_exclude_drops_files() {
    let t = TestEnv::new();
    let v = plugin_json(&t, &[]);
    assert!(
        findings(&v)
            .iter()
            .all(|f| f["file"] != "tests/test_store.py")
    );
    let v = plugin_json(&t, &["--include-tests"]);
    assert!(
        findings(&v)
            .iter()
            .any(|f| f["file"] == "tests/test_store.py")
    );
    let v = plugin_json(&t, &["--exclude", "lib"]);
    assert!(findings(&v).iter().all(|f| f["file"] != "lib/store.py"));
    let v = plugin_json(&t, &["--exclude", "hooks/**/*.sh"]);
    assert!(
        findings(&v)
            .iter()
            .all(|f| f["file"] != "hooks/scripts/stamp.sh")
    );
    assert!(findings(&v).iter().any(|f| f["file"] == "lib/store.py"));
}

#[test]
fn one_finding_per_site_worst_first() {
    let t = TestEnv::new();
    let v = plugin_json(&t, &[]);
    let fs = findings(&v);
    let mut sites: Vec<(String, u64)> = fs
        .iter()
        .map(|f| (f["file"].to_string(), f["line_start"].as_u64().unwrap()))
        .collect();
    let n = sites.len();
    sites.sort();
    sites.dedup();
    assert_eq!(sites.len(), n, "one finding per site");
    let rank = |r: &Value| {
        ["safe", "low", "medium", "high"]
            .iter()
            .position(|x| r == x)
    };
    let risks: Vec<_> = fs.iter().map(|f| rank(&f["risk"])).collect();
    assert!(risks.windows(2).all(|w| w[0] >= w[1]), "{risks:?}");
    // the plain overwrite under the read-modify-write is a note, not a second row
    let f = one(&v, "lib/store.py", 11, "read-modify-write");
    assert!(
        f["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("overwrite (high)")
    );
}

#[test]
fn base_prefixed_arithmetic_is_not_a_parse_problem() {
    let t = TestEnv::new();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scan-plugin");
    let o = t.run(["scan", dir.to_str().unwrap()]);
    assert_code(&o, 0);
    assert!(!stderr(&o).contains("parse problem"), "{}", stderr(&o));
}

#[test]
fn a_hook_overwrite_is_high_only_for_a_document_readers_take_whole() {
    let t = TestEnv::new();
    let v = plugin_json(&t, &[]);
    // a timestamp stamp: last writer wins, nothing reads it half-written as a document
    assert_eq!(
        one(&v, "hooks/scripts/stamp.sh", 15, "overwrite")["risk"],
        "medium"
    );
    // a JSON document other sessions read whole
    assert_eq!(
        one(&v, "hooks/scripts/stamp.sh", 16, "overwrite")["risk"],
        "high"
    );
}

#[test]
fn a_pid_file_lazy_start_in_a_hook_is_high() {
    let t = TestEnv::new();
    let v = plugin_json(&t, &[]);
    // `kill -0 $(cat pid) || { daemon & echo $! > pid; }` without a lock
    let f = one(&v, "hooks/scripts/stamp.sh", 20, "socket");
    assert_eq!(f["risk"], "high", "{f}");
    assert!(f["reason"].as_str().unwrap().contains("lazy start"), "{f}");
}

#[test]
fn a_bad_exclude_glob_is_a_clear_error() {
    let t = TestEnv::new();
    let o = t.run(["scan", fixtures().to_str().unwrap(), "--exclude", "[abc"]);
    assert_code(&o, 4);
    assert_eq!(
        stderr(&o).trim(),
        "concur: scan: invalid exclude glob ([abc): unbalanced ["
    );
    assert!(stdout(&o).is_empty());
}
