//! `concur json`: the seed's `fire_count` update from many processes at once loses nothing.

use crate::shell::sh;
use crate::util::*;

#[test]
fn eight_processes_incrementing_a_counter_lose_no_update() {
    let t = TestEnv::new();
    let (writers, per) = (8, 20);
    let mut b = Barrier::new();
    for _ in 0..writers {
        let script = format!(
            r#"i=0; while [ $i -lt {per} ]; do i=$((i+1)); "$CONCUR" json health.json '.fire_count += 1' --init '{{"fire_count":0}}' >/dev/null || exit 9; done"#
        );
        b.spawn(&sh(&t, &script));
    }
    for o in b.run_all() {
        assert_code(&o, 0);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&content(&t.path("health.json")).unwrap()).unwrap();
    assert_eq!(v["fire_count"], writers * per);
}

#[test]
fn prints_the_new_value_and_binds_args() {
    let t = TestEnv::new();
    let o = t.run([
        "json",
        "s.json",
        ".who = $w | .lim = $l",
        "--init",
        "{}",
        "--arg",
        "w",
        "alice",
        "--argjson",
        "l",
        "{\"max\":4}",
    ]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o).trim(), r#"{"who":"alice","lim":{"max":4}}"#);
}

#[test]
fn failing_filters_leave_the_file_byte_for_byte() {
    let t = TestEnv::new();
    let f = t.path("s.json");
    let original = b"{ \"a\": 1 }\n".to_vec();
    std::fs::File::create(&f).unwrap();
    concur::replace::ReplaceOptions::new()
        .replace(&f, &original)
        .unwrap();
    for filter in [".a +", "error(\"no\")", ".a, .a", "empty", "undefined_fn"] {
        let o = t.run(["json", "s.json", filter]);
        assert_code(&o, 4);
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert!(stderr(&o).starts_with("concur: json: "));
        assert_eq!(content(&f).unwrap(), original, "{filter}");
    }
    // A missing file without --init is refused and not created.
    assert_code(&t.run(["json", "missing.json", "."]), 4);
    assert!(content(&t.path("missing.json")).is_none());
}

#[test]
fn deep_documents_and_endless_recursion_exit_4_and_change_nothing() {
    let t = TestEnv::new();
    let f = t.path("s.json");
    let original = b"{\n  \"a\": 1\n}\n".to_vec();
    concur::replace::ReplaceOptions::new()
        .replace(&f, &original)
        .unwrap();
    for filter in [
        "def f: f+1; f",
        "def f(x): [f(x)]; f(.)",
        "reduce range(100000) as $i (0; [.])",
    ] {
        let o = t.run(["json", "s.json", filter]);
        assert_code(&o, 4);
        assert!(stderr(&o).contains("stack exhausted"), "{}", stderr(&o));
        assert_eq!(content(&f).unwrap(), original, "{filter}");
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let d = t.path("deep.json");
    concur::replace::ReplaceOptions::new()
        .replace(&d, deep.as_bytes())
        .unwrap();
    let o = t.run(["json", "deep.json", "."]);
    assert_code(&o, 4);
    assert!(stderr(&o).contains("nests 10000 deep"), "{}", stderr(&o));
    assert_code(&t.run(["json", "--init", &deep, "new.json", "."]), 4);
    assert!(content(&t.path("new.json")).is_none());
}

#[test]
fn invalid_utf8_inside_a_json_string_is_refused() {
    let t = TestEnv::new();
    let o = t.run_stdin(["append", "log.jsonl", "-"], b"{\"a\":\"\xff\xfe\"}");
    assert_code(&o, 4);
    assert!(stderr(&o).contains("not UTF-8"), "{}", stderr(&o));
    assert!(content(&t.path("log.jsonl")).is_none());
    let f = t.path("bad.json");
    concur::replace::ReplaceOptions::new()
        .replace(&f, b"{\"a\":\"\xc3\x28\"}")
        .unwrap();
    assert_code(&t.run(["json", "bad.json", ".a"]), 4);
}
