//! The JavaScript/TypeScript front end: `fs` writes, renames, locks, `SQLite` and sockets.
//!
//! Calls are matched by method name (`fs.writeFileSync`, a destructured `writeFileSync`,
//! `fsp.writeFile`, `fs.promises.appendFile` alike). The options object or flags string
//! carries the mode: `{flag:'a'}` is an append, `{flag:'wx'}` / `'wx'` / `O_EXCL` an exclusive
//! create. `execSync`/`execFileSync`/`spawnSync` command strings are parsed again as bash.
//! proper-lockfile's `lock`/`lockSync` locks the rest of the enclosing function.
//!
//! Not guaranteed: receivers are not type-checked (any `.rename(a, b)` with two arguments is
//! taken as a rename); paths built by functions the scanner does not know become `<expr>`.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use tree_sitter::{Language, Node, Query};

use super::common::{self, CallWrites, Held, Scope, Walk};
use super::findings::{Facts, Pattern};
use super::resolve::{self, Env};
use super::{Lang, Site, Unit, snippet};

fn language(lang: Lang) -> Language {
    match lang {
        #[cfg(feature = "typescript")]
        Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
        #[cfg(feature = "typescript")]
        Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
        _ => tree_sitter_javascript::LANGUAGE.into(),
    }
}

fn query(lang: Lang) -> &'static Query {
    static JS: OnceLock<Query> = OnceLock::new();
    static TS: OnceLock<Query> = OnceLock::new();
    static TSX: OnceLock<Query> = OnceLock::new();
    let cell = match lang {
        Lang::TypeScript => &TS,
        Lang::Tsx => &TSX,
        _ => &JS,
    };
    cell.get_or_init(|| {
        Query::new(&language(lang), include_str!("queries/javascript.scm"))
            .expect("javascript.scm is valid")
    })
}

/// Analyses one JavaScript/TypeScript text into `unit`.
pub(crate) fn analyze(unit: &mut Unit, lang: Lang, src: &str, base: usize, locked: bool) {
    let Some(tree) = common::candidates(unit, &language(lang), query(lang), src, base) else {
        return;
    };
    let root = tree.root_node();
    let mut w = Walker {
        u: unit,
        src,
        base,
        env: Env::default(),
        held: Held::new(locked),
        scope: Scope::default(),
        dbs: HashMap::new(),
        locked_fns: HashSet::new(),
    };
    w.locked_fns = w.called_only_under_lock(root);
    w.visit(root);
    let dbs: Vec<DbSite> = w.dbs.into_values().collect();
    for db in dbs {
        let site = Site {
            lines: db.lines,
            path: &db.path,
            template: &db.template,
        };
        unit.emit(&site, Pattern::Sqlite, &db.facts);
    }
}

struct DbSite {
    lines: (usize, usize),
    path: String,
    template: String,
    facts: Facts,
}

struct Walker<'u, 'a, 's> {
    u: &'u mut Unit<'a>,
    src: &'s str,
    base: usize,
    env: Env,
    held: Held,
    scope: Scope,
    dbs: HashMap<String, DbSite>,
    /// Functions of this file called only from inside a lock wrapper's callback (a lock held
    /// by every caller covers their bodies).
    locked_fns: HashSet<String>,
}

/// Whether a callee is a lock wrapper that runs its callback under a lock (`withLock`,
/// `withFileLock`, `runExclusive`, `lockfile.lock(p, fn)` style helpers).
fn lock_wrapper(callee: &str) -> bool {
    let m = callee
        .rsplit('.')
        .next()
        .unwrap_or(callee)
        .to_ascii_lowercase();
    m.starts_with("withlock")
        || m.ends_with("withlock")
        || m.contains("withfilelock")
        || m == "runexclusive"
        || m == "withmutex"
        || m == "locked"
}

const FUNCTIONS: &[&str] = &[
    "function_declaration",
    "function_expression",
    "function",
    "arrow_function",
    "method_definition",
    "generator_function_declaration",
];

