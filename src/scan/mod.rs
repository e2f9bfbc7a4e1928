//! Static inventory of shared-state writers: `concur scan`.
//!
//! Bash/sh (also extension-less files with a shell shebang), JavaScript, TypeScript (cargo
//! feature `typescript`, on by default) and Python are parsed with tree-sitter. A query per
//! language (`queries/*.scm`) finds the candidate write sites; Rust walks the tree in order to
//! give them meaning: which path (resolved into a template by [`resolve`]), which pattern, whether
//! a lock covers them, and a risk with a one-line reason ([`findings`]). Writers are then grouped
//! by template across files and languages ([`inventory`]). Agent hook configuration
//! ([`hooks`]) marks the scripts that run concurrently across sessions.
//!
//! Guarantees: a parse error never stops the scan; it lowers the confidence of findings within
//! a few lines of it and is reported in [`Report::parse_errors`]. Code inside heredocs fed to an
//! interpreter, `bash -c`, `trap`, `eval`, `flock -c`, `execSync` and `subprocess`/`os.system`
//! strings is parsed again as the language it is.
//!
//! Not guaranteed: this is static analysis. Dynamic paths are reported with placeholders and
//! medium confidence; writes through libraries the scanner does not know are not seen; `safe`
//! means the pattern is right, not that every other writer of the file follows it.

pub mod bash;
mod common;
pub mod findings;
pub mod hooks;
pub mod inventory;
pub mod javascript;
pub mod python;
mod render;
pub mod resolve;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
pub use findings::{Confidence, Finding, Pattern, Risk};
pub use inventory::Resource;

/// A language the scanner parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// bash / sh / zsh-compatible shell.
    Bash,
    /// JavaScript (also `.mjs`, `.cjs`).
    JavaScript,
    /// TypeScript (`.ts`, `.mts`, `.cts`).
    TypeScript,
    /// TSX.
    Tsx,
    /// Python.
    Python,
}

impl Lang {
    /// The language of a file, from its extension, else its shebang line.
    pub fn detect(path: &Path, head: &[u8]) -> Option<Lang> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext {
            "sh" | "bash" | "zsh" | "ksh" => return Some(Lang::Bash),
            "js" | "mjs" | "cjs" | "jsx" => return Some(Lang::JavaScript),
            "ts" | "mts" | "cts" if cfg!(feature = "typescript") => {
                return Some(Lang::TypeScript);
            }
            "tsx" if cfg!(feature = "typescript") => return Some(Lang::Tsx),
            "py" => return Some(Lang::Python),
            "" => {}
            _ => return None,
        }
        let first = head.split(|&b| b == b'\n').next().unwrap_or(b"");
        let line = std::str::from_utf8(first).ok()?.strip_prefix("#!")?;
        let mut words = line.split_whitespace();
        let mut prog = words.next()?.rsplit('/').next()?;
        if prog == "env" {
            prog = words.find(|w| !w.starts_with('-'))?;
        }
        match prog {
            "sh" | "bash" | "dash" | "zsh" | "ksh" => Some(Lang::Bash),
            p if p.starts_with("python") => Some(Lang::Python),
            "node" | "nodejs" | "deno" | "bun" => Some(Lang::JavaScript),
            _ => None,
        }
    }

    /// The language's name as printed.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Bash => "bash",
            Lang::JavaScript => "javascript",
            Lang::TypeScript => "typescript",
            Lang::Tsx => "tsx",
            Lang::Python => "python",
        }
    }
}

/// A parse error: reported, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParseError {
    /// The file.
    pub file: String,
    /// The line of the error (1-based).
    pub line: usize,
}

/// The result of a scan.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One finding per site (the strongest; the others are its notes), worst first, then by
    /// file and line.
    pub findings: Vec<Finding>,
    /// Writers grouped by resolved template (every pattern seen, notes included).
    pub inventory: Vec<Resource>,
    /// Parse errors met (each lowered nearby confidence).
    pub parse_errors: Vec<ParseError>,
    /// Files parsed.
    pub files: usize,
    /// Bytes parsed.
    pub bytes: u64,
    /// Files left out as tests (see [`ScanOptions::include_tests`]).
    pub skipped_tests: usize,
}

