//! `concur diagnose`: every built-in naive writer is caught and every concur writer is SAFE;
//! every check kind passes and fails on purpose-built scripts; failing and hanging writers are
//! reported; output shapes.

use serde_json::Value;

use crate::util::*;

/// Runs `concur diagnose ARGS --json`, returning the exit code and the whole document.
pub(crate) fn diagnose_doc(t: &TestEnv, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["diagnose", "--json"];
    all.extend_from_slice(args);
    let o = t.run(&all);
    let v: Value = serde_json::from_str(stdout(&o).trim())
        .unwrap_or_else(|e| panic!("bad json ({e}): {}\nstderr: {}", stdout(&o), stderr(&o)));
    (code(&o), v)
}

/// Runs `concur diagnose ARGS --json`, returning the exit code and the results array.
fn diagnose(t: &TestEnv, args: &[&str]) -> (i32, Vec<Value>) {
    let (c, v) = diagnose_doc(t, args);
    (c, v["results"].as_array().cloned().unwrap_or_default())
}

fn result<'a>(rs: &'a [Value], target: &str, mode: &str) -> &'a Value {
    rs.iter()
        .find(|r| r["target"] == target && r["mode"] == mode)
        .unwrap_or_else(|| panic!("no {target}/{mode} in {rs:?}"))
}

/// The naive writer must be caught (a violation, not SAFE / NOT REPRODUCED / ERROR) and the
/// concur writer must be SAFE, with exit 0.
fn caught_and_safe(target: &str) {
    let t = TestEnv::new();
    let (c, rs) = diagnose(&t, &["--targets", target]);
    let naive = result(&rs, target, "naive");
    let v = naive["verdict"].as_str().unwrap();
    assert!(
        !["SAFE", "NOT REPRODUCED", "ERROR"].contains(&v),
        "naive {target} not caught: {naive}"
    );
    let concur = result(&rs, target, "concur");
    assert_eq!(concur["verdict"], "SAFE", "{concur}");
    assert_eq!(c, 0, "{rs:?}");
}

#[test]
fn json_counter_naive_loses_updates_and_concur_is_safe() {
    caught_and_safe("json-counter");
}

#[test]
fn jsonl_append_naive_tears_lines_and_concur_is_safe() {
    caught_and_safe("jsonl-append");
}

#[test]
fn token_naive_has_many_winners_and_concur_is_safe() {
    caught_and_safe("token");
}

#[test]
fn semaphore_naive_over_admits_and_keeps_stale_slots_and_concur_is_safe() {
    caught_and_safe("semaphore");
    let t = TestEnv::new();
    let (_, rs) = diagnose(&t, &["--targets", "semaphore", "--mode", "naive"]);
    let v = result(&rs, "semaphore", "naive")["verdict"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        v.contains("OVER_ADMISSION") && v.contains("STALE_SLOT"),
        "{v}"
    );
}

#[test]
fn header_once_naive_duplicates_the_header_and_concur_is_safe() {
    caught_and_safe("header-once");
}

#[test]
fn replace_naive_tears_reads_and_concur_is_safe() {
    caught_and_safe("replace");
}

#[test]
fn sqlite_naive_gets_busy_errors_and_concur_is_safe() {
    caught_and_safe("sqlite");
}

#[test]
fn json_shape_has_exactly_the_documented_fields() {
    let t = TestEnv::new();
    let (c, rs) = diagnose(
        &t,
        &["--targets", "token", "--mode", "concur", "--rounds", "2"],
    );
    assert_eq!(c, 0);
    assert_eq!(rs.len(), 1);
    let mut keys: Vec<&str> = rs[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "expected", "mode", "observed", "ops", "rounds", "seconds", "target", "verdict",
            "writers"
        ]
    );
    assert_eq!(rs[0]["writers"], 4);
    assert_eq!(rs[0]["rounds"], 2);
    assert!(rs[0]["seconds"].as_f64().unwrap() >= 0.0);
}

#[test]
fn table_has_one_header_line_and_a_row_per_result() {
    let t = TestEnv::new();
    let o = t.run([
        "diagnose",
        "--targets",
        "token",
        "--rounds",
        "2",
        "--writers",
        "3",
    ]);
    assert_code(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "TARGET", "MODE", "WRITERS", "OPS", "ROUNDS", "EXPECTED", "OBSERVED", "VERDICT", "TIME"
        ]
    );
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[1].starts_with("token") && lines[1].contains("naive"),
        "{out}"
    );
    assert!(
        lines[2].contains("concur") && lines[2].contains("SAFE"),
        "{out}"
    );
    assert!(lines[1].contains(" 3 "), "writers column: {out}");
    assert!(
        stderr(&o).is_empty(),
        "no progress when stderr is not a terminal"
    );
}

