//! Hostile hook payloads (issue 13, items 4 and 5), through the real binary: `[reserve] auto`
//! claims only literal files inside the checkout, and every hook answer comes for any input
//! (long paths, many backslashes, huge relative cwds, backtracking globs, oversized payloads)
//! instead of crashing or hanging, which agents would take as "allow".

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::reserve::{denied, file_payload, held, put, repo_env, run_as};
use crate::util::*;

/// A Claude `Write` payload with `cwd` and `file` exactly as given (relative ones too).
fn write_payload(who: &str, cwd: &str, file: &str) -> Value {
    json!({"session_id": who, "transcript_path": "/t", "cwd": cwd,
        "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Write",
        "tool_input": {"file_path": file, "content": "x"}, "tool_use_id": "toolu_01"})
}

/// The most a hook may take here before the test calls it hung (a hang guard, not a timing
/// assertion: the answers measured in docs/RELIABILITY.md take milliseconds).
const HANG: Duration = Duration::from_secs(60);

/// `concur hook AGENT` with `input` on stdin; a write error (the hook answered without reading
/// everything) is not a failure. Killed and reported if it does not answer within [`HANG`].
pub(crate) fn hook_raw(t: &TestEnv, agent: &str, input: Vec<u8>) -> Output {
    hook_in(t.cmd(["hook", agent]), input)
}

pub(crate) fn hook_in(mut c: Command, input: Vec<u8>) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn concur");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > HANG {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("the hook hung (killed after {HANG:?}): {o:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = writer.join();
    child.wait_with_output().unwrap()
}

fn hook_json(t: &TestEnv, p: &Value) -> Output {
    hook_raw(t, "claude", p.to_string().into_bytes())
}

// ---- item 4: auto-claims are literal files inside the checkout ----

#[test]
fn auto_reserve_never_claims_a_glob_a_directory_or_a_path_outside_the_checkout() {
    let (t, repo) = repo_env();
    put(t.home.join("concur.toml"), "[reserve]\nauto = true\n");
    let r = repo.to_str().unwrap();
    let outside = t.path("elsewhere/notes.txt");
    let cases: Vec<(String, String)> = vec![
        (r.into(), "/".into()),
        (r.into(), "/**".into()),
        (r.into(), "../../..".into()),
        (r.into(), ".".into()),
        (r.into(), "src".into()),
        (r.into(), format!("{r}/src/")),
        (r.into(), outside.to_str().unwrap().into()),
        (r.into(), "/etc/hostname".into()),
        // A relative cwd: nothing to anchor a claim to.
        ("repo".into(), format!("{r}/src/lib.rs")),
        ("some/where".into(), "/etc/passwd".into()),
    ];
    for (cwd, file) in &cases {
        let o = hook_json(&t, &write_payload("grabber", cwd, file));
        assert!(
            code(&o) == 0 || code(&o) == 2,
            "{cwd} {file}: {}",
            stderr(&o)
        );
        assert_eq!(held(&t), [], "cwd {cwd:?}, file_path {file:?} auto-claimed");
    }
    // Nothing the first session did blocks another session anywhere.
    for file in [
        repo.join("src/lib.rs"),
        repo.join("README.md"),
        outside.clone(),
        "/etc/x".into(),
    ] {
        let o = hook_json(&t, &file_payload("claude", "other", &repo, &file));
        assert_eq!(denied("claude", &o), None, "{}", file.display());
    }
}

#[test]
fn auto_reserve_claims_a_file_named_with_wildcards_literally() {
    let (t, repo) = repo_env();
    put(t.home.join("concur.toml"), "[reserve]\nauto = true\n");
    let r = repo.to_str().unwrap();
    for name in ["src/a*b.rs", "src/q?.rs", "src/[x].rs", "**"] {
        let o = hook_json(&t, &write_payload("lit", r, &format!("{r}/{name}")));
        assert_eq!(denied("claude", &o), None, "{name}");
    }
    let mut paths: Vec<String> = held(&t).into_iter().map(|(_, p, _)| p).collect();
    paths.sort();
    assert_eq!(
        paths,
        [r"\*\*", r"src/[x].rs", r"src/a\*b.rs", r"src/q\?.rs"]
    );
    // Files the wildcards would have matched are free for another session...
    for name in [
        "src/axb.rs",
        "src/ab.rs",
        "src/qz.rs",
        "src/x.rs",
        "src/lib.rs",
    ] {
        let o = hook_json(&t, &write_payload("other", r, &format!("{r}/{name}")));
        assert_eq!(denied("claude", &o), None, "{name}");
    }
    // ...and the literal files themselves are not.
    for name in ["src/a*b.rs", "src/q?.rs", "**"] {
        let o = hook_json(&t, &write_payload("third", r, &format!("{r}/{name}")));
        assert!(denied("claude", &o).is_some(), "{name}");
    }
}

