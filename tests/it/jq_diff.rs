//! `concur json` against the system's jq (Debian's `jq` package), on generated and hand-picked
//! filter/document pairs: path updates that create nested objects and arrays, `del`, `paths`,
//! `to_entries`, `reduce`/`foreach`, string and regex functions, `$ENV`.
//!
//! Each filter `F` runs as `[F]` (every output, in order) on each document: in jq as
//! `try ([F] | {ok: .}) catch {err: .}` (one jq process per filter, the documents as its input
//! stream), in concur through the library's [`JsonUpdate`] (the code `concur json` runs). Two
//! results agree when both are errors (messages differ by design) or both are equal JSON
//! (numbers compared by value). The differences that remain are listed in `KNOWN` with their
//! reason, as docs/files.md lists them; any other difference fails the test, and a `KNOWN`
//! entry that no longer differs fails it too (remove it from both). `now` is left out: its value
//! differs by the time.

use std::io::Write;
use std::process::{Command, Stdio};

use concur::json::JsonUpdate;
use serde_json::Value;

/// Pairs where concur (jaq) and jq 1.6 differ, and why. Keep in step with docs/files.md.
const KNOWN: &[(&str, &str)] = &[
    ("tostream", "jaq has no tostream"),
    (
        "[tostream] | fromstream(.[])",
        "jaq has no tostream/fromstream",
    ),
    (
        "input_line_number?",
        "concur json has one input document, no input stream: no input_line_number",
    ),
    (
        ". as [$a, $b] ?// $a | $a",
        "jaq has no destructuring alternative operator ?//",
    ),
    (
        "inside(\"a, b, c, d\")?",
        "jaq answers false where jq errors (containment of different types)",
    ),
    (
        "contains(\"b\")?",
        "jaq answers false where jq errors (containment of different types)",
    ),
    (
        "in({\"a\":1})?",
        "jaq answers false where jq errors (a non-string key of an object)",
    ),
    (
        "flatten?",
        "jaq flattens arrays only; jq 1.6 also flattens an object's values",
    ),
    (
        ".[1.5]?",
        "jaq: a number index on an object is null; jq errors",
    ),
    (
        "del(.[1, 2])",
        "jaq: a number index on an object is null (nothing to delete); jq errors",
    ),
    (
        "index(\",\")?",
        "jaq errors on a non-string, non-array input; jq returns null",
    ),
    (
        "indices(\", \")?",
        "jaq errors on a non-string, non-array input; jq returns null",
    ),
    (
        "reduce .[]? as $x (0; . + ($x | numbers))",
        "an update with no output: jaq's reduce yields nothing, jq's yields null",
    ),
    (
        ".b[1:] = [\"x\"]",
        "a slice of a missing (null) array: jaq cannot take the path, jq creates the array",
    ),
    (
        "from_entries?",
        "jaq builds objects with non-string keys (refused as not JSON); jq errors inside ?",
    ),
    (
        "to_entries? | from_entries",
        "jaq builds objects with non-string keys (refused as not JSON); jq errors",
    ),
];

/// The documents every filter runs on.
const DOCS: &[&str] = &[
    "{}",
    "null",
    r#"{"a":1,"b":[1,2,3],"c":{"d":"x"}}"#,
    r#"{"a":{"b":{"c":1}},"sessions":{"s1":{"since":5}}}"#,
    r#"[1,"two",null,true,{"k":[3,4]},[5,[6]]]"#,
    r#""a, b, c""#,
    "[]",
    r#"{"x":[{"id":1,"v":"a"},{"id":2,"v":"b"}],"n":-2.5}"#,
];

