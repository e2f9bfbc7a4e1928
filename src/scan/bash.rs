//! The bash/sh front end: write sites, locks and path templates in shell scripts.
//!
//! The query (`queries/bash.scm`) says whether a file has any candidate site at all (most
//! files have none and are skipped after the parse); the walk below then visits statements in
//! order, keeping the variable environment, open lock file descriptors (`exec 9>f; flock 9`,
//! `( flock 9; ... ) 9>f`), held locks, existence checks (`[ -f X ]`) and earlier reads, so each
//! site is judged in context.
//!
//! Traps handled: tree-sitter-bash binds a redirect after a pipeline to the whole pipeline,
//! but only the pipeline's last command writes; only the first word after `>` is the target
//! (`echo a > f b` writes `f`); heredocs fed to an interpreter, `bash -c`, `trap`, `eval` and
//! `flock -c` strings are parsed again; `flock F cmd > out` truncates `out` before the lock is
//! taken, so a `>` there is not covered (a `>>` is).
//!
//! [`written_paths`] answers "which paths does this command write" for the edit-reservation
//! hook.

use std::collections::HashMap;
use std::sync::OnceLock;

use tree_sitter::{Language, Node, Query};

use super::common::{self, Scope, Walk};
use super::findings::{Facts, Pattern};
use super::resolve::{self, Env};
use super::{Lang, Site, Unit, snippet};

fn language() -> Language {
    tree_sitter_bash::LANGUAGE.into()
}

fn query() -> &'static Query {
    static Q: OnceLock<Query> = OnceLock::new();
    Q.get_or_init(|| {
        Query::new(&language(), include_str!("queries/bash.scm")).expect("bash.scm is valid")
    })
}

fn parse(src: &str) -> Option<tree_sitter::Tree> {
    common::parse(&language(), src)
}

/// What a bounded parse of a shell command found ([`shape`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// It has a syntax error ([`written_paths`] gives `None`).
    Unparsed,
    /// The parser spent more than its budget on it.
    Costly,
    /// It parses; its syntax tree is this deep (how deep [`written_paths`] recurses).
    Depth(usize),
}

/// Parses `src` with a work budget: the parse stops at the first syntax error (error recovery is
/// where the parser's cost grows faster than the input) or after about 100 parser steps per
/// byte, counted by the parser's progress checks, so the bound does not depend on the machine's
/// load. A tree that parses is measured by a walk without recursion.
pub(crate) fn shape(src: &str) -> Shape {
    let mut parser = tree_sitter::Parser::new();
    if parser.set_language(&language()).is_err() {
        return Shape::Unparsed;
    }
    let budget = 64 + src.len();
    let (mut checks, mut costly) = (0usize, false);
    let mut progress = |state: &tree_sitter::ParseState| {
        checks += 1;
        costly |= checks > budget;
        costly || state.has_error()
    };
    let bytes = src.as_bytes();
    let tree = parser.parse_with_options(
        &mut |i, _| bytes.get(i..).unwrap_or_default(),
        None,
        Some(tree_sitter::ParseOptions::new().progress_callback(&mut progress)),
    );
    let tree = match tree {
        Some(t) if !t.root_node().has_error() => t,
        _ if costly => return Shape::Costly,
        _ => return Shape::Unparsed,
    };
    let mut c = tree.walk();
    let (mut depth, mut max) = (0usize, 0usize);
    loop {
        if c.goto_first_child() {
            depth += 1;
            max = max.max(depth);
            continue;
        }
        while !c.goto_next_sibling() {
            if !c.goto_parent() {
                return Shape::Depth(max);
            }
            depth -= 1;
        }
    }
}

/// How a command writes a path (see [`written_paths`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The path as written (quotes removed, variables as given).
    pub path: String,
    /// The pattern of the write (`append`, `overwrite`, `atomic-rename`, ...).
    pub pattern: Pattern,
}

/// The paths a shell command line writes: redirect targets (`>`, `>>`, `&>`), `tee` files,
/// `sed -i` files, `mv`/`cp` destinations, `touch`/`mkdir` arguments, the operands of removals
/// (`rm`, `rmdir`, `unlink`, also behind `sudo`/`command`/`env VAR=x`; every word after `--` is
/// an operand), `mv` sources and `truncate` files (these three reported as
/// [`Pattern::CheckThenAct`], the pattern the scanner judges removals by), and the same inside
/// `bash -c`/`flock -c` strings. Device targets (`/dev/null`, `>&2`)
/// are not writes.
///
/// Returns `None` when the command does not parse cleanly: the caller decides (the edit
/// reservation hook allows and logs it, never falsely denies).
///
/// # Examples
///
/// ```
/// use concur::scan::bash::written_paths;
/// let w = written_paths("cat a | tee -a log.txt > /dev/null").unwrap();
/// assert_eq!(w.len(), 1);
/// assert_eq!(w[0].path, "log.txt");
/// assert!(written_paths("grep x f").unwrap().is_empty());
/// assert_eq!(written_paths("mv tmp f").unwrap()[0].path, "f");
/// assert_eq!(written_paths("rm -f -- a").unwrap()[0].path, "a");
/// ```
pub fn written_paths(cmd: &str) -> Option<Vec<Write>> {
    let tree = parse(cmd)?;
    if tree.root_node().has_error() {
        return None;
    }
    let mut unit = Unit {
        file: "",
        hook: false,
        out: Vec::new(),
        error_lines: Vec::new(),
        removed: Some(Vec::new()),
        depth: 0,
    };
    unit.analyze(Lang::Bash, cmd, 1, false);
    let writes = unit
        .out
        .into_iter()
        .filter(|f| {
            !matches!(
                f.pattern,
                Pattern::PredictableTmp | Pattern::Flock | Pattern::Sqlite | Pattern::Socket
            )
        })
        .map(|f| (f.path, f.pattern));
    let removals = unit
        .removed
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p, Pattern::CheckThenAct));
    let mut out: Vec<Write> = Vec::new();
    for (path, pattern) in writes.chain(removals) {
        let path = unquote(&path);
        if !out.iter().any(|w| w.path == path) {
            out.push(Write { path, pattern });
        }
    }
    Some(out)
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
    {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

/// Analyses one bash text into `unit`.
pub(crate) fn analyze(unit: &mut Unit, src: &str, base: usize, locked: bool) {
    // `$((10#$X))` (a base prefix) is valid bash that tree-sitter-bash cannot parse; `+` in its
    // place keeps every byte offset and the meaning for the scanner (a number).
    let fixed;
    let src = if src.contains("#$") {
        static RE: OnceLock<regex::Regex> = OnceLock::new();
        let re = RE.get_or_init(|| regex::Regex::new(r"\b(\d+)#\$").expect("valid"));
        fixed = re.replace_all(src, "${1}+$$").into_owned();
        fixed.as_str()
    } else {
        src
    };
    let Some(tree) = common::candidates(unit, &language(), query(), src, base) else {
        return;
    };
    let root = tree.root_node();
    let mut w = Walker {
        u: unit,
        src,
        base,
        env: Env::default(),
        fds: HashMap::new(),
        locks: Vec::new(),
        inherited: locked,
        noclobber: false,
        scope: Scope::default(),
        lock_ctx: false,
        loops: Vec::new(),
        fallthrough: None,
        summaries: HashMap::new(),
    };
    w.summaries = w.lock_helpers(root);
    w.visit(root);
}

struct Walker<'u, 'a, 's> {
    u: &'u mut Unit<'a>,
    src: &'s str,
    base: usize,
    env: Env,
    /// Open file descriptors (`exec 9>f`): fd → template.
    fds: HashMap<String, String>,
    /// Locks held now (templates).
    locks: Vec<String>,
    /// A lock held by the enclosing code (re-parsed `flock -c` strings).
    inherited: bool,
    noclobber: bool,
    /// Earlier reads and existence checks.
    scope: Scope,
    /// Inside a condition (`if mkdir`, `mkdir X &&`): mkdir is a lock attempt.
    lock_ctx: bool,
    /// Enclosing loops: whether a mkdir lock in it falls through.
    loops: Vec<bool>,
    /// A mkdir lock that can fall through was attempted: later writes may run unlocked.
    fallthrough: Option<String>,
    /// This file's lock helpers: function name → takes or releases a lock.
    summaries: HashMap<String, common::LockFn>,
}