/// What to scan and how.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Drop findings below this risk (the inventory is built from what is kept).
    pub min_risk: Option<Risk>,
    /// Scan test files too (`tests/`, `__tests__/`, `*.test.*`, `test_*.py`, ...); by default
    /// they are left out of a directory scan (a file given by name is always scanned).
    pub include_tests: bool,
    /// Glob patterns of files to leave out, matched against the path relative to the scanned
    /// directory (`*` within a component, `**` across components; a pattern without `/`
    /// matches any component, like `.gitignore`).
    pub exclude: Vec<String>,
}

/// Scans files and directories.
///
/// File names in the report are relative to the scanned directory (or as given, for a file).
/// Hidden directories other than `.claude`/`.codex`/`.cursor`/`.gemini`, `node_modules`,
/// `.git` and `target` are skipped, and so are tests unless [`ScanOptions::include_tests`];
/// unreadable or non-UTF-8 files are skipped silently. Files are parsed in parallel on every
/// core.
///
/// # Errors
///
/// A path that does not exist or cannot be read as a directory, or an invalid exclude glob.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// let dir = tempfile::tempdir().unwrap();
/// let mut f = std::fs::File::create(dir.path().join("hook.sh")).unwrap();
/// f.write_all(b"echo 1 > /tmp/marker\n").unwrap();
/// let report = concur::scan::scan(&[dir.path().to_path_buf()], &Default::default()).unwrap();
/// assert!(report.findings.iter().any(|f| f.template == "/tmp/marker"));
/// ```
pub fn scan(paths: &[PathBuf], opts: &ScanOptions) -> Result<Report> {
    let excludes = opts
        .exclude
        .iter()
        .map(|g| {
            glob_regex(g)
                .ok_or_else(|| Error::Invalid(format!("invalid exclude glob ({g}): unbalanced [")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut report = Report::default();
    let mut raw = Vec::new();
    for root in paths {
        let meta = std::fs::metadata(root).map_err(Error::with("cannot scan", root))?;
        let mut jobs: Vec<Job> = Vec::new();
        let hook_files = if meta.is_dir() {
            let mut files = Vec::new();
            walk(root, &mut files).map_err(Error::with("read directory", root))?;
            files.sort();
            let mut json = Vec::new();
            for path in files {
                let display = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                if excludes.iter().any(|re| re.is_match(&display)) {
                    continue;
                }
                if Path::new(&display)
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("json"))
                {
                    json.push(display);
                    continue;
                }
                if !opts.include_tests && hooks::is_test(&display) {
                    report.skipped_tests += 1;
                    continue;
                }
                jobs.push(Job {
                    path,
                    display,
                    lang: None,
                    src: String::new(),
                });
            }
            read_sources(&mut jobs);
            let langs: Vec<(String, Lang)> = jobs
                .iter()
                .filter_map(|j| j.lang.map(|l| (j.display.clone(), l)))
                .collect();
            hooks::hook_files(root, &langs, &json)
        } else {
            jobs.push(Job {
                path: root.clone(),
                display: root.to_string_lossy().into_owned(),
                lang: None,
                src: String::new(),
            });
            read_sources(&mut jobs);
            HashSet::new()
        };
        jobs.retain(|j| j.lang.is_some());
        for j in &jobs {
            report.files += 1;
            report.bytes += j.src.len() as u64;
        }
        for (f, e) in scan_jobs(&jobs, &hook_files)? {
            raw.extend(f);
            report.parse_errors.extend(e);
        }
    }
    if let Some(min) = opts.min_risk {
        raw.retain(|f| f.risk >= min);
    }
    report.inventory = inventory::group(&raw);
    report.findings = one_per_site(raw);
    Ok(report)
}

/// A file to scan: where it is, its name in the report, its language and text once read.
struct Job {
    path: PathBuf,
    display: String,
    lang: Option<Lang>,
    src: String,
}

fn read_sources(jobs: &mut [Job]) {
    for j in jobs {
        let Ok(bytes) = std::fs::read(&j.path) else {
            continue;
        };
        let Some(lang) = Lang::detect(&j.path, &bytes) else {
            continue;
        };
        let Ok(src) = String::from_utf8(bytes) else {
            continue;
        };
        j.lang = Some(lang);
        j.src = src;
    }
}

type Scanned = (Vec<Finding>, Vec<ParseError>);

/// Scans the jobs on every core. The tree walks recurse once per syntax level; deeply nested
/// (e.g. minified) code needs more than a default stack, so each worker gets a large one.
fn scan_jobs(jobs: &[Job], hook_files: &HashSet<String>) -> Result<Vec<Scanned>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(jobs.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, Scanned)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                std::thread::Builder::new()
                    .name("concur-scan".into())
                    .stack_size(256 << 20)
                    .spawn_scoped(s, || {
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(j) = jobs.get(i) else { break };
                            let Some(lang) = j.lang else { continue };
                            let hook = hook_files.contains(&j.display);
                            out.push((i, scan_source(&j.display, lang, &j.src, hook)));
                        }
                        out
                    })
            })
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io("spawn scan thread", Path::new("."), e))?;
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        Ok::<_, Error>(all)
    })?;
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}

