//! What a new user runs into first: empty input to `write`, values that start with `-`, a
//! missing directory, a relative `CONCUR_HOME`, usage errors under `--json`.

use crate::util::{TestEnv, assert_code, content, stderr, stdout};

#[test]
fn write_refuses_empty_content_unless_allow_empty() {
    let t = TestEnv::new();
    let f = t.path("notes.md");
    assert_code(&t.run(["write", "notes.md", "keep me\n"]), 0);
    // `edit | concur write notes.md -` where edit failed: empty stdin.
    let o = t.run_stdin(["write", "notes.md", "-"], b"");
    assert_code(&o, 4);
    let err = stderr(&o);
    assert!(
        err.starts_with("concur: write: refusing empty content (notes.md)")
            && err.contains("--allow-empty")
            && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(content(&f).unwrap(), b"keep me\n");
    // The same with an etag that still matches: still refused.
    let etag = stdout(&t.run(["read", "--etag", "notes.md"]));
    let o = t.run_stdin(["write", "--if-match", etag.trim(), "notes.md"], b"");
    assert_code(&o, 4);
    assert_code(&t.run(["write", "notes.md", ""]), 4);
    assert_eq!(content(&f).unwrap(), b"keep me\n");
    assert_code(
        &t.run_stdin(["write", "--allow-empty", "notes.md", "-"], b""),
        0,
    );
    assert_eq!(content(&f).unwrap(), b"");
}

#[test]
fn values_starting_with_a_hyphen_are_values_not_options() {
    let t = TestEnv::new();
    assert_code(&t.run(["append", "--raw", "daily.md", "- entry"]), 0);
    assert_code(
        &t.run(["append", "--raw", "--header", "- header", "d2.md", "-1"]),
        0,
    );
    assert_code(&t.run(["append", "n.jsonl", "-5", "--no-fsync"]), 0);
    assert_eq!(content(&t.path("daily.md")).unwrap(), b"- entry\n");
    assert_eq!(content(&t.path("d2.md")).unwrap(), b"- header\n-1\n");
    assert_eq!(content(&t.path("n.jsonl")).unwrap(), b"-5\n");
    assert_code(&t.run(["write", "w.txt", "-x"]), 0);
    assert_eq!(content(&t.path("w.txt")).unwrap(), b"-x");
    let o = t.run([
        "json",
        "j.json",
        ".a = $a | .b = $b",
        "--arg",
        "a",
        "-1",
        "--argjson",
        "b",
        "-2",
        "--init",
        "{}",
    ]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o).trim(), r#"{"a":"-1","b":-2}"#);
    let o = t
        .cmd(["pointer", "set", "p", "-3"])
        .env("CONCUR_SESSION", "s1")
        .output();
    assert_code(&o.unwrap(), 0);
    // `-` alone is still stdin, and options are still options.
    let o = t.run_stdin(["append", "--raw", "s.md", "-"], b"from stdin\n");
    assert_code(&o, 0);
    assert_eq!(content(&t.path("s.md")).unwrap(), b"from stdin\n");
}

#[test]
fn a_missing_directory_is_named() {
    let t = TestEnv::new();
    for (args, dir) in [
        (vec!["append", "--raw", "logs/today.md", "x"], "logs"),
        (vec!["write", "nodir/x.txt", "x"], "nodir"),
        (vec!["lock", "nodir/x.txt.lock", "true"], "nodir"),
        (vec!["json", "nodir/a/b.json", ".", "--init", "{}"], "nodir"),
    ] {
        let o = t.run(&args);
        let err = stderr(&o);
        assert!(
            err.contains(&format!("directory {dir} does not exist")) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
        assert_ne!(o.status.code(), Some(0));
    }
    assert!(!t.path("nodir").exists() && !t.path("logs").exists());
}

#[test]
fn a_relative_concur_home_is_refused() {
    let t = TestEnv::new();
    for args in [vec!["home"], vec!["lock", "--name", "x", "true"]] {
        let o = t
            .cmd(&args)
            .env("CONCUR_HOME", "rel/home")
            .output()
            .unwrap();
        assert_code(&o, 4);
        let err = stderr(&o);
        assert!(
            err.contains("CONCUR_HOME must be an absolute path") && err.contains("rel/home"),
            "{err}"
        );
    }
    assert!(!t.path("rel").exists(), "a relative home was created");
}

#[test]
fn json_usage_errors_are_json_on_stdout() {
    let t = TestEnv::new();
    for args in [
        vec!["--json", "append"],
        vec!["append", "--json", "--bogus", "f"],
        vec!["--json", "no-such-verb"],
    ] {
        let o = t.run(&args);
        assert_code(&o, 2);
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim())
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {:?}", stdout(&o)));
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["kind"], "usage");
        assert_eq!(v["error"]["exit"], 2);
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(!msg.is_empty() && !msg.contains('\n'), "{msg}");
        assert!(stderr(&o).contains("Usage:"), "clap's text stays on stderr");
    }
    // Without --json: nothing on stdout. Help is not an error.
    assert!(t.run(["append"]).stdout.is_empty());
    let o = t.run(["--json", "--help"]);
    assert_code(&o, 0);
    assert!(stdout(&o).starts_with("Collision-free"), "{}", stdout(&o));
}