const READERS: &[&str] = &[
    "cat",
    "jq",
    "head",
    "tail",
    "grep",
    "awk",
    "wc",
    "cut",
    "sort",
    "source",
    ".",
    "read",
    "sed",
    "diff",
    "cmp",
    "md5sum",
    "sha256sum",
    "yq",
];

impl Walk for Walker<'_, '_, '_> {
    fn src(&self) -> &str {
        self.src
    }

    fn base(&self) -> usize {
        self.base
    }

    fn visit(&mut self, n: Node) {
        match n.kind() {
            "function_definition" => {
                let (locks, outer) = (self.locks.len(), self.scope.enter_function());
                self.visit_children(n);
                self.locks.truncate(locks);
                self.scope.leave_function(outer);
            }
            "subshell" => {
                let (locks, nc) = (self.locks.len(), self.noclobber);
                self.visit_children(n);
                self.locks.truncate(locks);
                self.noclobber = nc;
            }
            "variable_assignment" => self.assign(n),
            "redirected_statement" => self.redirected(n),
            "command" => self.command(n, false),
            "if_statement" | "elif_clause" => self.conditional(n),
            "list" => self.list(n),
            "while_statement" | "for_statement" | "c_style_for_statement" => self.looped(n),
            "heredoc_body" | "comment" => {}
            _ => self.visit_children(n),
        }
    }
}

