//! The Python front end: `open` modes, `os.open` flags, pathlib, renames, `fcntl` locks,
//! `filelock`, `sqlite3` and sockets.
//!
//! `.replace(a)`/`.rename(a)` count as renames only on `os` or a pathlib path (a `Path(...)`
//! call, `Path.home() / ...`, or a variable assigned one): `str.replace` is not a rename. An
//! `open` in a `with` whose body calls `fcntl.flock`/`lockf` on its handle is a lock file, and
//! the rest of that body is locked; `with FileLock(p):` likewise. `subprocess` calls with
//! `shell=True` strings or `concur`/`flock` argument lists, and `os.system` strings, are parsed
//! again as bash. Python's `sqlite3.connect` has a 5 s busy timeout by default.
//!
//! Not guaranteed: receivers are not type-checked beyond the pathlib tracking above.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use tree_sitter::{Language, Node, Query};

use super::common::{self, CallWrites, Held, Scope, Walk};
use super::findings::{Facts, Pattern};
use super::resolve::{self, Env};
use super::{Lang, Site, Unit, snippet};

fn language() -> Language {
    tree_sitter_python::LANGUAGE.into()
}

fn query() -> &'static Query {
    static Q: OnceLock<Query> = OnceLock::new();
    Q.get_or_init(|| {
        Query::new(&language(), include_str!("queries/python.scm")).expect("python.scm is valid")
    })
}

/// Analyses one Python text into `unit`.
pub(crate) fn analyze(unit: &mut Unit, src: &str, base: usize, locked: bool) {
    let Some(tree) = common::candidates(unit, &language(), query(), src, base) else {
        return;
    };
    let root = tree.root_node();
    let mut w = Walker {
        u: unit,
        src,
        base,
        env: Env::default(),
        paths: HashSet::new(),
        handles: HashMap::new(),
        held: Held::new(locked),
        scope: Scope::default(),
        dbs: Vec::new(),
        wal: false,
        busy: false,
        tolerant: 0,
        summaries: HashMap::new(),
    };
    w.summaries = w.lock_helpers(root);
    w.visit(root);
    let (wal, busy) = (w.wal, w.busy);
    for (lines, path, template, timeout) in std::mem::take(&mut w.dbs) {
        let site = Site {
            lines,
            path: &path,
            template: &template,
        };
        let facts = Facts {
            wal,
            busy_timeout: timeout || busy,
            ..Default::default()
        };
        unit.emit(&site, Pattern::Sqlite, &facts);
    }
}

