//! The write guard: is a path one of the `[guard] protect` paths agents may not write with
//! their file tools?
//!
//! Patterns are globs: `*` and `?` stay within one path component, `**` spans any number of
//! components (`a/**/b` also matches `a/b`), `[abc]`/`[a-z]`/`[!a]` are classes; a leading `~/`
//! is the home directory. A candidate path is made absolute (against the payload's `cwd`),
//! `.`/`..` are removed, and then it is checked twice: as written and with symlinks resolved
//! (the longest existing ancestor is canonicalised), against each pattern as written and with
//! its literal directory prefix resolved. So a write through a symlink or a `../` detour to a
//! protected file is caught, and so is a protected path that itself lies under a symlinked
//! directory.
//!
//! This is the hot path of every agent tool call: no database, no directory scan — a few
//! `canonicalize` calls, only for file-writing tools, only when patterns exist.
//!
//! Not guaranteed: a hard link to a protected file under another name is not recognised (it is
//! a different path to the same inode); a guard sees only the agent's file tools, not shell
//! redirections.

use std::path::{Component, Path, PathBuf};

use crate::config::{Config, expand_tilde};

/// The default reason shown to an agent whose write was denied.
pub const DEFAULT_REASON: &str = "this file is shared by concurrent sessions and protected by \
concur; append to it with `concur append --broker FILE JSON` (or the command your project \
documents) instead of editing it";

/// The compiled `[guard]` section.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    patterns: Vec<String>,
    reason: String,
}

impl Guard {
    /// The guard of a configuration.
    pub fn from_config(config: &Config) -> Guard {
        Guard::new(
            config.guard.protect.iter().map(String::as_str),
            config.guard.reason.as_deref(),
        )
    }

    /// A guard from patterns and an optional reason.
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>, reason: Option<&str>) -> Guard {
        let mut out = Vec::new();
        for p in patterns {
            let expanded = expand_tilde(p);
            let lexical = normalize(&expanded);
            let s = lexical.to_string_lossy().into_owned();
            if let Some(resolved) = resolve_literal_prefix(&s)
                && resolved != s
            {
                out.push(resolved);
            }
            out.push(s);
        }
        Guard {
            patterns: out,
            reason: reason.unwrap_or(DEFAULT_REASON).to_owned(),
        }
    }

    /// Whether there is anything to protect.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The reason shown to a denied agent.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The pattern protecting `path` (relative paths are taken against `cwd`), if any.
    pub fn protects(&self, path: &Path, cwd: &Path) -> Option<&str> {
        if self.patterns.is_empty() {
            return None;
        }
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            cwd.join(path)
        };
        let lexical = normalize(&abs);
        let resolved = resolve_existing_prefix(&lexical);
        let candidates = [lexical.to_string_lossy(), resolved.to_string_lossy()];
        self.patterns
            .iter()
            .find(|p| {
                candidates
                    .iter()
                    .any(|c| glob_match(p.as_bytes(), c.as_bytes()))
            })
            .map(String::as_str)
    }
}

/// Removes `.` and resolves `..` lexically (an absolute path stays absolute).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Canonicalises the longest existing ancestor of `p` and appends the rest.
fn resolve_existing_prefix(p: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = p;
    loop {
        if let Ok(real) = std::fs::canonicalize(cur) {
            let mut out = real;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                cur = parent;
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// The pattern with its glob-free leading directories resolved through symlinks.
fn resolve_literal_prefix(pattern: &str) -> Option<String> {
    let first_glob = pattern.find(['*', '?', '['])?;
    let dir_end = pattern[..first_glob].rfind('/')?;
    let (dir, rest) = pattern.split_at(dir_end);
    let real = std::fs::canonicalize(if dir.is_empty() { "/" } else { dir }).ok()?;
    Some(format!(
        "{}{rest}",
        real.to_string_lossy().trim_end_matches('/')
    ))
}

/// One position of a compiled guard pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum G {
    Lit(u8),
    /// `?`: one byte, not `/`.
    One,
    /// `[...]`: the class body is `p[from..to]`.
    Class(usize, usize),
    /// `*`: any run of bytes without `/`.
    Star,
    /// `**`: any run of bytes.
    DStar,
    /// Before a `**/`: reads nothing, leads into the `**` or past the `/` (`a/**/b` matches
    /// `a/b`). A state of its own, so the skip is open only while the `**` has read nothing.
    Skip,
}

fn compile(p: &[u8]) -> Vec<G> {
    // The first `]` at or after each position, so every class end is found in O(1).
    let mut close_at = vec![usize::MAX; p.len() + 1];
    for i in (0..p.len()).rev() {
        close_at[i] = if p[i] == b']' { i } else { close_at[i + 1] };
    }
    let mut out: Vec<G> = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'*' => {
                let run = p[i..].iter().take_while(|&&c| c == b'*').count();
                // `**/` may stand for no directory at all; three or more stars are `**` (any
                // run of bytes) with no such skip.
                if run == 2 && p.get(i + 2) == Some(&b'/') {
                    out.push(G::Skip);
                }
                out.push(if run == 1 { G::Star } else { G::DStar });
                i += run;
            }
            b'?' => {
                out.push(G::One);
                i += 1;
            }
            b'[' => {
                // A `]` right after `[` or `[!` is a literal member.
                let first = i + if p.get(i + 1) == Some(&b'!') { 3 } else { 2 };
                if let Some(end) = close_at.get(first).copied().filter(|&e| e != usize::MAX) {
                    out.push(G::Class(i + 1, end));
                    i = end + 1;
                } else {
                    out.push(G::Lit(b'['));
                    i += 1;
                }
            }
            c => {
                out.push(G::Lit(c));
                i += 1;
            }
        }
    }
    out
}