#[test]
fn json_path_updates_create_what_is_missing_as_jq_does() {
    let t = TestEnv::new();
    let run = |file: &str, filter: &str| {
        let o = t
            .cmd(["json", file, filter, "--init", "{}", "--arg", "id", "s1"])
            .output()
            .unwrap();
        assert_code(&o, 0);
        stdout(&o).trim().to_string()
    };
    assert_eq!(run("a.json", ".a.b.c = 1"), r#"{"a":{"b":{"c":1}}}"#);
    assert_eq!(
        run("b.json", r#"setpath(["a","b"]; 1)"#),
        r#"{"a":{"b":1}}"#
    );
    assert_eq!(run("c.json", ".x[2] = 1"), r#"{"x":[null,null,1]}"#);
    assert_eq!(
        run("d.json", ".sessions[$id] = {since: 5}"),
        r#"{"sessions":{"s1":{"since":5}}}"#
    );
    assert_eq!(
        run("d.json", ".sessions[$id].n += 1"),
        r#"{"sessions":{"s1":{"since":5,"n":1}}}"#
    );
    assert_eq!(
        run("e.json", "$ENV.CONCUR_SESSION // \"unset\""),
        r#""unset""#
    );
    assert_eq!(
        content(&t.path("a.json")).unwrap(),
        b"{\n  \"a\": {\n    \"b\": {\n      \"c\": 1\n    }\n  }\n}\n"
    );
}

/// docs/diagnose.md names `lock` and `slot`: they are aliases on the local backend too.
#[test]
fn diagnose_target_aliases_work_locally() {
    let t = TestEnv::new();
    let o = t.run([
        "diagnose",
        "--targets",
        "lock,slot",
        "--mode",
        "protected",
        "--rounds",
        "1",
    ]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("json-counter  concur") && out.contains("semaphore     concur"),
        "{out}"
    );
    assert_code(&t.run(["diagnose", "--targets", "nope"]), 2);
}

#[test]
fn one_winner_is_singular_and_a_missing_scan_root_reads_well() {
    let t = TestEnv::new();
    let o = t.run([
        "diagnose",
        "--rounds",
        "1",
        "--writers",
        "1",
        "--setup",
        "echo t > token",
        "--cmd",
        r#"cd "$CONCUR_STATE_DIR" && mv token taken && echo 0 >> won"#,
        "--check",
        "winners:won",
    ]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("  1 winner  ") && !out.contains("1 winners"),
        "{out}"
    );
    assert!(
        out.contains("1 run exits 0") && out.contains("it exited 0") && !out.contains("1 runs"),
        "{out}"
    );
    let o = t.run(["scan", "nonexistent"]);
    let err = stderr(&o);
    assert_eq!(
        err.trim(),
        "concur: scan: cannot scan (nonexistent): No such file or directory"
    );
}

#[test]
fn top_level_help_of_every_verb_group_has_an_example() {
    let t = TestEnv::new();
    for verb in ["home", "session", "marker", "pointer", "ledger", "lease"] {
        let o = t.run([verb, "--help"]);
        assert_code(&o, 0);
        let help = stdout(&o);
        assert!(
            help.contains("Example"),
            "concur {verb} --help has no example:\n{help}"
        );
        assert!(help.contains(&format!("concur {verb}")), "{help}");
    }
}

#[test]
fn reservations_says_when_none_are_held() {
    let t = TestEnv::new();
    let o = t.run(["reservations"]);
    assert_code(&o, 0);
    assert!(o.stdout.is_empty());
    assert_eq!(stderr(&o).trim(), "no reservations held");
    let o = t.run(["--json", "reservations"]);
    assert_eq!(stdout(&o).trim(), r#"{"ok":true,"reservations":[]}"#);
}

#[test]
fn broker_append_names_the_bad_stdin_line() {
    let t = TestEnv::new();
    let o = t.run_stdin(
        ["broker", "append", "log.jsonl", "-"],
        b"{\"a\":1}\n{\"b\":2}\n{x\n",
    );
    assert_code(&o, 4);
    let err = stderr(&o);
    assert!(
        err.contains("stdin line 3: invalid JSON") && err.contains("at column 2"),
        "{err}"
    );
    assert!(!t.path("log.jsonl").exists(), "a line was written");
}

#[test]
fn hook_install_on_invalid_json_names_the_users_file_and_leaves_nothing() {
    let t = TestEnv::new();
    let settings = t.path("settings.json");
    assert_code(&t.run(["write", "settings.json", "{bad"]), 0);
    let before: Vec<_> = std::fs::read_dir(t.dir.path()).unwrap().collect();
    let o = t.run([
        "hook",
        "install",
        "--agent",
        "claude",
        "--settings",
        settings.to_str().unwrap(),
    ]);
    assert_code(&o, 4);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{} is not valid JSON", settings.display())),
        "{err}"
    );
    assert_eq!(content(&settings).unwrap(), b"{bad");
    assert!(!t.path("settings.json.bak").exists());
    let after: Vec<_> = std::fs::read_dir(t.dir.path()).unwrap().collect();
    assert_eq!(
        before.len(),
        after.len(),
        "install left files beside the settings"
    );
}
