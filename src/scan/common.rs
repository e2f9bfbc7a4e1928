//! What the three front ends share: parsing with a candidate check, and the per-scope memory
//! of earlier reads and existence checks that turns a write into a read-modify-write or a
//! check-then-act finding.
//!
//! Each language keeps its own walk (what a lock, a read or a guard looks like differs); only
//! the judgement of a write against what came before it in the same scope lives here, so the
//! three languages cannot drift apart on it.

use tree_sitter::{Language, Node, Parser, Query, QueryCursor, StreamingIterator, Tree};

use super::findings::{self, Facts, Pattern};
use super::{Site, Unit, resolve, snippet};

/// Parses `src` as `language`.
pub(crate) fn parse(language: &Language, src: &str) -> Option<Tree> {
    let mut parser = Parser::new();
    parser.set_language(language).ok()?;
    parser.parse(src, None)
}

/// Parses `src`, records its parse errors in `unit`, and returns the tree only when `query`
/// finds a candidate site in it (most files have none and need no walk).
pub(crate) fn candidates(
    unit: &mut Unit,
    language: &Language,
    query: &Query,
    src: &str,
    base: usize,
) -> Option<Tree> {
    let tree = parse(language, src)?;
    unit.note_errors(tree.root_node(), base);
    let mut cursor = QueryCursor::new();
    let mut matches = cursor.matches(query, tree.root_node(), src.as_bytes());
    matches.next()?;
    drop(matches);
    Some(tree)
}

/// Whether `n` sits inside a conditional (an `if` body or a shell `a && b` list): a constant
/// write there initialises a missing file (idempotent: every racer writes the same bytes), while
/// one after an early-exit guard (`if exists: return`, then write a marker) claims a one-shot
/// action and stays a check-then-act.
pub(crate) fn in_conditional(n: Node) -> bool {
    let mut p = n.parent();
    while let Some(a) = p {
        match a.kind() {
            "if_statement" | "list" | "conditional_expression" | "ternary_expression" => {
                return true;
            }
            "function_definition"
            | "function_declaration"
            | "arrow_function"
            | "program"
            | "module" => return false,
            _ => {}
        }
        p = a.parent();
    }
    false
}

/// Whether a template says enough to compare with another: two expressions the scanner did
/// not follow (`<expr>`, `<cmd>`) are not the same path just because both are unknown.
pub(crate) fn comparable(t: &str) -> bool {
    !t.replace("<expr>", "")
        .replace("<cmd>", "")
        .replace(['/', '.', '-', '_'], "")
        .trim()
        .is_empty()
}

/// Whether a rename from template `source` to `dest` consumes a one-shot token: the destination
/// says so (`consumed`, `claimed`, `taken`) or the source is a token.
pub(crate) fn consumes(source: &str, dest: &str) -> bool {
    let dest = dest.to_ascii_lowercase();
    ["consumed", "claimed", "taken"]
        .iter()
        .any(|w| dest.contains(w))
        || source.to_ascii_lowercase().contains("token")
}

/// What a function does to locks, from its body (a per-file function summary applied at its
/// call sites): a lock helper takes a lock its caller then holds; an unlock helper releases it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockFn {
    /// Takes a lock that outlives the call.
    Lock,
    /// Releases a lock.
    Unlock,
}

/// The function summaries of one tree (bash and Python: `function_definition` nodes with
/// `name` and `body`): `classify(name, body_text)` says what each function does to locks.
pub(crate) fn lock_summaries(
    root: Node,
    src: &str,
    classify: impl Fn(&str, &str) -> Option<LockFn>,
) -> std::collections::HashMap<String, LockFn> {
    let mut out = std::collections::HashMap::new();
    let mut stack = vec![root];
    while let Some(k) = stack.pop() {
        if k.kind() == "function_definition"
            && let (Some(name), Some(body)) =
                (k.child_by_field_name("name"), k.child_by_field_name("body"))
        {
            let name = &src[name.byte_range()];
            if let Some(f) = classify(name, &src[body.byte_range()]) {
                out.insert(name.to_string(), f);
            }
        }
        let mut c = k.walk();
        stack.extend(k.named_children(&mut c));
    }
    out
}