/// One finding per site (file and first line): the worst (then the most specific pattern)
/// stands, the others become its notes. Sorted worst first, then by file and line.
fn one_per_site(mut raw: Vec<Finding>) -> Vec<Finding> {
    raw.sort_by(|a, b| {
        (&a.file, a.line_start)
            .cmp(&(&b.file, b.line_start))
            .then_with(|| strength(b).cmp(&strength(a)))
    });
    let mut out: Vec<Finding> = Vec::new();
    for f in raw {
        if let Some(last) = out.last_mut()
            && last.file == f.file
            && last.line_start == f.line_start
        {
            let note = format!("{} ({}): {}", f.pattern.name(), f.risk.name(), f.reason);
            if !last.notes.contains(&note) {
                last.notes.push(note);
            }
            continue;
        }
        out.push(f);
    }
    out.sort_by(|a, b| {
        b.risk
            .cmp(&a.risk)
            .then_with(|| (&a.file, a.line_start).cmp(&(&b.file, b.line_start)))
    });
    out
}

/// How strongly a finding speaks for its site: its risk, then its pattern (a read-modify-write
/// or check-then-act says more than the plain write under it; a location finding says least).
fn strength(f: &Finding) -> (Risk, u8) {
    let p = match f.pattern {
        Pattern::PredictableTmp => 0,
        Pattern::Append | Pattern::Overwrite => 1,
        Pattern::AtomicRename | Pattern::ExclusiveCreate | Pattern::Sqlite | Pattern::Socket => 2,
        Pattern::Flock | Pattern::MkdirLock => 3,
        Pattern::CheckThenAct | Pattern::ReadModifyWrite | Pattern::MkdirLockFallthrough => 4,
    };
    (f.risk, p)
}

/// A glob as a regex over a relative path: `**` any run of characters, `*` any run within a
/// component, `?` one character, `[...]` a class; a glob without `/` matches any component
/// (or any trailing run of components).
fn glob_regex(g: &str) -> Option<regex::Regex> {
    let g = g.trim_end_matches('/');
    let mut re = String::new();
    let mut chars = g.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    re.push_str("(?:.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                let mut class = String::from("[");
                loop {
                    match chars.next()? {
                        ']' => break,
                        '!' if class.len() == 1 => class.push('^'),
                        '\\' => class.push_str("\\\\"),
                        x => class.push(x),
                    }
                }
                class.push(']');
                re.push_str(&class);
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    let anchored = if g.contains('/') {
        format!("^{}(?:/.*)?$", re.trim_start_matches("\\/"))
    } else {
        format!("(?:^|/){re}(?:/.*)?$")
    };
    regex::Regex::new(&anchored).ok()
}

/// Scans one source text. `file` is the name findings carry; `hook` marks a script that runs
/// as an agent hook (or code a hook runs). Findings are per write site and pattern, ordered by
/// line; [`scan`] folds them into one per site.
pub fn scan_source(
    file: &str,
    lang: Lang,
    src: &str,
    hook: bool,
) -> (Vec<Finding>, Vec<ParseError>) {
    let mut unit = Unit {
        file,
        hook,
        out: Vec::new(),
        error_lines: Vec::new(),
        removed: None,
        depth: 0,
    };
    unit.analyze(lang, src, 1, false);
    let Unit {
        mut out,
        mut error_lines,
        ..
    } = unit;
    error_lines.sort_unstable();
    error_lines.dedup();
    for f in &mut out {
        f.confidence = if error_lines
            .iter()
            .any(|&l| l + 3 >= f.line_start && l <= f.line_end + 3)
        {
            Confidence::Low
        } else if resolve::is_resolved(&f.template) {
            Confidence::High
        } else {
            Confidence::Medium
        };
    }
    out.sort_by(|a, b| {
        (a.line_start, a.line_end, &a.template, a.pattern).cmp(&(
            b.line_start,
            b.line_end,
            &b.template,
            b.pattern,
        ))
    });
    out.dedup_by(|a, b| {
        a.line_start == b.line_start && a.template == b.template && a.pattern == b.pattern
    });
    let errors = error_lines
        .into_iter()
        .map(|line| ParseError {
            file: file.to_string(),
            line,
        })
        .collect();
    (out, errors)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            let skip = matches!(name.as_ref(), "node_modules" | ".git" | "target")
                || (name.starts_with('.')
                    && !matches!(name.as_ref(), ".claude" | ".codex" | ".cursor" | ".gemini"));
            if !skip {
                walk(&entry.path(), out)?;
            }
        } else if ft.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// One file being analysed: where findings go, shared by every (re-)parse inside it.
pub(crate) struct Unit<'a> {
    pub(crate) file: &'a str,
    pub(crate) hook: bool,
    pub(crate) out: Vec<Finding>,
    pub(crate) error_lines: Vec<usize>,
    /// Operands of removals (`rm`, `rmdir`, `unlink`) as written, collected only when `Some`
    /// ([`bash::written_paths`]); the scanner's findings judge removals on their own.
    pub(crate) removed: Option<Vec<String>>,
    depth: usize,
}

/// What a site is, before judging.
pub(crate) struct Site<'t> {
    pub(crate) lines: (usize, usize),
    pub(crate) path: &'t str,
    pub(crate) template: &'t str,
}