struct Walker<'u, 'a, 's> {
    u: &'u mut Unit<'a>,
    src: &'s str,
    base: usize,
    env: Env,
    /// Variables holding pathlib paths.
    paths: HashSet<String>,
    /// File handles: variable → template of the opened path.
    handles: HashMap<String, String>,
    held: Held,
    scope: Scope,
    dbs: Vec<((usize, usize), String, String, bool)>,
    wal: bool,
    busy: bool,
    /// Enclosing `try` blocks whose handlers catch a missing file (`OSError`, ...).
    tolerant: usize,
    /// This file's lock helpers: function name → takes or releases a lock.
    summaries: HashMap<String, common::LockFn>,
}

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
                let (locks, outer) = (self.held.locks, self.scope.enter_function());
                self.visit_children(n);
                self.held.locks = locks;
                self.scope.leave_function(outer);
            }
            "assignment" => {
                self.visit_children(n);
                self.assign(n);
            }
            "with_statement" => self.with(n),
            "if_statement" | "elif_clause" => {
                let guards = self.scope.guards.len();
                if let Some(c) = n.child_by_field_name("condition") {
                    self.visit(c);
                    let g = self.exists_checks(c);
                    self.scope.guards.extend(g);
                }
                let mut c = n.walk();
                let kids: Vec<Node> = n.named_children(&mut c).collect();
                for k in kids {
                    if Some(k) != n.child_by_field_name("condition") {
                        self.visit(k);
                    }
                }
                // `if exists(p): return` guards the rest of the block
                let early_exit = n.child_by_field_name("alternative").is_none()
                    && n.child_by_field_name("consequence").is_some_and(|c| {
                        c.named_child(c.named_child_count().saturating_sub(1))
                            .is_some_and(|l| {
                                matches!(l.kind(), "return_statement" | "raise_statement")
                            })
                    });
                if !early_exit {
                    self.scope.guards.truncate(guards);
                }
            }
            "for_statement" | "while_statement" => {
                let f = self.mkdir_loop_falls_through(n);
                self.held.loops.push(f);
                self.visit_children(n);
                self.held.loops.pop();
            }
            "try_statement" => {
                if let Some(b) = n.child_by_field_name("body") {
                    let tolerant = self.catches_missing(n);
                    self.held.in_try += 1;
                    self.tolerant += usize::from(tolerant);
                    self.visit(b);
                    self.tolerant -= usize::from(tolerant);
                    self.held.in_try -= 1;
                }
                let mut c = n.walk();
                let kids: Vec<Node> = n.named_children(&mut c).collect();
                for k in kids {
                    if Some(k) != n.child_by_field_name("body") {
                        self.visit(k);
                    }
                }
            }
            "call" => {
                self.visit_children(n);
                self.call(n, None);
            }
            "comment" => {}
            _ => self.visit_children(n),
        }
    }
}

impl<'a> CallWrites<'a> for Walker<'_, 'a, '_> {
    #[allow(clippy::too_many_lines)]
    fn tpl(&self, n: Node) -> String {
        match n.kind() {
            "string" => self.string_value(n),
            "concatenated_string" => {
                let mut s = String::new();
                let mut c = n.walk();
                for k in n.named_children(&mut c) {
                    s.push_str(&self.tpl(k));
                }
                s
            }
            "identifier" => {
                let name = self.text(n);
                self.env
                    .get(name)
                    .map_or_else(|| format!("<{name}>"), |v| v.template.clone())
            }
            "parenthesized_expression" => n
                .named_child(0)
                .map_or_else(|| "<expr>".into(), |e| self.tpl(e)),
            "integer" => self.text(n).to_string(),
            "binary_operator" => {
                let op = n
                    .child_by_field_name("operator")
                    .map_or("", |o| self.text(o));
                let (Some(l), Some(r)) = (
                    n.child_by_field_name("left"),
                    n.child_by_field_name("right"),
                ) else {
                    return "<expr>".into();
                };
                match op {
                    "/" => resolve::join(&[self.tpl(l), self.tpl(r)]),
                    "+" => format!("{}{}", self.tpl(l), self.tpl(r)),
                    _ => "<expr>".into(),
                }
            }
            "subscript" => {
                let t = self.text(n);
                if t.starts_with("os.environ[") {
                    let key = n
                        .child_by_field_name("subscript")
                        .map(|s| self.tpl(s))
                        .unwrap_or_default();
                    env_var(&key)
                } else {
                    "<expr>".into()
                }
            }
            "attribute" => {
                let t = self.text(n);
                if let Some(obj) = t.strip_suffix(".name") {
                    return self
                        .env
                        .get(obj)
                        .map_or_else(|| format!("<{t}>"), |v| v.template.clone());
                }
                format!("<{t}>")
            }
            "call" => self.call_tpl(n),
            _ => "<expr>".into(),
        }
    }

    fn parts(&mut self) -> (&mut Unit<'a>, &mut Scope) {
        (self.u, &mut self.scope)
    }

    fn held(&mut self) -> &mut Held {
        &mut self.held
    }
}

