//! The git guard: in a checkout shared by live agent sessions, a git command run from one
//! session's shell tool that would discard or rewrite files another live session has reserved is
//! refused, naming that session; the same command is allowed when no other session is affected.
//!
//! The command line is split into simple commands (quotes, `;`, `&&`, `||`, `|`, newlines) and
//! each `git` invocation (after `env`, `sudo`, `command`, variable assignments; git's own `-C`,
//! `-c`, `--git-dir`, `--work-tree` options) is classified by what it does to the work tree
//! ([`Effect`]):
//!
//! | command | what it touches |
//! |---|---|
//! | `reset --hard` / `--merge` / `--keep` (no commit) | uncommitted changes to tracked files |
//! | `reset --hard REF`, `switch B`, `checkout B`, `rebase`, `merge`, `pull`, `cherry-pick`, `revert`, `am`, `stash pop/apply` | the whole checkout |
//! | `checkout -- P`, `restore P` | uncommitted changes under P |
//! | `checkout REF -- P`, `restore --source REF P` | everything under P |
//! | `stash` (push/save) | uncommitted changes (untracked files too with `-u`/`-a`) |
//! | `clean -f` | untracked files (ignored ones too with `-x`) |
//! | `commit -a`, `commit P` | uncommitted changes to tracked files (under P) — taking them into this session's commit |
//!
//! Uncommitted changes are listed with `git status --porcelain -z` (run only when such a command
//! is seen); each file, or for the whole checkout the checkout's `**`, is then checked against
//! the reservations like a file-tool edit: another live session's reservation denies, the
//! session's own are allowed, and the one-time override token of the reserved path lets the
//! command through once (audited).
//!
//! Not guaranteed: a git command whose directory is computed at run time (`cd "$d" && git …`
//! is judged in the hook's working directory), git run through an alias or a script, and files
//! that another session edited without reserving them (turn on `[reserve] auto` so edits
//! reserve their files).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// What a git command does to the work tree, as far as other sessions' files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Discards, stashes, deletes or commits the uncommitted changes under these pathspecs
    /// (empty: everywhere), of tracked files and/or untracked (and ignored) ones.
    Uncommitted {
        /// Tracked files with changes.
        tracked: bool,
        /// Untracked files.
        untracked: bool,
        /// Ignored files (`clean -x`).
        ignored: bool,
        /// The pathspecs (empty: the whole checkout).
        paths: Vec<String>,
    },
    /// May rewrite any file under these pathspecs, changed or not.
    Paths(Vec<String>),
    /// May rewrite any file of the checkout.
    Tree,
}

/// One `git` invocation found in a shell command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRun {
    /// `-C DIR` (joined when given more than once), relative to the command's directory.
    pub dir: Option<PathBuf>,
    /// The command as shown in a deny reason (`git reset --hard`).
    pub shown: String,
    /// What it does.
    pub effect: Effect,
}

/// The git invocations of `command` that touch the work tree.
pub fn git_runs(command: &str) -> Vec<GitRun> {
    if !command.contains("git") {
        return Vec::new();
    }
    simple_commands(command)
        .into_iter()
        .filter_map(|argv| classify(&argv))
        .collect()
}

