//! Fuzz targets for every parser and matcher concur exposes to other processes' bytes, and the
//! runner that drives them: seeds mutated by a seeded generator, each case run under a 1 s
//! watchdog (a case over budget aborts the run, printing the input), every case checked for the
//! documented outcome (an answer or the documented error kind), never a panic.
//!
//! Shared by the normal test suite (`tests/it/fuzz.rs`, a few thousand cases per target) and
//! the long run (`examples/fuzz.rs`, `FUZZ_RUNS` cases per target); see docs/RELIABILITY.md.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use concur::ErrorKind;
use concur::hook::{self, Agent, Event};

/// The budget of one case: longer is a hang.
pub const BUDGET: Duration = Duration::from_secs(1);

/// The largest input the mutator builds (hook payloads are capped at 1 MiB before parsing).
const MAX_INPUT: usize = 256 << 10;

/// One fuzz target.
pub struct Target {
    /// The name `examples/fuzz.rs` takes.
    pub name: &'static str,
    /// Valid inputs to start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens the mutator splices in.
    pub dict: &'static [&'static str],
    /// Runs one case; panics on a broken property. Returns whether the input was accepted.
    pub run: fn(&[u8]) -> bool,
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Cases run.
    pub cases: u64,
    /// Cases the parser accepted (the rest got the documented error).
    pub accepted: u64,
    /// Cases skipped as outside the target (see the target's comment).
    pub skipped: u64,
    /// The slowest case.
    pub slowest: Duration,
    /// The longest input.
    pub longest: usize,
}

/// Every target.
pub fn all() -> Vec<Target> {
    let t = |name, seeds, dict, run| Target {
        name,
        seeds,
        dict,
        run,
    };
    vec![
        t(
            "hook-claude",
            || hook_seeds("claude"),
            HOOK_DICT,
            |b| hook_case(Agent::Claude, b),
        ),
        t(
            "hook-codex",
            || hook_seeds("codex"),
            HOOK_DICT,
            |b| hook_case(Agent::Codex, b),
        ),
        t(
            "hook-gemini",
            || hook_seeds("gemini"),
            HOOK_DICT,
            |b| hook_case(Agent::Gemini, b),
        ),
        t(
            "hook-cursor",
            || hook_seeds("cursor"),
            HOOK_DICT,
            |b| hook_case(Agent::Cursor, b),
        ),
        t("broker-frame", broker_seeds, JSON_DICT, broker_case),
        t("config", config_seeds, TOML_DICT, config_case),
        t("ledger", ledger_seeds, JSON_DICT, ledger_case),
        t("jq-filter", filter_seeds, JQ_DICT, filter_case),
        t("jq-document", document_seeds, JSON_DICT, document_case),
        t("guard-glob", guard_seeds, GLOB_DICT, guard_case),
        t("reserve-glob", reserve_seeds, GLOB_DICT, reserve_case),
        t("path", path_seeds, GLOB_DICT, path_case),
    ]
}

// ---- the runner ----