/// The positions live after reading some bytes, each once (`seen[k] == stamp`), with what they
/// reach without reading: past a `*` or `**` (they match the empty string), and from a
/// [`G::Skip`] past its `**/`.
struct Live {
    list: Vec<usize>,
    seen: Vec<u32>,
    stamp: u32,
    work: Vec<usize>,
}

impl Live {
    fn add(&mut self, g: &[G], k: usize) {
        self.work.push(k);
        while let Some(k) = self.work.pop() {
            if self.seen[k] == self.stamp {
                continue;
            }
            self.seen[k] = self.stamp;
            self.list.push(k);
            match g.get(k) {
                Some(G::Star | G::DStar) => self.work.push(k + 1),
                Some(G::Skip) => {
                    self.work.push(k + 1);
                    self.work.push(k + 3);
                }
                _ => {}
            }
        }
    }
}

/// Glob matching on bytes: `*`, `?` (not across `/`), `**` (across), `[...]` classes.
///
/// The pattern is run as the set of its live positions over the input, one byte at a time, each
/// position at most once a byte: time is at most the product of the two lengths (in practice
/// the input length times the few live positions), memory linear in the pattern, for any
/// pattern. No backtracking: `***************x` against a long name costs what `**x` does.
pub fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let g = compile(p);
    let mut live = Live {
        list: Vec::new(),
        seen: vec![0; g.len() + 4],
        stamp: 1,
        work: Vec::new(),
    };
    live.add(&g, 0);
    let mut cur = Vec::new();
    for &c in s {
        std::mem::swap(&mut cur, &mut live.list);
        live.list.clear();
        live.stamp += 1;
        for &k in &cur {
            let to = match g.get(k) {
                Some(&G::Lit(d)) if c == d => k + 1,
                Some(G::One) if c != b'/' => k + 1,
                Some(&G::Class(from, to)) if c != b'/' && class_matches(&p[from..to], c) => k + 1,
                Some(G::Star) if c != b'/' => k,
                Some(G::DStar) => k,
                _ => continue,
            };
            live.add(&g, to);
        }
        if live.list.is_empty() {
            return false;
        }
    }
    live.seen[g.len()] == live.stamp
}