/// Filters written by hand, each run on every document.
const HAND: &[&str] = &[
    ".",
    ".a",
    ".a.b.c = 1",
    "setpath([\"a\",\"b\"]; 1)",
    "setpath([\"x\",2]; 1)",
    "setpath([]; 7)",
    ".sessions[\"s2\"] = {since: 9}",
    ".a[0].b = 1",
    ".x[3] = \"y\"",
    ".a.b |= 3",
    ".a += 1",
    ".n -= 1",
    ".a //= 4",
    ".q //= {z: 1}",
    ".a = (1, 2)",
    ".b[] |= . * 2",
    ".b[1:] = [\"x\"]",
    ".x[].v |= ascii_upcase",
    "del(.a)",
    "del(.b[0])",
    "del(.x[] | select(.id == 1))",
    "del(.[1, 2])",
    "delpaths([[\"a\"], [\"c\", \"d\"]])",
    "to_entries",
    "from_entries?",
    "with_entries(.value |= tostring)",
    "[paths]",
    "[paths(type == \"number\")]",
    "[path(..)]",
    "getpath([\"a\",\"b\"])",
    "[getpath([\"c\",\"d\"], [\"zz\"])]",
    "reduce .[]? as $x (0; . + ($x | numbers))",
    "[foreach (.[]? | numbers) as $x (0; . + $x)]",
    "[foreach range(5) as $i (null; $i; [$i, .])]",
    "reduce range(4) as $i ([]; .[$i] = $i * $i)",
    "keys",
    "[.[]?]",
    "length",
    "type",
    "map_values(type)?",
    "[.. | numbers]",
    "[.. | strings]",
    "tostream",
    "[tostream] | fromstream(.[])",
    "add",
    "any",
    "all",
    "flatten?",
    "[range(0; 10; 3)]",
    "[limit(3; range(10))]",
    "first(range(5))",
    "[.[]?] | sort",
    "[.[]?] | unique",
    "group_by(type)?",
    "min_by(.id)?",
    "to_entries | map(.key) | join(\",\")",
    "tojson",
    "tojson | fromjson",
    "tostring",
    "@json",
    "@base64?",
    "@uri?",
    "@csv?",
    "[.[]?] | @csv?",
    "[.[]? | scalars] | @tsv",
    "[1, \"a\\\"b\", null, true, 1.5] | @csv",
    "[\"a\\tb\", \"c\\\\d\"] | @tsv",
    "@csv \"row: \\([1, \"x\"])\"",
    "[1, 2, 3] | del(.[0, 2])",
    "[1, 2, 3] | del(.[-1])",
    "[1, 2, 3] | delpaths([[0], [1]])",
    "{\"a\": {\"b\": 1}} | del(.a.b, .z.q)",
    "\"xabx\" | ltrimstr(\"x\") | rtrimstr(\"x\")",
    "[leaf_paths]",
    "[1, 2] | IN(1, 2)",
    "IN([1, 2][]; 2, 3)",
    "@html?",
    "@sh?",
    "ascii_downcase?",
    "ltrimstr(\"a\")",
    "rtrimstr(\"c\")",
    "startswith(\"a\")?",
    "endswith(\"c\")?",
    "split(\", \")?",
    "explode?",
    "explode? | implode",
    "test(\"b\")?",
    "[match(\"[a-c]\"; \"g\") | .offset]?",
    "capture(\"(?<first>[a-z])\")?",
    "sub(\"a\"; \"A\")?",
    "gsub(\"[ab]\"; \"X\")?",
    "[scan(\"[a-z]\")]?",
    "ascii_downcase? | test(\"A\"; \"i\")",
    "splits(\", \")?",
    "index(\",\")?",
    "indices(\", \")?",
    "inside(\"a, b, c, d\")?",
    "contains(\"b\")?",
    "has(\"a\")?",
    "in({\"a\":1})?",
    "tostring | length",
    "utf8bytelength?",
    "if type == \"object\" then .a else . end",
    "try error(\"boom\") catch .",
    ".[\"a\"]?",
    ".a?.b?",
    "[.[]? | objects]",
    "(.. | numbers) |= . + 1",
    "walk(if type == \"number\" then . + 1 else . end)",
    "to_entries? | from_entries",
    "$ENV | type",
    "$ENV.HOME == env.HOME",
    "$ENV | has(\"PATH\")",
    "[splits(\", \")]?",
    "[.[]?] | min, max",
    "input_line_number?",
    "getpath([\"a\"]) as $x | $x",
    ". as [$a, $b] ?// $a | $a",
    "[.[]?] | indices(1)",
    "infinite | isinfinite",
    "nan | isnan",
    "[1, 2] - [2]",
    "{} * {a: {b: 1}}",
    "\"x\" * 3",
    "10 / 4",
    "7 % 3",
    "[1, [2]] | flatten",
    "[3, 1, 2] | sort_by(-.)",
    "\"abc\" | .[1:]",
    "[1, 2, 3] | .[-1:]",
    "[1, 2, 3] | .[1]",
    "{\"a\": 1} | to_entries[0].key",
    "[\"a\", \"b\"] | join(\"-\")",
    "\"1.5\" | tonumber",
    "1 | tostring",
    "splits(\"a\")?",
    "@text",
    "ascii",
    "env | type",
    "[range(3)] | combinations? | tostring",
    "[[1, 2], [3, 4]] | [combinations]",
    "[1, 2] | IN(1)",
    "[.[]?] | any(. == 1)",
    "input? // \"none\"",
    "getpath([\"x\", 0, \"id\"])",
    "paths(..) | length",
    "ltrimstr(1)",
    ".[1.5]?",
    "splits(\"a\"; \"g\")?",
];

