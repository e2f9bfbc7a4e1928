//! The library's modules form no import circle: a test that reads `src/**/*.rs` (not `src/bin`,
//! the CLI over the library), maps each file to its module and each `crate::…` / `super::…`
//! path in its code (comments and string literals skipped) to the module it names, and fails
//! on a cycle.
//!
//! Two levels are checked. Between top-level modules (`crate::X`): a cycle is any set of them
//! that reach each other. Inside one module: a cycle among sibling submodules (`etcd::client`,
//! `etcd::pool`, ...); a module and its own submodules referring to each other (`mod.rs`
//! re-exporting a child, a child using `super::`) is how Rust modules are built, not a circle.
//! `sys`, `error`, `id`, `home` and `time` are leaves: they may use only each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules every other module may use, which use no module but each other.
const LEAVES: [&str; 6] = ["sys", "error", "id", "home", "time", "wait"];

/// Known cycles, each one to be removed by the change that breaks it (the test fails once an
/// exception is no longer needed, so a stale one cannot linger). None today.
const ALLOWED: [&[&str]; 0] = [];

/// The code of a Rust file as tokens: identifiers, `::`, and single punctuation characters;
/// comments, string, byte-string and char literals and whitespace are dropped.
fn tokens(src: &str) -> Vec<String> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_string(&c, i + 1);
        } else if (ch == 'r' || ch == 'b') && raw_string_start(&c, i).is_some() {
            let (hashes, body) = raw_string_start(&c, i).expect("checked");
            i = body;
            while i < c.len() {
                if c[i] == '"'
                    && c[i + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == '#')
                        .count()
                        == hashes
                {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
        } else if ch == 'b' && next == Some('"') {
            i = skip_string(&c, i + 2);
        } else if ch == '\'' {
            // A char literal ('a', '\n', '\'', '"') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(c[start..i].iter().collect());
        } else if ch == ':' && next == Some(':') {
            out.push("::".into());
            i += 2;
        } else {
            if !ch.is_whitespace() {
                out.push(ch.to_string());
            }
            i += 1;
        }
    }
    out
}

/// The index after the string literal whose body starts at `i`.
fn skip_string(c: &[char], mut i: usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// For `r"`, `r#"`, `br"`, ... at `i`: the number of `#` and the index where the body starts.
fn raw_string_start(c: &[char], i: usize) -> Option<(usize, usize)> {
    if i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_') {
        return None; // inside an identifier
    }
    let mut j = i;
    if c[j] == 'b' {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = c[j..].iter().take_while(|&&h| h == '#').count();
    (c.get(j + hashes) == Some(&'"')).then_some((hashes, j + hashes + 1))
}

/// The module a file under `src/` is: `a.rs` and `a/mod.rs` are `a`, `a/b.rs` is `a::b`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    if last != "mod.rs" {
        parts.push(last.trim_end_matches(".rs").to_owned());
    }
    parts
}

/// Every path a file's code names from the crate root: `crate::a::b`, `super::b` resolved
/// against the file's module (and the inline modules around the path), each item of a
/// `crate::{a, b::c}` group.
fn crate_paths(module: &[String], toks: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // Inline modules (`mod tests { ... }`) open at a brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].as_str();
        match t {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            "mod" if toks.get(i + 2).is_some_and(|b| b == "{") => {
                inline.push((toks[i + 1].clone(), depth));
            }
            _ => {}
        }
        let prev_is_sep = i > 0 && toks[i - 1] == "::";
        if (t == "crate" || t == "super")
            && !prev_is_sep
            && toks.get(i + 1).is_some_and(|s| s == "::")
        {
            let mut base: Vec<String> = if t == "crate" {
                Vec::new()
            } else {
                let mut m = module.to_vec();
                m.extend(inline.iter().map(|(n, _)| n.clone()));
                m.pop();
                m
            };
            let mut j = i + 2;
            while toks.get(j).is_some_and(|s| s == "super")
                && toks.get(j + 1).is_some_and(|s| s == "::")
            {
                base.pop();
                j += 2;
            }
            collect_tree(toks, j, &base, &mut out);
        }
        i += 1;
    }
    out
}

/// Adds the paths of the use-tree starting at `toks[j]` under `base` (a path, or a `{...}` group).
fn collect_tree(toks: &[String], j: usize, base: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = base.to_vec();
    let mut j = j;
    loop {
        match toks.get(j).map(String::as_str) {
            Some("{") => {
                // Each comma-separated item at this group's depth is a tree of its own.
                let mut k = j + 1;
                let mut start = true;
                let mut depth = 0;
                while k < toks.len() {
                    match toks[k].as_str() {
                        "{" => depth += 1,
                        "}" if depth == 0 => break,
                        "}" => depth -= 1,
                        "," if depth == 0 => start = true,
                        _ if start && depth == 0 => {
                            start = false;
                            collect_tree(toks, k, &path, out);
                        }
                        _ => {}
                    }
                    k += 1;
                }
                return;
            }
            Some(id) if id.chars().all(|ch| ch.is_alphanumeric() || ch == '_') && id != "self" => {
                path.push(id.to_owned());
                if toks.get(j + 1).is_some_and(|s| s == "::") {
                    j += 2;
                } else {
                    break;
                }
            }
            _ => break,
        }
    }
    out.push(path);
}

