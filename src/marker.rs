//! Session-scoped markers and pointers: per-session state instead of global `/tmp` files.
//!
//! A **marker** (`<home>/markers/<session>/<name>`) is a flag a session sets, checks and clears,
//! optionally carrying JSON data. A **pointer** (`<home>/pointers/<name>/<session>`) is a value
//! each session keeps under a shared name ("my active task"); [`Pointers::get`] reads one
//! session's value and [`Pointers::list`] every live session's, so no session reads another's
//! value by accident: it has to name the other session. Both are written atomically (temp file,
//! fsync, rename, fsync dir): a reader sees the old or the new content, never a torn one.
//!
//! **Legacy fallback.** A `[legacy.NAME]` section in `concur.toml` declares the global path a
//! marker used to live at (`path = "/tmp/mehanik-cleared-{id}"`). [`Markers::check`] that finds
//! only the legacy file reports it as [`Found::Legacy`], with `warn` set when the section's
//! `warn_flag` variable is `1` in the environment or `warn = true`; [`Markers::migrate`] moves
//! legacy files into the session-scoped place.
//!
//! Not guaranteed: legacy files live wherever the old scripts put them; concur reads them with
//! `O_NOFOLLOW` but cannot make a world-writable `/tmp` path trustworthy — migrate off them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::Legacy;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::SessionId;
use crate::session::{Liveness, Registry};
use crate::sys;

/// The largest marker data or pointer value accepted, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;

/// Checks a marker or pointer name: the home's one name rule ([`crate::id::check_name`]),
/// `[A-Za-z0-9._-]{1,128}`, not `.` or `..`.
///
/// # Errors
/// [`Error::Invalid`] naming the name and the rule.
pub fn check_name(name: &str) -> Result<()> {
    crate::id::check_name("marker or pointer", name)
}

/// Where a marker check found the marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// In the session-scoped place.
    Session {
        /// The marker file.
        path: PathBuf,
        /// Its content (the JSON data, or empty).
        data: String,
    },
    /// Only at the legacy path.
    Legacy {
        /// The legacy file.
        path: PathBuf,
        /// Its content.
        data: String,
        /// Whether the deprecation warning is switched on.
        warn: bool,
    },
}

impl Found {
    /// The file the marker was found in.
    pub fn path(&self) -> &Path {
        match self {
            Found::Session { path, .. } | Found::Legacy { path, .. } => path,
        }
    }

    /// The marker's content.
    pub fn data(&self) -> &str {
        match self {
            Found::Session { data, .. } | Found::Legacy { data, .. } => data,
        }
    }
}

impl Found {
    /// The `--json` fields of `marker check NAME` that found it: `set`, `legacy`, the path and
    /// the data (as JSON; null when empty or not JSON).
    pub fn to_json(&self, name: &str) -> serde_json::Value {
        let data: serde_json::Value = serde_json::from_str(self.data()).unwrap_or_default();
        serde_json::json!({
            "name": name,
            "set": true,
            "legacy": matches!(self, Found::Legacy { .. }),
            "path": self.path(),
            "data": data,
        })
    }
}

impl Migrated {
    /// The `--json` object of one migrated file.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"session": self.session, "from": self.from, "to": self.to})
    }

    /// `NAME: moved FROM -> TO (session S)`.
    pub fn describe(&self, name: &str) -> String {
        format!(
            "{name}: moved {} -> {} (session {})",
            self.from.display(),
            self.to.display(),
            self.session
        )
    }
}

impl PointerValue {
    /// `SESSION<TAB>VALUE<TAB>STATE`, control characters in the value escaped.
    pub fn line(&self) -> String {
        format!(
            "{}\t{}\t{}",
            self.session,
            escape_controls(&self.value),
            self.state
        )
    }
}

/// The deprecation warning for a legacy hit, as printed on stderr.
pub fn deprecation_warning(name: &str, path: &Path) -> String {
    format!(
        "DEPRECATION WARN: {name}: legacy path {} used; move to concur marker",
        path.display()
    )
}

/// A marker moved by [`Markers::migrate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The session it belongs to.
    pub session: String,
    /// The legacy file (now removed).
    pub from: PathBuf,
    /// The session-scoped marker.
    pub to: PathBuf,
}