/// Update targets × operators, generated.
const TARGETS: &[&str] = &[
    ".a",
    ".a.b",
    ".a.b.c",
    ".x[2]",
    ".a[0].b",
    ".sessions[\"s1\"]",
    ".b[1]",
    ".c.d",
    ".z",
];
const OPS: &[&str] = &["= 1", "|= [.]", "+= 1", "//= 5", "|= tostring", "= {k: .a}"];

/// The filters: hand-picked, then every target with every operator.
fn filters() -> Vec<String> {
    let mut v: Vec<String> = HAND.iter().map(|f| (*f).to_string()).collect();
    for t in TARGETS {
        for op in OPS {
            v.push(format!("{t} {op}"));
        }
    }
    v
}

/// jq's result for each document: `Ok(outputs)` or `Err(message)`.
fn jq_results(filter: &str) -> Vec<Result<Value, String>> {
    let wrapped = format!("try ([{filter}] | {{ok: .}}) catch {{err: .}}");
    let mut child = Command::new("jq")
        .args(["-c", &wrapped])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn jq");
    let input = DOCS.join("\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    if lines.len() != DOCS.len() {
        // jq could not compile the filter (or stopped early): an error for every document.
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return DOCS.iter().map(|_| Err(why.clone())).collect();
    }
    lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            match v.get("ok") {
                Some(ok) => Ok(ok.clone()),
                None => Err(v["err"].to_string()),
            }
        })
        .collect()
}

/// concur's result for each document (the filter compiled once, run on each).
fn concur_results(filter: &str) -> Vec<Result<Value, String>> {
    let program = match JsonUpdate::new(format!("[{filter}]")).compile() {
        Ok(p) => p,
        Err(e) => return DOCS.iter().map(|_| Err(e.to_string())).collect(),
    };
    DOCS.iter()
        .map(|doc| {
            let out = program
                .run(Some(doc.as_bytes()), "document")
                .map_err(|e| e.to_string())?
                .expect("a document");
            Ok(serde_json::from_str(&out.value).unwrap())
        })
        .collect()
}

/// Equal JSON, numbers compared by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn jq_available() -> bool {
    Command::new("jq")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn json_agrees_with_jq_on_generated_and_hand_picked_filters() {
    if !jq_available() {
        eprintln!("skipping the jq differential: jq is not installed (Debian package jq)");
        return;
    }
    let version = Command::new("jq").arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let filters = filters();
    let mut pairs = 0;
    let mut agree = 0;
    let mut known = 0;
    let mut known_seen = std::collections::BTreeSet::new();
    let mut unexpected = Vec::new();
    for f in &filters {
        let reason = KNOWN.iter().find(|(k, _)| k == f).map(|(_, r)| *r);
        let ours = concur_results(f);
        for ((doc, jq), ours) in DOCS.iter().zip(jq_results(f)).zip(ours) {
            pairs += 1;
            let ok = match (&jq, &ours) {
                (Err(_), Err(_)) => true,
                (Ok(a), Ok(b)) => same(a, b),
                _ => false,
            };
            if ok {
                agree += 1;
            } else if reason.is_some() {
                known += 1;
                known_seen.insert(f.clone());
            } else {
                unexpected.push(format!(
                    "filter {f:?} on {doc}:\n  jq:     {jq:?}\n  concur: {ours:?}"
                ));
            }
        }
    }
    eprintln!(
        "jq differential ({version}): {} filters x {} documents = {pairs} pairs: {agree} agree, \
         {known} differ as listed ({} filters), {} differ unexpectedly",
        filters.len(),
        DOCS.len(),
        known_seen.len(),
        unexpected.len()
    );
    for f in &known_seen {
        let reason = KNOWN.iter().find(|(k, _)| k == f).unwrap().1;
        eprintln!("  known: {f}: {reason}");
    }
    assert!(pairs >= 500, "only {pairs} pairs");
    let stale: Vec<&str> = KNOWN
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| !known_seen.contains(*f))
        .collect();
    assert!(
        stale.is_empty(),
        "listed as differing but now agree (remove from KNOWN and docs/files.md): {stale:?}"
    );
    assert!(
        unexpected.is_empty(),
        "{} unexpected differences:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}
