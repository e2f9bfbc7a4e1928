//! Session-scoped markers and pointers through the binary, with the legacy fallback.

use std::io::Write as _;

use crate::util::*;

fn legacy_config(t: &TestEnv, warn: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(&t.home).unwrap();
    let cfg = t.home.join("concur.toml");
    let legacy = t.path("mehanik-cleared-{id}");
    std::fs::File::create(&cfg).unwrap();
    let text = format!(
        "[legacy.mehanik-cleared]\npath = \"{}\"\nwarn_flag = \"ISOLATION_MEHANIK_LEGACY_WARN\"\n{warn}",
        legacy.display()
    );
    let f = std::fs::OpenOptions::new().write(true).open(&cfg).unwrap();
    std::io::Write::write_all(&mut &f, text.as_bytes()).unwrap();
    cfg
}

#[test]
fn legacy_marker_is_found_and_warns_only_with_the_flag() {
    let t = TestEnv::new();
    legacy_config(&t, "");
    std::fs::File::create(t.path("mehanik-cleared-S1")).unwrap();

    let quiet = t.run(["marker", "check", "mehanik-cleared", "--session", "S1"]);
    assert_code(&quiet, 0);
    assert!(stderr(&quiet).is_empty(), "{}", stderr(&quiet));

    let loud = t
        .cmd(["marker", "check", "mehanik-cleared", "--session", "S1"])
        .env("ISOLATION_MEHANIK_LEGACY_WARN", "1")
        .output()
        .unwrap();
    assert_code(&loud, 0);
    let want = format!(
        "DEPRECATION WARN: mehanik-cleared: legacy path {} used; move to concur marker",
        t.path("mehanik-cleared-S1").display()
    );
    assert_eq!(stderr(&loud).trim(), want);

    // Another session's legacy file does not count for S2.
    assert_code(
        &t.run(["marker", "check", "mehanik-cleared", "--session", "S2"]),
        3,
    );

    // migrate moves it: found in the session place, no warning, legacy file gone.
    let m = t.run(["marker", "migrate", "mehanik-cleared"]);
    assert_code(&m, 0);
    assert!(stdout(&m).contains("session S1"), "{}", stdout(&m));
    assert!(!t.path("mehanik-cleared-S1").exists());
    let after = t
        .cmd([
            "marker",
            "check",
            "mehanik-cleared",
            "--session",
            "S1",
            "--json",
        ])
        .env("ISOLATION_MEHANIK_LEGACY_WARN", "1")
        .output()
        .unwrap();
    assert_code(&after, 0);
    assert!(stderr(&after).is_empty());
    let v: serde_json::Value = serde_json::from_str(stdout(&after).trim()).unwrap();
    assert_eq!(v["legacy"], false);
}

#[test]
fn warn_true_in_config_warns_without_the_env_flag() {
    let t = TestEnv::new();
    legacy_config(&t, "warn = true\n");
    std::fs::File::create(t.path("mehanik-cleared-S1")).unwrap();
    let o = t.run(["marker", "check", "mehanik-cleared", "--session", "S1"]);
    assert_code(&o, 0);
    assert!(
        stderr(&o).starts_with("DEPRECATION WARN: mehanik-cleared"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn markers_are_per_session_and_bad_input_writes_nothing() {
    let t = TestEnv::new();
    assert_code(
        &t.run([
            "marker",
            "set",
            "cleared",
            "--session",
            "A",
            "--data",
            "{\"by\":\"ci\"}",
        ]),
        0,
    );
    let o = t.run(["marker", "check", "cleared", "--session", "A"]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o).trim(), "{\"by\":\"ci\"}");
    assert_code(&t.run(["marker", "check", "cleared", "--session", "B"]), 3);
    assert_code(
        &t.run(["marker", "set", "x", "--session", "A", "--data", "{nope"]),
        4,
    );
    assert_code(&t.run(["marker", "check", "x", "--session", "A"]), 3);
    assert_code(&t.run(["marker", "set", "../x", "--session", "A"]), 4);
    assert_code(&t.run(["marker", "clear", "cleared", "--session", "A"]), 0);
    assert_code(&t.run(["marker", "check", "cleared", "--session", "A"]), 3);
}

#[test]
fn pointers_never_leak_across_sessions_and_list_skips_dead_ones() {
    let t = TestEnv::new();
    let mut b = Barrier::new();
    for i in 0..8 {
        let s = format!("s{i}");
        let v = format!("task-{i}");
        b.spawn(&t.cmd(["pointer", "set", "active-task", &v, "--session", &s]));
    }
    for o in b.run_all() {
        assert_code(&o, 0);
    }
    let mut b = Barrier::new();
    for i in 0..8 {
        let s = format!("s{i}");
        b.spawn(&t.cmd(["pointer", "get", "active-task", "--session", &s]));
    }
    for (i, o) in b.run_all().iter().enumerate() {
        assert_code(o, 0);
        assert_eq!(stdout(o).trim(), format!("task-{i}"));
    }
    // A dead registered session's value is not listed.
    let mut a = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    assert_code(
        &t.run([
            "session",
            "start",
            "--session",
            "s0",
            "--pid",
            &a.id().to_string(),
        ]),
        0,
    );
    a.kill().unwrap();
    a.wait().unwrap();
    let o = t.run(["pointer", "list", "active-task", "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let vals = v["values"].as_array().unwrap();
    assert_eq!(vals.len(), 7);
    assert!(vals.iter().all(|x| x["session"] != "s0"));
}

#[test]
fn a_pointer_value_cannot_forge_a_row_of_pointer_list() {
    let t = TestEnv::new();
    let forged = "T-1\tlive\nadmin\tT-9";
    let o = t.run(["pointer", "set", "active-task", forged, "--session", "s1"]);
    assert_code(&o, 4);
    assert!(stderr(&o).contains("control character"), "{}", stderr(&o));
    assert_code(
        &t.run(["pointer", "set", "active-task", "T-1", "--session", "s1"]),
        0,
    );
    // A value forged on disk is printed escaped: still one row of three fields.
    let file = t.home.join("pointers/active-task/s1");
    std::fs::remove_file(&file).unwrap();
    std::fs::File::create(&file)
        .unwrap()
        .write_all(forged.as_bytes())
        .unwrap();
    let o = t.run(["pointer", "list", "active-task"]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(out.trim_end().split('\t').count(), 3, "{out}");
    assert!(out.contains("T-1\\tlive\\nadmin\\tT-9"), "{out}");
    let o = t.run(["pointer", "get", "active-task", "--session", "s1"]);
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));
}