/// Session-scoped markers in a runtime home.
#[derive(Debug, Clone)]
pub struct Markers {
    home: Home,
    legacy: BTreeMap<String, Legacy>,
}

impl Markers {
    /// The markers of `home`, with the legacy paths from the configuration.
    pub fn new(home: &Home, legacy: BTreeMap<String, Legacy>) -> Markers {
        Markers {
            home: home.clone(),
            legacy,
        }
    }

    fn session_dir(&self, session: &SessionId, create: bool) -> Result<PathBuf> {
        if create {
            let root = self.home.subdir("markers")?;
            let dir = root.join(session.as_str());
            sys::fs::mkdir(&dir, 0o700).map_err(Error::with("cannot create directory", &dir))?;
            Ok(dir)
        } else {
            Ok(self.home.join("markers").join(session.as_str()))
        }
    }

    /// The legacy path of `name` for `session`, if one is configured.
    pub fn legacy_path(&self, name: &str, session: &SessionId) -> Option<PathBuf> {
        self.legacy
            .get(name)
            .map(|l| PathBuf::from(l.path.replace("{id}", session.as_str())))
    }

    fn warn_on(&self, name: &str) -> bool {
        self.legacy.get(name).is_some_and(|l| {
            l.warn
                || l.warn_flag
                    .as_deref()
                    .and_then(std::env::var_os)
                    .is_some_and(|v| v == "1")
        })
    }

    /// Sets marker `name` for `session`, with `data` (JSON text, already validated) or empty.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name or oversize data; [`Error::Io`] when it cannot be
    /// written.
    ///
    /// # Examples
    /// ```
    /// # let d = tempfile::tempdir().unwrap();
    /// use concur::marker::{Markers, Found};
    /// let home = concur::Home::at(d.path().join("home")).unwrap();
    /// let m = Markers::new(&home, Default::default());
    /// let s = concur::SessionId::new("s1").unwrap();
    /// m.set(&s, "cleared", Some("{\"by\":\"ci\"}")).unwrap();
    /// assert_eq!(m.check(&s, "cleared").unwrap().unwrap().data(), "{\"by\":\"ci\"}");
    /// let other = concur::SessionId::new("s2").unwrap();
    /// assert!(m.check(&other, "cleared").unwrap().is_none());
    /// ```
    pub fn set(&self, session: &SessionId, name: &str, data: Option<&str>) -> Result<PathBuf> {
        check_name(name)?;
        let data = data.unwrap_or("");
        if data.len() > MAX_VALUE {
            return Err(Error::Invalid(format!(
                "marker data is {} bytes; the limit is {MAX_VALUE}",
                data.len()
            )));
        }
        let dir = self.session_dir(session, true)?;
        let path = dir.join(name);
        sys::fs::write_atomic(&path, data.as_bytes(), &sys::fs::Atomic::new("rec"))?;
        Ok(path)
    }

    /// Looks for marker `name` of `session`: the session-scoped place first, then the legacy
    /// path if one is configured.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name; [`Error::Io`] when a file exists but cannot be read
    /// (a symlink is refused).
    pub fn check(&self, session: &SessionId, name: &str) -> Result<Option<Found>> {
        check_name(name)?;
        let path = self.session_dir(session, false)?.join(name);
        if let Some(data) = read_opt(&path)? {
            return Ok(Some(Found::Session { path, data }));
        }
        if let Some(path) = self.legacy_path(name, session)
            && let Some(data) = read_opt(&path)?
        {
            return Ok(Some(Found::Legacy {
                path,
                data,
                warn: self.warn_on(name),
            }));
        }
        Ok(None)
    }

    /// Clears marker `name` of `session`, in the session-scoped place and at the legacy path.
    /// Returns the files removed (none when it was not set).
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be removed.
    pub fn clear(&self, session: &SessionId, name: &str) -> Result<Vec<PathBuf>> {
        check_name(name)?;
        let mut removed = Vec::new();
        let mut paths = vec![self.session_dir(session, false)?.join(name)];
        paths.extend(self.legacy_path(name, session));
        for p in paths {
            if remove(&p)? {
                removed.push(p);
            }
        }
        Ok(removed)
    }

