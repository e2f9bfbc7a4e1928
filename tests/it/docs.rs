//! Documentation that runs: every shell block (fenced `sh`, `bash`, `console`) in README.md and
//! docs/*.md is executed here with the real binary first on `PATH`, in a scratch directory with
//! a fresh `HOME` and `CONCUR_HOME`, and a doc example that breaks fails the tests.
//!
//! One test per file (`docs::readme`, `docs::files`, ...), so `cargo nextest run -E
//! 'test(/docs::files/)'` checks one page. A failure names the file, the doc line and the
//! command. `cargo nextest run -E 'test(/docs::/)' --no-capture` prints the counts.
//!
//! # Writing blocks that run
//!
//! - `sh` and `bash` blocks run as one bash script under `set -e` and must exit 0; a command
//!   that is meant to fail is written `cmd || true`, `cmd && ...`, or the block says `exit N`.
//! - `console` blocks are `$ command` lines (a trailing `\` continues one), each followed by the
//!   output it shows (stdout and stderr together), which is compared: whitespace runs count as
//!   one space, `…` in a line stands for any text, a line `...` for any number of lines. A command
//!   with no output shown is not compared. A command must exit 0 unless its line or its last
//!   output line ends with `# exit N`.
//! - An HTML comment right above the fence, `<!-- doctest: DIRECTIVE; DIRECTIVE -->`, says more:
//!   - `skip REASON`: not run (illustrative only: needs an agent, a network service, minutes);
//!     counted and listed, and kept rare.
//!   - `etcd`: runs with `CONCUR_BACKEND` set to a test etcd (every `etcd://...` URL in the block
//!     becomes its URL); skipped, and said so, where etcd is not installed.
//!   - `exit N`: the status an `sh` or `bash` block must end with.
//!   - `file PATH`: the block is a file's content, not commands: not run, but written to PATH
//!     in the working directory of every later block of the page.
//!   - `racy REASON`: output and status vary from run to run (it shows a race, or verdicts that
//!     depend on timing): each command (a console block) or the block must still run — not exit
//!     2, 126, 127 or 64 and above — and nothing is compared.
//!   - `cwd repo`: runs in the checkout instead of the scratch directory (read-only verbs on
//!     `examples/`).
//!   - `setup:` on the first line, then shell lines up to `-->`: run first, hidden from the
//!     reader (files the example reads, stub commands). `stub NAME [SHELL]` puts a command
//!     `NAME` on `PATH` that runs `SHELL` (default: copy stdin to stdout).
//!
//! The scratch directory has `bin/` (first on `PATH`, holding `concur` and the stubs), `home/`
//! (`HOME`, with `CONCUR_HOME` at `home/.local/state/concur`) and the working directory `work/`;
//! `CONCUR_SESSION` is `s1`. Paths under `/tmp/` and `/var/tmp/` in a block (legacy marker and
//! token paths) are rewritten to the scratch directory's `tmp/`: a test never writes to the
//! machine's /tmp.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::bin;

/// One fenced shell block of a page.
#[derive(Debug, Default)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    /// The block's lines (between the fences).
    body: Vec<String>,
    skip: Option<String>,
    etcd: bool,
    exit: i32,
    cwd_repo: bool,
    /// `racy REASON`: status and output vary from run to run (a race is being shown).
    racy: Option<String>,
    /// Not run: written to this path (relative) in the working directory of the page's later
    /// blocks.
    file: Option<String>,
    setup: Vec<String>,
}

/// The repository checkout.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pages whose blocks run: README.md and docs/*.md, relative to the checkout.
fn pages() -> Vec<String> {
    let mut v = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Path::new(&name)
                .extension()
                .is_some_and(|e| e == "md")
                .then(|| format!("docs/{name}"))
        })
        .collect();
    docs.sort();
    v.extend(docs);
    v
}