/// Runs `runs` cases of `t` from `seed`. A case over [`BUDGET`] aborts the process after
/// printing the target and the input; a panic propagates with the input printed first.
pub fn fuzz(t: &Target, runs: u64, seed: u64) -> Stats {
    let seeds = (t.seeds)();
    let mut rng = fastrand::Rng::with_seed(seed);
    let current = Arc::new(Mutex::new(Vec::<u8>::new()));
    // Under `panic = "abort"` (the release profile) nothing unwinds to the loop below: the
    // hook names the input.
    let name = t.name;
    let shown = Arc::clone(&current);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let input = shown.try_lock().map(|c| c.clone()).unwrap_or_default();
        eprintln!("fuzz {name}: panic on input {}", show(&input));
        previous(info);
    }));
    let started = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let watchdog = {
        let (current, started, done, name) = (
            Arc::clone(&current),
            Arc::clone(&started),
            Arc::clone(&done),
            t.name,
        );
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                let s = started.load(Ordering::Relaxed);
                if s != 0 && since(epoch).saturating_sub(s) > since_budget() {
                    let input = current.lock().map(|c| c.clone()).unwrap_or_default();
                    eprintln!("fuzz {name}: a case ran over {BUDGET:?}: {}", show(&input));
                    std::process::abort();
                }
            }
        })
    };
    let mut stats = Stats::default();
    let trace = std::env::var_os("FUZZ_TRACE").is_some();
    for _ in 0..runs {
        let input = generate(&mut rng, &seeds, t.dict);
        if trace {
            eprintln!("fuzz {}: {}", t.name, show(&input));
        }
        current.lock().unwrap().clone_from(&input);
        let t0 = Instant::now();
        started.store(since(epoch).max(1), Ordering::Relaxed);
        let outcome = std::panic::catch_unwind(|| (t.run)(&input));
        started.store(0, Ordering::Relaxed);
        let took = t0.elapsed();
        match outcome {
            Ok(accepted) => stats.accepted += u64::from(accepted),
            Err(e) => {
                done.store(true, Ordering::Relaxed);
                std::panic::resume_unwind(e);
            }
        }
        stats.cases += 1;
        stats.slowest = stats.slowest.max(took);
        stats.longest = stats.longest.max(input.len());
    }
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    drop(std::panic::take_hook());
    stats.skipped = SKIPPED.swap(0, Ordering::Relaxed);
    stats
}

fn since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn since_budget() -> u64 {
    u64::try_from(BUDGET.as_nanos()).unwrap_or(u64::MAX)
}

static SKIPPED: AtomicU64 = AtomicU64::new(0);

fn skip() -> bool {
    SKIPPED.fetch_add(1, Ordering::Relaxed);
    false
}

/// The input as a Rust byte-string literal (cut to 2,000 bytes, with its length).
pub fn show(input: &[u8]) -> String {
    let cut = &input[..input.len().min(2000)];
    format!("{} bytes: b\"{}\"", input.len(), cut.escape_ascii())
}

/// One input: a seed (or random bytes) with 1 to 8 mutations.
fn generate(rng: &mut fastrand::Rng, seeds: &[Vec<u8>], dict: &[&str]) -> Vec<u8> {
    if rng.u8(..) < 8 {
        return (0..rng.usize(..64)).map(|_| rng.u8(..)).collect();
    }
    let mut v = seeds[rng.usize(..seeds.len())].clone();
    for _ in 0..rng.usize(1..=8) {
        let at = rng.usize(..=v.len());
        match rng.u8(..8) {
            0 if !v.is_empty() => {
                let i = rng.usize(..v.len());
                v[i] = rng.u8(..);
            }
            1 | 2 => {
                let tok = dict[rng.usize(..dict.len())].as_bytes();
                v.splice(at..at, tok.iter().copied());
            }
            3 if !v.is_empty() => {
                let end = rng.usize(at..=v.len());
                v.drain(at..end.min(at + 64));
            }
            4 if !v.is_empty() => {
                // Repeat a short run many times: long paths, deep nesting, star storms.
                let start = rng.usize(..v.len());
                let end = (start + rng.usize(1..=4)).min(v.len());
                let chunk = v[start..end].to_vec();
                let times = match rng.u8(..4) {
                    0 => rng.usize(100..5000),
                    _ => rng.usize(2..50),
                };
                let extra: Vec<u8> = chunk
                    .iter()
                    .copied()
                    .cycle()
                    .take(chunk.len() * times)
                    .collect();
                v.splice(end..end, extra);
            }
            5 => {
                let other = &seeds[rng.usize(..seeds.len())];
                let from = rng.usize(..=other.len());
                v.splice(at..at, other[from..].iter().copied());
            }
            6 => v.truncate(at),
            _ => {
                let n = rng.usize(1..16);
                v.splice(at..at, (0..n).map(|_| rng.u8(..)));
            }
        }
        v.truncate(MAX_INPUT);
    }
    v
}

// ---- dictionaries ----