impl Walker<'_, '_, '_> {
    fn locked(&self) -> bool {
        self.inherited || !self.locks.is_empty()
    }

    fn assign(&mut self, n: Node) {
        let Some(name) = n.child_by_field_name("name") else {
            return;
        };
        let name = self.text(name).to_string();
        if let Some(v) = n.child_by_field_name("value") {
            self.visit_children(n);
            let t = self.tpl(v);
            self.env.set(&name, t);
        } else {
            self.env.set(&name, String::new());
        }
    }

    // ---- templates ------------------------------------------------------------------------

    fn tpl(&self, n: Node) -> String {
        match n.kind() {
            "raw_string" => self.text(n).trim_matches('\'').to_string(),
            "string" | "concatenation" => {
                let mut s = String::new();
                let mut c = n.walk();
                for k in n.named_children(&mut c) {
                    s.push_str(&self.tpl(k));
                }
                if n.kind() == "concatenation" && n.named_child_count() == 0 {
                    s = self.text(n).to_string();
                }
                s
            }
            "simple_expansion" => {
                let t = self.text(n);
                self.var(t.strip_prefix('$').unwrap_or(t))
            }
            "expansion" => self.expansion(n),
            "command_substitution" => self.cmdsub(n),
            "arithmetic_expansion" => "<n>".into(),
            _ => self.text(n).to_string(),
        }
    }

    fn var(&self, name: &str) -> String {
        match name {
            "$" | "BASHPID" => "<pid>".into(),
            "RANDOM" | "SRANDOM" => "<random>".into(),
            "HOME" => "$HOME".into(),
            _ => match self.env.get(name) {
                Some(v) if !v.template.is_empty() => v.template.clone(),
                _ => format!("${name}"),
            },
        }
    }

    fn expansion(&self, n: Node) -> String {
        let mut c = n.walk();
        let kids: Vec<Node> = n.children(&mut c).collect();
        let name = kids
            .iter()
            .find(|k| matches!(k.kind(), "variable_name" | "special_variable_name"))
            .map(|k| self.text(*k).to_string());
        let Some(name) = name else {
            return "<expr>".into();
        };
        let op = n.child_by_field_name("operator").map(|o| self.text(o));
        if let Some(v) = self.env.get(&name).filter(|v| !v.template.is_empty()) {
            return match op {
                None | Some(":-" | "-" | ":=" | "=") => v.template.clone(),
                _ => "<expr>".into(),
            };
        }
        match op {
            None => self.var(&name),
            Some(":-" | "-" | ":=" | "=") => {
                let mut s = String::new();
                let mut after = false;
                for k in &kids {
                    if after && k.is_named() {
                        s.push_str(&self.tpl(*k));
                    }
                    if Some(*k) == n.child_by_field_name("operator") {
                        after = true;
                    }
                }
                if name == "HOME" { "$HOME".into() } else { s }
            }
            _ => "<expr>".into(),
        }
    }

    fn cmdsub(&self, n: Node) -> String {
        let Some(cmd) = first_command(n) else {
            return "<cmd>".into();
        };
        let name = cmd.child_by_field_name("name").map_or("", |x| self.text(x));
        match name {
            "date" => "<date>".into(),
            "mktemp" => "<mktemp>".into(),
            "pwd" => "$PWD".into(),
            "id" | "whoami" => "<user>".into(),
            "hostname" => "<host>".into(),
            _ => "<cmd>".into(),
        }
    }

    // ---- statements -----------------------------------------------------------------------

    fn redirected(&mut self, n: Node) {
        let body = n.child_by_field_name("body");
        let mut redirects = Vec::new();
        let mut c = n.walk();
        for (i, k) in n.children(&mut c).enumerate() {
            if n.field_name_for_child(u32::try_from(i).unwrap_or(u32::MAX)) == Some("redirect") {
                redirects.push(k);
            }
        }
        // `( flock 9; ... ) 9>f` / `{ flock 9; ...; } 9>f`: the body runs with fd 9 open on f.
        let mut pushed = Vec::new();
        for r in &redirects {
            if r.kind() == "file_redirect"
                && let (Some(fd), Some(dest)) = (descriptor(*r, self.src), destination(*r))
                && fd != "0"
                && fd != "1"
                && fd != "2"
            {
                let t = self.tpl(dest);
                pushed.push((fd.clone(), self.fds.insert(fd, t)));
            }
        }
        let is_exec = body.is_some_and(|b| b.kind() == "command" && self.cmd_name(b) == "exec");
        if let Some(b) = body {
            if is_exec {
                // `exec 9>f`: the fds stay open for the rest of the scope.
                pushed.clear();
            } else {
                let locks = self.locks.len();
                self.visit(b);
                if matches!(b.kind(), "subshell" | "compound_statement") {
                    self.locks.truncate(locks);
                }
            }
        }
        for (fd, old) in pushed {
            match old {
                Some(t) => self.fds.insert(fd, t),
                None => self.fds.remove(&fd),
            };
        }
        // The writing command: only the last command of a pipeline writes.
        let writer = body.map(|b| last_command(b).unwrap_or(b));
        let wrapper = writer.is_some_and(|w| {
            w.kind() == "command" && matches!(self.cmd_name(w), "flock" | "lockf")
                || (self.cmd_name(w) == "concur"
                    && self
                        .args(w)
                        .first()
                        .is_some_and(|a| self.text(*a) == "lock"))
        });
        for r in redirects {
            match r.kind() {
                "file_redirect" => self.file_redirect(n, r, writer, wrapper),
                "heredoc_redirect" => self.heredoc(r, writer),
                _ => {} // here-strings feed stdin; they write nothing
            }
        }
    }

    fn file_redirect(&mut self, stmt: Node, r: Node, writer: Option<Node>, wrapper: bool) {
        let Some(dest) = destination(r) else { return };
        let op = operator(r, self.src);
        let fd = descriptor(r, self.src);
        if fd.as_deref().is_some_and(|d| !matches!(d, "0" | "1" | "2")) {
            return; // an fd opened for a lock or a later `>&N`
        }
        let template = self.tpl(dest);
        let line = self.lines(stmt).0;
        let pattern = match op.as_str() {
            "<" => {
                self.scope.read(&template, line);
                return;
            }
            ">>" | "&>>" => Pattern::Append,
            ">" | "&>" if self.noclobber => Pattern::ExclusiveCreate,
            ">" | "&>" | ">|" => Pattern::Overwrite,
            _ => return, // `>&2`, `<&0`, ...
        };
        let locked = self.locked() || (wrapper && pattern == Pattern::Append);
        let facts = Facts {
            locked,
            ..Default::default()
        };
        if pattern == Pattern::Overwrite && writer.is_some_and(|w| self.constant_output(w)) {
            // Every racer writes the same bytes: no lost update, and no check-then-act when it
            // initialises a missing file (in the guard's body).
            let path = snippet(self.text(dest));
            let site = Site {
                lines: self.lines(stmt),
                path: &path,
                template: &template,
            };
            let constant = Facts {
                constant: true,
                ..facts.clone()
            };
            self.u.emit(&site, pattern, &constant);
            if !common::in_conditional(stmt) {
                let key = resolve::normalize(&template);
                self.scope
                    .check_then_act(self.u, &site, &key, "write", locked);
            }
        } else {
            self.write_with(stmt, dest, pattern, &facts, "write");
        }
        // pid-file daemons: `echo $$ > x.pid`; `echo $! > x.pid` after starting one in the
        // background is a lazy start (`is_running || start`), racy without a lock.
        let pid_of = writer.map_or("", |w| self.text(w));
        if std::path::Path::new(&template)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pid"))
            && (pid_of.contains("$$") || pid_of.contains("$!"))
        {
            let path = snippet(self.text(dest));
            let site = Site {
                lines: self.lines(stmt),
                path: &path,
                template: &template,
            };
            let facts = Facts {
                action: if pid_of.contains("$!") { "start" } else { "" },
                ..facts
            };
            self.u.emit(&site, Pattern::Socket, &facts);
        }
    }

    /// Follow-up findings of a write: check-then-act under a guard, read-modify-write after a
    /// read of the same path.
    fn after_write(&mut self, site: &Site, pattern: Pattern, locked: bool, action: &'static str) {
        if let Some(lock) = &self.fallthrough {
            let f = Facts {
                detail: format!("after {lock}"),
                ..Default::default()
            };
            self.u.emit(site, Pattern::MkdirLockFallthrough, &f);
        }
        self.scope
            .after_write(self.u, site, pattern, locked, action);
    }

    fn heredoc(&mut self, r: Node, writer: Option<Node>) {
        let Some(w) = writer.filter(|w| w.kind() == "command") else {
            return;
        };
        let name = self.cmd_name(w).to_string();
        let args: Vec<String> = self
            .args(w)
            .iter()
            .map(|a| self.text(*a).to_string())
            .collect();
        let lang = match name.rsplit('/').next().unwrap_or("") {
            p if p.starts_with("python") => Lang::Python,
            "node" => Lang::JavaScript,
            "bash" | "sh" | "dash" | "zsh" => Lang::Bash,
            _ => return,
        };
        if args.iter().any(|a| a != "-" && !a.starts_with('-')) {
            return; // a script file is run; the heredoc is its stdin data
        }
        let mut c = r.walk();
        let Some(body) = r.children(&mut c).find(|k| k.kind() == "heredoc_body") else {
            return;
        };
        let text = self.text(body).to_string();
        let base = self.base + body.start_position().row;
        let locked = self.locked();
        self.u.analyze(lang, &text, base, locked);
    }

    fn conditional(&mut self, n: Node) {
        let kids = fielded_children(n);
        let guards = self.scope.guards.len();
        for (field, k) in kids {
            if !k.is_named() {
                continue;
            }
            if field == Some("condition") {
                self.condition(k);
            } else {
                self.visit(k);
            }
        }
        self.scope.guards.truncate(guards);
    }

    /// A condition (`if C`, `C && ...`): a mkdir in it is a lock attempt, and the paths it
    /// tests guard what follows.
    fn condition(&mut self, k: Node) {
        let g = self.tests(k);
        let ctx = std::mem::replace(&mut self.lock_ctx, true);
        self.visit(k);
        self.lock_ctx = ctx;
        self.scope.guards.extend(g);
    }

    fn list(&mut self, n: Node) {
        let mut c = n.walk();
        let kids: Vec<Node> = n.named_children(&mut c).collect();
        let guards = self.scope.guards.len();
        let last = kids.len().saturating_sub(1);
        for (i, k) in kids.into_iter().enumerate() {
            if i < last {
                self.condition(k);
            } else {
                self.visit(k);
            }
        }
        // `[ -f X ] && exit 0` guards the rest of the scope
        let early_exit = n
            .named_child(n.named_child_count().saturating_sub(1))
            .is_some_and(|l| {
                l.kind() == "command" && matches!(self.cmd_name(l), "exit" | "return")
            });
        if !early_exit {
            self.scope.guards.truncate(guards);
        }
    }

    /// Paths checked for existence in a condition: `[ -f X ]`, `test -e X`, `[[ ! -d X ]]`.
    fn tests(&self, n: Node) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![n];
        while let Some(k) = stack.pop() {
            if k.kind() == "unary_expression" {
                let op = k.child_by_field_name("operator").map(|o| self.text(o));
                if matches!(op, Some("-f" | "-e" | "-d" | "-s" | "-L" | "-h" | "-p"))
                    && let Some(arg) = k.named_child(k.named_child_count().saturating_sub(1))
                {
                    out.push(resolve::normalize(&self.tpl(arg)));
                }
            }
            if k.kind() == "command" && self.cmd_name(k) == "test" {
                let args = self.args(k);
                for w in args.windows(2) {
                    if matches!(self.text(w[0]), "-f" | "-e" | "-d" | "-s") {
                        out.push(resolve::normalize(&self.tpl(w[1])));
                    }
                }
            }
            let mut c = k.walk();
            stack.extend(k.named_children(&mut c));
        }
        out
    }

    fn looped(&mut self, n: Node) {
        let fallthrough = self.mkdir_loop_falls_through(n);
        self.loops.push(fallthrough);
        let kids = fielded_children(n);
        for (field, k) in kids {
            if !k.is_named() {
                continue;
            }
            if field == Some("condition") {
                let ctx = std::mem::replace(&mut self.lock_ctx, true);
                self.visit(k);
                self.lock_ctx = ctx;
            } else {
                self.visit(k);
            }
        }
        self.loops.pop();
    }

    /// A mkdir-lock retry loop falls through when it is bounded (a `for`, a counter test, or a
    /// `break` outside the mkdir-succeeded branch) and the statement after it does not exit or
    /// return when the lock was not taken.
    fn mkdir_loop_falls_through(&self, n: Node) -> bool {
        let bounded = matches!(n.kind(), "for_statement" | "c_style_for_statement")
            || n.child_by_field_name("condition").is_some_and(|c| {
                let t = self.text(c);
                ["-lt", "-le", "-gt", "-ge", "((", "<", ">"]
                    .iter()
                    .any(|o| t.contains(o))
                    && !t.contains("mkdir")
            });
        let mut failure_break = false;
        let mut stack = vec![n];
        while let Some(k) = stack.pop() {
            if k.kind() == "command" && self.cmd_name(k) == "break" {
                let mut p = k.parent();
                let mut on_success = false;
                while let Some(a) = p {
                    if a.id() == n.id() {
                        break;
                    }
                    if matches!(a.kind(), "if_statement" | "list")
                        && a.named_child(0)
                            .is_some_and(|c| self.text(c).contains("mkdir"))
                    {
                        on_success = true;
                    }
                    p = a.parent();
                }
                if !on_success {
                    failure_break = true;
                }
            }
            let mut c = k.walk();
            stack.extend(k.named_children(&mut c));
        }
        let mut next = n.next_named_sibling();
        while let Some(s) = next.filter(|s| s.kind() == "comment") {
            next = s.next_named_sibling();
        }
        let checked = next.is_some_and(|s| {
            let t = self.text(s);
            (t.contains("exit") || t.contains("return")) && !t.contains("mkdir")
        });
        (bounded || failure_break) && !checked
    }

    // ---- function summaries ---------------------------------------------------------------

    /// The file's lock helpers (what each function does to locks, applied at its call sites):
    /// a function that takes a `flock` (not `-u`) or a mkdir lock (`mkdir` in a condition) and
    /// does not release it takes a lock its caller then holds; one that releases (`flock -u`,
    /// `rm`/`rmdir`) without taking one releases it.
    fn lock_helpers(&self, root: Node) -> HashMap<String, common::LockFn> {
        common::lock_summaries(root, self.src, |name, t| {
            let flock = t.contains("flock ") && !t.contains("flock -u");
            let mkdir = ["if mkdir", "until mkdir", "! mkdir", "while mkdir"]
                .iter()
                .any(|m| t.contains(m));
            let release = t.contains("flock -u")
                || ((t.contains("rm ") || t.contains("rmdir ")) && lockish(name) && !mkdir);
            if (flock || mkdir) && !release {
                Some(common::LockFn::Lock)
            } else if release && !flock {
                Some(common::LockFn::Unlock)
            } else {
                None
            }
        })
    }

    /// What calling `name` does to locks: this file's summary, else (a function from a sourced
    /// library) its name: `lock_acquire`, `acquire_lock`, `staging_lock_acquire` take a lock;
    /// `lock_release`, `release_lock`, `unlock` release it.
    fn lock_fn(&self, name: &str) -> Option<common::LockFn> {
        if let Some(s) = self.summaries.get(name) {
            return Some(*s);
        }
        let n = name.to_ascii_lowercase();
        if !n.contains("lock") || n.contains("flock") || n.contains("block") || n.contains("clock")
        {
            return None;
        }
        if n.contains("release") || n.contains("unlock") || n.contains("drop") {
            Some(common::LockFn::Unlock)
        } else if n.contains("acquire") || n.contains("take") || n.contains("get") || n == "lock" {
            Some(common::LockFn::Lock)
        } else {
            None
        }
    }

    /// Whether a writer prints only constant text (`echo '{}'`, `printf ''`, `:`, `true`).
    fn constant_output(&self, w: Node) -> bool {
        if w.kind() != "command" {
            return false;
        }
        matches!(self.cmd_name(w), "echo" | "printf" | ":" | "true")
            && self.args(w).iter().all(|a| {
                matches!(a.kind(), "raw_string" | "word" | "number")
                    || (a.kind() == "string" && a.named_child_count() == 0)
            })
    }

    // ---- commands -------------------------------------------------------------------------

    fn cmd_name<'n>(&'n self, cmd: Node) -> &'n str {
        cmd.child_by_field_name("name")
            .map_or("", |x| self.text(x))
            .rsplit('/')
            .next()
            .unwrap_or("")
    }

    #[allow(clippy::unused_self)] // read like the other accessors: self.args(n)
    fn args<'t>(&self, cmd: Node<'t>) -> Vec<Node<'t>> {
        let mut c = cmd.walk();
        cmd.children(&mut c)
            .enumerate()
            .filter(|(i, _)| {
                cmd.field_name_for_child(u32::try_from(*i).unwrap_or(0)) == Some("argument")
            })
            .map(|(_, k)| k)
            .collect()
    }

    fn string_value(&self, n: Node) -> String {
        match n.kind() {
            "raw_string" => self.text(n).trim_matches('\'').to_string(),
            "string" => {
                let t = self.text(n);
                t.get(1..t.len().saturating_sub(1))
                    .unwrap_or("")
                    .to_string()
            }
            _ => self.text(n).to_string(),
        }
    }

    fn reparse(&mut self, lang: Lang, n: Node, locked: bool) {
        let mut text = self.string_value(n);
        if lang != Lang::Bash && n.kind() == "string" && text.contains('$') {
            // The shell expands `$VAR` in a double-quoted program text before the interpreter
            // sees it: stand a plain name in for each expansion (same length not needed: the
            // line numbers are what findings carry).
            static RE: OnceLock<regex::Regex> = OnceLock::new();
            let re = RE.get_or_init(|| {
                regex::Regex::new(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\$\d").expect("valid")
            });
            text = re.replace_all(&text, "shell_value").into_owned();
        }
        let base = self.base + n.start_position().row;
        let locked = locked || self.locked();
        self.u.analyze(lang, &text, base, locked);
    }

    #[allow(clippy::too_many_lines)]
    fn command(&mut self, n: Node, _in_pipe: bool) {
        // visit substitutions and assignments inside first (reads, env)
        self.visit_children(n);
        let name = self.cmd_name(n).to_string();
        let args = self.args(n);
        let texts: Vec<String> = args.iter().map(|a| self.text(*a).to_string()).collect();
        let plain: Vec<usize> = (0..args.len())
            .filter(|&i| !texts[i].starts_with('-'))
            .collect();
        let line = self.lines(n).0;
        let locked = self.locked();
        match self.lock_fn(&name) {
            Some(common::LockFn::Lock) => {
                self.locks.push(format!("fn:{name}"));
                return;
            }
            Some(common::LockFn::Unlock) => {
                if let Some(pos) = self.locks.iter().rposition(|l| l.starts_with("fn:")) {
                    self.locks.remove(pos);
                }
                return;
            }
            None => {}
        }
        match name.as_str() {
            "flock" | "lockf" => self.flock(n, &args, &texts),
            "concur" => self.concur(n, &args, &texts),
            "tee" => {
                let append = texts.iter().any(|t| t == "-a" || t == "--append");
                let p = if append {
                    Pattern::Append
                } else {
                    Pattern::Overwrite
                };
                for &i in &plain {
                    self.write(n, args[i], p, locked, "write");
                }
            }
            "sed"
                if texts
                    .iter()
                    .any(|t| t.starts_with("-i") || t == "--in-place") =>
            {
                if let Some(&i) = plain.last() {
                    self.write(n, args[i], Pattern::ReadModifyWrite, locked, "write");
                }
            }
            "mv" | "cp" if plain.len() >= 2 => {
                if name == "mv" {
                    // the sources are gone afterwards: for `written_paths`, they are written
                    let sources: Vec<String> = plain[..plain.len() - 1]
                        .iter()
                        .map(|&i| texts[i].clone())
                        .collect();
                    self.removals(&sources);
                }
                let (src, dst) = (args[plain[0]], args[plain[plain.len() - 1]]);
                let st = self.tpl(src);
                if name == "cp" {
                    self.write(n, dst, Pattern::Overwrite, locked, "cp");
                    return;
                }
                let dt = self.tpl(dst);
                let facts = Facts {
                    locked,
                    unique_source: resolve::is_unique(&st),
                    consume: common::consumes(&st, &dt),
                    ..Default::default()
                };
                self.write_with(n, dst, Pattern::AtomicRename, &facts, "mv");
            }
            "truncate" => {
                // operands only: the values of -s/-r (or --size/--reference) are not files
                let mut files = Vec::new();
                let mut value_next = false;
                for t in &texts {
                    if std::mem::take(&mut value_next) {
                        continue;
                    }
                    match t.as_str() {
                        "-s" | "-r" | "--size" | "--reference" => value_next = true,
                        t if t.starts_with('-') => {}
                        _ => files.push(t.clone()),
                    }
                }
                self.removals(&files);
            }
            // `touch` creates or updates the time, never truncates: not a write the scanner
            // judges (but a path the command writes, for `written_paths`).
            "touch" if self.u.removed.is_some() => {
                for &i in &plain {
                    self.write(n, args[i], Pattern::Overwrite, locked, "touch");
                }
            }
            "ln" if !texts.iter().any(|t| t.starts_with('-') && t.contains('f')) => {
                if let Some(&i) = plain.last()
                    && plain.len() >= 2
                {
                    self.write(n, args[i], Pattern::ExclusiveCreate, locked, "ln");
                }
            }
            "rm" | "rmdir" | "unlink" => {
                self.removals(&texts);
                // `unlink` is not judged by the scanner (only recorded for `written_paths`).
                // `rm -f` tolerates a missing file: idempotent, no race to lose.
                let force = texts
                    .iter()
                    .any(|t| t.starts_with('-') && !t.starts_with("--") && t.contains('f'))
                    || texts.iter().any(|t| t == "--force");
                let judged = if name == "unlink" || force {
                    &[][..]
                } else {
                    &plain[..]
                };
                for &i in judged {
                    let t = resolve::normalize(&self.tpl(args[i]));
                    if let Some(pos) = self.locks.iter().rposition(|l| *l == t) {
                        self.locks.remove(pos);
                        continue;
                    }
                    if self.fallthrough.as_ref() == Some(&t) {
                        self.fallthrough = None;
                        continue;
                    }
                    let path = snippet(&texts[i]);
                    let site = Site {
                        lines: self.lines(n),
                        path: &path,
                        template: &t,
                    };
                    self.scope.check_then_act(self.u, &site, &t, "rm", locked);
                }
            }
            "mkdir" => {
                let parents = texts.iter().any(|t| t.starts_with('-') && t.contains('p'));
                for &i in &plain {
                    let t = self.tpl(args[i]);
                    let path = snippet(&texts[i]);
                    let site = Site {
                        lines: self.lines(n),
                        path: &path,
                        template: &t,
                    };
                    if self.lock_ctx && !parents {
                        let falls = self.loops.last().copied().unwrap_or(false);
                        let p = if falls {
                            Pattern::MkdirLockFallthrough
                        } else {
                            Pattern::MkdirLock
                        };
                        self.u.emit(&site, p, &Facts::default());
                        if falls {
                            self.fallthrough = Some(resolve::normalize(&t));
                        } else {
                            self.locks.push(resolve::normalize(&t));
                        }
                    } else if !parents {
                        let key = resolve::normalize(&t);
                        self.scope
                            .check_then_act(self.u, &site, &key, "mkdir", locked);
                    }
                }
            }
            "set" => {
                for (i, t) in texts.iter().enumerate() {
                    let on = t.starts_with('-');
                    if (t.len() > 1 && t[1..].contains('C'))
                        || (t.ends_with('o') && texts.get(i + 1).is_some_and(|x| x == "noclobber"))
                    {
                        self.noclobber = on;
                    }
                }
            }
            "bash" | "sh" | "dash" | "zsh" => {
                if let Some(i) = texts.iter().position(|t| t == "-c")
                    && let Some(a) = args.get(i + 1)
                {
                    self.reparse(Lang::Bash, *a, false);
                }
            }
            "trap" | "eval" => {
                if let Some(a) = args.first() {
                    self.reparse(Lang::Bash, *a, false);
                }
            }
            n2 if n2.starts_with("python") => {
                if let Some(i) = texts.iter().position(|t| t == "-c")
                    && let Some(a) = args.get(i + 1)
                {
                    self.reparse(Lang::Python, *a, false);
                }
            }
            "node" => {
                if let Some(i) = texts.iter().position(|t| t == "-e" || t == "--eval")
                    && let Some(a) = args.get(i + 1)
                {
                    self.reparse(Lang::JavaScript, *a, false);
                }
            }
            "sqlite3" => {
                if let Some(&i) = plain.first() {
                    let sql = texts.join(" ").to_ascii_lowercase().replace(' ', "");
                    let facts = Facts {
                        wal: sql.contains("journal_mode=wal"),
                        busy_timeout: sql.contains("busy_timeout") || sql.contains(".timeout"),
                        ..Default::default()
                    };
                    let t = self.tpl(args[i]);
                    let path = snippet(&texts[i]);
                    let site = Site {
                        lines: self.lines(n),
                        path: &path,
                        template: &t,
                    };
                    self.u.emit(&site, Pattern::Sqlite, &facts);
                }
            }
            "nc" | "socat" => {
                let listen = texts.iter().any(|t| t.starts_with('-') && t.contains('l'));
                for (i, t) in texts.iter().enumerate() {
                    let sock = if let Some(rest) = t.strip_prefix("UNIX-LISTEN:") {
                        Some(rest.split(',').next().unwrap_or("").to_string())
                    } else if name == "nc" && listen && t.contains('U') && t.starts_with('-') {
                        plain.last().map(|&j| self.tpl(args[j]))
                    } else {
                        None
                    };
                    if let Some(s) = sock {
                        let path = snippet(&texts[i]);
                        let site = Site {
                            lines: self.lines(n),
                            path: &path,
                            template: &s,
                        };
                        self.u.emit(&site, Pattern::Socket, &Facts::default());
                        break;
                    }
                }
            }
            "sudo" | "command" | "env" => {
                if let Some(i) = wrapped(&name, &texts)
                    && matches!(texts[i].rsplit('/').next(), Some("rm" | "rmdir" | "unlink"))
                {
                    self.removals(&texts[i + 1..]);
                }
            }
            r if READERS.contains(&r) => {
                for &i in &plain {
                    let t = resolve::normalize(&self.tpl(args[i]));
                    if t.contains('/') || t.contains('.') || t.starts_with('$') {
                        self.scope.reads.push((t, line));
                    }
                }
            }
            _ => {}
        }
    }

    /// Records the operands of a removal's arguments for [`written_paths`] (options are
    /// skipped up to `--`; every word after it is an operand). Nothing when scanning.
    fn removals(&mut self, texts: &[String]) {
        let Some(out) = self.u.removed.as_mut() else {
            return;
        };
        let mut options = true;
        for t in texts {
            if options && t == "--" {
                options = false;
            } else if !(options && t.len() > 1 && t.starts_with('-')) {
                out.push(t.clone());
            }
        }
    }

    fn write(&mut self, cmd: Node, arg: Node, p: Pattern, locked: bool, action: &'static str) {
        let f = Facts {
            locked,
            ..Default::default()
        };
        self.write_with(cmd, arg, p, &f, action);
    }

    /// A write of `arg`'s path by `cmd` judged with `facts`, and its follow-ups.
    fn write_with(
        &mut self,
        cmd: Node,
        arg: Node,
        p: Pattern,
        facts: &Facts,
        action: &'static str,
    ) {
        let t = self.tpl(arg);
        let path = snippet(self.text(arg));
        let site = Site {
            lines: self.lines(cmd),
            path: &path,
            template: &t,
        };
        self.u.emit(&site, p, facts);
        self.after_write(&site, p, facts.locked, action);
    }

    /// `flock [opts] FILE|FD [-c CMD | CMD ARGS]` and `lockf [opts] FILE CMD`.
    fn flock(&mut self, n: Node, args: &[Node], texts: &[String]) {
        let mut i = 0;
        let mut unlock = false;
        let mut command_str = None;
        let mut target = None;
        while i < args.len() {
            let t = texts[i].as_str();
            match t {
                "-w" | "--wait" | "--timeout" | "-E" | "--conflict-exit-code" | "-t" => i += 1,
                "-u" | "--unlock" => unlock = true,
                "-c" | "--command" => command_str = args.get(i + 1).copied(),
                _ if t.starts_with('-') => {}
                _ => {
                    target = Some(i);
                    break;
                }
            }
            i += 1;
        }
        let Some(ti) = target else { return };
        let t = texts[ti].as_str();
        let (template, path) = if t.chars().all(|c| c.is_ascii_digit()) {
            match self.fds.get(t) {
                Some(f) => (f.clone(), format!("fd {t}")),
                None => (format!("<fd {t}>"), format!("fd {t}")),
            }
        } else {
            (self.tpl(args[ti]), snippet(t))
        };
        if unlock {
            let norm = resolve::normalize(&template);
            if let Some(pos) = self.locks.iter().rposition(|l| *l == norm) {
                self.locks.remove(pos);
            }
            return;
        }
        let site = Site {
            lines: self.lines(n),
            path: &path,
            template: &template,
        };
        self.u.emit(&site, Pattern::Flock, &Facts::default());
        if t.chars().all(|c| c.is_ascii_digit()) {
            self.locks.push(resolve::normalize(&template));
            return;
        }
        if command_str.is_none()
            && let Some(pos) = texts[ti + 1..].iter().position(|x| x == "-c")
        {
            command_str = args.get(ti + 1 + pos + 1).copied();
        }
        if let Some(c) = command_str {
            self.reparse(Lang::Bash, c, true);
        } else if let Some(first) = args.get(ti + 1) {
            let text = self.src[first.start_byte()..n.end_byte()].to_string();
            let base = self.base + first.start_position().row;
            self.u.analyze(Lang::Bash, &text, base, true);
        }
    }

    /// `concur VERB ...`: the primitives are safe by construction; `concur lock`/`slot` wrap a
    /// command that then runs locked.
    #[allow(clippy::too_many_lines)] // one table of verbs
    fn concur(&mut self, n: Node, args: &[Node], texts: &[String]) {
        let Some(verb) = texts.first().map(String::as_str) else {
            return;
        };
        let sub = texts.get(1).map_or("", String::as_str);
        let operand = |from: usize| -> Option<usize> {
            let mut j = from;
            while j < texts.len() {
                let t = texts[j].as_str();
                if t == "--" {
                    return None;
                }
                if matches!(
                    t,
                    "--header"
                        | "--dedup-key"
                        | "-w"
                        | "-E"
                        | "--max"
                        | "--ttl"
                        | "--data"
                        | "--lock-file"
                        | "--if-match"
                        | "--arg"
                        | "--init"
                        | "--mode"
                        | "--name"
                        | "--path"
                        | "--session"
                ) {
                    if t == "--name" || t == "--path" {
                        return Some(j + 1);
                    }
                    j += if t == "--arg" { 3 } else { 2 };
                    continue;
                }
                if !t.starts_with('-') {
                    return Some(j);
                }
                j += 1;
            }
            None
        };
        let (pattern, label, idx, consume) = match (verb, sub) {
            ("append", _) => (Pattern::Append, "concur append", operand(1), false),
            ("write", _) => (Pattern::AtomicRename, "concur write", operand(1), false),
            ("json", _) => (Pattern::ReadModifyWrite, "concur json", operand(1), false),
            ("ledger", "append") => (Pattern::Append, "concur ledger append", operand(2), false),
            ("token", "take") => (Pattern::AtomicRename, "concur token take", operand(2), true),
            ("token", "issue") => (
                Pattern::ExclusiveCreate,
                "concur token issue",
                operand(2),
                false,
            ),
            ("marker", "set" | "clear") => {
                (Pattern::ExclusiveCreate, "concur marker", operand(2), false)
            }
            ("pointer", "set") => (Pattern::AtomicRename, "concur pointer", operand(2), false),
            ("lease", "acquire" | "complete") => {
                (Pattern::ExclusiveCreate, "concur lease", operand(2), false)
            }
            ("lock", _) => (Pattern::Flock, "concur lock", operand(1), false),
            ("slot", _) => (Pattern::Flock, "concur slot", operand(1), false),
            _ => return,
        };
        let (template, path) = match idx.and_then(|i| args.get(i).map(|a| (i, a))) {
            Some((i, a)) => {
                let t = self.tpl(*a);
                let named = texts.get(i.wrapping_sub(1)).is_some_and(|x| x == "--name")
                    || matches!(verb, "token" | "marker" | "pointer" | "lease" | "slot")
                        && texts.get(i.wrapping_sub(1)).is_none_or(|x| x != "--path");
                if named {
                    (format!("concur:{verb}/{t}"), snippet(&texts[i]))
                } else {
                    (t, snippet(&texts[i]))
                }
            }
            None => (format!("concur:{verb}"), verb.to_string()),
        };
        let site = Site {
            lines: self.lines(n),
            path: &path,
            template: &template,
        };
        let facts = Facts {
            concur: Some(label),
            consume,
            ..Default::default()
        };
        self.u.emit(&site, pattern, &facts);
        if matches!(verb, "lock" | "slot") {
            if let Some(i) = texts.iter().position(|t| t == "-c") {
                if let Some(a) = args.get(i + 1) {
                    self.reparse(Lang::Bash, *a, true);
                }
            } else if let Some(i) = texts.iter().position(|t| t == "--")
                && let Some(first) = args.get(i + 1)
            {
                let text = self.src[first.start_byte()..n.end_byte()].to_string();
                let base = self.base + first.start_position().row;
                self.u.analyze(Lang::Bash, &text, base, true);
            }
        }
    }
}

