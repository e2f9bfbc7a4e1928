//! Path globs for reservations, and the question "can these two globs name a common path?".
//!
//! A glob is a `/`-separated list of segments. A segment is `**` (zero or more whole segments) or
//! a pattern of literal characters, `*` (any run of characters within one segment, also empty)
//! and `?` (exactly one character). `\` makes the next character literal (how a file literally
//! named `a*b` is stored). `[...]` and `{a,b}` are not special: they are literal characters.
//!
//! [`overlaps`] decides whether the two languages intersect, exactly for this grammar, by a
//! bottom-up walk over pairs of positions (segments, then characters inside a segment pair):
//! time bounded by the product of the lengths, memory linear, whatever the pattern. It is
//! symmetric, so a claim on `src/**` conflicts with `src/api/x.rs` and `src/api/x.rs` with
//! `src/**`. The one conservative approximation: a `*` segment is taken to match even where the
//! only common string is empty (paths have no empty segments), and `**` matches zero segments, so
//! `src/**` also overlaps the directory `src` itself. Both over-report, never miss a conflict.

/// One character position of a segment pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Lit(char),
    One,
    Star,
}

/// One segment of a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// `**`: zero or more segments.
    Any,
    /// A single-segment pattern.
    Pat(Vec<Tok>),
}

/// Whether `s` has an unescaped glob metacharacter (`*` or `?`).
pub(crate) fn has_meta(s: &str) -> bool {
    let mut esc = false;
    for c in s.chars() {
        if esc {
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == '*' || c == '?' {
            return true;
        }
    }
    false
}

/// Escapes `*`, `?` and `\` in a literal path segment.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The part of a glob before its first metacharacter or escape, as plain text.
pub(crate) fn literal_prefix(s: &str) -> &str {
    let end = s.find(['*', '?', '\\']).unwrap_or(s.len());
    &s[..end]
}

fn parse_seg(s: &str) -> Seg {
    if s == "**" {
        return Seg::Any;
    }
    let mut toks = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '\\' => Tok::Lit(chars.next().unwrap_or('\\')),
            '*' => {
                if toks.last() == Some(&Tok::Star) {
                    continue;
                }
                Tok::Star
            }
            '?' => Tok::One,
            c => Tok::Lit(c),
        });
    }
    Seg::Pat(toks)
}

/// Parses an absolute glob (`/a/b/**`) into segments; empty segments are skipped.
pub(crate) fn parse(glob: &str) -> Vec<Seg> {
    let mut out: Vec<Seg> = Vec::new();
    for s in glob.split('/').filter(|s| !s.is_empty()) {
        let seg = parse_seg(s);
        // `a/**/**/b` is `a/**/b`.
        if seg == Seg::Any && out.last() == Some(&Seg::Any) {
            continue;
        }
        out.push(seg);
    }
    out
}

/// Whether two parsed globs can match a common path.
///
/// Bottom-up over pairs of segment positions, two rows at a time: time is the product of the
/// segment counts (plus, for each pair of pattern segments that can still matter, the product of
/// their lengths), memory is linear in `b`. No recursion, so no stack depth to exhaust.
pub(crate) fn overlaps(a: &[Seg], b: &[Seg]) -> bool {
    if a == b {
        // Every glob names at least one path.
        return true;
    }
    // `next[j]`: a[i + 1..] against b[j..]; `cur[j]`: a[i..] against b[j..].
    let mut next = vec![false; b.len() + 2];
    let mut cur = vec![false; b.len() + 2];
    for i in (0..=a.len()).rev() {
        for j in (0..=b.len()).rev() {
            cur[j] = match (a.get(i), b.get(j)) {
                (None, None) => true,
                // `**` ends (matches nothing more), or swallows the other side's next segment.
                (Some(Seg::Any), _) if next[j] => true,
                (Some(Seg::Any), Some(_)) => cur[j + 1],
                (_, Some(Seg::Any)) if cur[j + 1] => true,
                (Some(_), Some(Seg::Any)) => next[j],
                (Some(Seg::Pat(x)), Some(Seg::Pat(y))) => next[j + 1] && chars(x, y),
                _ => false,
            };
        }
        std::mem::swap(&mut cur, &mut next);
    }
    next[0]
}

