//! Canonical reservation targets: what a `PATH|GLOB` argument names, independent of how it was
//! spelt.
//!
//! A path is made absolute against the caller's directory, then resolved through its nearest
//! existing ancestor (`realpath(3)` of that ancestor: symlinks and `..` resolved); the components
//! that do not exist yet are appended lexically (a component that does not exist cannot be a
//! symlink, so `..` after it is resolved by dropping it). A glob's literal leading segments are
//! resolved the same way; its pattern segments may not contain `.` or `..`. An existing directory
//! stands for everything under it (`dir/**`).
//!
//! The target is then split at the repository root: the nearest ancestor holding `.git` (a
//! directory, or the file of a linked worktree). Outside any repository the root is `/`. Two
//! targets are compared on the full path (root + pattern), so a claim made inside a repository and
//! one made by absolute path outside it still meet.
//!
//! Not guaranteed: a symlink created *after* a claim, or a bind mount, can give one file a second
//! name that the claim does not cover.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use super::glob;
use crate::error::{Error, Result};

/// A canonical reservation target: a repository root and a glob relative to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The repository root (`/` outside any repository).
    pub root: String,
    /// The path or glob relative to `root` (no leading `/`; literal `*`, `?`, `\` escaped).
    pub pattern: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

impl Target {
    /// Resolves `arg` (a path or a glob, relative to `cwd` unless absolute).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty argument, a NUL byte, or `.`/`..` inside the glob part.
    ///
    /// # Examples
    /// ```
    /// # let d = tempfile::tempdir().unwrap();
    /// # let dir = std::fs::canonicalize(d.path()).unwrap();
    /// use concur::reserve::Target;
    /// std::fs::create_dir_all(dir.join("repo/.git")).unwrap();
    /// std::fs::create_dir_all(dir.join("repo/src")).unwrap();
    /// let t = Target::resolve("src/../src/new.rs", &dir.join("repo")).unwrap();
    /// assert_eq!(t.pattern, "src/new.rs");
    /// assert_eq!(t.root, dir.join("repo").to_str().unwrap());
    /// assert_eq!(Target::resolve("src", &dir.join("repo")).unwrap().pattern, "src/**");
    /// ```
    pub fn resolve(arg: &str, cwd: &Path) -> Result<Target> {
        Target::resolve_as(arg, cwd, false)
    }

    /// Resolves `arg` as one literal path: `*`, `?` and `\` in it are characters of a file
    /// name, never wildcards (what a file tool's `file_path` names). An existing directory still
    /// stands for everything under it (`dir/**`), so check [`Target::is_glob`] before claiming.
    ///
    /// # Errors
    /// As [`Target::resolve`].
    ///
    /// # Examples
    /// ```
    /// # let d = tempfile::tempdir().unwrap();
    /// # let dir = std::fs::canonicalize(d.path()).unwrap();
    /// use concur::reserve::Target;
    /// std::fs::create_dir_all(dir.join("repo/.git")).unwrap();
    /// let t = Target::resolve_literal("a*b.rs", &dir.join("repo")).unwrap();
    /// assert_eq!(t.pattern, r"a\*b.rs");
    /// assert!(!t.is_glob());
    /// ```
    pub fn resolve_literal(arg: &str, cwd: &Path) -> Result<Target> {
        Target::resolve_as(arg, cwd, true)
    }

    fn resolve_as(arg: &str, cwd: &Path, literal: bool) -> Result<Target> {
        if arg.is_empty() || arg.contains('\0') {
            return Err(Error::Invalid(format!("invalid path {arg:?}")));
        }
        let abs = if arg.starts_with('/') {
            PathBuf::from(arg)
        } else {
            cwd.join(arg)
        };
        check_len(&abs)?;
        if !abs.is_absolute() {
            return Err(Error::Invalid(format!(
                "invalid path {arg:?}: relative to a directory that is not absolute"
            )));
        }
        // An existing file whose name has `*` or `?` is that file, not a glob.
        let is_glob = !literal && glob::has_meta(arg) && std::fs::symlink_metadata(&abs).is_err();
        let (literal, rest): (PathBuf, Vec<String>) = if is_glob {
            let mut lit = PathBuf::new();
            let mut rest = Vec::new();
            for c in abs.components() {
                let s = c.as_os_str().to_string_lossy();
                if rest.is_empty() && !glob::has_meta(&s) {
                    lit.push(c);
                } else {
                    if matches!(c, Component::CurDir | Component::ParentDir) {
                        return Err(Error::Invalid(format!(
                            "invalid glob {arg:?}: no `.` or `..` after a wildcard"
                        )));
                    }
                    rest.push(s.into_owned());
                }
            }
            (lit, rest)
        } else {
            (abs, Vec::new())
        };
        let (base, tail) = resolve_nearest(&literal);
        let mut full = base.clone();
        for t in &tail {
            full.push(t);
        }
        let mut pattern_segs: Vec<String> = Vec::new();
        let root = repo_root(&base);
        let rel = full.strip_prefix(&root).unwrap_or(&full);
        for c in rel.components() {
            if let Component::Normal(s) = c {
                pattern_segs.push(glob::escape(&s.to_string_lossy()));
            }
        }
        if is_glob {
            pattern_segs.extend(rest);
        } else if tail.is_empty() && std::fs::metadata(&full).is_ok_and(|m| m.is_dir()) {
            pattern_segs.push("**".into());
        }
        if pattern_segs.is_empty() {
            pattern_segs.push("**".into());
        }
        Ok(Target {
            root: root.to_string_lossy().into_owned(),
            pattern: pattern_segs.join("/"),
        })
    }