/// Whether a function name speaks of a lock (`lock_release`, `unlock`, `release_lock`).
fn lockish(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("lock") || n.contains("release")
}

/// The index of the command word behind a `sudo`/`command`/`env` prefix: options (and the
/// values of `sudo -u/-g/-C/-h/-p/-U` and `env -u/-C/-S`) and `env`'s `VAR=x` words are skipped.
fn wrapped(prefix: &str, texts: &[String]) -> Option<usize> {
    let mut i = 0;
    while let Some(t) = texts.get(i) {
        let valued = match prefix {
            "sudo" => matches!(t.as_str(), "-u" | "-g" | "-C" | "-h" | "-p" | "-U"),
            "env" => matches!(t.as_str(), "-u" | "-C" | "-S"),
            _ => false,
        };
        if t == "--" {
            return (i + 1 < texts.len()).then_some(i + 1);
        } else if valued {
            i += 2;
        } else if t.starts_with('-') || (prefix == "env" && t.contains('=')) {
            i += 1;
        } else {
            return Some(i);
        }
    }
    None
}

fn descriptor(r: Node, src: &str) -> Option<String> {
    r.child_by_field_name("descriptor")
        .map(|d| src[d.byte_range()].to_string())
}

/// The first destination word: `echo a > f b` writes `f` (`b` is an argument of echo).
fn destination(r: Node) -> Option<Node> {
    r.child_by_field_name("destination")
}