impl Unit<'_> {
    /// Parses `src` as `lang`; `base` is the file line of the text's first line; `locked` says a
    /// lock held by the enclosing code covers all of it.
    pub(crate) fn analyze(&mut self, lang: Lang, src: &str, base: usize, locked: bool) {
        if self.depth > 4 {
            return;
        }
        self.depth += 1;
        match lang {
            Lang::Bash => bash::analyze(self, src, base, locked),
            Lang::Python => python::analyze(self, src, base, locked),
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => {
                javascript::analyze(self, lang, src, base, locked);
            }
        }
        self.depth -= 1;
    }

    /// Records parse errors of a tree (ERROR and MISSING nodes).
    pub(crate) fn note_errors(&mut self, root: tree_sitter::Node, base: usize) {
        if !root.has_error() {
            return;
        }
        let mut stack = vec![root];
        while let Some(n) = stack.pop() {
            if n.is_error() || n.is_missing() {
                self.error_lines.push(base + n.start_position().row);
                continue;
            }
            if n.has_error() {
                let mut c = n.walk();
                stack.extend(n.children(&mut c));
            }
        }
    }

    /// Emits one finding, plus a `predictable-tmp` finding when the path is a predictable /tmp
    /// path.
    pub(crate) fn emit(&mut self, site: &Site, pattern: Pattern, facts: &findings::Facts) {
        let template = resolve::normalize(site.template);
        if resolve::is_device(&template) {
            return;
        }
        let mut facts = facts.clone();
        facts.hook = self.hook;
        facts.private = resolve::is_unique(&template) || template.contains("<pid>");
        facts.scoped = resolve::is_scoped(&template);
        facts.document = resolve::is_document(&template);
        if pattern == Pattern::CheckThenAct && facts.private {
            return; // a per-process file has no second process to race with
        }
        let (risk, reason) = findings::judge(pattern, &facts);
        self.out.push(Finding {
            file: self.file.to_string(),
            line_start: site.lines.0,
            line_end: site.lines.1,
            path: site.path.to_string(),
            template: template.clone(),
            pattern,
            locked: facts.locked || facts.concur.is_some() || pattern == Pattern::Flock,
            risk,
            reason,
            confidence: Confidence::High,
            notes: Vec::new(),
        });
        if resolve::is_predictable_tmp(&template)
            && pattern != Pattern::PredictableTmp
            && facts.concur.is_none()
        {
            let detail = if template.contains("<pid>") {
                "a pid is not unique across sessions or reboots".to_string()
            } else if template.contains("SESSION") {
                "a session id is guessable by other users".to_string()
            } else {
                String::new()
            };
            let f = findings::Facts {
                detail,
                ..Default::default()
            };
            self.emit(site, Pattern::PredictableTmp, &f);
        }
    }
}

/// Whole-line text of a node, for `path` fields: trimmed and cut to 120 characters.
pub(crate) fn snippet(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 120 {
        let cut: String = s.chars().take(117).collect();
        format!("{cut}...")
    } else {
        s.to_string()
    }
}

/// One word of a synthesised shell command line: bare when it is plain, else single-quoted.
pub(crate) fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./$:=@%+,{}".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', ""))
    }
}