/// Earlier reads and enclosing existence checks within one scope (a function body).
#[derive(Default)]
pub(crate) struct Scope {
    /// Earlier reads in this scope: template, line.
    pub(crate) reads: Vec<(String, usize)>,
    /// Paths checked for existence by an enclosing condition.
    pub(crate) guards: Vec<String>,
}

/// A [`Scope`] set aside while a function body is walked; see [`Scope::enter_function`].
pub(crate) struct Outer {
    reads: Vec<(String, usize)>,
    guards: usize,
}

impl Scope {
    /// Starts a function body: it sees no earlier reads; the guards it adds end with it.
    pub(crate) fn enter_function(&mut self) -> Outer {
        Outer {
            reads: std::mem::take(&mut self.reads),
            guards: self.guards.len(),
        }
    }

    /// Ends a function body begun with [`Scope::enter_function`].
    pub(crate) fn leave_function(&mut self, outer: Outer) {
        self.reads = outer.reads;
        self.guards.truncate(outer.guards);
    }

    /// Records a read of `template` (normalised) at `line`.
    pub(crate) fn read(&mut self, template: &str, line: usize) {
        if comparable(template) {
            self.reads.push((resolve::normalize(template), line));
        }
    }

    /// A check-then-act finding at `site` when an enclosing existence check guards `key` (the
    /// normalised template of the path acted on).
    pub(crate) fn check_then_act(
        &self,
        unit: &mut Unit,
        site: &Site,
        key: &str,
        action: &'static str,
        locked: bool,
    ) {
        if comparable(key) && self.guards.iter().any(|g| g == key) {
            let f = Facts {
                locked,
                action,
                ..Default::default()
            };
            unit.emit(site, Pattern::CheckThenAct, &f);
        }
    }

    /// Follow-up findings of a write at `site`: check-then-act under a guard, read-modify-write
    /// after a read of the same path.
    pub(crate) fn after_write(
        &self,
        unit: &mut Unit,
        site: &Site,
        pattern: Pattern,
        locked: bool,
        action: &'static str,
    ) {
        let t = resolve::normalize(site.template);
        if findings::is_act(pattern) {
            self.check_then_act(unit, site, &t, action, locked);
        }
        if matches!(pattern, Pattern::Overwrite | Pattern::AtomicRename)
            && let Some((_, line)) = self.reads.iter().rev().find(|(r, _)| *r == t)
        {
            let f = Facts {
                locked,
                detail: format!("read at line {line}"),
                ..Default::default()
            };
            unit.emit(site, Pattern::ReadModifyWrite, &f);
        }
    }
}

/// The locks over the code being walked (JavaScript, Python), and what makes a `mkdir` there a
/// lock attempt.
pub(crate) struct Held {
    /// Locks taken by the walked code and still held.
    pub(crate) locks: usize,
    /// A lock held by the enclosing code (re-parsed strings).
    pub(crate) inherited: bool,
    /// Enclosing loops: whether a mkdir lock in it falls through.
    pub(crate) loops: Vec<bool>,
    /// Depth of enclosing `try` blocks.
    pub(crate) in_try: usize,
}

impl Held {
    /// Nothing held yet; `inherited` when the enclosing code holds a lock.
    pub(crate) fn new(inherited: bool) -> Held {
        Held {
            locks: 0,
            inherited,
            loops: Vec::new(),
            in_try: 0,
        }
    }

    /// Whether a lock covers the code here.
    pub(crate) fn locked(&self) -> bool {
        self.inherited || self.locks > 0
    }
}

/// A front end's walk over one parsed text: where its nodes stand in the file, and the visit
/// that gives them meaning.
pub(crate) trait Walk {
    /// The text being walked.
    fn src(&self) -> &str;

    /// The file line of the text's first line.
    fn base(&self) -> usize;

    /// Visits one node (the language's own part).
    fn visit(&mut self, n: Node);

    /// The source text of a node.
    fn text(&self, n: Node) -> &str {
        &self.src()[n.byte_range()]
    }

    /// The file lines a node spans (first, last).
    fn lines(&self, n: Node) -> (usize, usize) {
        (
            self.base() + n.start_position().row,
            self.base() + n.end_position().row,
        )
    }