fn operator(r: Node, src: &str) -> String {
    let mut c = r.walk();
    r.children(&mut c)
        .find(|k| !k.is_named())
        .map(|k| src[k.byte_range()].to_string())
        .unwrap_or_default()
}

/// A node's children with the field name each stands in.
fn fielded_children(n: Node) -> Vec<(Option<&'static str>, Node)> {
    let mut c = n.walk();
    n.children(&mut c)
        .enumerate()
        .map(|(i, k)| (n.field_name_for_child(u32::try_from(i).unwrap_or(0)), k))
        .collect()
}

fn last_command(n: Node) -> Option<Node> {
    match n.kind() {
        "command" => Some(n),
        // `[ -f x ] || echo a > x`: tree-sitter-bash binds the redirect to the whole list, but
        // only its last command writes.
        "pipeline" | "list" => {
            let c = n.named_child(n.named_child_count().checked_sub(1)?)?;
            last_command(c)
        }
        "redirected_statement" => n.child_by_field_name("body").and_then(last_command),
        _ => None,
    }
}

fn first_command(n: Node) -> Option<Node> {
    let mut stack = vec![n];
    while let Some(k) = stack.pop() {
        if k.kind() == "command" {
            return Some(k);
        }
        let mut c = k.walk();
        let kids: Vec<Node> = k.named_children(&mut c).collect();
        stack.extend(kids.into_iter().rev());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(cmd: &str) -> Vec<(String, Pattern)> {
        written_paths(cmd)
            .unwrap()
            .into_iter()
            .map(|w| (w.path, w.pattern))
            .collect()
    }

    #[test]
    fn written_paths_classifies_the_reservation_hook_commands() {
        assert_eq!(paths("echo x > f"), vec![("f".into(), Pattern::Overwrite)]);
        assert_eq!(
            paths("cat a | tee -a f"),
            vec![("f".into(), Pattern::Append)]
        );
        assert_eq!(
            paths("sed -i s/a/b/ f"),
            vec![("f".into(), Pattern::ReadModifyWrite)]
        );
        assert_eq!(
            paths("mv tmp f"),
            vec![
                ("f".into(), Pattern::AtomicRename),
                ("tmp".into(), Pattern::CheckThenAct)
            ]
        );
        assert!(paths("ls f").is_empty());
        assert!(paths("grep x f").is_empty());
        assert!(paths("echo x >&2; cat f 2>/dev/null").is_empty());
    }

    #[test]
    fn only_the_first_word_after_a_redirect_is_the_target() {
        assert_eq!(
            paths("echo a > f b"),
            vec![("f".into(), Pattern::Overwrite)]
        );
    }

    #[test]
    fn bash_c_strings_are_parsed_again() {
        assert_eq!(
            paths("bash -c 'echo x >> \"$LOG\"'"),
            vec![("$LOG".into(), Pattern::Append)]
        );
    }

    #[test]
    fn removals_name_their_operands() {
        let rm = |p: &str| (p.to_string(), Pattern::CheckThenAct);
        assert_eq!(paths("rm f"), vec![rm("f")]);
        assert_eq!(paths("rm -f a b"), vec![rm("a"), rm("b")]);
        assert_eq!(paths("rm -rf -- -x"), vec![rm("-x")]);
        assert_eq!(paths("rm -- -- b"), vec![rm("--"), rm("b")]);
        assert_eq!(paths("cd d && rm f"), vec![rm("f")]);
        assert!(paths("echo rm f").is_empty());
        assert_eq!(paths("bash -c 'rm f'"), vec![rm("f")]);
        assert_eq!(paths("unlink f"), vec![rm("f")]);
        assert_eq!(paths("rm 'a b'"), vec![rm("a b")]);
        assert_eq!(paths("rmdir d"), vec![rm("d")]);
    }

    #[test]
    fn removals_behind_a_prefix_are_found() {
        let rm = |p: &str| (p.to_string(), Pattern::CheckThenAct);
        assert_eq!(paths("sudo rm -f f"), vec![rm("f")]);
        assert_eq!(paths("sudo -u root rm f"), vec![rm("f")]);
        assert_eq!(paths("command rm f"), vec![rm("f")]);
        assert_eq!(paths("env A=1 B=2 unlink f"), vec![rm("f")]);
        assert_eq!(paths("A=1 rm f"), vec![rm("f")]);
        assert!(paths("sudo ls f").is_empty());
        assert!(paths("env rm_me=1 ls").is_empty());
    }

    #[test]
    fn removals_come_after_the_writes_and_are_not_repeated() {
        assert_eq!(
            paths("echo x > f; rm f g"),
            vec![
                ("f".into(), Pattern::Overwrite),
                ("g".into(), Pattern::CheckThenAct)
            ]
        );
    }

    #[test]
    fn mv_sources_and_truncate_files_are_written() {
        let gone = |p: &str| (p.to_string(), Pattern::CheckThenAct);
        assert_eq!(
            paths("mv a b"),
            vec![("b".into(), Pattern::AtomicRename), gone("a")]
        );
        assert_eq!(
            paths("mv -f a b d/"),
            vec![("d/".into(), Pattern::AtomicRename), gone("a"), gone("b")]
        );
        assert_eq!(paths("truncate -s 0 f"), vec![gone("f")]);
        assert_eq!(
            paths("truncate --size=0 -c f g"),
            vec![gone("f"), gone("g")]
        );
        assert_eq!(paths("truncate -r ref f"), vec![gone("f")]);
        assert_eq!(paths("cp a b"), vec![("b".into(), Pattern::Overwrite)]);
    }

    #[test]
    fn scanning_records_no_removals() {
        // The scanner's findings for a removal stay check-then-act under a guard only.
        let (f, _) = crate::scan::scan_source("x.sh", Lang::Bash, "rm f\nunlink g\n", false);
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn unparsable_commands_are_none() {
        assert!(written_paths("echo 'unterminated").is_none());
    }
}