/// Splits a command line into the words of each simple command: quotes and backslashes are
/// honoured, `;`, `&`, `|`, newlines and parentheses separate commands, `#` starts a comment,
/// redirections are dropped. Linear in the input.
fn simple_commands(command: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars().peekable();
    let end_word = |word: &mut String, in_word: &mut bool, cur: &mut Vec<String>| {
        if *in_word {
            cur.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    word.push(d);
                }
            }
            '"' => {
                in_word = true;
                while let Some(d) = chars.next() {
                    match d {
                        '"' => break,
                        '\\' => {
                            if let Some(e) = chars.next() {
                                word.push(e);
                            }
                        }
                        _ => word.push(d),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(d) = chars.next()
                    && d != '\n'
                {
                    word.push(d);
                }
            }
            ';' | '&' | '|' | '\n' | '(' | ')' => {
                end_word(&mut word, &mut in_word, &mut cur);
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            '#' if !in_word => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c if c.is_whitespace() => end_word(&mut word, &mut in_word, &mut cur),
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut word, &mut in_word, &mut cur);
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter().map(drop_redirections).collect()
}

/// Removes `>f`, `2>&1`, `< in`, `> f` (and its target word) from a command's words.
fn drop_redirections(words: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len());
    let mut skip_next = false;
    for w in words {
        if skip_next {
            skip_next = false;
            continue;
        }
        let rest = w.trim_start_matches(|c: char| c.is_ascii_digit());
        if rest.starts_with(['<', '>']) {
            // `>` alone (or `2>`) takes the next word as its target.
            skip_next = rest.trim_start_matches(['<', '>', '&', '|']).is_empty();
            continue;
        }
        out.push(w);
    }
    out
}

/// The words before a command that only launch it.
fn skip_launchers(argv: &[String]) -> &[String] {
    let mut i = 0;
    while i < argv.len() {
        let w = argv[i].as_str();
        let name = w.rsplit('/').next().unwrap_or(w);
        let assignment = w
            .split_once('=')
            .is_some_and(|(k, _)| !k.is_empty() && !k.starts_with('-') && !k.contains('/'));
        if assignment
            || matches!(
                name,
                "env"
                    | "sudo"
                    | "command"
                    | "exec"
                    | "nohup"
                    | "nice"
                    | "time"
                    | "then"
                    | "do"
                    | "else"
                    | "elif"
                    | "if"
                    | "while"
                    | "until"
                    | "!"
                    | "{"
            )
            || (w.starts_with('-') && i > 0)
        {
            // The launchers' options that take a value: `env -u NAME`, `env -C DIR`,
            // `sudo -u USER`, `sudo -g GROUP`, `nice -n 10`.
            let valued = i > 0
                && matches!(
                    w,
                    "-u" | "-C" | "-g" | "-n" | "--unset" | "--chdir" | "--user"
                );
            i += if valued { 2 } else { 1 };
            continue;
        }
        break;
    }
    &argv[i..]
}

/// Classifies one simple command; `None` when it is not a work-tree-changing git command.
fn classify(argv: &[String]) -> Option<GitRun> {
    let argv = skip_launchers(argv);
    let (first, rest) = argv.split_first()?;
    if first.rsplit('/').next() != Some("git") {
        return None;
    }
    let mut dir: Option<PathBuf> = None;
    let mut i = 0;
    while i < rest.len() {
        let w = rest[i].as_str();
        match w {
            "-C" => {
                let d = rest.get(i + 1)?;
                dir = Some(dir.map_or_else(|| PathBuf::from(d), |p| p.join(d)));
                i += 2;
            }
            "-c" | "--git-dir" | "--work-tree" | "--namespace" | "--exec-path" => i += 2,
            _ if w.starts_with('-') => i += 1,
            _ => break,
        }
    }
    let sub = rest.get(i)?.as_str();
    let args = &rest[i + 1..];
    let effect = effect(sub, args)?;
    let shown = std::iter::once("git")
        .chain(std::iter::once(sub))
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    Some(GitRun { dir, shown, effect })
}

/// Short flags of a word (`-fdx` → `fdx`); empty for long options and operands.
fn short_flags(w: &str) -> &str {
    match w.strip_prefix('-') {
        Some(f) if !f.starts_with('-') => f,
        _ => "",
    }
}

fn has(args: &[String], names: &[&str]) -> bool {
    args.iter().any(|a| names.contains(&a.as_str()))
}

fn has_short(args: &[String], flag: char) -> bool {
    args.iter()
        .take_while(|a| a.as_str() != "--")
        .any(|a| short_flags(a).contains(flag))
}

/// Operands (not options) before `--`, and the words after it.
fn operands(args: &[String], valued: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut before = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            return (before, args[i + 1..].to_vec());
        }
        if valued.contains(&a) {
            i += 2;
            continue;
        }
        if !a.starts_with('-') {
            before.push(a.to_owned());
        }
        i += 1;
    }
    (before, Vec::new())
}