const HOOK_DICT: &[&str] = &[
    "\"",
    "\\\\",
    "\\u0000",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "true",
    "1e999",
    "-0",
    "\"file_path\":",
    "\"cwd\":",
    "\"tool_input\":",
    "\"PreToolUse\"",
    "\"BeforeTool\"",
    "\"preToolUse\"",
    "\"Write\"",
    "\"Edit\"",
    "\"apply_patch\"",
    "\"Bash\"",
    "\"write_file\"",
    "\"StrReplace\"",
    "\"SessionStart\"",
    "/",
    "../",
    "./",
    "*",
    "**",
    "?",
    "[a-z]",
    "~/",
    "\\ud800",
    "*** Update File: ",
    "*** Move to: ",
    "\\n",
    "> f",
    "| tee ",
    "\"workspace_roots\":",
    "\"command\":",
];

const JSON_DICT: &[&str] = &[
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "true",
    "false",
    "1e999",
    "-0",
    "18446744073709551616",
    "0.0000001",
    "\"op\":",
    "\"append\"",
    "\"ledger\"",
    "\"file\":",
    "\"line\":",
    "\"json\":",
    "\"text\":",
    "\"id\":",
    "\"seq\":",
    "\"prev\":",
    "\"hash\":",
    "\n",
    "\r",
    "\u{feff}",
    "\u{2028}",
];