// ---- item 5: bounded answers for hostile inputs ----

/// Asserts a deny whose reason contains `why`.
#[track_caller]
fn assert_denied_because(o: &Output, why: &str) {
    let reason = denied("claude", o).unwrap_or_else(|| panic!("allowed: {o:?}"));
    assert!(reason.contains(why), "reason {reason:?} lacks {why:?}");
}

#[test]
fn paths_longer_than_path_max_are_denied_with_a_reason() {
    let (t, repo) = repo_env();
    // A reservation exists, so the hook consults the store (the slow path of the report).
    assert_code(&run_as(&t, "holder", &repo, &["reserve", "src/*.rs"]), 0);
    let r = repo.to_str().unwrap();
    let long_dirs = "a/".repeat(100_000);
    let backslashes = "\\".repeat(100_001);
    let star_path = format!("{r}/src/{}", "x*".repeat(40_000));
    for file in [
        format!("{r}/{long_dirs}f"),
        format!("{r}/{backslashes}"),
        long_dirs.clone(),
        star_path,
    ] {
        let o = hook_json(&t, &write_payload("editor", r, &file));
        assert_denied_because(&o, "PATH_MAX");
    }
    // A 200 KB relative cwd.
    let cwd = "d/".repeat(100_000);
    let o = hook_json(&t, &write_payload("editor", &cwd, "f.rs"));
    assert_denied_because(&o, "cwd");
    // The same through the guard alone (no reservation consulted): still denied.
    let t2 = TestEnv::new();
    let o = hook_json(&t2, &write_payload("editor", "/", &format!("/{long_dirs}")));
    assert_denied_because(&o, "PATH_MAX");
    // A path just under the limit is answered normally.
    let ok = format!("{r}/src/{}/x.txt", "b/".repeat(1500));
    assert!(ok.len() < 4096);
    let o = hook_json(&t, &write_payload("editor", r, &ok));
    assert_eq!(denied("claude", &o), None);
}

#[test]
fn long_wildcard_reservations_against_long_paths_answer_correctly() {
    let (t, repo) = repo_env();
    // One long segment with a wildcard every other character, and a deep glob: both under
    // PATH_MAX, both the shape that made the old overlap test allocate quadratically.
    let seg = format!("{}z", "a*".repeat(1000));
    let deep = format!("{}**/*q", "*/".repeat(900));
    for g in [format!("src/{seg}"), format!("src/{deep}")] {
        assert_code(&run_as(&t, "holder", &repo, &["reserve", &g]), 0);
    }
    let r = repo.to_str().unwrap();
    let hit = format!("{r}/src/{}z", "ab".repeat(1000));
    let o = hook_json(&t, &write_payload("editor", r, &hit));
    assert!(denied("claude", &o).is_some());
    let miss = format!("{r}/src/{}y", "ab".repeat(1000));
    let o = hook_json(&t, &write_payload("editor", r, &miss));
    assert_eq!(denied("claude", &o), None);
    let deep_hit = format!("{r}/src/{}q", "c/".repeat(1500));
    let o = hook_json(&t, &write_payload("editor", r, &deep_hit));
    assert!(denied("claude", &o).is_some());
    // A reservation over PATH_MAX is refused by `concur reserve` itself.
    let o = run_as(&t, "holder", &repo, &["reserve", &"x*/".repeat(3000)]);
    assert_code(&o, 4);
    assert!(stderr(&o).contains("PATH_MAX"), "{}", stderr(&o));
}

#[test]
fn a_backtracking_guard_glob_answers_at_once() {
    let t = TestEnv::new();
    assert_code(&t.run(["home"]), 0);
    let dir = t.path("g");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    put(
        t.home.join("concur.toml"),
        format!("[guard]\nprotect = [\"{d}/***************x\", \"{d}/**/**/**/**/**/**/**/y\"]\n"),
    );
    let long = format!("{d}/{}", "a".repeat(250));
    let o = hook_json(&t, &write_payload("s", d, &long));
    assert_eq!(denied("claude", &o), None);
    let o = hook_json(&t, &write_payload("s", d, &format!("{long}x")));
    assert!(denied("claude", &o).is_some());
    let deep = format!("{d}/{}", "a/".repeat(1900));
    let o = hook_json(&t, &write_payload("s", d, &format!("{deep}z")));
    assert_eq!(denied("claude", &o), None);
    let o = hook_json(&t, &write_payload("s", d, &format!("{deep}y")));
    assert!(denied("claude", &o).is_some());
}

