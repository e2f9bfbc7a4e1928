//! `write --fence` and `json --fence` on local files without a backend: the file's record of
//! accepted tokens refuses a lower token (exit 3, nothing written), accepts an equal or higher
//! one, and bad `--fence` syntax is a usage error that touches nothing.

use crate::util::{Barrier, TestEnv, assert_code, content, stderr, stdout};

#[test]
fn write_fence_refuses_a_lower_token_and_accepts_equal_or_higher() {
    let t = TestEnv::new();
    let f = t.path("state.txt");
    let w = |fence: &str, body: &str| t.run(["write", "--fence", fence, "state.txt", body]);
    assert_code(&w("deploy:5", "five"), 0);
    let o = w("deploy:4", "four");
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("token 4") && err.contains("below 5") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(content(&f).unwrap(), b"five", "the stale write got through");
    let tmp: Vec<_> = std::fs::read_dir(t.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tmp"))
        .collect();
    assert!(tmp.is_empty(), "refused write left {tmp:?}");
    assert_code(&w("deploy:5", "five again"), 0);
    assert_code(&w("deploy:7", "seven"), 0);
    assert_code(&w("deploy:6", "six"), 3);
    assert_code(&w("other:1", "other lock"), 0);
    assert_eq!(content(&f).unwrap(), b"other lock");
    let rec: serde_json::Value =
        serde_json::from_slice(&content(&t.path("state.txt.fence")).unwrap()).unwrap();
    assert_eq!(rec, serde_json::json!({"deploy": 7, "other": 1}));
    let o = t.run(["--json", "write", "--fence", "deploy:7", "state.txt", "x"]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["fence"],
        serde_json::json!({"lock": "deploy", "token": 7})
    );
}

#[test]
fn json_fence_refuses_a_lower_token_even_for_a_read() {
    let t = TestEnv::new();
    let f = t.path("doc.json");
    let j = |fence: &str, filter: &str| {
        t.run([
            "json",
            "--fence",
            fence,
            "doc.json",
            filter,
            "--init",
            r#"{"n":0}"#,
        ])
    };
    assert_code(&j("L:3", ".n += 1"), 0);
    assert_code(&j("L:3", ".n += 1"), 0);
    let before = content(&f).unwrap();
    let o = j("L:2", ".n += 100");
    assert_code(&o, 3);
    assert!(stderr(&o).contains("token 2"), "{}", stderr(&o));
    assert_eq!(content(&f).unwrap(), before, "the stale update got through");
    assert_code(&j("L:2", "."), 3);
    let o = j("L:4", ".n += 1");
    assert_code(&o, 0);
    assert_eq!(stdout(&o).trim(), r#"{"n":3}"#);
}

#[test]
fn bad_fence_syntax_is_a_usage_error_and_writes_nothing() {
    let t = TestEnv::new();
    for bad in [
        "",
        "deploy",
        "deploy:",
        ":5",
        "deploy:0",
        "deploy:-1",
        "deploy:x",
        "a/b:5",
    ] {
        let o = t.run(["write", "--fence", bad, "f.txt", "x"]);
        assert_code(&o, 2);
        assert!(stderr(&o).contains("fence"), "{bad:?}: {}", stderr(&o));
        let o = t.run(["json", "--fence", bad, "f.json", ".", "--init", "{}"]);
        assert_code(&o, 2);
    }
    let left: Vec<_> = std::fs::read_dir(t.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "something was written: {left:?}");
}

#[test]
fn racing_fenced_writers_end_with_the_highest_token() {
    // Eight writers with tokens 1..=8 at once: whatever the order, token 8 is accepted, every
    // write after it is refused, so the file ends with 8's content and the record at 8.
    let t = TestEnv::new();
    let mut b = Barrier::new();
    for tok in 1..=8 {
        b.spawn(&t.cmd([
            "write",
            "--fence",
            &format!("L:{tok}"),
            "f.txt",
            &format!("from {tok}"),
        ]));
    }
    let outs = b.run_all();
    for (i, o) in outs.iter().enumerate() {
        let want: &[i32] = if i == 7 { &[0] } else { &[0, 3] };
        assert!(
            want.contains(&o.status.code().unwrap_or(-1)),
            "writer {}: {o:?}",
            i + 1
        );
    }
    assert_eq!(content(&t.path("f.txt")).unwrap(), b"from 8");
    let rec: serde_json::Value =
        serde_json::from_slice(&content(&t.path("f.txt.fence")).unwrap()).unwrap();
    assert_eq!(rec, serde_json::json!({"L": 8}));
}

/// README's fenced write on the default (local) backend: `lock --name` hands its command a
/// token that grows with every holder, so a holder's token written down and used after the next
/// holder wrote is refused.
#[test]
fn local_named_lock_gives_its_command_a_growing_fence() {
    let t = TestEnv::new();
    let bin = crate::util::bin();
    let cmd = format!(
        "echo \"$CONCUR_FENCE\" >> tokens; '{}' write --fence \"$CONCUR_FENCE\" VERSION \"$CONCUR_FENCE\"",
        bin.display()
    );
    for _ in 0..3 {
        assert_code(&t.run(["lock", "--name", "deploy", "-c", &cmd]), 0);
    }
    let tokens = String::from_utf8(content(&t.path("tokens")).unwrap()).unwrap();
    assert_eq!(tokens, "deploy:1\ndeploy:2\ndeploy:3\n");
    assert_eq!(content(&t.path("VERSION")).unwrap(), b"deploy:3");
    let late = t.run(["write", "--fence", "deploy:2", "VERSION", "late"]);
    assert_code(&late, 3);
    assert_eq!(content(&t.path("VERSION")).unwrap(), b"deploy:3");
}