    /// Moves legacy files of marker `name` into the session-scoped place: for `session` only,
    /// or (`None`) for every session whose legacy file exists (found by matching the template
    /// in its directory). A legacy file whose id part is not a valid session id is left alone.
    ///
    /// # Errors
    /// [`Error::Invalid`] when no legacy path is configured for `name`; [`Error::Io`] on a
    /// read, write or remove failure (a marker already written stays; its legacy file stays too).
    pub fn migrate(&self, name: &str, session: Option<&SessionId>) -> Result<Vec<Migrated>> {
        check_name(name)?;
        let Some(legacy) = self.legacy.get(name) else {
            return Err(Error::Invalid(format!(
                "no [legacy.{name}] section in the configuration: nothing to migrate from"
            )));
        };
        let ids = match session {
            Some(s) => vec![s.clone()],
            None => legacy_ids(&legacy.path)?,
        };
        let mut out = Vec::new();
        for id in ids {
            let from = PathBuf::from(legacy.path.replace("{id}", id.as_str()));
            let Some(data) = read_opt(&from)? else {
                continue;
            };
            let to = self.set(&id, name, Some(&data))?;
            remove(&from)?;
            out.push(Migrated {
                session: id.to_string(),
                from,
                to,
            });
        }
        Ok(out)
    }

    /// Removes every marker of `session` (its end, or gc after its death); returns the files.
    ///
    /// # Errors
    /// [`Error::Io`] when one cannot be removed.
    pub fn remove_session(&self, session: &SessionId) -> Result<Vec<PathBuf>> {
        let dir = self.session_dir(session, false)?;
        remove_dir_files(&dir)
    }
}

/// Session ids for which a file matching `template` (`/tmp/x-{id}`) exists.
fn legacy_ids(template: &str) -> Result<Vec<SessionId>> {
    let t = Path::new(template);
    let (Some(dir), Some(file)) = (t.parent(), t.file_name().and_then(|f| f.to_str())) else {
        return Ok(Vec::new());
    };
    if dir.to_string_lossy().contains("{id}") {
        return Err(Error::Invalid(format!(
            "legacy path {template}: {{id}} may only appear in the file name to migrate all sessions; pass --session"
        )));
    }
    let Some((pre, post)) = file.split_once("{id}") else {
        return Ok(Vec::new());
    };
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list", dir, e)),
    };
    let mut ids = Vec::new();
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = name
            .strip_prefix(pre)
            .and_then(|r| r.strip_suffix(post))
            .and_then(|id| SessionId::new(id).ok())
        {
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}

/// Session-scoped pointers in a runtime home.
#[derive(Debug, Clone)]
pub struct Pointers {
    home: Home,
}

/// `text` with its control characters (newline, tab, escape, ...) written as escapes (`\n`,
/// `\t`, `\u{1b}`), for text output: a value forged on disk cannot print a fake row or line.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// One session's pointer value, as [`Pointers::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PointerValue {
    /// The session.
    pub session: String,
    /// Its value.
    pub value: String,
    /// `alive` (registered, running) or `unregistered` (not known dead).
    pub state: &'static str,
}

impl Pointers {
    /// The pointers of `home`.
    pub fn new(home: &Home) -> Pointers {
        Pointers { home: home.clone() }
    }

    /// Sets `session`'s value of pointer `name`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name, an oversize value or one holding a control character
    /// (newline, tab, ...); [`Error::Io`] when it cannot be
    /// written.
    ///
    /// # Examples
    /// ```
    /// # let d = tempfile::tempdir().unwrap();
    /// use concur::marker::Pointers;
    /// let home = concur::Home::at(d.path().join("home")).unwrap();
    /// let p = Pointers::new(&home);
    /// let a = concur::SessionId::new("a").unwrap();
    /// let b = concur::SessionId::new("b").unwrap();
    /// p.set(&a, "active-task", "T-1").unwrap();
    /// p.set(&b, "active-task", "T-2").unwrap();
    /// assert_eq!(p.get(&a, "active-task").unwrap().as_deref(), Some("T-1"));
    /// ```
    pub fn set(&self, session: &SessionId, name: &str, value: &str) -> Result<()> {
        check_name(name)?;
        if let Some((i, c)) = value.char_indices().find(|(_, c)| c.is_control()) {
            return Err(Error::Invalid(format!(
                "pointer value holds a control character ({}) at byte {i}: values are one line of text",
                c.escape_default()
            )));
        }
        if value.len() > MAX_VALUE {
            return Err(Error::Invalid(format!(
                "pointer value is {} bytes; the limit is {MAX_VALUE}",
                value.len()
            )));
        }
        let root = self.home.subdir("pointers")?;
        let dir = root.join(name);
        sys::fs::mkdir(&dir, 0o700).map_err(Error::with("cannot create directory", &dir))?;
        let path = dir.join(session.as_str());
        sys::fs::write_atomic(&path, value.as_bytes(), &sys::fs::Atomic::new("rec"))
            .map_err(Error::from)
    }