fn uncommitted(tracked: bool, untracked: bool, ignored: bool, paths: Vec<String>) -> Effect {
    Effect::Uncommitted {
        tracked,
        untracked,
        ignored,
        paths,
    }
}

/// What `git SUB ARGS` does to the work tree.
fn effect(sub: &str, args: &[String]) -> Option<Effect> {
    match sub {
        "reset" => {
            if !has(args, &["--hard", "--merge", "--keep"]) {
                return None; // index only
            }
            let (ops, _) = operands(args, &[]);
            Some(if ops.iter().all(|r| r == "HEAD") {
                uncommitted(true, false, false, Vec::new())
            } else {
                Effect::Tree
            })
        }
        "checkout" => {
            let (ops, after) = operands(args, &["-b", "-B", "--orphan", "--conflict"]);
            if !after.is_empty() {
                return Some(if ops.is_empty() {
                    uncommitted(true, false, false, after)
                } else {
                    Effect::Paths(after)
                });
            }
            let creates = has(args, &["-b", "-B", "--orphan"]);
            match ops.len() {
                0 if creates => None,
                0 => has(args, &["-f", "--force"]).then_some(Effect::Tree),
                // `git checkout X`: a branch or a path; either may change reserved files.
                1 => Some(Effect::Tree),
                _ => Some(Effect::Paths(ops[1..].to_vec())),
            }
        }
        "switch" => {
            let (ops, _) = operands(args, &["-c", "-C", "--orphan", "--conflict"]);
            let creates = has(args, &["-c", "-C", "--orphan"]);
            (!(creates && ops.is_empty())).then_some(Effect::Tree)
        }
        "restore" => {
            let staged_only = has(args, &["--staged", "-S"])
                && !has(args, &["--worktree", "-W"])
                && !has_short(args, 'W');
            if staged_only {
                return None;
            }
            let (mut ops, after) = operands(args, &["-s", "--source"]);
            ops.extend(after);
            let source =
                has(args, &["-s", "--source"]) || args.iter().any(|a| a.starts_with("--source="));
            Some(if source {
                Effect::Paths(ops)
            } else {
                uncommitted(true, false, false, ops)
            })
        }
        "stash" => {
            let first = args.first().map_or("push", String::as_str);
            match first {
                "list" | "show" | "drop" | "clear" | "create" | "store" => None,
                "pop" | "apply" | "branch" => Some(Effect::Tree),
                _ => {
                    let all = has(args, &["-a", "--all"]);
                    let untracked = all || has(args, &["-u", "--include-untracked"]);
                    let (_, after) = operands(args, &["-m", "--message"]);
                    Some(uncommitted(true, untracked, all, after))
                }
            }
        }
        "clean" => {
            let force = has(args, &["--force"]) || has_short(args, 'f');
            let dry = has(args, &["--dry-run"]) || has_short(args, 'n');
            if !force || dry {
                return None;
            }
            let ignored = has_short(args, 'x') || has_short(args, 'X');
            let (mut ops, after) = operands(args, &["-e", "--exclude"]);
            ops.extend(after);
            Some(uncommitted(false, !has_short(args, 'X'), ignored, ops))
        }
        "commit" => commit_effect(args),
        "rebase" => (!has(args, &["--show-current-patch"])).then_some(Effect::Tree),
        "merge" | "pull" | "cherry-pick" | "revert" | "am" => Some(Effect::Tree),
        _ => None,
    }
}