impl Walk for Walker<'_, '_, '_> {
    fn src(&self) -> &str {
        self.src
    }

    fn base(&self) -> usize {
        self.base
    }

    fn visit(&mut self, n: Node) {
        let kind = n.kind();
        if FUNCTIONS.contains(&kind) {
            let (locks, outer) = (self.held.locks, self.scope.enter_function());
            if self
                .function_name(n)
                .is_some_and(|f| self.locked_fns.contains(f))
            {
                self.held.locks += 1;
            }
            self.visit_children(n);
            self.held.locks = locks;
            self.scope.leave_function(outer);
            return;
        }
        match kind {
            "variable_declarator" => self.bind(n, "name", "value"),
            "assignment_expression" => self.bind(n, "left", "right"),
            "if_statement" => {
                let guards = self.scope.guards.len();
                if let Some(c) = n.child_by_field_name("condition") {
                    self.visit(c);
                    let g = self.exists_checks(c);
                    self.scope.guards.extend(g);
                }
                for f in ["consequence", "alternative"] {
                    if let Some(b) = n.child_by_field_name(f) {
                        self.visit(b);
                    }
                }
                // `if (exists(p)) return;` guards the rest of the block
                let early_exit = n.child_by_field_name("alternative").is_none()
                    && n.child_by_field_name("consequence").is_some_and(|c| {
                        let last = if c.kind() == "statement_block" {
                            c.named_child(c.named_child_count().saturating_sub(1))
                        } else {
                            Some(c)
                        };
                        last.is_some_and(|l| {
                            matches!(l.kind(), "return_statement" | "throw_statement")
                        })
                    });
                if !early_exit {
                    self.scope.guards.truncate(guards);
                }
            }
            "for_statement" | "while_statement" | "do_statement" | "for_in_statement" => {
                let f = self.mkdir_loop_falls_through(n);
                self.held.loops.push(f);
                self.visit_children(n);
                self.held.loops.pop();
            }
            "try_statement" => {
                if let Some(b) = n.child_by_field_name("body") {
                    self.held.in_try += 1;
                    self.visit(b);
                    self.held.in_try -= 1;
                }
                for f in ["handler", "finalizer"] {
                    if let Some(b) = n.child_by_field_name(f) {
                        self.visit(b);
                    }
                }
            }
            "call_expression" => {
                let wrapper = n
                    .child_by_field_name("function")
                    .is_some_and(|f| lock_wrapper(self.text(f)));
                self.held.locks += usize::from(wrapper);
                self.visit_children(n);
                self.held.locks -= usize::from(wrapper);
                self.call(n);
            }
            "new_expression" => {
                self.visit_children(n);
            }
            "comment" => {}
            _ => self.visit_children(n),
        }
    }
}

