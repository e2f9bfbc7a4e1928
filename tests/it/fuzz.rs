//! Fuzzing in the normal suite: every target of `tests/fuzz/targets.rs` (hook payloads of the
//! four dialects, broker frames, concur.toml, ledger lines, jq filters and documents, guard and
//! reservation globs, paths) for `FUZZ_CASES` cases each (default 2,000), each case under a 1 s
//! watchdog. The long run is `examples/fuzz.rs` (docs/RELIABILITY.md, "Fuzzing").

#[path = "../fuzz/targets.rs"]
mod targets;

fn cases() -> u64 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000)
}

#[test]
fn every_fuzz_target_survives_arbitrary_inputs() {
    let all = targets::all();
    assert_eq!(all.len(), 12);
    for (i, t) in all.iter().enumerate() {
        let s = targets::fuzz(t, cases(), 0x5eed_0000 + i as u64);
        eprintln!("{}: {s:?}", t.name);
        assert_eq!(s.cases, cases(), "{}", t.name);
        // The generator reaches past the parser's front door: some inputs are accepted.
        assert!(s.accepted > 0, "{}: no input accepted: {s:?}", t.name);
        assert!(s.skipped < s.cases / 2, "{}: mostly skipped: {s:?}", t.name);
    }
}

/// Named regressions: inputs the fuzzer (or issue 13) found, replayed through the targets.
#[test]
fn fuzz_regressions() {
    let by_name = |n: &str| {
        targets::all()
            .into_iter()
            .find(|t| t.name == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    // A guard glob that backtracked exponentially (issue 13 item 5).
    let mut star = b"/d/***************x|/d/".to_vec();
    star.extend(std::iter::repeat_n(b'a', 3000));
    (by_name("guard-glob").run)(&star);
    // `**/` after the `**` has read something must not skip the `/` (found while replacing
    // the backtracking matcher).
    assert!(!concur::hook::guard::glob_match(b"**/", b"a"));
    // Two long wildcard globs: the quadratic memo of the old overlap test (67 GB at ~260 KB).
    let long = format!("/r/{}z|/r/{}", "a*".repeat(2000), "ab".repeat(2000));
    (by_name("reserve-glob").run)(long.as_bytes());
    // A 100,001-backslash file_path and a relative cwd.
    let p = format!(
        r#"{{"session_id":"s","cwd":"rel/dir","hook_event_name":"PreToolUse","tool_name":"Write","tool_input":{{"file_path":"{}"}}}}"#,
        "\\\\".repeat(100_001)
    );
    for agent in ["hook-claude", "hook-codex", "hook-gemini", "hook-cursor"] {
        (by_name(agent).run)(p.as_bytes());
    }
}

/// Found by the jq-filter target: a filter nested ~1,000 deep (`((((1))))`, `[[[[1]]]]`)
/// overflows the stack of `concur json` (SIGSEGV, exit 139); an invalid or too-deep filter must
/// exit 4 with the file unchanged.
#[test]
fn a_filter_nested_a_thousand_deep_exits_4_not_sigsegv() {
    use crate::util::*;
    let t = TestEnv::new();
    let f = t.path("d.json");
    std::io::Write::write_all(&mut std::fs::File::create(&f).unwrap(), b"{}\n").unwrap();
    for (open, close) in [("(", ")"), ("[", "]")] {
        let filter = format!("{}1{}", open.repeat(1000), close.repeat(1000));
        let o = t.run(["json", f.to_str().unwrap(), &filter]);
        assert_code(&o, 4);
        assert_eq!(content(&f).unwrap(), b"{}\n");
    }
}
