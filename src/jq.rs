//! jq's path-update semantics on top of jaq, for `concur json`.
//!
//! jaq (the jq implementation `concur json` runs) updates paths natively and strictly: `null |
//! .a = 1` and `[] | .[2] = 1` are errors there, while jq creates the objects and arrays on the
//! way (`{"a":1}`, `[null,null,1]`). Users write jq, so a filter is rewritten before it is
//! compiled: every `l = r`, `l |= f`, `l op= r` and `l //= r` becomes a call of a definition
//! below that walks `path(l)` with a jq-style `setpath` (which creates missing containers and
//! pads arrays with nulls), and `setpath` itself is redefined the same way. `del` and `delpaths`
//! delete as jq does (paths sorted, the deepest and last first; nothing on null), and a few
//! jq builtins jaq lacks or treats differently are defined (`ltrimstr`/`rtrimstr` on
//! non-strings, `leaf_paths`, `IN`).
//!
//! The updates follow jq 1.7: `l |= f` takes f's first output and deletes the path when f has
//! none; `l op= r` binds each output of `r` (against the original input) before updating. The
//! cost is one path walk per updated path instead of jaq's in-place update; state files are
//! small.
//!
//! A filter the rewrite cannot parse (it uses modules) is compiled as written.

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Def, Pattern, Term};
use jaq_core::path::{Part, Path};

/// The definitions the rewritten filter calls, in jq.
pub(crate) const PRELUDE: &str = r#"
def _concur_setpath($p; $v):
  if $p == [] then $v
  else $p[0] as $k
    | if . == null then (if ($k | type) == "string" then {} else [] end) else . end
    | if ($k | type) == "number" and type == "array" and $k >= length
      then . + [range(length; $k + 1) | null] else . end
    | .[$k] |= _concur_setpath($p[1:]; $v)
  end;
def setpath($p; $v): _concur_setpath($p; $v);
def _concur_delpath($p):
  if $p == [] or . == null then null
  else $p[0] as $k0
    | (if ($k0 | type) == "number" and $k0 < 0 and type == "array" then $k0 + length
       else $k0 end) as $k
    | if ($k | type) == "object" or has($k) then
        if ($p | length) == 1 then .[$k] |= empty else .[$k] |= _concur_delpath($p[1:]) end
      else . end
  end;
def delpaths($ps): reduce ($ps | sort | reverse)[] as $p (.; _concur_delpath($p));
def del(f): delpaths([path(f)]);
def ltrimstr($x):
  if type == "string" and ($x | type) == "string" and startswith($x)
  then .[($x | length):] else . end;
def rtrimstr($x):
  if type == "string" and ($x | type) == "string" and ($x | length) > 0 and endswith($x)
  then .[:length - ($x | length)] else . end;
def leaf_paths: paths(scalars);
def _concur_format($f; cell):
  if type != "array" then error("\(type) (\(tojson)) cannot be \($f)-formatted, only an array")
  else map(cell) | join(if $f == "csv" then "," else "\t" end) end;
def _concur_cell($f; str):
  if type == "string" then str
  elif type == "number" or type == "boolean" then tostring
  elif . == null then ""
  else error("\(type) (\(tojson)) is not valid in a \($f) row") end;
def _concur_at_csv: _concur_format("csv"; _concur_cell("csv"; "\"" + gsub("\""; "\"\"") + "\""));
def _concur_at_tsv:
  _concur_format("tsv";
    _concur_cell("tsv"; gsub("\\\\"; "\\\\") | gsub("\t"; "\\t") | gsub("\n"; "\\n") | gsub("\r"; "\\r")));
def IN(s): any(s == .; .);
def IN(src; s): any(src == s; .);
def _concur_assign(paths; $v): reduce path(paths) as $p (.; _concur_setpath($p; $v));
def _concur_modify(paths; update):
  reduce path(paths) as $p (.;
    label $out
    | ((getpath($p) | update) as $new | _concur_setpath($p; $new) | ., break $out),
      delpaths([$p]));
"#;

/// The name of the definition that holds the rewritten main filter.
pub(crate) const MAIN: &str = "_concur_main";

/// The variable an `op=` right-hand side is bound to.
const RHS: &str = "$__concur_rhs";

/// `code` parsed and rewritten as a definition named [`MAIN`], or `None` when it does not
/// parse as a plain filter (the caller compiles it as written and reports its errors).
pub(crate) fn main_def(code: &str) -> Option<Def<&str>> {
    let term = jaq_core::load::parse(code, |p| p.term())?;
    Some(Def {
        name: MAIN,
        args: Vec::new(),
        body: rewrite(term),
    })
}