impl<'a> CallWrites<'a> for Walker<'_, 'a, '_> {
    fn tpl(&self, n: Node) -> String {
        match n.kind() {
            "string" => {
                let t = self.text(n);
                t.get(1..t.len().saturating_sub(1))
                    .unwrap_or("")
                    .to_string()
            }
            "template_string" => {
                let mut s = String::new();
                let mut c = n.walk();
                for k in n.named_children(&mut c) {
                    match k.kind() {
                        "template_substitution" => {
                            if let Some(e) = k.named_child(0) {
                                s.push_str(&self.tpl(e));
                            }
                        }
                        _ => s.push_str(self.text(k)),
                    }
                }
                s
            }
            "identifier" => {
                let name = self.text(n);
                match name {
                    "__dirname" => "<dir>".into(),
                    _ => self
                        .env
                        .get(name)
                        .map_or_else(|| format!("<{name}>"), |v| v.template.clone()),
                }
            }
            "parenthesized_expression" | "await_expression" => n
                .named_child(0)
                .map_or_else(|| "<expr>".into(), |e| self.tpl(e)),
            "member_expression" => {
                let t = self.text(n);
                if let Some(var) = t.strip_prefix("process.env.") {
                    if var == "HOME" {
                        "$HOME".into()
                    } else {
                        format!("${var}")
                    }
                } else if t == "process.pid" {
                    "<pid>".into()
                } else {
                    format!("<{t}>")
                }
            }
            "binary_expression" => {
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
                    "+" => format!("{}{}", self.tpl(l), self.tpl(r)),
                    "||" | "??" => {
                        if self.text(l).starts_with("process.env") {
                            self.tpl(r)
                        } else {
                            self.tpl(l)
                        }
                    }
                    _ => "<expr>".into(),
                }
            }
            "call_expression" => self.call_tpl(n),
            "number" => self.text(n).to_string(),
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
    /// `const name = value` / `name = value` (fields `name_field`, `value_field` of `n`): a
    /// plain identifier takes the value's template, and its `SQLite` handle if it opens one.
    fn bind(&mut self, n: Node, name_field: &str, value_field: &str) {
        self.visit_children(n);
        if let (Some(name), Some(value)) = (
            n.child_by_field_name(name_field),
            n.child_by_field_name(value_field),
        ) && name.kind() == "identifier"
        {
            let t = self.tpl(value);
            let name = self.text(name).to_string();
            self.env.set(&name, t);
            self.db_binding(&name, value);
        }
    }

    // ---- templates ------------------------------------------------------------------------

    fn call_tpl(&self, n: Node) -> String {
        let f = n
            .child_by_field_name("function")
            .map_or("", |f| self.text(f));
        let args = self.call_args(n);
        let method = f.rsplit('.').next().unwrap_or(f);
        match method {
            "join" | "resolve" if f.starts_with("path") => {
                let parts: Vec<String> = args.iter().map(|a| self.tpl(*a)).collect();
                resolve::join(&parts)
            }
            "tmpdir" => "/tmp".into(),
            "homedir" => "$HOME".into(),
            "now" if f.contains("Date") => "<time>".into(),
            "toISOString" | "toDateString" | "slice" | "split" | "toLocaleDateString"
                if f.contains("Date") || self.text(n).contains("Date") =>
            {
                "<date>".into()
            }
            "randomUUID" | "random" | "randomBytes" | "toString"
                if self.text(n).contains("random") =>
            {
                "<random>".into()
            }
            "mkdtempSync" | "mkdtemp" => "<mktemp>".into(),
            "String" => args
                .first()
                .map_or_else(|| "<expr>".into(), |a| self.tpl(*a)),
            _ => "<expr>".into(),
        }
    }

    #[allow(clippy::unused_self)] // read like the other accessors
    fn call_args<'t>(&self, call: Node<'t>) -> Vec<Node<'t>> {
        let Some(a) = call.child_by_field_name("arguments") else {
            return Vec::new();
        };
        let mut c = a.walk();
        a.named_children(&mut c)
            .filter(|k| k.kind() != "comment")
            .collect()
    }

    /// The flag an options argument carries: `'a'`, `{flag:'wx'}`, `{flags:'a'}`, or the text
    /// of an `fs.constants` expression.
    fn flags(&self, n: Option<Node>) -> Option<String> {
        let n = n?;
        match n.kind() {
            "string" | "template_string" => {
                let t = self.tpl(n);
                // an encoding name is not a flag
                if t.chars().all(|c| "rwax+s".contains(c)) && !t.is_empty() {
                    Some(t)
                } else {
                    None
                }
            }
            "object" => {
                let mut c = n.walk();
                for pair in n.named_children(&mut c) {
                    if pair.kind() != "pair" {
                        continue;
                    }
                    let key = pair
                        .child_by_field_name("key")
                        .map_or("", |k| self.text(k))
                        .trim_matches(|c| c == '\'' || c == '"');
                    if key == "flag" || key == "flags" {
                        return pair.child_by_field_name("value").map(|v| self.tpl(v));
                    }
                }
                None
            }
            _ => {
                let t = self.text(n);
                t.contains("O_").then(|| t.to_string())
            }
        }
    }

    fn exists_checks(&self, n: Node) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![n];
        while let Some(k) = stack.pop() {
            if k.kind() == "call_expression" {
                let f = k
                    .child_by_field_name("function")
                    .map_or("", |f| self.text(f));
                if (f.ends_with("existsSync")
                    || f.ends_with("exists")
                    || f.ends_with("access")
                    || f.ends_with("accessSync")
                    || f.ends_with("statSync"))
                    && let Some(a) = self.call_args(k).first()
                {
                    out.push(resolve::normalize(&self.tpl(*a)));
                }
            }
            let mut c = k.walk();
            stack.extend(k.named_children(&mut c));
        }
        out
    }

    fn mkdir_loop_falls_through(&self, n: Node) -> bool {
        let body = self.text(n);
        if !body.contains("mkdir") {
            return false;
        }
        let bounded = n.kind() == "for_statement"
            || n.child_by_field_name("condition").is_some_and(|c| {
                let t = self.text(c);
                t.contains('<') || t.contains('>')
            });
        let mut next = n.next_named_sibling();
        while let Some(s) = next.filter(|s| s.kind() == "comment") {
            next = s.next_named_sibling();
        }
        let checked = next.is_some_and(|s| {
            let t = self.text(s);
            t.contains("throw") || t.contains("return") || t.contains("process.exit")
        });
        bounded && !checked
    }

    /// The check-then-act follow-up of a write of template `t` (no read-modify-write: the
    /// written value is a constant).
    fn scope_check(&mut self, call: Node, t: &str, locked: bool) {
        let t = resolve::normalize(t);
        let site = Site {
            lines: self.lines(call),
            path: &t,
            template: &t,
        };
        self.scope
            .check_then_act(self.u, &site, &t, "write", locked);
    }

    /// The name a function is bound to: its own, or the variable it is assigned to.
    fn function_name(&self, n: Node) -> Option<&str> {
        if let Some(name) = n.child_by_field_name("name") {
            return Some(self.text(name));
        }
        let p = n.parent()?;
        (p.kind() == "variable_declarator")
            .then(|| p.child_by_field_name("name").map(|x| self.text(x)))
            .flatten()
    }

    /// The functions of this file called only inside a lock wrapper's arguments (a lock
    /// held by the caller across the call: a cross-function lock scope).
    fn called_only_under_lock(&self, root: Node) -> HashSet<String> {
        let mut inside: HashSet<String> = HashSet::new();
        let mut outside: HashSet<String> = HashSet::new();
        let mut stack = vec![(root, false)];
        while let Some((k, under)) = stack.pop() {
            let mut under_kids = under;
            if k.kind() == "call_expression"
                && let Some(f) = k.child_by_field_name("function")
            {
                let callee = self.text(f);
                if lock_wrapper(callee) {
                    under_kids = true;
                } else if f.kind() == "identifier" {
                    if under {
                        inside.insert(callee.to_string());
                    } else {
                        outside.insert(callee.to_string());
                    }
                }
            }
            let mut c = k.walk();
            stack.extend(k.named_children(&mut c).map(|x| (x, under_kids)));
        }
        inside.retain(|f| !outside.contains(f));
        inside
    }

    fn db_binding(&mut self, name: &str, value: Node) {
        let value = if value.kind() == "await_expression" {
            value.named_child(0).unwrap_or(value)
        } else {
            value
        };
        if value.kind() != "new_expression" {
            return;
        }
        let ctor = value
            .child_by_field_name("constructor")
            .map_or("", |c| self.text(c));
        if !(ctor.ends_with("Database") || ctor.ends_with("DatabaseSync")) {
            return;
        }
        let args = self.call_args(value);
        let Some(first) = args.first() else { return };
        let template = self.tpl(*first);
        // better-sqlite3 defaults to a 5 s busy timeout; node:sqlite, sqlite3 and bun:sqlite
        // (whose `Database` has the same name) do not.
        let better = !ctor.contains('.') && ctor == "Database" && !self.src.contains("bun:sqlite");
        let opts = args.get(1).map_or("", |a| self.text(*a));
        let facts = Facts {
            busy_timeout: better || opts.contains("timeout"),
            ..Default::default()
        };
        self.dbs.insert(
            name.to_string(),
            DbSite {
                lines: self.lines(value),
                path: snippet(self.text(*first)),
                template,
                facts,
            },
        );
    }

    // ---- calls ----------------------------------------------------------------------------

    #[allow(clippy::too_many_lines)] // one arm per fs call
    fn call(&mut self, n: Node) {
        let Some(func) = n.child_by_field_name("function") else {
            return;
        };
        let ftext = self.text(func).to_string();
        let method = ftext.rsplit('.').next().unwrap_or("").to_string();
        let object = ftext.rsplit_once('.').map(|(o, _)| o.to_string());
        let args = self.call_args(n);
        let locked = self.held.locked();
        let line = self.lines(n).0;
        let first = args.first().copied();
        match method.as_str() {
            "appendFile" | "appendFileSync" => {
                let p = match self.flags(args.get(2).copied()) {
                    Some(f) if f.contains('x') => Pattern::ExclusiveCreate,
                    _ => Pattern::Append,
                };
                self.write(n, first, p, locked);
            }
            "writeFile" | "writeFileSync" => {
                let p = mode_pattern(
                    self.flags(args.get(2).copied()).as_deref(),
                    Pattern::Overwrite,
                );
                let constant = args.get(1).is_some_and(|a| {
                    a.kind() == "string"
                        || (a.kind() == "template_string" && !self.text(*a).contains("${"))
                });
                if constant && p == Pattern::Overwrite {
                    // Every racer writes the same bytes: no lost update, and no check-then-act
                    // when it initialises a missing file (in the guard's body).
                    let facts = Facts {
                        locked,
                        constant: true,
                        ..Default::default()
                    };
                    self.emit_at(n, first, p, &facts);
                    if !common::in_conditional(n)
                        && let Some(a) = first
                    {
                        let t = self.tpl(a);
                        self.scope_check(n, &t, locked);
                    }
                } else {
                    self.write(n, first, p, locked);
                }
                if p == Pattern::Overwrite
                    && args
                        .get(1)
                        .is_some_and(|a| self.text(*a).contains("process.pid"))
                    && first.is_some_and(|f| {
                        std::path::Path::new(&self.tpl(f))
                            .extension()
                            .is_some_and(|e| e.eq_ignore_ascii_case("pid"))
                    })
                {
                    self.emit_at(n, first, Pattern::Socket, &Facts::default());
                }
            }
            "openSync" | "open" if object.as_deref() != Some("window") && first.is_some() => {
                let flags = self.flags(args.get(1).copied());
                match flags.as_deref() {
                    None | Some("r") => self.read(first, line),
                    Some(f) => {
                        let p = mode_pattern(Some(f), Pattern::Overwrite);
                        self.write(n, first, p, locked);
                    }
                }
            }
            "createWriteStream" => {
                let p = mode_pattern(
                    self.flags(args.get(1).copied()).as_deref(),
                    Pattern::Overwrite,
                );
                self.write(n, first, p, locked);
            }
            "copyFile" | "copyFileSync" if args.len() >= 2 => {
                let p = if args.get(2).is_some_and(|a| self.text(*a).contains("EXCL")) {
                    Pattern::ExclusiveCreate
                } else {
                    Pattern::Overwrite
                };
                self.write(n, args.get(1).copied(), p, locked);
            }
            "rename" | "renameSync" if args.len() >= 2 => {
                let st = self.tpl(args[0]);
                let dt = self.tpl(args[1]);
                let facts = Facts {
                    locked,
                    unique_source: resolve::is_unique(&st)
                        || st.contains("<pid>")
                        || st.contains("<time>"),
                    consume: common::consumes(&st, &dt),
                    ..Default::default()
                };
                self.emit_at(n, Some(args[1]), Pattern::AtomicRename, &facts);
                self.after_write(n, &dt, Pattern::AtomicRename, locked, "rename");
            }
            "mkdir" | "mkdirSync" if first.is_some() => {
                let recursive = args
                    .get(1)
                    .is_some_and(|a| self.text(*a).contains("recursive"));
                self.mkdir(n, first, recursive, locked);
            }
            "unlink" | "unlinkSync" | "rm" | "rmSync" | "rmdir" | "rmdirSync" => {
                // In a `try` (a missing file is caught) or with `force: true` a removal is
                // idempotent: no race to lose.
                let force = args.get(1).is_some_and(|a| self.text(*a).contains("force"));
                if self.held.in_try == 0 && !force {
                    self.guarded_act(n, first, "rm", locked);
                }
            }
            "readFileSync" | "readFile" | "createReadStream" => self.read(first, line),
            "lock" | "lockSync"
                if (object.as_deref().is_some_and(|o| o.contains("lock")) || object.is_none())
                    && first.is_some() =>
            {
                self.emit_at(n, first, Pattern::Flock, &Facts::default());
                self.held.locks += 1;
            }
            "pragma" | "exec" if object.as_ref().is_some_and(|o| self.dbs.contains_key(o)) => {
                let sql = first
                    .map(|a| self.tpl(a))
                    .unwrap_or_default()
                    .to_ascii_lowercase()
                    .replace(' ', "");
                let db = self
                    .dbs
                    .get_mut(object.as_deref().unwrap_or(""))
                    .expect("checked");
                if sql.contains("journal_mode=wal") {
                    db.facts.wal = true;
                }
                if sql.contains("busy_timeout") {
                    db.facts.busy_timeout = true;
                }
            }
            "configure"
                if object.as_ref().is_some_and(|o| self.dbs.contains_key(o))
                    && first.is_some_and(|a| self.text(a).contains("busyTimeout")) =>
            {
                let db = self
                    .dbs
                    .get_mut(object.as_deref().unwrap_or(""))
                    .expect("checked");
                db.facts.busy_timeout = true;
            }
            "listen" => {
                if let Some(a) = first
                    .filter(|a| matches!(a.kind(), "string" | "template_string" | "identifier"))
                {
                    let t = self.tpl(a);
                    if t.contains('/')
                        || std::path::Path::new(&t)
                            .extension()
                            .is_some_and(|e| e.eq_ignore_ascii_case("sock"))
                    {
                        self.emit_at(n, first, Pattern::Socket, &Facts::default());
                    }
                }
            }
            "execSync" | "exec" | "execFileSync" | "execFile" | "spawnSync" | "spawn" => {
                self.subprocess(&method, &args);
            }
            _ => {}
        }
    }

    fn subprocess(&mut self, method: &str, args: &[Node]) {
        let Some(first) = args.first() else { return };
        let locked = self.held.locked();
        let base = self.base + first.start_position().row;
        let shell_string = |w: &Self, n: Node| -> Option<String> {
            matches!(n.kind(), "string" | "template_string").then(|| w.shell_text(n))
        };
        if matches!(method, "execSync" | "exec") {
            if let Some(s) = shell_string(self, *first) {
                self.u.analyze(Lang::Bash, &s, base, locked);
            }
            return;
        }
        // execFileSync('bash', ['-c', '...']) / spawnSync('concur', ['append', f, ...])
        let Some(prog) = shell_string(self, *first) else {
            return;
        };
        let Some(arr) = args.get(1).filter(|a| a.kind() == "array") else {
            return;
        };
        let mut c = arr.walk();
        let items: Vec<Node> = arr.named_children(&mut c).collect();
        let words: Vec<String> = items
            .iter()
            .map(|i| super::shell_word(&self.tpl(*i)))
            .collect();
        let prog_name = prog.rsplit('/').next().unwrap_or("");
        if matches!(prog_name, "bash" | "sh") {
            if let Some(pos) = items.iter().position(|i| self.tpl(*i) == "-c")
                && let Some(s) = items.get(pos + 1).and_then(|i| shell_string(self, *i))
            {
                self.u.analyze(Lang::Bash, &s, base, locked);
            }
            return;
        }
        let line = format!("{prog} {}", words.join(" "));
        self.u.analyze(Lang::Bash, &line, base, locked);
    }

    /// A JS string as shell text: `${expr}` substitutions become `$JS_EXPR` words.
    fn shell_text(&self, n: Node) -> String {
        if n.kind() == "string" {
            return self.tpl(n);
        }
        let mut s = String::new();
        let mut c = n.walk();
        for k in n.named_children(&mut c) {
            if k.kind() == "template_substitution" {
                let t = k.named_child(0).map(|e| self.tpl(e)).unwrap_or_default();
                if t.starts_with('/') || t.starts_with('$') {
                    s.push_str(&t);
                } else {
                    s.push_str("$JS_EXPR");
                }
            } else {
                s.push_str(self.text(k));
            }
        }
        s
    }
}