/// The shell blocks of `text` with their directives; `Err` names a malformed directive.
fn parse(text: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut pending = Block::default();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(rest) = line.trim_start().strip_prefix("<!-- doctest") {
            let start = i;
            let mut comment = vec![rest.to_string()];
            while !comment.last().unwrap().contains("-->") {
                i += 1;
                let Some(next) = lines.get(i) else {
                    return Err(format!("line {}: unterminated doctest comment", start + 1));
                };
                comment.push((*next).to_string());
            }
            directives(&comment, &mut pending).map_err(|e| format!("line {}: {e}", start + 1))?;
            i += 1;
            continue;
        }
        if let Some(info) = line.strip_prefix("```") {
            let lang = info.split_whitespace().next().unwrap_or("").to_string();
            let start = i;
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].starts_with("```") {
                body.push(lines[i].to_string());
                i += 1;
            }
            if matches!(lang.as_str(), "sh" | "bash" | "console" | "shell") {
                let mut b = std::mem::take(&mut pending);
                b.line = start + 1;
                b.lang = lang;
                b.body = body;
                blocks.push(b);
            } else if has_directives(&pending) {
                return Err(format!(
                    "line {}: a doctest comment above a ```{lang} block",
                    start + 1
                ));
            }
            pending = Block::default();
            i += 1;
            continue;
        }
        if has_directives(&pending) {
            return Err(format!(
                "line {}: a doctest comment must be right above a shell block",
                i + 1
            ));
        }
        i += 1;
    }
    Ok(blocks)
}

fn has_directives(b: &Block) -> bool {
    b.skip.is_some()
        || b.etcd
        || b.exit != 0
        || b.cwd_repo
        || b.racy.is_some()
        || b.file.is_some()
        || !b.setup.is_empty()
}

/// Applies the directives of one `<!-- doctest ... -->` comment (its lines, the first after
/// `<!-- doctest`).
fn directives(comment: &[String], b: &mut Block) -> Result<(), String> {
    let first = comment[0].trim_start_matches(':').trim();
    let (first, single) = match first.strip_suffix("-->") {
        Some(f) => (f.trim(), true),
        None => (first, false),
    };
    // `skip REASON` takes the rest of the line, `;` included.
    let parts: Vec<&str> = if first.starts_with("skip") || first.starts_with("racy") {
        vec![first]
    } else {
        first.split(';').collect()
    };
    for d in parts.into_iter().map(str::trim).filter(|d| !d.is_empty()) {
        let (word, arg) = d.split_once(' ').unwrap_or((d, ""));
        match word {
            "skip" if !arg.trim().is_empty() => b.skip = Some(arg.trim().to_string()),
            "skip" => return Err("skip needs a reason".into()),
            "racy" if !arg.trim().is_empty() => b.racy = Some(arg.trim().to_string()),
            "racy" => return Err("racy needs a reason".into()),
            "etcd" => b.etcd = true,
            "exit" => {
                b.exit = arg
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad exit {arg:?}"))?;
            }
            "cwd" if arg.trim() == "repo" => b.cwd_repo = true,
            "file" if !arg.trim().is_empty() => b.file = Some(arg.trim().to_string()),
            "setup:" => {
                if single {
                    return Err("setup: takes the lines below it".into());
                }
                for l in &comment[1..] {
                    let l = l.trim_end();
                    if let Some(last) = l.strip_suffix("-->") {
                        if !last.trim().is_empty() {
                            b.setup.push(last.to_string());
                        }
                    } else {
                        b.setup.push(l.to_string());
                    }
                }
            }
            _ => return Err(format!("unknown directive {d:?}")),
        }
    }
    Ok(())
}

/// One `$ command` of a console block and the output shown after it.
#[derive(Debug)]
struct Step {
    /// Doc line of the `$`.
    line: usize,
    command: String,
    expected: Vec<String>,
    exit: i32,
}

/// The `$ command` steps of a console block starting at doc line `first` (the fence).
fn steps(b: &Block) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut continued = false;
    for (k, l) in b.body.iter().enumerate() {
        let doc_line = b.line + 1 + k;
        if continued {
            let s = steps.last_mut().unwrap();
            s.command.push('\n');
            s.command.push_str(l);
            continued = l.ends_with('\\');
        } else if let Some(cmd) = l.strip_prefix("$ ") {
            steps.push(Step {
                line: doc_line,
                command: cmd.to_string(),
                expected: Vec::new(),
                exit: 0,
            });
            continued = cmd.ends_with('\\');
        } else if let Some(s) = steps.last_mut() {
            s.expected.push(l.clone());
        }
    }
    for s in &mut steps {
        if let Some(code) = exit_comment(&s.command) {
            s.exit = code;
        }
        while s.expected.last().is_some_and(|l| l.trim().is_empty()) {
            s.expected.pop();
        }
        if let Some(last) = s.expected.last_mut()
            && let Some(code) = exit_comment(last)
        {
            s.exit = code;
            let cut = last.rfind("# exit").unwrap();
            last.truncate(cut);
        }
    }
    steps
}