impl Walker<'_, '_, '_> {
    fn assign(&mut self, n: Node) {
        let (Some(l), Some(r)) = (
            n.child_by_field_name("left"),
            n.child_by_field_name("right"),
        ) else {
            return;
        };
        let t = self.tpl(r);
        match l.kind() {
            "identifier" => {
                let name = self.text(l).to_string();
                if self.is_path(r) {
                    self.paths.insert(name.clone());
                }
                if r.kind() == "call" {
                    let f = self.func_text(r);
                    if f.ends_with("open") && !f.ends_with("os.open") {
                        self.handles.insert(name.clone(), self.first_arg_tpl(r));
                    }
                    if f.ends_with("connect") && f.contains("sqlite") {
                        // recorded by call()
                    }
                }
                self.env.set(&name, t);
            }
            "pattern_list" | "tuple_pattern" => {
                // fd, tmp = tempfile.mkstemp(...)
                let unique = resolve::is_unique(&t);
                let mut c = l.walk();
                for k in l.named_children(&mut c) {
                    if k.kind() == "identifier" {
                        let name = self.text(k).to_string();
                        self.env.set(
                            &name,
                            if unique {
                                t.clone()
                            } else {
                                format!("<{name}>")
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn with(&mut self, n: Node) {
        let body = n.child_by_field_name("body");
        let body_text = body.map_or("", |b| self.text(b)).to_string();
        let (locks, handles) = (self.held.locks, self.handles.clone());
        let mut c = n.walk();
        let clause = n.named_children(&mut c).find(|k| k.kind() == "with_clause");
        let mut locked_body = false;
        if let Some(clause) = clause {
            let mut c2 = clause.walk();
            let items: Vec<Node> = clause.named_children(&mut c2).collect();
            for item in items {
                let Some(v) = item.child_by_field_name("value") else {
                    continue;
                };
                let (call, alias) = if v.kind() == "as_pattern" {
                    let alias = v
                        .child_by_field_name("alias")
                        .map(|a| self.text(a).to_string());
                    (v.named_child(0), alias)
                } else {
                    (Some(v), None)
                };
                let Some(call) = call.filter(|c| c.kind() == "call") else {
                    if let Some(c) = call {
                        self.visit(c);
                    }
                    continue;
                };
                self.visit_children(call);
                let f = self.func_text(call);
                let flocks_alias = alias.as_ref().is_some_and(|a| {
                    body_text.contains(&format!("flock({a}"))
                        || body_text.contains(&format!("lockf({a}"))
                });
                if f.ends_with("FileLock") || f.ends_with("SoftFileLock") || f.ends_with(".Lock") {
                    let first = self.call_args(call).first().copied();
                    self.emit_at(call, first, Pattern::Flock, &Facts::default());
                    locked_body = true;
                } else if flocks_alias && is_open(&f) {
                    // a lock file: the open is part of taking the lock
                    let arg = self.path_arg(call, &f);
                    self.emit_at(call, arg, Pattern::Flock, &Facts::default());
                    if let Some(a) = &alias {
                        let t = arg.map(|x| self.tpl(x)).unwrap_or_default();
                        self.handles.insert(a.clone(), t);
                    }
                    locked_body = true;
                } else {
                    if let Some(a) = &alias
                        && is_open(&f)
                    {
                        let arg = self.path_arg(call, &f);
                        let t = arg.map(|x| self.tpl(x)).unwrap_or_default();
                        self.handles.insert(a.clone(), t);
                    }
                    self.call(call, None);
                }
            }
        }
        if locked_body {
            self.held.locks += 1;
        }
        if let Some(b) = body {
            self.visit(b);
        }
        self.held.locks = locks;
        self.handles = handles;
    }

    // ---- templates ------------------------------------------------------------------------

    fn func_text(&self, call: Node) -> String {
        call.child_by_field_name("function")
            .map_or_else(String::new, |f| self.text(f).to_string())
    }

    #[allow(clippy::unused_self)] // read like the other accessors
    fn call_args<'t>(&self, call: Node<'t>) -> Vec<Node<'t>> {
        let Some(a) = call.child_by_field_name("arguments") else {
            return Vec::new();
        };
        let mut c = a.walk();
        a.named_children(&mut c)
            .filter(|k| k.kind() != "keyword_argument" && k.kind() != "comment")
            .collect()
    }

    fn kwarg<'t>(&self, call: Node<'t>, name: &str) -> Option<Node<'t>> {
        let a = call.child_by_field_name("arguments")?;
        let mut c = a.walk();
        a.named_children(&mut c)
            .filter(|k| k.kind() == "keyword_argument")
            .find(|k| {
                k.child_by_field_name("name")
                    .is_some_and(|n| self.text(n) == name)
            })
            .and_then(|k| k.child_by_field_name("value"))
    }

    fn first_arg_tpl(&self, call: Node) -> String {
        self.call_args(call)
            .first()
            .map(|a| self.tpl(*a))
            .unwrap_or_default()
    }

    fn string_value(&self, n: Node) -> String {
        let mut s = String::new();
        let mut c = n.walk();
        for k in n.named_children(&mut c) {
            match k.kind() {
                "string_content" | "escape_sequence" => s.push_str(self.text(k)),
                "interpolation" => {
                    let e = k
                        .child_by_field_name("expression")
                        .or_else(|| k.named_child(0));
                    s.push_str(&e.map_or_else(|| "<expr>".into(), |e| self.tpl(e)));
                }
                _ => {}
            }
        }
        s
    }

    fn call_tpl(&self, n: Node) -> String {
        let f = self.func_text(n);
        let args = self.call_args(n);
        let method = f.rsplit('.').next().unwrap_or(&f);
        let arg0 = || {
            args.first()
                .map_or_else(|| "<expr>".into(), |a| self.tpl(*a))
        };
        match method {
            "join" if f.contains("path") => {
                let parts: Vec<String> = args.iter().map(|a| self.tpl(*a)).collect();
                resolve::join(&parts)
            }
            "expanduser" | "abspath" | "realpath" | "normpath" | "str" | "Path" | "PurePath"
            | "resolve" | "expandvars" | "fspath" => {
                if method == "resolve"
                    && args.is_empty()
                    && let Some(obj) = n
                        .child_by_field_name("function")
                        .and_then(|f| f.child_by_field_name("object"))
                {
                    return self.tpl(obj);
                }
                resolve::normalize(&arg0())
            }
            "home" | "expanduser_home" => "$HOME".into(),
            // pathlib: `p.with_suffix(".tmp")`, `p.with_name("x")`
            "with_suffix" | "with_name" => {
                let Some(obj) = n
                    .child_by_field_name("function")
                    .and_then(|f| f.child_by_field_name("object"))
                else {
                    return "<expr>".into();
                };
                let base = self.tpl(obj);
                let (dir, name) = base.rsplit_once('/').unwrap_or(("", base.as_str()));
                let new = if method == "with_name" {
                    arg0()
                } else {
                    let stem = match name.rfind('.') {
                        Some(i) if i > 0 => &name[..i],
                        _ => name,
                    };
                    format!("{stem}{}", arg0())
                };
                if dir.is_empty() {
                    new
                } else {
                    format!("{dir}/{new}")
                }
            }
            "getcwd" | "cwd" => "$PWD".into(),
            "gettempdir" => "/tmp".into(),
            "getpid" => "<pid>".into(),
            "get" | "getenv" if f.contains("environ") || f.ends_with("getenv") => {
                let key = arg0();
                match args.get(1) {
                    Some(d) => self.tpl(*d),
                    None => env_var(&key),
                }
            }
            "strftime" | "isoformat" | "today" | "now" | "date" => "<date>".into(),
            "uuid4" | "token_hex" | "token_urlsafe" | "randint" | "random" => "<random>".into(),
            "mkstemp" | "mkdtemp" | "NamedTemporaryFile" | "TemporaryDirectory" | "mktemp" => {
                "<mktemp>".into()
            }
            _ => "<expr>".into(),
        }
    }

    /// Whether an expression is a pathlib path.
    fn is_path(&self, n: Node) -> bool {
        match n.kind() {
            "call" => {
                let f = self.func_text(n);
                let method = f.rsplit('.').next().unwrap_or("");
                matches!(method, "Path" | "PurePath" | "PosixPath" | "home" | "cwd")
                    || (matches!(
                        method,
                        "with_suffix" | "with_name" | "resolve" | "expanduser" | "joinpath"
                    ) && n
                        .child_by_field_name("function")
                        .and_then(|f| f.child_by_field_name("object"))
                        .is_some_and(|o| self.is_path(o)))
            }
            "binary_operator" => n
                .child_by_field_name("left")
                .is_some_and(|l| self.is_path(l)),
            "identifier" => self.paths.contains(self.text(n)),
            "attribute" => {
                let t = self.text(n);
                t.ends_with(".parent")
                    && n.child_by_field_name("object")
                        .is_some_and(|o| self.is_path(o))
            }
            "parenthesized_expression" => n.named_child(0).is_some_and(|e| self.is_path(e)),
            _ => false,
        }
    }

    /// The path argument of an open-like call: `open(p)` → p, `p.open()` → p.
    fn path_arg<'t>(&self, call: Node<'t>, f: &str) -> Option<Node<'t>> {
        if f.contains('.')
            && is_open(f)
            && !f.starts_with("os.")
            && !f.starts_with("io.")
            && !f.starts_with("codecs.")
        {
            return call
                .child_by_field_name("function")
                .and_then(|x| x.child_by_field_name("object"));
        }
        self.call_args(call)
            .first()
            .copied()
            .or_else(|| self.kwarg(call, "file"))
    }

    fn exists_checks(&self, n: Node) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![n];
        while let Some(k) = stack.pop() {
            if k.kind() == "call" {
                let f = self.func_text(k);
                let method = f.rsplit('.').next().unwrap_or("");
                if matches!(
                    method,
                    "exists" | "isfile" | "isdir" | "is_file" | "is_dir" | "lexists"
                ) {
                    let arg = if f.starts_with("os.path") {
                        self.call_args(k).first().copied()
                    } else {
                        k.child_by_field_name("function")
                            .and_then(|x| x.child_by_field_name("object"))
                    };
                    if let Some(a) = arg {
                        out.push(resolve::normalize(&self.tpl(a)));
                    }
                }
            }
            let mut c = k.walk();
            stack.extend(k.named_children(&mut c));
        }
        out
    }

    fn mkdir_loop_falls_through(&self, n: Node) -> bool {
        if !self.text(n).contains("mkdir") {
            return false;
        }
        let bounded = n.kind() == "for_statement"
            || n.child_by_field_name("condition").is_some_and(|c| {
                let t = self.text(c);
                t.contains('<') || t.contains('>')
            });
        let checked = n.next_named_sibling().is_some_and(|s| {
            let t = self.text(s);
            t.contains("raise") || t.contains("return") || t.contains("exit")
        }) || n.child_by_field_name("alternative").is_some_and(|e| {
            let t = self.text(e);
            t.contains("raise") || t.contains("return") || t.contains("exit")
        });
        bounded && !checked
    }

    /// Whether a `try` statement's handlers catch a missing file: a bare `except`, or one
    /// naming `OSError`, `FileNotFoundError`, `IOError`, `Exception` or `BaseException`.
    fn catches_missing(&self, n: Node) -> bool {
        let mut c = n.walk();
        n.named_children(&mut c)
            .filter(|k| k.kind() == "except_clause")
            .any(|k| {
                let head = self.text(k).split(':').next().unwrap_or("").to_string();
                head.trim() == "except"
                    || [
                        "OSError",
                        "FileNotFoundError",
                        "IOError",
                        "Exception",
                        "BaseException",
                    ]
                    .iter()
                    .any(|e| head.contains(e))
            })
    }

    /// The file's lock helpers (a function summary of what each function locks): a function
    /// whose body calls `fcntl.flock`/`lockf` with `LOCK_UN` releases a lock, with `LOCK_EX`/
    /// `LOCK_SH` takes one that outlives the call (no `with` scope ends it).
    fn lock_helpers(&self, root: Node) -> HashMap<String, common::LockFn> {
        common::lock_summaries(root, self.src, |_, t| {
            let locks = t.contains("flock(") || t.contains("lockf(");
            if locks && t.contains("LOCK_UN") {
                Some(common::LockFn::Unlock)
            } else if locks && (t.contains("LOCK_EX") || t.contains("LOCK_SH")) {
                Some(common::LockFn::Lock)
            } else {
                None
            }
        })
    }

    /// A truncating write of `arg`'s path whose content is `constant` (a literal): under an
    /// existence check that is idempotent (every racer writes the same bytes), so no
    /// check-then-act follows.
    fn write_constant(&mut self, call: Node, arg: Option<Node>, constant: bool, locked: bool) {
        if !constant {
            self.write(call, arg, Pattern::Overwrite, locked);
            return;
        }
        let facts = Facts {
            locked,
            constant: true,
            ..Default::default()
        };
        self.emit_at(call, arg, Pattern::Overwrite, &facts);
        if !common::in_conditional(call)
            && let Some(a) = arg
        {
            // After an early-exit guard a constant write claims a one-shot action.
            let t = self.tpl(a);
            self.after_write(call, &t, Pattern::Overwrite, locked, "write");
        }
    }

    // ---- calls ----------------------------------------------------------------------------

    #[allow(clippy::unused_self)] // read like the other accessors
    fn object<'t>(&self, call: Node<'t>) -> Option<Node<'t>> {
        call.child_by_field_name("function")
            .filter(|f| f.kind() == "attribute")
            .and_then(|f| f.child_by_field_name("object"))
    }

    #[allow(clippy::too_many_lines)] // one arm per call
    fn call(&mut self, n: Node, _alias: Option<&str>) {
        let f = self.func_text(n);
        let method = f.rsplit('.').next().unwrap_or("").to_string();
        let args = self.call_args(n);
        let locked = self.held.locked();
        let line = self.lines(n).0;
        let obj = self.object(n);
        let obj_is_path = obj.is_some_and(|o| self.is_path(o));
        match self.summaries.get(f.as_str()) {
            Some(common::LockFn::Lock) => {
                self.held.locks += 1;
                return;
            }
            Some(common::LockFn::Unlock) => {
                self.held.locks = self.held.locks.saturating_sub(1);
                return;
            }
            None => {}
        }
        match method.as_str() {
            "open" if f == "os.open" => {
                let flags = args.get(1).map_or("", |a| self.text(*a));
                let p = if flags.contains("O_EXCL") {
                    Pattern::ExclusiveCreate
                } else if flags.contains("O_APPEND") {
                    Pattern::Append
                } else if flags.contains("O_TRUNC") {
                    Pattern::Overwrite
                } else if flags.contains("O_WRONLY") || flags.contains("O_RDWR") {
                    return; // opened in place (a lock file, a counter): nothing is truncated
                } else {
                    self.read(args.first().copied(), line);
                    return;
                };
                self.write(n, args.first().copied(), p, locked);
            }
            "open" if f == "open" || f == "io.open" || f == "codecs.open" || obj_is_path => {
                let arg = self.path_arg(n, &f);
                let mode_node = if obj_is_path {
                    args.first()
                } else {
                    args.get(1)
                };
                let mode = mode_node
                    .copied()
                    .or_else(|| self.kwarg(n, "mode"))
                    .map(|m| self.tpl(m))
                    .unwrap_or_default();
                let p = if mode.contains('x') {
                    Pattern::ExclusiveCreate
                } else if mode.contains('a') {
                    Pattern::Append
                } else if mode.contains('w') {
                    Pattern::Overwrite
                } else if mode.contains('+') {
                    return; // `r+`: read and write in place, nothing truncated
                } else {
                    self.read(arg, line);
                    return;
                };
                self.write(n, arg, p, locked);
            }
            "write_text" | "write_bytes" => {
                let constant = args.first().is_some_and(|a| is_literal(*a));
                self.write_constant(n, obj, constant, locked);
            }
            "read_text" | "read_bytes" => self.read(obj, line),
            "touch" if obj.is_some() => {
                // `touch()` creates or updates the time, never truncates: only an
                // `exist_ok=False` touch is a write worth a finding (an exclusive create).
                let excl = self
                    .kwarg(n, "exist_ok")
                    .is_some_and(|v| self.text(v) == "False");
                if excl {
                    self.write(n, obj, Pattern::ExclusiveCreate, locked);
                }
            }
            "replace" | "rename" | "move"
                if f == "os.replace" || f == "os.rename" || f == "shutil.move" || obj_is_path =>
            {
                let (src, dst) = if obj_is_path {
                    (obj, args.first().copied())
                } else {
                    (args.first().copied(), args.get(1).copied())
                };
                let (Some(src), Some(dst)) = (src, dst) else {
                    return;
                };
                let st = self.tpl(src);
                let dt = self.tpl(dst);
                let facts = Facts {
                    locked,
                    unique_source: resolve::is_unique(&st) || st.contains("<pid>"),
                    consume: common::consumes(&st, &dt),
                    ..Default::default()
                };
                self.emit_at(n, Some(dst), Pattern::AtomicRename, &facts);
                self.after_write(n, &dt, Pattern::AtomicRename, locked, "rename");
            }
            "mkdir" if f == "os.mkdir" || obj_is_path => {
                let target = if obj_is_path {
                    obj
                } else {
                    args.first().copied()
                };
                let parents =
                    self.kwarg(n, "parents").is_some() || self.kwarg(n, "exist_ok").is_some();
                self.mkdir(n, target, parents, locked);
            }
            "remove" | "unlink" | "rmdir" if f.starts_with("os.") || obj_is_path => {
                let target = if obj_is_path {
                    obj
                } else {
                    args.first().copied()
                };
                // A removal that tolerates a missing file is idempotent: no race to lose.
                let tolerant = self.tolerant > 0
                    || self
                        .kwarg(n, "missing_ok")
                        .is_some_and(|v| self.text(v) == "True");
                if !tolerant {
                    self.guarded_act(n, target, "rm", locked);
                }
            }
            "flock" | "lockf" if f.starts_with("fcntl") => {
                let how = args.get(1).map_or("", |a| self.text(*a));
                if how.contains("LOCK_UN") {
                    self.held.locks = self.held.locks.saturating_sub(1);
                    return;
                }
                let handle = args.first().map_or("", |a| self.text(*a)).to_string();
                let t = self
                    .handles
                    .get(handle.trim_end_matches(".fileno()"))
                    .cloned();
                let template = t.unwrap_or_else(|| format!("<{handle}>"));
                let path = snippet(&handle);
                let site = Site {
                    lines: self.lines(n),
                    path: &path,
                    template: &template,
                };
                self.u.emit(&site, Pattern::Flock, &Facts::default());
                self.held.locks += 1;
            }
            "connect" if f.contains("sqlite3") => {
                if let Some(a) = args.first() {
                    let t = self.tpl(*a);
                    let timeout = self.kwarg(n, "timeout").is_none_or(|v| self.text(v) != "0");
                    let lines = self.lines(n);
                    self.dbs.push((lines, snippet(self.text(*a)), t, timeout));
                }
            }
            "execute" | "executescript" => {
                let sql = args
                    .first()
                    .map(|a| self.tpl(*a))
                    .unwrap_or_default()
                    .to_ascii_lowercase()
                    .replace(' ', "");
                if sql.contains("journal_mode=wal") {
                    self.wal = true;
                }
                if sql.contains("busy_timeout") {
                    self.busy = true;
                }
            }
            "bind" => {
                if let Some(a) = args.first() {
                    let t = self.tpl(*a);
                    if t.contains('/')
                        || std::path::Path::new(&t)
                            .extension()
                            .is_some_and(|e| e.eq_ignore_ascii_case("sock"))
                    {
                        self.emit_at(n, Some(*a), Pattern::Socket, &Facts::default());
                    }
                }
            }
            "system" if f == "os.system" => self.shell(args.first().copied()),
            "run" | "call" | "check_call" | "check_output" | "Popen"
                if f.contains("subprocess") =>
            {
                let Some(a) = args.first().copied() else {
                    return;
                };
                if a.kind() == "string" {
                    if self
                        .kwarg(n, "shell")
                        .is_some_and(|v| self.text(v) == "True")
                    {
                        self.shell(Some(a));
                    }
                } else if a.kind() == "list" {
                    let mut c = a.walk();
                    let words: Vec<String> = a
                        .named_children(&mut c)
                        .map(|k| super::shell_word(&self.tpl(k)))
                        .collect();
                    let line_text = words.join(" ");
                    let base = self.base + a.start_position().row;
                    self.u.analyze(Lang::Bash, &line_text, base, locked);
                }
            }
            _ => {}
        }
    }

    fn shell(&mut self, arg: Option<Node>) {
        let Some(a) = arg.filter(|a| a.kind() == "string") else {
            return;
        };
        let text = self.tpl(a);
        let base = self.base + a.start_position().row;
        let locked = self.held.locked();
        self.u.analyze(Lang::Bash, &text, base, locked);
    }
}