/// The pattern of an `fs` flags value: `a` append, `x` exclusive create, `w` overwrite.
fn mode_pattern(flags: Option<&str>, default: Pattern) -> Pattern {
    match flags {
        Some(f) if f.contains('x') || f.contains("O_EXCL") => Pattern::ExclusiveCreate,
        Some(f) if f.starts_with('a') || f.contains("O_APPEND") => Pattern::Append,
        Some(f) if f.starts_with('w') || f.contains("O_TRUNC") || f.starts_with("r+") => {
            Pattern::Overwrite
        }
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use crate::scan::{Lang, Pattern, Risk, scan_source};

    fn found(src: &str) -> Vec<(usize, Pattern, Risk, String)> {
        let (f, _) = scan_source("t.js", Lang::JavaScript, src, false);
        f.into_iter()
            .map(|f| (f.line_start, f.pattern, f.risk, f.template))
            .collect()
    }

    #[test]
    fn flags_decide_the_pattern() {
        let f = found(
            "const fs = require('fs');\n\
             fs.writeFileSync('/var/a', 'x', {flag: 'a'});\n\
             fs.writeFileSync('/var/b', 'x', {flag: 'wx'});\n\
             fs.writeFileSync('/var/c', body, 'utf8');\n\
             fs.writeFileSync('/var/d', '{}', 'utf8');\n",
        );
        assert!(f.contains(&(2, Pattern::Append, Risk::Low, "/var/a".into())));
        assert!(f.contains(&(3, Pattern::ExclusiveCreate, Risk::Safe, "/var/b".into())));
        assert!(f.contains(&(4, Pattern::Overwrite, Risk::Medium, "/var/c".into())));
        // constant content: every writer writes the same bytes
        assert!(f.contains(&(5, Pattern::Overwrite, Risk::Low, "/var/d".into())));
    }

    #[test]
    fn two_unknown_paths_are_not_one() {
        // a check of one unresolved path does not guard a write of another
        let f = found(
            "function f(cwd, id) {\n  if (fs.existsSync(projectDir())) {\n    fs.writeFileSync(flagFor(id), body);\n  }\n}\n",
        );
        assert!(!f.iter().any(|x| x.1 == Pattern::CheckThenAct), "{f:?}");
    }

    #[test]
    fn early_return_on_exists_is_a_check_then_act() {
        let f = found(
            "function f(id) {\n  const m = `/var/run/x-${id}`;\n  if (fs.existsSync(m)) return;\n  fs.writeFileSync(m, '1');\n}\n",
        );
        assert!(
            f.iter().any(|x| x.1 == Pattern::CheckThenAct && x.0 == 4),
            "{f:?}"
        );
    }
}