/// Every module file of the library (not `src/bin`, not the crate root), by module path.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(src).unwrap().to_path_buf();
            if p.is_dir() {
                if rel != Path::new("bin") {
                    dirs.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") && rel != Path::new("lib.rs") {
                out.insert(module_of(&rel), p);
            }
        }
    }
    out
}

/// The longest prefix of `path` that is a module file.
fn resolve(path: &[String], known: &BTreeMap<Vec<String>, PathBuf>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains_key(p))
}

/// The strongly connected components with more than one node (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.stack.contains(&w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = BTreeSet::new();
            while let Some(w) = t.stack.pop() {
                comp.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// Edges between modules, with one place each edge is made, at both levels.
struct Graphs {
    edges: BTreeMap<String, BTreeSet<String>>,
    witness: BTreeMap<(String, String), String>,
}

fn graphs(src: &Path) -> Graphs {
    let known = modules(src);
    let mut g = Graphs {
        edges: BTreeMap::new(),
        witness: BTreeMap::new(),
    };
    for (module, file) in &known {
        let text = std::fs::read_to_string(file).unwrap();
        for path in crate_paths(module, &tokens(&text)) {
            let Some(target) = resolve(&path, &known) else {
                continue; // an item of the crate root (`crate::Error`) or an outside path
            };
            let (from, to) = if module[0] == target[0] {
                // Inside one top-level module: only between siblings, named at the level
                // below their common ancestor.
                let common = module
                    .iter()
                    .zip(&target)
                    .take_while(|(a, b)| a == b)
                    .count();
                if common == module.len() || common == target.len() {
                    continue; // a module and its own submodule
                }
                (module[..=common].join("::"), target[..=common].join("::"))
            } else {
                (module[0].clone(), target[0].clone())
            };
            let at = format!(
                "{}: crate::{}",
                file.strip_prefix(src).unwrap().display(),
                path.join("::")
            );
            g.witness.entry((from.clone(), to.clone())).or_insert(at);
            g.edges.entry(from).or_default().insert(to);
        }
    }
    g
}

#[test]
fn src_has_no_import_circle_between_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graphs(&src);
    let mut problems = Vec::new();
    let allowed: Vec<BTreeSet<String>> = ALLOWED
        .iter()
        .map(|c| c.iter().map(|s| (*s).to_owned()).collect())
        .collect();
    let found = cycles(&g.edges);
    for c in &found {
        if allowed.contains(c) {
            continue;
        }
        let mut why = Vec::new();
        for a in c {
            for b in c {
                if let Some(at) = g.witness.get(&(a.clone(), b.clone())) {
                    why.push(format!("    {a} -> {b} ({at})"));
                }
            }
        }
        problems.push(format!("circle {c:?}:\n{}", why.join("\n")));
    }
    for a in &allowed {
        if !found.contains(a) {
            problems.push(format!(
                "the allowed circle {a:?} is gone: remove it from ALLOWED in tests/it/imports.rs"
            ));
        }
    }
    for (from, tos) in &g.edges {
        if LEAVES.contains(&from.as_str()) {
            for to in tos.iter().filter(|t| !LEAVES.contains(&t.as_str())) {
                let at = &g.witness[&(from.clone(), to.clone())];
                problems.push(format!("leaf {from} uses {to} ({at})"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_circle_check_sees_paths_groups_and_super_but_not_comments_or_strings() {
    let code = r##"
        //! See [`crate::doc_only`].
        use crate::{alpha::One, beta::{self, Two}};
        use super::gamma;
        fn f() { let s = "crate::in_string"; let r = r#"crate::raw"#; let c = '"'; }
        fn g() { crate::delta::x(); }
        /* crate::in_block */
        mod tests { use super::epsilon; }
    "##;
    let module = vec!["top".to_owned(), "child".to_owned()];
    let paths: BTreeSet<String> = crate_paths(&module, &tokens(code))
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    let want: BTreeSet<String> = [
        "alpha::One",
        "beta",
        "beta::Two",
        "top::gamma",
        "delta::x",
        "top::child::epsilon",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(paths, want);
    let g: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
        .into_iter()
        .fold(BTreeMap::new(), |mut g, (x, y)| {
            g.entry(x.to_owned()).or_default().insert(y.to_owned());
            g
        });
    let abc: BTreeSet<String> = ["a", "b", "c"].into_iter().map(str::to_owned).collect();
    assert_eq!(cycles(&g), vec![abc]);
}

/// The lines of the `.rs` files under `dir`.
fn rust_lines(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                rust_lines(&p)
            } else if p.extension().is_some_and(|x| x == "rs") {
                std::fs::read_to_string(&p).unwrap().lines().count()
            } else {
                0
            }
        })
        .sum()
}

/// The CLI stays thin over the library: src/bin is at most a tenth of src (issue 14), so verb
/// logic, rendering and backend choices live in the library where Rust callers get them too.
#[test]
fn src_bin_is_at_most_a_tenth_of_src() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (bin, all) = (rust_lines(&src.join("bin")), rust_lines(&src));
    assert!(
        bin * 10 <= all,
        "src/bin has {bin} of {all} lines ({} per mille): move logic into the library",
        bin * 1000 / all
    );
}