    /// The full absolute glob (root + pattern), the form conflicts are computed on.
    pub fn full(&self) -> String {
        if self.root == "/" {
            format!("/{}", self.pattern)
        } else {
            format!("{}/{}", glob::escape(&self.root), self.pattern)
        }
    }

    /// Whether the target is a glob (not one literal path).
    pub fn is_glob(&self) -> bool {
        glob::has_meta(&self.pattern)
    }
}

/// The longest path a target may have: the kernel's `PATH_MAX` (4096 bytes with the NUL), so
/// no file can have a longer name, and matching stays bounded.
pub const PATH_MAX: usize = 4095;

/// Refuses a path longer than [`PATH_MAX`] bytes.
///
/// # Errors
/// [`Error::Invalid`] naming the length.
pub fn check_len(p: &Path) -> Result<()> {
    let n = p.as_os_str().len();
    if n > PATH_MAX {
        return Err(Error::Invalid(format!(
            "path of {n} bytes is longer than PATH_MAX ({PATH_MAX} bytes)"
        )));
    }
    Ok(())
}

/// Splits `abs` into its canonicalised longest existing prefix and the lexically normalised
/// components after it.
fn resolve_nearest(abs: &Path) -> (PathBuf, Vec<String>) {
    let comps: Vec<Component<'_>> = abs.components().collect();
    for k in (1..=comps.len()).rev() {
        let prefix: PathBuf = comps[..k].iter().collect();
        if let Ok(base) = std::fs::canonicalize(&prefix) {
            let mut base = base;
            let mut tail: Vec<String> = Vec::new();
            for c in &comps[k..] {
                match c {
                    Component::ParentDir if tail.pop().is_none() => {
                        base.pop();
                    }
                    Component::Normal(s) => tail.push(s.to_string_lossy().into_owned()),
                    _ => {}
                }
            }
            return (base, tail);
        }
    }
    (PathBuf::from("/"), Vec::new())
}

/// The nearest ancestor of `dir` (inclusive) that holds `.git`, else `/`.
fn repo_root(dir: &Path) -> PathBuf {
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.join(".git").exists() {
            return d.to_path_buf();
        }
        cur = d.parent();
    }
    PathBuf::from("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_dotdot_and_missing_files_resolve_to_one_name() {
        let d = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(dir.join("repo/.git")).unwrap();
        std::fs::create_dir_all(dir.join("repo/src")).unwrap();
        std::os::unix::fs::symlink(dir.join("repo/src"), dir.join("link")).unwrap();
        let repo = dir.join("repo");
        let want = Target::resolve("src/x.rs", &repo).unwrap();
        assert_eq!(want.pattern, "src/x.rs");
        for spelling in [
            format!("{}/link/x.rs", dir.display()),
            format!("{}/repo/src/../src/./x.rs", dir.display()),
            "src/new/../x.rs".to_owned(),
        ] {
            assert_eq!(
                Target::resolve(&spelling, &repo).unwrap(),
                want,
                "{spelling}"
            );
        }
        let g = Target::resolve("../../link/**/*.rs", &repo.join("src")).unwrap();
        assert_eq!(g.pattern, "src/**/*.rs");
        assert!(g.is_glob());
        assert!(Target::resolve("src/*/../x", &repo).is_err());
        // Outside a repository the root is `/`.
        let out = Target::resolve(&format!("{}/free.txt", dir.display()), &repo).unwrap();
        assert_eq!(out.root, "/");
        assert_eq!(out.full(), format!("{}/free.txt", dir.display()));
    }
}