#[test]
fn unknown_target_is_a_usage_error() {
    let t = TestEnv::new();
    let o = t.run(["diagnose", "--targets", "nope"]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("unknown target \"nope\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_check_is_invalid_input_and_runs_nothing() {
    let t = TestEnv::new();
    let marker = t.path("ran");
    let cmd = format!("touch {}", marker.display());
    let o = t.run(["diagnose", "--cmd", &cmd, "--check", "bogus:x"]);
    assert_code(&o, 4);
    assert!(
        stderr(&o).contains("bad --check \"bogus:x\""),
        "{}",
        stderr(&o)
    );
    assert!(!marker.exists());
    let o = t.run(["diagnose", "--cmd", &cmd, "--check", "empty:../x"]);
    assert_code(&o, 4);
    let o = t.run(["diagnose", "--check", "empty:x"]);
    assert_code(&o, 2);
}

// ---- users' own scripts: each check kind holds on a correct script and breaks on a racy one

/// Runs a custom diagnose; returns exit code and the row of the first check.
fn custom(t: &TestEnv, cmd: &str, check: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--cmd", cmd, "--check", check];
    args.extend_from_slice(extra);
    let (c, rs) = diagnose(t, &args);
    assert_eq!(rs[0]["target"], "runs", "{rs:?}");
    assert_eq!(rs[0]["verdict"], "SAFE", "every run must exit 0: {rs:?}");
    (c, rs[1].clone())
}

fn holds(cmd: &str, check: &str, extra: &[&str]) {
    let t = TestEnv::new();
    let (c, row) = custom(&t, cmd, check, extra);
    assert_eq!(row["verdict"], "SAFE", "{row}");
    assert_eq!(c, 0, "{row}");
}

fn breaks(cmd: &str, check: &str, extra: &[&str], verdict: &str) {
    let t = TestEnv::new();
    let (c, row) = custom(&t, cmd, check, extra);
    assert_eq!(row["verdict"], verdict, "{row}");
    assert!(
        row["observed"].as_str().unwrap().contains("round "),
        "{row}"
    );
    assert_eq!(c, 3, "{row}");
}

const LOCKED_COUNTER: &str = r#"cd "$CONCUR_STATE_DIR" && flock n.lock sh -c '
  n=$(sed "s/[^0-9]//g" n.json 2>/dev/null); n=${n:-0}
  printf "{\"count\":%d}\n" $((n+1)) > n.json.tmp && mv n.json.tmp n.json'"#;
const RACY_COUNTER: &str = r#"cd "$CONCUR_STATE_DIR"
  n=$(sed "s/[^0-9]//g" n.json 2>/dev/null); n=${n:-0}; sleep 0.02
  printf "{\"count\":%d}\n" $((n+1)) > n.json"#;

#[test]
fn counter_check_passes_a_locked_counter_and_catches_a_racy_one() {
    holds(LOCKED_COUNTER, "counter:n.json:.count", &["--ops", "5"]);
    breaks(
        RACY_COUNTER,
        "counter:n.json:.count",
        &["--ops", "3"],
        "LOST_UPDATES",
    );
}

#[test]
fn lines_check_counts_matching_lines() {
    let append = r#"echo "entry $CONCUR_WRITER" >> "$CONCUR_STATE_DIR/log""#;
    holds(append, "lines:log:^entry [0-9]+$", &["--ops", "3"]);
    let truncate = r#"echo "entry $CONCUR_WRITER" > "$CONCUR_STATE_DIR/log""#;
    breaks(truncate, "lines:log", &["--ops", "3"], "LOST_LINES");
}

#[test]
fn jsonl_check_wants_whole_valid_lines() {
    holds(
        r#"echo '{"a":1}' >> "$CONCUR_STATE_DIR/e.jsonl""#,
        "jsonl:e.jsonl",
        &["--ops", "2"],
    );
    breaks(
        r#"printf '{"a":' >> "$CONCUR_STATE_DIR/e.jsonl""#,
        "jsonl:e.jsonl",
        &["--ops", "2"],
        "TORN_LINES",
    );
}

#[test]
fn header_check_wants_one_header_first() {
    let setup = ["--setup", "echo '# log' > log", "--rounds", "2"];
    holds(
        r#"echo x >> "$CONCUR_STATE_DIR/log""#,
        "header:log:# log",
        &setup,
    );
    let racy = r#"cd "$CONCUR_STATE_DIR"; [ -f log ] || { sleep 0.05; echo '# log' >> log; }; echo x >> log"#;
    breaks(
        racy,
        "header:log:# log",
        &["--rounds", "2"],
        "DUPLICATE_HEADER",
    );
}

#[test]
fn winners_check_wants_one_winner_per_round() {
    let setup = ["--setup", "echo t > token", "--rounds", "3"];
    let cas = r#"cd "$CONCUR_STATE_DIR"; if mv token "token.$CONCUR_WRITER" 2>/dev/null; then echo "$CONCUR_WRITER" >> won; fi"#;
    holds(cas, "winners:won", &setup);
    let toctou = r#"cd "$CONCUR_STATE_DIR"; if [ -f token ]; then sleep 0.05; rm -f token; echo "$CONCUR_WRITER" >> won; fi"#;
    breaks(toctou, "winners:won", &setup, "MULTIPLE_WINNERS");
}

#[test]
fn unique_check_finds_duplicate_lines() {
    holds(
        r#"echo "$CONCUR_WRITER-$CONCUR_RUN" >> "$CONCUR_STATE_DIR/ids""#,
        "unique:ids",
        &["--ops", "3"],
    );
    breaks(
        r#"echo same >> "$CONCUR_STATE_DIR/ids""#,
        "unique:ids",
        &["--ops", "2"],
        "DUPLICATES",
    );
}

#[test]
fn empty_check_wants_nothing_left_behind() {
    holds("true", "empty:leftover", &["--ops", "1"]);
    breaks(
        r#"echo x >> "$CONCUR_STATE_DIR/leftover""#,
        "empty:leftover",
        &["--ops", "1"],
        "NOT_EMPTY",
    );
}

#[test]
fn max_check_catches_over_admission() {
    let locked = r#"cd "$CONCUR_STATE_DIR" && flock slot.lock sh -c 'echo +1 >> h; sleep 0.01; echo -1 >> h'"#;
    holds(locked, "max:1:h", &["--ops", "2"]);
    let racy = r#"cd "$CONCUR_STATE_DIR"; echo +1 >> h; sleep 0.1; echo -1 >> h"#;
    breaks(racy, "max:1:h", &["--ops", "1"], "OVER_ADMISSION");
}

#[test]
fn check_cmd_holds_on_exit_zero_only() {
    let t = TestEnv::new();
    let (c, rs) = diagnose(
        &t,
        &[
            "--cmd",
            "touch \"$CONCUR_STATE_DIR/f\"",
            "--check-cmd",
            "test -f f",
            "--ops",
            "1",
        ],
    );
    assert_eq!(c, 0, "{rs:?}");
    assert_eq!(rs[1]["verdict"], "SAFE");
    let (c, rs) = diagnose(
        &t,
        &[
            "--cmd",
            "true",
            "--check-cmd",
            "echo nope >&2; test -f f",
            "--ops",
            "1",
        ],
    );
    assert_eq!(c, 3, "{rs:?}");
    assert_eq!(rs[1]["verdict"], "CHECK_FAILED");
    assert!(
        rs[1]["observed"]
            .as_str()
            .unwrap()
            .contains("exited 1: nope"),
        "{rs:?}"
    );
}

#[test]
fn per_session_gives_each_writer_its_own_session() {
    let cmd = r#"echo "$CONCUR_SESSION" >> "$CONCUR_STATE_DIR/s""#;
    holds(cmd, "unique:s", &["--ops", "1", "--per-session"]);
    breaks(cmd, "unique:s", &["--ops", "1"], "DUPLICATES");
}

#[test]
fn a_writer_that_fails_is_reported_not_counted() {
    let t = TestEnv::new();
    let cmd = r#"[ "$CONCUR_WRITER" = 1 ] && { echo boom >&2; exit 7; }; echo x >> "$CONCUR_STATE_DIR/l""#;
    let (c, rs) = diagnose(&t, &["--cmd", cmd, "--check", "lines:l", "--ops", "2"]);
    assert_eq!(c, 3);
    assert_eq!(rs[0]["verdict"], "ERROR", "{rs:?}");
    let obs = rs[0]["observed"].as_str().unwrap();
    assert!(obs.starts_with("2 failed: writer 1 run 0"), "{obs}");
    assert!(obs.contains("exited 7: boom"), "{obs}");
    assert_eq!(rs[1]["verdict"], "LOST_LINES", "6 lines of 8: {rs:?}");
}

#[test]
fn a_writer_that_hangs_is_killed_and_reported() {
    let t = TestEnv::new();
    let cmd = r#"[ "$CONCUR_WRITER" = 0 ] && sleep 60; true"#;
    let (c, rs) = diagnose(
        &t,
        &[
            "--cmd",
            cmd,
            "--check",
            "empty:x",
            "--ops",
            "1",
            "--timeout",
            "0.5",
        ],
    );
    assert_eq!(c, 3);
    assert_eq!(rs[0]["verdict"], "ERROR", "{rs:?}");
    let obs = rs[0]["observed"].as_str().unwrap();
    assert!(
        obs.contains("writer 0 run 0") && obs.contains("timed out"),
        "{obs}"
    );
}

#[test]
fn failing_setup_is_a_precondition_error() {
    let t = TestEnv::new();
    let o = t.run([
        "diagnose", "--cmd", "true", "--check", "empty:x", "--setup", "exit 5",
    ]);
    assert_code(&o, 3);
    assert!(
        stderr(&o).contains("--setup failed in round 0: exited 5"),
        "{}",
        stderr(&o)
    );
}

// ---- the HTML report

#[test]
fn html_report_has_a_lane_per_writer_and_marks_where_it_broke() {
    let t = TestEnv::new();
    let report = t.path("r.html");
    let o = t.run([
        "diagnose",
        "--targets",
        "json-counter,semaphore",
        "--writers",
        "3",
        "--ops",
        "8",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_code(&o, 0);
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert_eq!(html.matches("<section class=\"result\"").count(), 4);
    assert_eq!(html.matches("<svg").count(), 4);
    for w in 0..3 {
        assert!(html.contains(&format!(">writer {w}</text>")), "lane {w}");
    }
    assert!(!html.contains(">writer 3</text>"));
    let section = |name: &str| {
        let start = html.find(&format!("<h2>{name} — ")).unwrap();
        let rest = &html[start..];
        rest[..rest.find("</section>").unwrap()].to_owned()
    };
    // the naive counter shows where updates were lost; the concur one has no mark
    let naive = section("json-counter — naive");
    assert!(naive.contains("class=\"mark\""), "naive run must be marked");
    assert!(naive.contains("again (over writer"));
    let concur = section("json-counter — concur");
    assert!(concur.contains("class=\"op\""));
    assert!(!concur.contains("class=\"mark\""));
    // slot holds are drawn; the naive semaphore's breaks are marked with their round
    assert!(section("semaphore — concur").contains("class=\"hold\""));
    let sem = section("semaphore — naive");
    assert!(sem.contains("<li>round 0, +"), "{sem}");
    assert!(sem.contains("<li>round 1, +"), "{sem}");
    // self-contained: nothing fetched
    for bad in ["<script", "<link", "src=", "url("] {
        assert!(!html.contains(bad), "{bad}");
    }
}

#[test]
fn html_report_renders_in_headless_chromium_when_available() {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {c}"))
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        eprintln!("skipped: chromium not installed");
        return;
    };
    let t = TestEnv::new();
    let report = t.path("r.html");
    let o = t.run([
        "diagnose",
        "--targets",
        "token",
        "--rounds",
        "2",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_code(&o, 0);
    let png = t.path("shot.png");
    let profile = t.path("profile");
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", report.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        bytes.len() > 5_000,
        "screenshot suspiciously small: {}",
        bytes.len()
    );
}

#[test]
fn a_builtin_writer_past_its_timeout_is_killed_and_the_target_is_not_safe() {
    let t = TestEnv::new();
    let (c, rs) = diagnose(
        &t,
        &[
            "--targets",
            "json-counter",
            "--mode",
            "concur",
            "--timeout",
            "0.001",
        ],
    );
    assert_eq!(c, 3, "{rs:?}");
    assert_eq!(rs[0]["verdict"], "ERROR", "{rs:?}");
    assert!(
        rs[0]["observed"]
            .as_str()
            .unwrap()
            .contains("timed out (killed)"),
        "{rs:?}"
    );
}

#[test]
fn single_flight_naive_runs_the_refresh_twice_and_concur_once_is_safe() {
    caught_and_safe("single-flight");
}