/// Whether two single-segment patterns can match a common string: the same two-row walk over
/// character positions (`*` plays the part of `**`).
fn chars(x: &[Tok], y: &[Tok]) -> bool {
    let star = |t: &[Tok]| t.contains(&Tok::Star);
    if x == y {
        return true;
    }
    if !star(x) && !star(y) {
        // Position by position: the common case of a path against a path, linear.
        return x.len() == y.len()
            && x.iter().zip(y).all(|pair| match pair {
                (Tok::Lit(c), Tok::Lit(d)) => c == d,
                _ => true,
            });
    }
    let mut next = vec![false; y.len() + 2];
    let mut cur = vec![false; y.len() + 2];
    for p in (0..=x.len()).rev() {
        for q in (0..=y.len()).rev() {
            cur[q] = match (x.get(p), y.get(q)) {
                (None, None) => true,
                (Some(Tok::Star), _) if next[q] => true,
                (Some(Tok::Star), Some(_)) => cur[q + 1],
                (_, Some(Tok::Star)) if cur[q + 1] => true,
                (Some(_), Some(Tok::Star)) => next[q],
                (Some(Tok::Lit(c)), Some(Tok::Lit(d))) => c == d && next[q + 1],
                (Some(_), Some(_)) => next[q + 1],
                _ => false,
            };
        }
        std::mem::swap(&mut cur, &mut next);
    }
    next[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(a: &str, b: &str) -> bool {
        let (pa, pb) = (parse(a), parse(b));
        let one = overlaps(&pa, &pb);
        assert_eq!(one, overlaps(&pb, &pa), "not symmetric: {a} vs {b}");
        one
    }

    #[test]
    fn a_path_and_a_glob_conflict_in_both_directions() {
        assert!(ov("/r/src/**", "/r/src/api/x.rs"));
        assert!(ov("/r/src/api/x.rs", "/r/src/**"));
        assert!(ov("/r/src/*.rs", "/r/src/main.rs"));
        assert!(!ov("/r/src/*.rs", "/r/src/api/x.rs"));
        assert!(!ov("/r/src/*.rs", "/r/src/main.c"));
        assert!(ov("/r/src/?.rs", "/r/src/a.rs"));
        assert!(!ov("/r/src/?.rs", "/r/src/ab.rs"));
        assert!(!ov("/r/docs/**", "/r/src/x.rs"));
        assert!(ov("/r/a/b", "/r/a/b"));
        assert!(!ov("/r/a/b", "/r/a/c"));
        assert!(!ov("/r/a/b", "/r/a/b/c"));
    }

    #[test]
    fn two_globs_overlap_exactly_when_some_path_matches_both() {
        // `*` against `*` with different literals around it.
        assert!(ov("/r/*.rs", "/r/main.*"));
        assert!(ov("/r/a*", "/r/*b"));
        assert!(!ov("/r/a*.rs", "/r/b*.rs"));
        assert!(!ov("/r/*.rs", "/r/*.md"));
        assert!(ov("/r/*x*", "/r/*y*"));
        // `?` counts characters.
        assert!(ov("/r/??", "/r/a*"));
        assert!(!ov("/r/??", "/r/???"));
        assert!(ov("/r/??*", "/r/???"));
        // `**` in the middle and on both sides.
        assert!(ov("/r/**/test.rs", "/r/src/**"));
        assert!(ov("/r/src/**/mod.rs", "/r/**/api/*"));
        assert!(!ov("/r/src/**/*.rs", "/r/docs/**"));
        assert!(!ov("/r/**/*.rs", "/r/**/*.md"));
        assert!(ov("/r/**", "/r/**"));
        assert!(ov("/r/**/a/**", "/r/b/**/c"));
        // Segment counts matter without `**`.
        assert!(!ov("/r/*/*", "/r/*"));
        assert!(ov("/r/*/*", "/r/a/*"));
    }

    #[test]
    fn escaped_metacharacters_are_literal() {
        let lit = format!("/r/{}", escape("a*b"));
        assert!(!has_meta(&lit));
        assert!(ov(&lit, "/r/a*"));
        assert!(!ov(&lit, "/r/axb"));
        assert!(ov("/r/a*", "/r/axb"));
        assert_eq!(literal_prefix("/r/src/*.rs"), "/r/src/");
    }

    /// Brute force: enumerate short paths over a tiny alphabet and compare.
    #[test]
    fn overlap_agrees_with_enumeration() {
        fn matches(g: &[Seg], path: &[&str]) -> bool {
            let p: Vec<Seg> = path
                .iter()
                .map(|s| Seg::Pat(s.chars().map(Tok::Lit).collect()))
                .collect();
            overlaps(g, &p)
        }
        let globs = [
            "a", "b", "*", "?", "a*", "*a", "??", "**", "a/**", "**/b", "*/b", "a/*", "**/a/**",
            "?/*", "ab", "a?b",
        ];
        let segs = ["a", "b", "ab", "ba", "aab", "abb"];
        let mut paths: Vec<Vec<&str>> = segs.iter().map(|s| vec![*s]).collect();
        for x in segs {
            for y in segs {
                paths.push(vec![x, y]);
                for z in ["a", "b"] {
                    paths.push(vec![x, y, z]);
                }
            }
        }
        for g in globs {
            for h in globs {
                let (pg, ph) = (parse(g), parse(h));
                let brute = paths.iter().any(|p| matches(&pg, p) && matches(&ph, p));
                // Exact on this alphabet, except that overlap may say yes where only longer
                // paths than enumerated witness it; check the "never miss" direction strictly.
                if brute {
                    assert!(overlaps(&pg, &ph), "missed overlap {g} vs {h}");
                }
            }
        }
    }
}