/// The definitions of [`PRELUDE`].
///
/// `_concur_at_csv` and `_concur_at_tsv` are renamed `@csv` and `@tsv` (a jq `def` cannot name
/// a format).
pub(crate) fn prelude() -> Vec<Def<&'static str>> {
    let mut defs = jaq_core::load::parse(PRELUDE, |p| p.defs()).expect("the jq prelude parses");
    for d in &mut defs {
        d.name = match d.name {
            "_concur_at_csv" => "@csv",
            "_concur_at_tsv" => "@tsv",
            other => other,
        };
    }
    defs
}

fn call<'s>(name: &'s str, args: Vec<Term<&'s str>>) -> Term<&'s str> {
    Term::Call(name, args)
}

/// `t` with every assignment and update replaced by a call of the prelude's definitions.
fn rewrite(t: Term<&str>) -> Term<&str> {
    // Rewrites a boxed child in place of the box.
    #[allow(clippy::boxed_local, clippy::unnecessary_box_returns)]
    fn b(t: Box<Term<&str>>) -> Box<Term<&str>> {
        Box::new(rewrite(*t))
    }
    match t {
        Term::BinOp(l, op, r) => {
            let (l, r) = (rewrite(*l), rewrite(*r));
            let bind = |update: Term<&'static str>, l, r| {
                // r as $x | _concur_modify(l; update)
                Term::BinOp(
                    Box::new(r),
                    BinaryOp::Pipe(Some(Pattern::Var(RHS))),
                    Box::new(call("_concur_modify", vec![l, update])),
                )
            };
            match op {
                BinaryOp::Assign => call("_concur_assign", vec![l, r]),
                BinaryOp::Update => call("_concur_modify", vec![l, r]),
                BinaryOp::UpdateMath(m) => {
                    let update = Term::BinOp(
                        Box::new(Term::Id),
                        BinaryOp::Math(m),
                        Box::new(Term::Var(RHS)),
                    );
                    bind(update, l, r)
                }
                BinaryOp::UpdateAlt => {
                    let update =
                        Term::BinOp(Box::new(Term::Id), BinaryOp::Alt, Box::new(Term::Var(RHS)));
                    bind(update, l, r)
                }
                BinaryOp::Pipe(Some(p)) => {
                    Term::BinOp(Box::new(l), BinaryOp::Pipe(Some(pattern(p))), Box::new(r))
                }
                op => Term::BinOp(Box::new(l), op, Box::new(r)),
            }
        }
        Term::Str(fmt, parts) => Term::Str(
            fmt,
            parts
                .into_iter()
                .map(|p| match p {
                    StrPart::Term(t) => StrPart::Term(rewrite(t)),
                    other => other,
                })
                .collect(),
        ),
        Term::Arr(a) => Term::Arr(a.map(b)),
        Term::Obj(kvs) => Term::Obj(
            kvs.into_iter()
                .map(|(k, v)| (rewrite(k), v.map(rewrite)))
                .collect(),
        ),
        Term::Neg(t) => Term::Neg(b(t)),
        Term::Label(s, t) => Term::Label(s, b(t)),
        Term::Fold(s, xs, p, args) => Term::Fold(
            s,
            b(xs),
            pattern(p),
            args.into_iter().map(rewrite).collect(),
        ),
        Term::TryCatch(t, c) => Term::TryCatch(b(t), c.map(b)),
        Term::IfThenElse(ifs, els) => Term::IfThenElse(
            ifs.into_iter()
                .map(|(c, t)| (rewrite(c), rewrite(t)))
                .collect(),
            els.map(b),
        ),
        Term::Def(defs, t) => Term::Def(
            defs.into_iter()
                .map(|d| Def {
                    name: d.name,
                    args: d.args,
                    body: rewrite(d.body),
                })
                .collect(),
            b(t),
        ),
        Term::Call(name, args) => Term::Call(name, args.into_iter().map(rewrite).collect()),
        Term::Path(t, Path(parts)) => Term::Path(
            b(t),
            Path(
                parts
                    .into_iter()
                    .map(|(part, opt)| {
                        let part = match part {
                            Part::Index(i) => Part::Index(rewrite(i)),
                            Part::Range(from, to) => {
                                Part::Range(from.map(rewrite), to.map(rewrite))
                            }
                        };
                        (part, opt)
                    })
                    .collect(),
            ),
        ),
        other => other,
    }
}

/// A pattern with the key terms of its objects rewritten.
fn pattern(p: Pattern<&str>) -> Pattern<&str> {
    match p {
        Pattern::Arr(ps) => Pattern::Arr(ps.into_iter().map(pattern).collect()),
        Pattern::Obj(kvs) => Pattern::Obj(
            kvs.into_iter()
                .map(|(k, v)| (rewrite(k), pattern(v)))
                .collect(),
        ),
        v @ Pattern::Var(_) => v,
    }
}