/// `git commit ARGS`: with `-a` or pathspecs it takes uncommitted changes into the commit.
fn commit_effect(args: &[String]) -> Option<Effect> {
    let all = has(args, &["--all"]) || has_short(args, 'a');
    let (mut ops, after) = operands(
        args,
        &[
            "-m",
            "--message",
            "-F",
            "--file",
            "-C",
            "-c",
            "--author",
            "--date",
            "-t",
            "--template",
            "--fixup",
            "--squash",
            "--cleanup",
        ],
    );
    ops.extend(after);
    ops.retain(|o| !o.starts_with('-'));
    // `-m MSG` glued (`-mfix`) or in a group (`-am fix`) takes the next word: only the
    // pathspecs after `--`, or with no message option, are paths.
    if has_short(args, 'm') && !args.iter().any(|a| a == "--") {
        ops.clear();
    }
    (all || !ops.is_empty()).then(|| uncommitted(true, false, false, ops))
}

/// The files a run touches in the checkout around `dir`, as absolute paths (globs for whole
/// directories: `ROOT/**`, `DIR/**`). Empty when `dir` is not in a git checkout.
///
/// # Errors
/// git fails inside a checkout (the caller denies: fail closed).
pub fn touched(run: &GitRun, cwd: &Path) -> Result<Vec<PathBuf>> {
    let dir = run
        .dir
        .as_ref()
        .map_or_else(|| cwd.to_owned(), |d| cwd.join(d));
    let Some(root) = toplevel(&dir) else {
        return Ok(Vec::new());
    };
    let spec = |p: &String| -> PathBuf {
        let abs = dir.join(p);
        if abs.is_dir() || p == "." {
            abs.join("**")
        } else {
            abs
        }
    };
    Ok(match &run.effect {
        Effect::Tree => vec![root.join("**")],
        Effect::Paths(ps) if ps.is_empty() => vec![root.join("**")],
        Effect::Paths(ps) => ps.iter().map(spec).collect(),
        Effect::Uncommitted {
            tracked,
            untracked,
            ignored,
            paths,
        } => {
            let prefixes: Vec<PathBuf> = paths
                .iter()
                .map(|p| {
                    let abs = dir.join(p);
                    // A pathspec with a wildcard covers its literal directory.
                    if super::glob::has_meta(p) {
                        abs.ancestors()
                            .find(|a| !super::glob::has_meta(&a.to_string_lossy()))
                            .unwrap_or(&root)
                            .to_owned()
                    } else {
                        abs
                    }
                })
                .collect();
            changed(&root, *tracked, *untracked, *ignored)?
                .into_iter()
                .filter(|f| prefixes.is_empty() || prefixes.iter().any(|p| f.starts_with(p)))
                .collect()
        }
    })
}

/// The top of the work tree `dir` is in; `None` outside one (or without git).
fn toplevel(dir: &Path) -> Option<PathBuf> {
    let o = git(dir, &["rev-parse", "--show-toplevel"]).ok()?;
    if !o.status.success() {
        return None;
    }
    let s = String::from_utf8(o.stdout).ok()?;
    Some(PathBuf::from(s.trim_end_matches('\n')))
}