const TOML_DICT: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'''",
    "\"\"\"",
    "\n",
    "#",
    "{",
    "}",
    ",",
    "[guard]",
    "[reserve]",
    "[broker]",
    "[etcd]",
    "protect",
    "auto",
    "true",
    "1979-05-27",
    "1e999",
    "\\u0000",
    "~/",
    "**",
    "inf",
    "nan",
    "0x7fffffffffffffff",
];

const JQ_DICT: &[&str] = &[
    ".",
    "..",
    "|",
    ",",
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    "//",
    "?",
    "+",
    "-",
    "*",
    "/",
    "%",
    "==",
    "and",
    "or",
    "not",
    "if ",
    " then ",
    " else ",
    " end",
    "reduce ",
    "foreach ",
    " as $x",
    "$x",
    "$__loc__",
    "length",
    "keys",
    "map(",
    "select(",
    "to_entries",
    "from_entries",
    "tostring",
    "tonumber",
    "@base64",
    "@json",
    "\"\\(",
    "error",
    "try ",
    "catch ",
    "label $l",
    "break $l",
    "input",
    "env",
    "splits(",
    "test(",
    "1e999",
    "null",
    "ltrimstr(",
    "explode",
    "implode",
    "getpath([",
    "setpath([",
    "del(",
    "paths",
    "tojson",
    "fromjson",
    "sort_by(",
    "group_by(",
    "unique",
    "min",
    "max",
    "add",
    "any",
    "all",
    "flatten",
    "indices(",
];

const GLOB_DICT: &[&str] = &[
    "*",
    "**",
    "?",
    "[",
    "]",
    "[!",
    "[a-z]",
    "\\",
    "/",
    "//",
    "./",
    "../",
    "..",
    ".",
    "~/",
    "**/",
    "/**",
    "a",
    "src",
    "\u{0}",
    "\u{ff}",
    "***************x",
    "\u{e9}",
];

// ---- hook payloads ----

fn hook_seeds(agent: &str) -> Vec<Vec<u8>> {
    let d = fixture().display().to_string();
    let list = match agent {
        "codex" => vec![
            format!(
                r#"{{"session_id":"s","cwd":"{d}","hook_event_name":"PreToolUse","tool_name":"apply_patch","tool_input":{{"command":["apply_patch","*** Begin Patch\n*** Update File: src/a.rs\n@@\n-a\n+b\n*** Add File: ../x*.md\n+x\n*** End Patch"]}}}}"#
            ),
            format!(
                r#"{{"session_id":"s","cwd":"{d}","hook_event_name":"PreToolUse","tool_name":"Write","tool_input":{{"file_path":"src/lib.rs"}}}}"#
            ),
            format!(
                r#"{{"session_id":"s","cwd":"{d}","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{{"command":"echo x > src/a.rs && tee -a log <in"}}}}"#
            ),
        ],
        "gemini" => vec![
            format!(
                r#"{{"session_id":"s","cwd":"{d}","hook_event_name":"BeforeTool","tool_name":"write_file","tool_input":{{"file_path":"{d}/src/a.rs","content":"x"}}}}"#
            ),
            format!(
                r#"{{"session_id":"s","cwd":"{d}","hook_event_name":"BeforeTool","tool_name":"run_shell_command","tool_input":{{"command":"sed -i s/a/b/ src/*.rs"}}}}"#
            ),
            format!(r#"{{"session_id":"s","cwd":"rel","hook_event_name":"SessionStart"}}"#),
        ],
        "cursor" => vec![
            format!(
                r#"{{"conversation_id":"c","workspace_roots":["{d}"],"hook_event_name":"preToolUse","tool_name":"StrReplace","tool_input":{{"path":"src/a.rs"}}}}"#
            ),
            format!(
                r#"{{"conversation_id":"c","workspace_roots":["{d}"],"hook_event_name":"beforeShellExecution","command":"rm -f a b"}}"#
            ),
        ],
        _ => vec![
            format!(
                r#"{{"session_id":"s","transcript_path":"/t","cwd":"{d}","permission_mode":"default","hook_event_name":"PreToolUse","tool_name":"Write","tool_input":{{"file_path":"{d}/src/a.rs","content":"x"}}}}"#
            ),
            format!(
                r#"{{"session_id":"s","cwd":"{d}","hook_event_name":"PreToolUse","tool_name":"Edit","tool_input":{{"file_path":"src/../mem/M.md"}}}}"#
            ),
            format!(
                r#"{{"session_id":"s","cwd":"{d}","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{{"command":"cat a > b; mv x y"}}}}"#
            ),
            r#"{"session_id":"s","cwd":"/","hook_event_name":"SessionEnd"}"#.to_owned(),
        ],
    };
    list.into_iter().map(String::into_bytes).collect()
}

/// The guard every hook case is decided against.
fn hook_config() -> &'static concur::config::Config {
    static C: OnceLock<concur::config::Config> = OnceLock::new();
    C.get_or_init(|| {
        let d = fixture().display().to_string();
        let text =
            format!("[guard]\nprotect = [\"{d}/mem/*.md\", \"{d}/**/secret\", \"{d}/[a-c]?/x\"]\n");
        concur::config::Config::parse(&text, Path::new("concur.toml")).unwrap()
    })
}

/// A payload: parsed, classified, decided by the guard, its paths resolved as reservation
/// targets and its shell command scanned. Documented: a non-object is `Err` (exit 2); a file
/// tool's paths are bounded by `PATH_MAX` (else `Malformed`, denied).
fn hook_case(agent: Agent, input: &[u8]) -> bool {
    let Ok(event) = hook::parse(agent, input) else {
        return false;
    };
    let answer = hook::decide(agent, &event, || Ok(hook_config().clone()));
    match &event {
        Event::Malformed(_) => assert!(answer.is_deny(), "malformed allowed"),
        Event::Write { paths, cwd, .. } => {
            for p in paths {
                let abs = if p.is_absolute() {
                    p.clone()
                } else {
                    cwd.join(p)
                };
                assert!(abs.as_os_str().len() <= concur::reserve::PATH_MAX);
                assert!(abs.is_absolute(), "unanchored path {}", abs.display());
                if let Err(e) = concur::reserve::Target::resolve_literal(&p.to_string_lossy(), cwd)
                {
                    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
                }
            }
        }
        _ => {}
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(input)
        && let Some(cmd) = concur::hook::reserve::shell_command(agent, &v)
    {
        // What the hook runs: bounded in work, depth and time (an `Err` is a deny).
        let _ = concur::hook::reserve::scan_bounded(&cmd);
    }
    true
}

// ---- broker frames ----

fn broker_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"op":"append","file":"/r/log.jsonl","line":"{\"k\":1}","id":"retry-1"}"#,
        r#"{"op":"append","file":"/r/log.jsonl","json":{"b":[1,2.5,"x"],"a":null}}"#,
        r#"{"op":"append","file":"/r/t.log","text":"plain line"}"#,
        r#"{"op":"ledger","file":"/r/l.jsonl","json":{"who":"a"}}"#,
        r#"{"op":"ping"}"#,
        r#"{"op":"status"}"#,
        r#"{"ok":true,"id":"retry-1","duplicate":false}"#,
        r#"{"ok":false,"id":null,"error":{"kind":"invalid","message":"bad"}}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// A request line as the broker reads it, and a response line as a client reads it: a request
/// that parses has its line encoded and its id checked; errors are `invalid`.
fn broker_case(input: &[u8]) -> bool {
    use concur::broker::protocol::{Line, Request, Response, check_id};
    let _ = serde_json::from_slice::<Response>(input);
    let Ok(req) = serde_json::from_slice::<Request>(input) else {
        return false;
    };
    if let Request::Append {
        line,
        json,
        text,
        id,
        ..
    } = req
    {
        if let Some(id) = id
            && let Err(e) = check_id(&id)
        {
            assert_eq!(e.kind(), ErrorKind::Invalid);
        }
        let lines = [
            line.map(Line::JsonText),
            json.map(Line::Json),
            text.map(Line::Text),
        ];
        for l in lines.into_iter().flatten() {
            match l.encode() {
                Ok(bytes) => assert!(!bytes.contains(&b'\n'), "a newline inside one line"),
                Err(e) => assert_eq!(e.kind(), ErrorKind::Invalid, "{e}"),
            }
        }
    }
    true
}

// ---- concur.toml ----

fn config_seeds() -> Vec<Vec<u8>> {
    [
        "[guard]\nprotect = [\"~/.claude/projects/*/memory/MEMORY.md\"]\nreason = \"use the broker\"\n",
        "[reserve]\nauto = true\n",
        "[broker]\nroots = [\"/tmp\"]\n",
        "# empty\n",
        "backend = \"etcd\"\n[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// `Config::parse`: a config or an `invalid` error (exit 4); a parsed guard answers.
fn config_case(input: &[u8]) -> bool {
    // The loader refuses bytes that are not UTF-8 before parsing; the parser gets text.
    let text = String::from_utf8_lossy(input);
    match concur::config::Config::parse(&text, Path::new("concur.toml")) {
        Ok(c) => {
            let g = concur::hook::Guard::from_config(&c);
            let _ = g.protects(Path::new("/tmp/x/memory/MEMORY.md"), Path::new("/"));
            true
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
            false
        }
    }
}

// ---- ledger lines ----

fn ledger_seeds() -> Vec<Vec<u8>> {
    let dir = fixture().join("ledger-seed");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("l.jsonl");
    for i in 0..3 {
        concur::ledger::append(
            &f,
            &serde_json::json!({"who": "a", "n": i, "s": "x\u{e9}\n"}),
            concur::ledger::Options::default(),
        )
        .unwrap();
    }
    vec![std::fs::read(&f).unwrap()]
}

/// A ledger file of these bytes: `verify` reports (never errors on a readable file), and a
/// clean report counts every line.
fn ledger_case(input: &[u8]) -> bool {
    thread_local!(static FILE: PathBuf = {
        let d = fixture().join(format!("ledger-{:?}", std::thread::current().id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join("l.jsonl")
    });
    FILE.with(|f| {
        std::io::Write::write_all(&mut std::fs::File::create(f).unwrap(), input).unwrap();
        let r = concur::ledger::verify(f).expect("verify reports, never errors");
        if r.problem.is_none() {
            let lines = input.split(|&b| b == b'\n').count() as u64 - 1;
            assert_eq!(r.entries, lines);
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(input) {
            let _ = concur::ledger::check_entry(&v);
            let _ = concur::ledger::canonical(&v);
        }
        r.problem.is_none()
    })
}

// ---- jq filters and documents ----

fn filter_seeds() -> Vec<Vec<u8>> {
    [
        ".count += 1",
        ".a.b |= (. // 0) + 1",
        "[.[] | select(.k > 1)] | length",
        "to_entries | map(.value) | add",
        "if .x then .y else {z: 1} end",
        ".items += [$__loc__]",
        "reduce .[] as $x (0; . + $x)",
        "try error(\"x\") catch .",
        "{a: 1, b: [1, 2, {c: \"\\(.)\"}]}",
        "del(.a) | keys",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Filters that can run without end or recurse without bound are outside this target: concur
/// runs a filter to completion and has no evaluation budget (`def f: f+1; f` is issue 13 item
/// 6, on the torture branch; `repeat`, `range(1e18)`, `while`, `until`, `recurse`, `limit`,
/// `input` loop or block by design).
fn unbounded_filter(f: &str) -> bool {
    [
        "def",
        "repeat",
        "range",
        "while",
        "until",
        "recurse",
        "limit",
        "input",
        "env",
        "$ENV",
        "splits",
        "..",
        "getpath",
        "paths",
        "walk",
        "combinations",
        "first",
        "last",
        "nth",
        "until",
        "foreach",
        "reduce",
        "label",
        "ltrimstr",
        "pow",
        "*",
        "tojson",
        "@",
        "implode",
        "explode",
        "test",
        "match",
        "capture",
        "scan",
        "sub",
        "split",
    ]
    .iter()
    .any(|w| f.contains(w))
}

/// Compile a filter and run it on a small document: a value or an `invalid` error (exit 4).
fn filter_case(input: &[u8]) -> bool {
    let f = String::from_utf8_lossy(input);
    // Filters nested deeper than this are outside the target: `concur json` overflows its
    // stack on `((((1))))` ~1,000 deep (found here; issue 13 item 6, on the torture branch).
    if f.len() > 4096 || unbounded_filter(&f) || depth_of(f.as_bytes(), b"([{", b")]}") > 64 {
        return skip();
    }
    let update = concur::json::JsonUpdate::new(f.into_owned());
    match update.compile() {
        Ok(p) => match p.run(
            Some(br#"{"count":1,"a":{"b":2},"items":[1,2],"k":3}"#),
            "doc",
        ) {
            Ok(_) => true,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
                false
            }
        },
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
            false
        }
    }
}

fn document_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"count":1,"a":{"b":[1,2.5e3,-0,null,true]},"s":"x\u00e9\ud83d\ude00"}"#,
        "[]",
        "\"just a string\"",
        "12345678901234567890123",
        "{\"a\":{\"a\":{\"a\":[[[[{}]]]]}}}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Documents nested deeper than this are outside the target: `concur json` overflows its stack
/// on ~10,000 levels (issue 13 item 6, on the torture branch).
const MAX_DEPTH: usize = 200;

/// The deepest nesting of `open`/`close` bytes.
fn depth_of(b: &[u8], open: &[u8], close: &[u8]) -> usize {
    let (mut d, mut max) = (0usize, 0usize);
    for c in b {
        if open.contains(c) {
            d += 1;
            max = max.max(d);
        } else if close.contains(c) {
            d = d.saturating_sub(1);
        }
    }
    max
}

/// Run `.` and an update on the document: a value or an `invalid` error (exit 4).
fn document_case(input: &[u8]) -> bool {
    if depth_of(input, b"[{", b"]}") > MAX_DEPTH {
        return skip();
    }
    thread_local!(static PROGRAMS: Vec<concur::json::Program> =
        [".", ".count += 1", "[.. | numbers] | length", "tojson | fromjson"]
            .iter()
            .map(|f| concur::json::JsonUpdate::new(*f).compile().unwrap())
            .collect());
    PROGRAMS.with(|programs| {
        let mut ok = false;
        for p in programs {
            match p.run(Some(input), "doc") {
                Ok(_) => ok = true,
                Err(e) => assert_eq!(e.kind(), ErrorKind::Invalid, "{e}"),
            }
        }
        ok
    })
}

// ---- globs and paths ----

/// Splits an input in two at its first `|` (pattern, path).
fn two(input: &[u8]) -> (String, String) {
    let s = String::from_utf8_lossy(input);
    match s.split_once('|') {
        Some((a, b)) => (a.to_owned(), b.to_owned()),
        None => (s.into_owned(), String::new()),
    }
}

fn guard_seeds() -> Vec<Vec<u8>> {
    [
        "/a/*/memory/MEMORY.md|/a/proj/memory/MEMORY.md",
        "/a/**/M.md|/a/x/y/M.md",
        "/v/file[0-9].txt|/v/file7.txt",
        "/v/file[!0-9].txt|/v/filex.txt",
        "/d/***************x|/d/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "/d/**/**/**/y|/d/a/b/c/y",
        "~/.claude/**|/home/u/.claude/x",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// A guard pattern against a path: an answer; a pattern without wildcards matches itself;
/// the compiled guard answers for the path against a fixed cwd.
fn guard_case(input: &[u8]) -> bool {
    let (p, s) = two(input);
    let (p, s) = (cap(&p), cap(&s));
    let hit = hook::guard::glob_match(p.as_bytes(), s.as_bytes());
    if !p.contains(['*', '?', '[']) {
        assert!(hook::guard::glob_match(p.as_bytes(), p.as_bytes()));
    }
    let g = hook::Guard::new([p.as_str()], None);
    let _ = g.protects(Path::new(&s), fixture());
    hit
}

/// Inputs past `PATH_MAX` never reach a matcher (the hook and `reserve` refuse them).
fn cap(s: &str) -> String {
    let mut end = s.len().min(concur::reserve::PATH_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn reserve_seeds() -> Vec<Vec<u8>> {
    [
        "/r/src/**|/r/src/api/x.rs",
        "/r/*.rs|/r/main.*",
        "/r/a\\*b|/r/axb",
        "/r/**/a/**|/r/b/**/c",
        "/r/??*|/r/???",
        "/r/a*a*a*a*a*a*a*a*a*z|/r/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Two reservation globs: overlap is symmetric, and a literal path overlaps itself.
fn reserve_case(input: &[u8]) -> bool {
    let (a, b) = two(input);
    let (a, b) = (cap(&a), cap(&b));
    let one = concur::reserve::globs_overlap(&a, &b);
    assert_eq!(one, concur::reserve::globs_overlap(&b, &a), "not symmetric");
    if !a.contains(['*', '?', '\\']) && a.split('/').any(|s| !s.is_empty()) {
        assert!(concur::reserve::globs_overlap(&a, &a));
    }
    one
}

fn path_seeds() -> Vec<Vec<u8>> {
    [
        "src/x.rs",
        "src/../src/./y.rs",
        "link/a",
        "../../..",
        "/",
        "/**",
        ".",
        "**",
        "src/*.rs",
        "src/a\\*b",
        "mem/M.md",
        "nope/../../x",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// A path as `reserve` and the hook resolve it (against the fixture repository): a target or
/// an `invalid` error; a target is bounded, has no `.`/`..` segment, and a literal one is not a
/// glob unless it is an existing directory (`dir/**`).
fn path_case(input: &[u8]) -> bool {
    let arg = String::from_utf8_lossy(input);
    let cwd = fixture().join("repo");
    let _ = hook::guard::normalize(Path::new(arg.as_ref()));
    let mut ok = false;
    for literal in [false, true] {
        let r = if literal {
            concur::reserve::Target::resolve_literal(&arg, &cwd)
        } else {
            concur::reserve::Target::resolve(&arg, &cwd)
        };
        match r {
            Ok(t) => {
                ok = true;
                assert!(t.full().len() <= 2 * concur::reserve::PATH_MAX + 2);
                assert!(t.pattern.split('/').all(|s| s != "." && s != ".."), "{t:?}");
                if literal && !t.pattern.ends_with("**") {
                    assert!(!t.is_glob(), "literal {arg:?} became glob {t:?}");
                }
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::Invalid, "{e}"),
        }
    }
    ok
}

/// A directory for the targets that touch the file system: a repository `repo/` (with `src/`,
/// `mem/` and a symlink `link` to `src`), kept for the process.
pub fn fixture() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("repo");
        for sub in [".git", "src", "mem"] {
            std::fs::create_dir_all(repo.join(sub)).unwrap();
        }
        std::os::unix::fs::symlink(repo.join("src"), repo.join("link")).unwrap();
        d
    })
    .path()
}
