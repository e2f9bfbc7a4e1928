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
    /// Every finding, ordered by file and line.
    pub findings: Vec<Finding>,
    /// Writers grouped by resolved template.
    pub inventory: Vec<Resource>,
    /// Parse errors met (each lowered nearby confidence).
    pub parse_errors: Vec<ParseError>,
    /// Files parsed.
    pub files: usize,
    /// Bytes parsed.
    pub bytes: u64,
}

/// What to scan and how.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Drop findings below this risk (the inventory is built from what is kept).
    pub min_risk: Option<Risk>,
}

/// Scans files and directories.
///
/// File names in the report are relative to the scanned directory (or as given, for a file).
/// Hidden directories other than `.claude`/`.codex`, `node_modules`, `.git` and `target` are
/// skipped; unreadable or non-UTF-8 files are skipped silently.
///
/// # Errors
///
/// A path that does not exist or cannot be read as a directory.
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
    // The tree walks recurse once per syntax level; deeply nested (e.g. minified) code needs
    // more than a default stack, so the scan runs on a thread with a large one.
    let (paths, opts) = (paths.to_vec(), opts.clone());
    std::thread::Builder::new()
        .name("concur-scan".into())
        .stack_size(256 << 20)
        .spawn(move || scan_on_this_thread(&paths, &opts))
        .map_err(|e| Error::io("spawn scan thread", Path::new("."), e))?
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn scan_on_this_thread(paths: &[PathBuf], opts: &ScanOptions) -> Result<Report> {
    let mut report = Report::default();
    for root in paths {
        let meta = std::fs::metadata(root).map_err(Error::with("cannot scan", root))?;
        let mut files = Vec::new();
        let hook_scripts = if meta.is_dir() {
            walk(root, &mut files).map_err(Error::with("read directory", root))?;
            files.sort();
            hooks::hook_scripts(root)
        } else {
            files.push(root.clone());
            HashSet::new()
        };
        for path in files {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Some(lang) = Lang::detect(&path, &bytes) else {
                continue;
            };
            let Ok(src) = String::from_utf8(bytes) else {
                continue;
            };
            let display = if meta.is_dir() {
                path.strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned()
            } else {
                root.to_string_lossy().into_owned()
            };
            let hook = hooks::is_hook(&hook_scripts, &display);
            report.files += 1;
            report.bytes += src.len() as u64;
            let (f, e) = scan_source(&display, lang, &src, hook);
            report.findings.extend(f);
            report.parse_errors.extend(e);
        }
    }
    if let Some(min) = opts.min_risk {
        report.findings.retain(|f| f.risk >= min);
    }
    report.inventory = inventory::group(&report.findings);
    Ok(report)
}

/// Scans one source text. `file` is the name findings carry; `hook` marks a script that runs
/// as an agent hook.
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
                || (name.starts_with('.') && !matches!(name.as_ref(), ".claude" | ".codex"));
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