/// `N` from a trailing `# exit N`.
fn exit_comment(line: &str) -> Option<i32> {
    let (_, tail) = line.rsplit_once("# exit ")?;
    tail.trim().parse().ok()
}

/// A line with whitespace runs made one space and the ends trimmed.
fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `actual` matches the shown `pattern` (`…` stands for any text).
fn line_matches(pattern: &str, actual: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').map(str::trim).collect();
    if parts.len() == 1 {
        return pattern == actual;
    }
    let mut rest = actual;
    for (n, part) in parts.iter().enumerate() {
        if n == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if n == parts.len() - 1 {
            return rest.trim_end().ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

/// Whether the actual lines match the shown ones (a line `...` stands for any lines).
fn lines_match(shown: &[String], actual: &[String]) -> bool {
    let Some((first, more)) = shown.split_first() else {
        return actual.is_empty();
    };
    if first == "..." {
        return (0..=actual.len()).any(|k| lines_match(more, &actual[k..]));
    }
    actual
        .split_first()
        .is_some_and(|(a, rest)| line_matches(first, a) && lines_match(more, rest))
}

/// The test etcd for a page's `etcd` blocks, started on first use.
#[cfg(feature = "etcd")]
enum Etcd {
    NotYet,
    Missing,
    Running(crate::etcd_util::Cluster),
}

#[cfg(feature = "etcd")]
impl Etcd {
    /// Its URL, or `None` where etcd is not installed.
    fn url(&mut self, page: &str) -> Option<String> {
        if matches!(self, Etcd::NotYet) {
            *self = if crate::etcd_util::available(&format!("the etcd blocks of {page}")) {
                Etcd::Running(crate::etcd_util::Cluster::start(1))
            } else {
                Etcd::Missing
            };
        }
        match self {
            Etcd::Running(c) => Some(c.url()),
            _ => None,
        }
    }
}

#[cfg(not(feature = "etcd"))]
enum Etcd {
    NotYet,
}

#[cfg(not(feature = "etcd"))]
impl Etcd {
    /// No etcd backend in this build: every etcd block is skipped.
    #[allow(clippy::unused_self)]
    fn url(&mut self, page: &str) -> Option<String> {
        eprintln!("skipping the etcd blocks of {page}: built without the etcd feature");
        None
    }
}

/// `text` with every `etcd://...` URL replaced by `url`.
fn with_url(text: &str, url: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("etcd://") {
        out.push_str(&rest[..at]);
        out.push_str(url);
        let after = &rest[at + "etcd://".len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || ".:,-_".contains(c)))
            .unwrap_or(after.len());
        // `etcd://HOST,...` in prose stands for a list; swallow a trailing `...` too.
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The shell prelude every block gets.
const PRELUDE: &str = r#"stub() { printf '#!/bin/sh\n%s\n' "${2:-cat}" > "$DOCTEST_BIN/$1"; chmod +x "$DOCTEST_BIN/$1"; }
"#;

/// A scratch directory for one block.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["bin", "home", "work", "tmp"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::os::unix::fs::symlink(bin(), dir.path().join("bin/concur")).unwrap();
        Scratch { dir }
    }

    /// bash running `script`, in this scratch directory's environment.
    fn bash(&self, script: &str, cwd: &Path, backend: Option<&str>) -> Command {
        let d = self.dir.path();
        let path = format!(
            "{}:{}",
            d.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new("timeout");
        c.args(["-k", "5", "600", "bash", "-c", script, "doctest"])
            .current_dir(cwd)
            .env("PATH", path)
            .env("HOME", d.join("home"))
            .env("CONCUR_HOME", d.join("home/.local/state/concur"))
            .env("CONCUR_SESSION", "s1")
            .env("DOCTEST_BIN", d.join("bin"))
            .stdin(Stdio::null());
        for var in [
            "CONCUR_BACKEND",
            "CONCUR_CONFIG",
            "CLAUDE_CODE_SESSION_ID",
            "CLAUDE_SESSION_ID",
            "XDG_STATE_HOME",
            "XDG_RUNTIME_DIR",
            "CONCUR_FENCE",
        ] {
            c.env_remove(var);
        }
        if let Some(url) = backend {
            c.env("CONCUR_BACKEND", url);
        }
        c
    }
}

/// What happened to one page's blocks.
#[derive(Default)]
struct Tally {
    run: usize,
    files: usize,
    on_etcd: usize,
    marked: Vec<String>,
    no_etcd: Vec<usize>,
    failures: Vec<String>,
}

/// Runs one block, adding what went wrong to `tally.failures`.
fn run_block(
    page: &str,
    b: &Block,
    files: &[(String, String)],
    etcd: &mut Etcd,
    tally: &mut Tally,
) {
    let url = if b.etcd {
        let Some(url) = etcd.url(page) else {
            tally.no_etcd.push(b.line);
            return;
        };
        Some(url)
    } else {
        None
    };
    let scratch = Scratch::new();
    // /tmp and /var/tmp paths in examples (legacy marker and token paths) stay in the scratch
    // directory: a test never writes to the machine's /tmp.
    let tmp = format!("{}/", scratch.dir.path().join("tmp").display());
    let fix = |s: &str| {
        let s = s
            .replace("/var/tmp/", "\0")
            .replace("/tmp/", "\0")
            .replace('\0', &tmp);
        match &url {
            Some(u) => with_url(&s, u),
            None => s,
        }
    };
    for (path, text) in files {
        let p = scratch.dir.path().join("work").join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut f = std::fs::File::create(&p).unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    }
    let cwd = if b.cwd_repo {
        repo()
    } else {
        scratch.dir.path().join("work")
    };
    let setup: String = b.setup.iter().map(|l| fix(l) + "\n").collect();
    let where_ = format!("{page}:{} (```{})", b.line, b.lang);
    if b.lang == "console" {
        run_console(
            b,
            &scratch,
            &cwd,
            url.as_deref(),
            &setup,
            &fix,
            &where_,
            tally,
        );
    } else {
        // The ERR trap names the failing line; script line L is doc line b.line + L - offset.
        let head = format!(
            "set -e\ntrap 'echo \"@@doctest-err $LINENO $?@@ $BASH_COMMAND\" >&2' ERR\n{PRELUDE}{setup}"
        );
        let offset = head.lines().count();
        let body: String = b.body.iter().map(|l| fix(l) + "\n").collect();
        let out = scratch
            .bash(&format!("{head}{body}"), &cwd, url.as_deref())
            .output()
            .expect("run bash");
        let code = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let failed = if b.racy.is_some() {
            code == 2 || code == -1 || code >= 64
        } else {
            code != b.exit
        };
        if failed {
            let failed = stderr
                .lines()
                .filter_map(|l| l.strip_prefix("@@doctest-err "))
                .next_back()
                .and_then(|l| {
                    let (nums, cmd) = l.split_once("@@ ")?;
                    let lineno: usize = nums.split(' ').next()?.parse().ok()?;
                    Some(if lineno > offset {
                        format!("line {}: `{cmd}`", b.line + lineno - offset)
                    } else {
                        format!("the setup comment: `{cmd}`")
                    })
                })
                .unwrap_or_else(|| "the block".into());
            tally.failures.push(format!(
                "{where_}: exit {code}, want {} — failed at {failed}\n--- stdout\n{}--- stderr\n{}",
                b.exit,
                String::from_utf8_lossy(&out.stdout),
                stderr
            ));
        }
    }
    // A block may leave a broker running (append --broker --autostart): stop it.
    let _ = scratch
        .bash("concur broker stop", &cwd, None)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    tally.run += 1;
    if url.is_some() {
        tally.on_etcd += 1;
    }
}

/// Runs a console block's steps in one shell, comparing each one's output and status.
#[allow(clippy::too_many_arguments)]
fn run_console(
    b: &Block,
    scratch: &Scratch,
    cwd: &Path,
    url: Option<&str>,
    setup: &str,
    fix: &dyn Fn(&str) -> String,
    where_: &str,
    tally: &mut Tally,
) {
    let steps = steps(b);
    let mut script = format!("{PRELUDE}set -e\n{setup}set +e\n");
    for (n, s) in steps.iter().enumerate() {
        let _ = write!(
            script,
            "printf '\\n@@doctest-step {n}@@\\n'\n{{ {}\n}} 2>&1\nprintf '\\n@@doctest-status %d@@\\n' $?\n",
            fix(&s.command)
        );
    }
    let out = scratch.bash(&script, cwd, url).output().expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut seen = BTreeMap::new();
    let mut current: Option<(usize, Vec<String>)> = None;
    for l in stdout.lines() {
        if let Some(n) = l
            .strip_prefix("@@doctest-step ")
            .and_then(|r| r.strip_suffix("@@"))
        {
            current = Some((n.parse().unwrap(), Vec::new()));
        } else if let Some(code) = l
            .strip_prefix("@@doctest-status ")
            .and_then(|r| r.strip_suffix("@@"))
        {
            let (n, mut lines) = current.take().expect("status after step");
            if lines.last().is_some_and(String::is_empty) {
                lines.pop();
            }
            seen.insert(n, (code.parse::<i32>().unwrap(), lines));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(l.to_string());
        }
    }
    for (n, s) in steps.iter().enumerate() {
        let Some((code, lines)) = seen.get(&n) else {
            tally.failures.push(format!(
                "{where_}: line {}: `{}` did not run (setup failed or the shell exited)\n--- stdout\n{stdout}--- stderr\n{}",
                s.line,
                s.command,
                String::from_utf8_lossy(&out.stderr)
            ));
            return;
        };
        let shown: Vec<String> = s.expected.iter().map(|l| squeeze(l)).collect();
        let actual: Vec<String> = lines.iter().map(|l| squeeze(l)).collect();
        if b.racy.is_some() {
            if *code == 2 || *code >= 64 {
                tally.failures.push(format!(
                    "{where_}: line {}: `{}`: exit {code} (a racy block's command must still run)\n--- actual\n{}",
                    s.line,
                    s.command,
                    lines.join("\n")
                ));
            }
            continue;
        }
        let output_ok = shown.is_empty() || lines_match(&shown, &actual);
        if *code != s.exit || !output_ok {
            tally.failures.push(format!(
                "{where_}: line {}: `{}`: exit {code} (want {}){}\n--- shown\n{}\n--- actual\n{}",
                s.line,
                s.command,
                s.exit,
                if output_ok { "" } else { ", output differs" },
                s.expected.join("\n"),
                lines.join("\n")
            ));
        }
    }
}

/// Runs every shell block of `page`, panicking with every failure at once.
fn check_page(page: &str) {
    let text = std::fs::read_to_string(repo().join(page)).expect("read page");
    let blocks = parse(&text).unwrap_or_else(|e| panic!("{page}: {e}"));
    let mut tally = Tally::default();
    let mut etcd = Etcd::NotYet;
    let mut files = Vec::new();
    for b in &blocks {
        if let Some(reason) = &b.skip {
            tally.marked.push(format!("{page}:{} ({reason})", b.line));
            continue;
        }
        if let Some(path) = &b.file {
            let text = b.body.iter().fold(String::new(), |mut t, l| {
                t.push_str(l);
                t.push('\n');
                t
            });
            files.push((path.clone(), text));
            tally.files += 1;
            continue;
        }
        run_block(page, b, &files, &mut etcd, &mut tally);
    }
    eprintln!(
        "docs: {page}: {} shell blocks, {} run ({} on etcd), {} files for later blocks, {} marked not run, {} etcd blocks skipped (no etcd)",
        blocks.len(),
        tally.run,
        tally.on_etcd,
        tally.files,
        tally.marked.len(),
        tally.no_etcd.len()
    );
    for m in &tally.marked {
        eprintln!("  marked: {m}");
    }
    assert!(
        tally.failures.is_empty(),
        "{} of {page}'s shell blocks failed:\n\n{}",
        tally.failures.len(),
        tally.failures.join("\n\n")
    );
}

/// One test per page, named after it.
macro_rules! pages {
    ($($name:ident => $page:literal,)*) => {
        $(
            #[test]
            fn $name() {
                check_page($page);
            }
        )*

        /// Every page has its test above, and every block is run or marked; prints the counts.
        #[test]
        fn every_page_is_tested_and_every_block_is_run_or_marked() {
            let tested = [$($page),*];
            let mut total = 0;
            let mut files = 0;
            let mut marked = Vec::new();
            let mut etcd = 0;
            for page in pages() {
                assert!(
                    tested.contains(&page.as_str()),
                    "{page} has shell blocks but no test: add it to the pages! list in tests/it/docs.rs"
                );
                let text = std::fs::read_to_string(repo().join(&page)).unwrap();
                let blocks = parse(&text).unwrap_or_else(|e| panic!("{page}: {e}"));
                total += blocks.len();
                files += blocks.iter().filter(|b| b.file.is_some()).count();
                etcd += blocks.iter().filter(|b| b.etcd && b.skip.is_none()).count();
                marked.extend(
                    blocks
                        .iter()
                        .filter_map(|b| Some(format!("{page}:{} ({})", b.line, b.skip.as_ref()?))),
                );
            }
            eprintln!(
                "docs: {total} shell blocks in README.md and docs/*.md: {} run ({etcd} of them on etcd), {files} files the next blocks use, {} marked not run",
                total - marked.len() - files,
                marked.len()
            );
            for m in &marked {
                eprintln!("  marked: {m}");
            }
        }
    };
}

pages! {
    readme => "README.md",
    performance => "docs/PERFORMANCE.md",
    protocol => "docs/PROTOCOL.md",
    broker => "docs/broker.md",
    diagnose => "docs/diagnose.md",
    etcd => "docs/etcd.md",
    files => "docs/files.md",
    hooks => "docs/hooks.md",
    isolate => "docs/isolate.md",
    lock => "docs/lock.md",
    reserve => "docs/reserve.md",
    scan => "docs/scan.md",
    sessions => "docs/sessions.md",
}

#[test]
fn console_output_matching_understands_ellipses() {
    let s = |v: &[&str]| v.iter().map(|l| (*l).to_string()).collect::<Vec<_>>();
    assert!(lines_match(&s(&["a … c"]), &s(&["a b b c"])));
    assert!(!lines_match(&s(&["a … c"]), &s(&["a b b d"])));
    assert!(lines_match(
        &s(&["x", "...", "z"]),
        &s(&["x", "y", "y", "z"])
    ));
    assert!(lines_match(&s(&["x", "...", "z"]), &s(&["x", "z"])));
    assert!(!lines_match(&s(&["x", "z"]), &s(&["x", "y", "z"])));
    assert_eq!(squeeze("  a   b\tc "), "a b c");
    assert_eq!(
        with_url(
            "x etcd://10.0.0.1:2379,10.0.0.2:2379 y",
            "etcd://127.0.0.1:5"
        ),
        "x etcd://127.0.0.1:5 y"
    );
}

#[test]
fn directives_are_parsed_and_a_stray_one_is_refused() {
    let text = "<!-- doctest: etcd; exit 3 -->\n```sh\ntrue\n```\n<!-- doctest: setup:\nstub edit\n-->\n```console\n$ a \\\n  b\nout   # exit 1\n```\n";
    let b = parse(text).unwrap();
    assert_eq!(b.len(), 2);
    assert!(b[0].etcd && b[0].exit == 3);
    assert_eq!(b[1].setup, ["stub edit"]);
    let st = steps(&b[1]);
    assert_eq!(st[0].command, "a \\\n  b");
    assert_eq!((st[0].exit, st[0].expected[0].trim()), (1, "out"));
    assert!(parse("<!-- doctest: skip -->\n```sh\n```\n").is_err());
    assert!(parse("<!-- doctest: etcd -->\ntext\n```sh\n```\n").is_err());
}