#[test]
fn oversized_payloads_are_denied_at_once_and_a_large_one_is_answered() {
    let t = TestEnv::new();
    let dir = t.path("w");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("big.txt");
    let mut p = write_payload("s", dir.to_str().unwrap(), file.to_str().unwrap());
    p["tool_input"]["content"] = Value::String("x".repeat(1_000_000));
    let o = hook_json(&t, &p);
    assert_eq!(denied("claude", &o), None, "{}", stderr(&o));
    for size in [(1 << 20) + 1, 64 << 20] {
        let mut input = p.to_string().into_bytes();
        input.resize(size, b' ');
        let o = hook_raw(&t, "claude", input);
        assert_code(&o, 2);
        assert!(stderr(&o).contains("larger than"), "{}", stderr(&o));
    }
}

/// Every dialect answers each hostile payload with a deny or an allow, never a crash.
#[test]
fn every_dialect_answers_hostile_paths() {
    let t = TestEnv::new();
    let long = "/".to_owned() + &"a/".repeat(100_000);
    for agent in ["claude", "codex", "gemini", "cursor"] {
        let p = match agent {
            "gemini" => json!({"session_id": "s", "cwd": "/", "hook_event_name": "BeforeTool",
                "tool_name": "write_file", "tool_input": {"file_path": long}}),
            "cursor" => json!({"conversation_id": "s", "workspace_roots": ["/"],
                "hook_event_name": "preToolUse", "tool_name": "Write",
                "tool_input": {"file_path": long}}),
            "codex" => json!({"session_id": "s", "cwd": "/", "hook_event_name": "PreToolUse",
                "tool_name": "apply_patch", "tool_input": {"command":
                format!("*** Begin Patch\n*** Add File: {long}\n+x\n*** End Patch")}}),
            _ => write_payload("s", "/", &long),
        };
        let o = hook_raw(&t, agent, p.to_string().into_bytes());
        assert_denied_because_in(agent, &o, "PATH_MAX");
    }
}

#[track_caller]
fn assert_denied_because_in(agent: &str, o: &Output, why: &str) {
    let reason = denied(agent, o).unwrap_or_else(|| panic!("{agent} allowed: {o:?}"));
    assert!(reason.contains(why), "{agent}: {reason:?} lacks {why:?}");
}

/// The shell scan behind a Bash call: deep nesting crashed the scanner's recursive walk
/// (SIGSEGV at 1,000 `$(`, an allow for the agent) and long `&&` chains took minutes.
#[test]
fn deep_or_long_shell_commands_are_answered_not_crashed() {
    let (t, repo) = repo_env();
    assert_code(&run_as(&t, "holder", &repo, &["reserve", "x.rs"]), 0);
    let bash = |cmd: String| {
        let p = json!({"session_id": "s", "cwd": repo, "hook_event_name": "PreToolUse",
            "tool_name": "Bash", "tool_input": {"command": cmd}});
        hook_json(&t, &p)
    };
    for cmd in [
        format!("{}echo > y.rs{}", "$(".repeat(2000), ")".repeat(2000)),
        format!("{}echo > y.rs{}", "\"$(".repeat(2000), ")\"".repeat(2000)),
        format!(
            "{}echo > y.rs{}",
            "if true; then ".repeat(5000),
            "; fi".repeat(5000)
        ),
        format!("{}echo > y.rs", "true && ".repeat(20_000)),
        format!("{}echo > y.rs", "{ ".repeat(20_000)) + &"; }".repeat(20_000),
    ] {
        let o = bash(cmd);
        let reason = denied("claude", &o).expect("refused");
        assert!(
            reason.contains("nested") || reason.contains("within"),
            "{reason}"
        );
    }
    // A syntax error the parser's recovery struggles with (found by the fuzzer: seconds a
    // call): a long run of operators is refused before the parser sees it.
    for storm in [
        format!("echo x > s{}", "> s".repeat(16) + &">".repeat(12_000)),
        format!("echo x > s{}", " >".repeat(12_000)),
    ] {
        let r = denied("claude", &bash(storm)).expect("refused");
        assert!(r.contains("operators with nothing between them"), "{r}");
    }
    // Ordinary operator runs are not: `2>&1 |`, `&&`, `;;`, `>>`.
    assert_eq!(
        denied("claude", &bash("a 2>&1 | b && c >> y.rs; d || e".into())),
        None
    );
    // Ordinary commands keep their answers.
    assert!(denied("claude", &bash("echo hi > x.rs".into())).is_some());
    assert_eq!(denied("claude", &bash("echo hi > y.rs".into())), None);
    // A large flat command is answered either way (allowed, or refused over budget).
    let heredoc = format!(
        "cat > y.rs <<'EOF'\n{}EOF\n",
        "line of text\n".repeat(20_000)
    );
    let o = bash(heredoc);
    if let Some(r) = denied("claude", &o) {
        assert!(r.contains("within"), "{r}");
    }
}