fn env_var(key: &str) -> String {
    if key == "HOME" {
        "$HOME".into()
    } else if key == "TMPDIR" {
        "/tmp".into()
    } else {
        format!("${key}")
    }
}

/// `open` or `X.open`.
/// Whether an expression is a literal (a string without interpolation, a number).
fn is_literal(n: Node) -> bool {
    match n.kind() {
        "string" => {
            let mut c = n.walk();
            !n.named_children(&mut c)
                .any(|k| k.kind() == "interpolation")
        }
        "integer" | "float" | "true" | "false" | "none" => true,
        "concatenated_string" => {
            let mut c = n.walk();
            n.named_children(&mut c).all(is_literal)
        }
        _ => false,
    }
}

fn is_open(f: &str) -> bool {
    f.rsplit('.').next() == Some("open")
}

#[cfg(test)]
mod tests {
    use crate::scan::{Lang, Pattern, Risk, scan_source};

    fn found(src: &str) -> Vec<(usize, Pattern, Risk)> {
        let (f, _) = scan_source("t.py", Lang::Python, src, false);
        f.into_iter()
            .map(|f| (f.line_start, f.pattern, f.risk))
            .collect()
    }

    #[test]
    fn str_replace_is_not_a_rename_but_path_replace_is() {
        let f = found(
            "s = 'a'\ns.replace('a', 'b')\nfrom pathlib import Path\nPath('/var/x.new').replace('/var/x')\n",
        );
        assert_eq!(f, vec![(4, Pattern::AtomicRename, Risk::Medium)]);
    }

    #[test]
    fn os_replace_from_mkstemp_is_safe() {
        let f = found(
            "import os, tempfile\nfd, tmp = tempfile.mkstemp(dir='/var')\nos.replace(tmp, '/var/state.json')\n",
        );
        assert_eq!(f, vec![(3, Pattern::AtomicRename, Risk::Safe)]);
    }
}