    /// Visits a node's named children in order.
    fn visit_children(&mut self, n: Node) {
        let mut c = n.walk();
        let kids: Vec<Node> = n.named_children(&mut c).collect();
        for k in kids {
            self.visit(k);
        }
    }
}

/// The write sites of a front end whose calls name their path in one argument (JavaScript,
/// Python): the finding at the call, then its follow-ups, reported with the normalised template
/// as their path.
pub(crate) trait CallWrites<'a>: Walk {
    /// The path template of an expression (the language's own part).
    fn tpl(&self, n: Node) -> String;

    /// The unit findings go to and the scope's reads and guards.
    fn parts(&mut self) -> (&mut Unit<'a>, &mut Scope);

    /// The locks held here.
    fn held(&mut self) -> &mut Held;

    /// A `mkdir` of `arg`'s path by `call`: in a `try` or a loop a lock attempt (that falls
    /// through when the loop can end without it), else a check-then-act when guarded. `exist_ok`
    /// (`recursive`, `parents`, `exist_ok`) makes it neither.
    fn mkdir(&mut self, call: Node, arg: Option<Node>, exist_ok: bool, locked: bool) {
        if exist_ok {
            return;
        }
        let held = self.held();
        if held.in_try > 0 || !held.loops.is_empty() {
            let falls = held.loops.last().copied().unwrap_or(false);
            if !falls {
                held.locks += 1;
            }
            let p = if falls {
                Pattern::MkdirLockFallthrough
            } else {
                Pattern::MkdirLock
            };
            self.emit_at(call, arg, p, &Facts::default());
        } else {
            self.guarded_act(call, arg, "mkdir", locked);
        }
    }

    /// Records a read of `arg`'s path at `line`.
    fn read(&mut self, arg: Option<Node>, line: usize) {
        if let Some(a) = arg {
            let t = self.tpl(a);
            self.parts().1.read(&t, line);
        }
    }

    /// Emits one finding for the path `arg` at the call `call`.
    fn emit_at(&mut self, call: Node, arg: Option<Node>, p: Pattern, facts: &Facts) {
        let Some(a) = arg else { return };
        let t = self.tpl(a);
        let path = snippet(self.text(a));
        let site = Site {
            lines: self.lines(call),
            path: &path,
            template: &t,
        };
        self.parts().0.emit(&site, p, facts);
    }

    /// A `mkdir`/`rm` of `arg`'s path by `call`: a check-then-act when an enclosing existence
    /// check guards that path.
    fn guarded_act(&mut self, call: Node, arg: Option<Node>, action: &'static str, locked: bool) {
        let t = resolve::normalize(&arg.map(|a| self.tpl(a)).unwrap_or_default());
        if comparable(&t) && self.parts().1.guards.contains(&t) {
            let f = Facts {
                locked,
                action,
                ..Default::default()
            };
            self.emit_at(call, arg, Pattern::CheckThenAct, &f);
        }
    }

    /// A write of `arg`'s path by `call`, and its follow-ups.
    fn write(&mut self, call: Node, arg: Option<Node>, p: Pattern, locked: bool) {
        let Some(a) = arg else { return };
        let facts = Facts {
            locked,
            ..Default::default()
        };
        self.emit_at(call, Some(a), p, &facts);
        let t = self.tpl(a);
        self.after_write(call, &t, p, locked, "write");
    }

    /// The follow-ups of a write of template `t` by `call` (see [`Scope::after_write`]).
    fn after_write(&mut self, call: Node, t: &str, p: Pattern, locked: bool, action: &'static str) {
        let t = resolve::normalize(t);
        let site = Site {
            lines: self.lines(call),
            path: &t,
            template: &t,
        };
        let (unit, scope) = self.parts();
        scope.after_write(unit, &site, p, locked, action);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_value_named_by_its_variable_is_comparable_an_unfollowed_expression_is_not() {
        assert!(super::comparable("<flagDir>"));
        assert!(!super::comparable("<expr>"));
        assert!(!super::comparable("<expr>/<cmd>"));
    }
}