/// Files of the checkout at `root` with uncommitted changes (tracked), untracked or ignored.
fn changed(root: &Path, tracked: bool, untracked: bool, ignored: bool) -> Result<Vec<PathBuf>> {
    let mut args = vec!["status", "--porcelain=v1", "-z", "--untracked-files=all"];
    if ignored {
        args.push("--ignored");
    }
    let o = git(root, &args).map_err(|e| Error::io("cannot run git status", root, e))?;
    if !o.status.success() {
        return Err(Error::Invalid(format!(
            "git status failed in {}: {}",
            root.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    let mut out = Vec::new();
    let mut entries = o.stdout.split(|&b| b == 0).filter(|e| !e.is_empty());
    while let Some(e) = entries.next() {
        if e.len() < 4 {
            continue;
        }
        let (xy, path) = (&e[..2], &e[3..]);
        // A rename or copy names its source in the next entry: both are touched.
        if (xy.contains(&b'R') || xy.contains(&b'C'))
            && let Some(from) = entries.next()
        {
            out.push((xy, from));
        }
        out.push((xy, path));
    }
    Ok(out
        .into_iter()
        .filter(|(xy, _)| match *xy {
            b"??" => untracked,
            b"!!" => ignored,
            _ => tracked,
        })
        .map(|(_, p)| root.join(String::from_utf8_lossy(p).as_ref()))
        .collect())
}

fn git(dir: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .output()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effects(cmd: &str) -> Vec<(String, Effect)> {
        git_runs(cmd)
            .into_iter()
            .map(|r| (r.shown, r.effect))
            .collect()
    }

    fn one(cmd: &str) -> Option<Effect> {
        let mut e = effects(cmd);
        assert!(e.len() <= 1, "{cmd}: {e:?}");
        e.pop().map(|(_, e)| e)
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn destructive_commands_are_classified() {
        let dirty = |p: &[&str]| uncommitted(true, false, false, s(p));
        assert_eq!(one("git reset --hard"), Some(dirty(&[])));
        assert_eq!(one("git reset --hard HEAD~1"), Some(Effect::Tree));
        assert_eq!(one("git reset HEAD f"), None);
        assert_eq!(one("git checkout -- a b"), Some(dirty(&["a", "b"])));
        assert_eq!(
            one("git checkout main -- a"),
            Some(Effect::Paths(s(&["a"])))
        );
        assert_eq!(one("git checkout main"), Some(Effect::Tree));
        assert_eq!(one("git checkout -b topic"), None);
        assert_eq!(one("git switch main"), Some(Effect::Tree));
        assert_eq!(one("git switch -c topic"), None);
        assert_eq!(one("git restore f"), Some(dirty(&["f"])));
        assert_eq!(one("git restore --staged f"), None);
        assert_eq!(
            one("git restore --source HEAD~2 f"),
            Some(Effect::Paths(s(&["f"])))
        );
        assert_eq!(one("git stash"), Some(dirty(&[])));
        assert_eq!(
            one("git stash -u"),
            Some(uncommitted(true, true, false, Vec::new()))
        );
        assert_eq!(one("git stash list"), None);
        assert_eq!(one("git stash pop"), Some(Effect::Tree));
        assert_eq!(
            one("git clean -fd"),
            Some(uncommitted(false, true, false, Vec::new()))
        );
        assert_eq!(one("git clean -nd"), None);
        assert_eq!(one("git clean -d"), None);
        assert_eq!(
            one("git clean -fdx"),
            Some(uncommitted(false, true, true, Vec::new()))
        );
        assert_eq!(one("git commit -am 'fix it'"), Some(dirty(&[])));
        assert_eq!(one("git commit -m msg"), None);
        assert_eq!(one("git commit -m msg -- f"), Some(dirty(&["f"])));
        assert_eq!(one("git commit f g"), Some(dirty(&["f", "g"])));
        assert_eq!(one("git rebase main"), Some(Effect::Tree));
        assert_eq!(one("git pull"), Some(Effect::Tree));
        assert_eq!(one("git status"), None);
        assert_eq!(one("git log -p"), None);
        assert_eq!(one("git diff"), None);
        assert_eq!(one("echo git reset --hard"), None);
    }

    #[test]
    fn launchers_options_quotes_and_lists_are_seen_through() {
        let r = git_runs("cd x && GIT_PAGER=cat env -u X git -C sub -c a=b reset --hard 2>&1");
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].dir, Some(PathBuf::from("sub")));
        assert_eq!(r[0].shown, "git reset --hard");
        assert_eq!(effects("git status; git stash && git log").len(), 1);
        assert_eq!(
            one("/usr/bin/git checkout -- 'a file' \"b\\\"c\""),
            Some(uncommitted(true, false, false, s(&["a file", "b\"c"])))
        );
        assert_eq!(one("git status # git reset --hard"), None);
        assert_eq!(effects("(git stash) | cat").len(), 1);
    }

    #[test]
    fn splitting_is_linear_in_hostile_input() {
        let long = format!("git {}", "'\\\"".repeat(200_000));
        let _ = git_runs(&long);
        let many = "git stash;".repeat(50_000);
        assert_eq!(git_runs(&many).len(), 50_000);
    }
}
