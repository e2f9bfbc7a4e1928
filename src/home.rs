//! The runtime home: where named locks, slots, tokens, sessions, the lease database and the
//! broker socket live.
//!
//! Resolved as `$CONCUR_HOME`, else `$XDG_STATE_HOME/concur`, else `~/.local/state/concur`.
//! Created with mode 0700. concur refuses a home that is a symlink, is owned by another user, or
//! is group- or world-writable: anyone who can write there could plant a lock file or token and
//! steer every session on the machine. Nothing of concur's own goes to a predictable /tmp path.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sys;

/// A checked runtime home directory.
#[derive(Debug, Clone)]
pub struct Home {
    path: PathBuf,
}

impl Home {
    /// Resolves the home from the environment, creating it if missing, and checks it.
    ///
    /// # Errors
    /// [`Error::Unsafe`] for a symlinked, foreign-owned or loosely-permissioned home;
    /// [`Error::Io`] if it cannot be created; [`Error::Invalid`] if no location can be derived.
    pub fn resolve() -> Result<Home> {
        Home::at(default_path()?)
    }

    /// Uses `path` as the home, creating it (and missing parents, 0700) if needed, and checks it.
    ///
    /// # Errors
    /// As [`Home::resolve`].
    pub fn at(path: impl Into<PathBuf>) -> Result<Home> {
        let path = path.into();
        // One lstat on the common path (the home exists); create and re-check only when missing.
        match check_dir(&path, "refusing runtime home") {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                create_all(&path)?;
                check_dir(&path, "refusing runtime home")?;
            }
            other => other?,
        }
        Ok(Home { path })
    }

    /// The home directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path directly in the home.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// A subdirectory of the home (`locks`, `slots`, `tokens`, ...), created 0700 and checked
    /// like the home itself.
    ///
    /// # Errors
    /// As [`Home::resolve`].
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.path.join(name);
        sys::fs::mkdir(&dir, 0o700).map_err(Error::with("cannot create directory", &dir))?;
        check_dir(&dir, "refusing home subdirectory")?;
        Ok(dir)
    }
}

/// The path the environment names, before any check.
///
/// # Errors
/// [`Error::Invalid`] when neither `CONCUR_HOME`, `XDG_STATE_HOME` nor `HOME` is set, or when
/// `CONCUR_HOME` is a relative path: resolved against the current directory, the state would
/// depend on where each hook happens to run. A relative `XDG_STATE_HOME` is ignored, as the XDG
/// base directory specification says.
pub fn default_path() -> Result<PathBuf> {
    if let Some(p) = non_empty_env("CONCUR_HOME") {
        let p = PathBuf::from(p);
        if p.is_relative() {
            return Err(Error::Invalid(format!(
                "CONCUR_HOME must be an absolute path, not {:?} (relative, the state would \
                 depend on the directory each command runs in)",
                p.display().to_string()
            )));
        }
        return Ok(p);
    }
    if let Some(p) = non_empty_env("XDG_STATE_HOME").filter(|p| Path::new(p).is_absolute()) {
        return Ok(PathBuf::from(p).join("concur"));
    }
    if let Some(p) = non_empty_env("HOME") {
        return Ok(PathBuf::from(p).join(".local/state/concur"));
    }
    Err(Error::Invalid(
        "no runtime home: set CONCUR_HOME or HOME".into(),
    ))
}

fn non_empty_env(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

fn create_all(path: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut cur = path;
    while std::fs::symlink_metadata(cur).is_err() {
        missing.push(cur);
        match cur.parent() {
            Some(p) if !p.as_os_str().is_empty() => cur = p,
            _ => break,
        }
    }
    for dir in missing.into_iter().rev() {
        sys::fs::mkdir(dir, 0o700).map_err(Error::with("cannot create runtime home", dir))?;
    }
    Ok(())
}

fn check_dir(path: &Path, what: &'static str) -> Result<()> {
    let md = std::fs::symlink_metadata(path).map_err(Error::with("cannot stat", path))?;
    if md.file_type().is_symlink() {
        return Err(Error::unsafe_path(what, path, "is a symlink"));
    }
    if !md.is_dir() {
        return Err(Error::unsafe_path(what, path, "is not a directory"));
    }
    let me = sys::proc::euid();
    if md.uid() != me {
        return Err(Error::unsafe_path(
            what,
            path,
            format!("owned by uid {}, not by uid {me}", md.uid()),
        ));
    }
    let mode = md.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Error::unsafe_path(
            what,
            path,
            format!("mode {mode:04o} is group- or world-writable (chmod 700 it)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_private_home() {
        let d = tempfile::tempdir().unwrap();
        let h = Home::at(d.path().join("a/b")).unwrap();
        let mode = std::fs::metadata(h.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn refuses_symlinked_and_world_writable_homes() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        Home::at(&real).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(Home::at(&link), Err(Error::Unsafe { .. })));
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(Home::at(&real), Err(Error::Unsafe { .. })));
    }
}