fn class_matches(class: &[u8], c: u8) -> bool {
    let (negate, class) = match class.split_first() {
        Some((b'!' | b'^', rest)) => (true, rest),
        _ => (false, class),
    };
    let mut i = 0;
    let mut hit = false;
    while i < class.len() {
        if i + 2 < class.len() && class[i + 1] == b'-' {
            hit |= class[i] <= c && c <= class[i + 2];
            i += 3;
        } else {
            hit |= class[i] == c;
            i += 1;
        }
    }
    hit != negate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_end(p: &[u8]) -> Option<usize> {
        // A `]` right after `[` or `[!` is a literal member.
        let start = if p.get(1) == Some(&b'!') { 2 } else { 1 };
        p.iter()
            .enumerate()
            .skip(start + 1)
            .find(|(_, c)| **c == b']')
            .map(|(i, _)| i)
    }

    /// The former backtracking matcher, kept as the reference the linear one must agree with.
    fn reference(p: &[u8], s: &[u8]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => {
                let rest = &p[2..];
                if let Some(after) = rest.strip_prefix(b"/")
                    && reference(after, s)
                {
                    return true;
                }
                (0..=s.len()).any(|i| reference(rest, &s[i..]))
            }
            Some(b'*') => {
                let rest = &p[1..];
                for i in 0..=s.len() {
                    if reference(rest, &s[i..]) {
                        return true;
                    }
                    if s.get(i) == Some(&b'/') {
                        break;
                    }
                }
                false
            }
            Some(b'?') => s.first().is_some_and(|&c| c != b'/') && reference(&p[1..], &s[1..]),
            Some(b'[') => match (class_end(p), s.first()) {
                (Some(end), Some(&c)) if c != b'/' => {
                    class_matches(&p[1..end], c) && reference(&p[end + 1..], &s[1..])
                }
                (Some(_), _) => false,
                (None, _) => s.first() == Some(&b'[') && reference(&p[1..], &s[1..]),
            },
            Some(&c) => s.first() == Some(&c) && reference(&p[1..], &s[1..]),
        }
    }

    /// Every short pattern over a small alphabet against every short path: the same answers as
    /// the backtracking matcher.
    #[test]
    fn the_linear_matcher_agrees_with_backtracking() {
        let alphabet: &[u8] = b"a/*?[]!-";
        let paths: &[&[u8]] = &[
            b"", b"a", b"/", b"a/", b"/a", b"aa", b"a/a", b"[", b"]", b"!", b"-", b"a/b/a", b"//",
            b"a-a", b"*", b"?",
        ];
        let mut pats: Vec<Vec<u8>> = vec![Vec::new()];
        let mut frontier = pats.clone();
        for _ in 0..4 {
            let mut grown = Vec::new();
            for p in &frontier {
                for &c in alphabet {
                    let mut q = p.clone();
                    q.push(c);
                    grown.push(q);
                }
            }
            pats.extend(grown.iter().cloned());
            frontier = grown;
        }
        for p in &pats {
            for s in paths {
                assert_eq!(
                    glob_match(p, s),
                    reference(p, s),
                    "{:?} vs {:?}",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(s)
                );
            }
        }
    }

    #[test]
    fn many_stars_cost_no_backtracking() {
        let name = format!("/d/{}", "a".repeat(5000));
        assert!(!glob_match(b"/d/***************x", name.as_bytes()));
        assert!(glob_match(b"/d/***************a", name.as_bytes()));
        let deep = format!("/d/{}y", "a/".repeat(2000));
        assert!(glob_match(b"/d/**/**/**/**/**/**/y", deep.as_bytes()));
        assert!(!glob_match(b"/d/**/**/**/**/**/**/x", deep.as_bytes()));
    }

    #[test]
    fn globs_match_like_a_shell_plus_double_star() {
        let m = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes());
        assert!(m("/a/*/memory/MEMORY.md", "/a/proj/memory/MEMORY.md"));
        assert!(!m("/a/*/memory/MEMORY.md", "/a/x/y/memory/MEMORY.md"));
        assert!(m("/a/**/MEMORY.md", "/a/x/y/MEMORY.md"));
        assert!(m("/a/**/MEMORY.md", "/a/MEMORY.md"));
        assert!(m("/v/*.jsonl", "/v/verdicts.jsonl"));
        assert!(!m("/v/*.jsonl", "/v/verdicts.json"));
        assert!(m("/v/file[0-9].txt", "/v/file7.txt"));
        assert!(!m("/v/file[!0-9].txt", "/v/file7.txt"));
        assert!(m("/v/?.md", "/v/a.md"));
    }

    #[test]
    fn symlinks_and_dotdot_detours_are_caught() {
        let d = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(real.join("mem")).unwrap();
        std::os::unix::fs::symlink(real.join("mem"), real.join("alias")).unwrap();
        let pat = format!("{}/mem/*.md", real.display());
        let g = Guard::new([pat.as_str()], None);
        assert!(g.protects(&real.join("mem/MEMORY.md"), &real).is_some());
        assert!(g.protects(&real.join("alias/MEMORY.md"), &real).is_some());
        assert!(
            g.protects(&real.join("other/../mem/MEMORY.md"), &real)
                .is_some()
        );
        assert!(g.protects(Path::new("mem/./MEMORY.md"), &real).is_some());
        assert!(g.protects(&real.join("mem/notes.txt"), &real).is_none());
        // A pattern written through the symlink protects the real path too.
        let g = Guard::new([format!("{}/alias/*.md", real.display()).as_str()], None);
        assert!(g.protects(&real.join("mem/MEMORY.md"), &real).is_some());
    }
}