    /// `session`'s value of pointer `name`, if set.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name; [`Error::Io`] when it cannot be read.
    pub fn get(&self, session: &SessionId, name: &str) -> Result<Option<String>> {
        check_name(name)?;
        read_opt(&self.home.join("pointers").join(name).join(session.as_str()))
    }

    /// Clears `session`'s value of pointer `name`; returns whether it was set.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be removed.
    pub fn clear(&self, session: &SessionId, name: &str) -> Result<bool> {
        check_name(name)?;
        remove(&self.home.join("pointers").join(name).join(session.as_str()))
    }

    /// Every value of pointer `name` whose session is not known dead, by session id.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name; [`Error::Io`] when the directory cannot be read.
    pub fn list(&self, name: &str, registry: &Registry) -> Result<Vec<PointerValue>> {
        check_name(name)?;
        let dir = self.home.join("pointers").join(name);
        let mut out = Vec::new();
        for (id, path) in dir_entries(&dir)? {
            let state = match registry.liveness(&id) {
                Liveness::Dead => continue,
                other => other.name(),
            };
            if let Some(value) = read_opt(&path)? {
                out.push(PointerValue {
                    session: id.to_string(),
                    value,
                    state,
                });
            }
        }
        Ok(out)
    }

    /// Removes every pointer value of `session`; returns the files.
    ///
    /// # Errors
    /// [`Error::Io`] when one cannot be removed.
    pub fn remove_session(&self, session: &SessionId) -> Result<Vec<PathBuf>> {
        let root = self.home.join("pointers");
        let mut removed = Vec::new();
        let rd = match std::fs::read_dir(&root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(Error::io("cannot list", &root, e)),
        };
        for entry in rd.flatten() {
            let p = entry.path().join(session.as_str());
            if remove(&p)? {
                removed.push(p);
            }
        }
        Ok(removed)
    }
}

/// `(session id, path)` for each file in `dir` named like a session id (sorted).
fn dir_entries(dir: &Path) -> Result<Vec<(SessionId, PathBuf)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list", dir, e)),
    };
    let mut out: Vec<_> = rd
        .flatten()
        .filter_map(|e| {
            let id = SessionId::new(e.file_name().to_str()?).ok()?;
            Some((id, e.path()))
        })
        .collect();
    out.sort();
    Ok(out)
}

fn remove_dir_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(Error::io("cannot list", dir, e)),
    };
    for entry in rd.flatten() {
        let p = entry.path();
        if remove(&p)? {
            removed.push(p);
        }
    }
    let _ = std::fs::remove_dir(dir);
    removed.sort();
    Ok(removed)
}

/// Reads a small file with `O_NOFOLLOW`; `None` when it does not exist.
fn read_opt(path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    let mut f = match sys::fs::open(path, sys::fs::Open::READ) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot open", path, e)),
    };
    let mut s = String::new();
    f.read_to_string(&mut s)
        .map_err(Error::with("cannot read", path))?;
    Ok(Some(s))
}

/// Removes a file; `false` when it did not exist.
fn remove(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("cannot remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_ids_match_the_template() {
        let d = tempfile::tempdir().unwrap();
        for f in ["m-a1", "m-b2", "m-", "other", "m-bad id"] {
            std::fs::File::create(d.path().join(f)).unwrap();
        }
        let t = format!("{}/m-{{id}}", d.path().display());
        let ids: Vec<_> = legacy_ids(&t)
            .unwrap()
            .into_iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(ids, ["a1", "b2"]);
    }

    #[test]
    fn names_cannot_escape() {
        for bad in ["", ".", "..", "a/b", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("mehanik-cleared").is_ok());
    }
}
