//! Safe opens and durable file operations.
//!
//! Every open here uses `O_NOFOLLOW | O_CLOEXEC`, so a symlink planted at a target path fails
//! with ELOOP instead of redirecting the write, and no descriptor leaks into a child. Opens that
//! may meet a FIFO or device use `O_NONBLOCK` first and refuse anything that is not a regular
//! file, so a FIFO planted at a target cannot hang the caller.
//!
//! Not guaranteed: `O_NOFOLLOW` covers the last path component only; parent directories are
//! trusted (the runtime home checks its own). fsync makes data durable on local filesystems with
//! honest write caches; network filesystems make no such promise.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{cvt, retry_eintr};

/// Default mode for files concur creates.
pub const DEFAULT_MODE: u32 = 0o600;

/// How to open a file with [`open`].
#[derive(Debug, Clone, Copy)]
pub struct Open {
    /// Open for reading.
    pub read: bool,
    /// Open for writing.
    pub write: bool,
    /// Every write goes to the end (`O_APPEND`).
    pub append: bool,
    /// Create if missing, with this mode.
    pub create: Option<u32>,
    /// Fail if it exists (`O_EXCL`, with `create`).
    pub exclusive: bool,
    /// Refuse anything but a regular file (FIFOs, devices, directories).
    pub regular_only: bool,
}

impl Open {
    /// Read-only, regular files only.
    pub const READ: Open = Open {
        read: true,
        write: false,
        append: false,
        create: None,
        exclusive: false,
        regular_only: true,
    };

    /// Append-only, created with `mode` if missing, regular files only.
    pub fn append(mode: u32) -> Open {
        Open {
            read: false,
            write: true,
            append: true,
            create: Some(mode),
            ..Open::READ
        }
    }

    /// Read-write, created with `mode` if missing, regular files only.
    pub fn read_write(mode: u32) -> Open {
        Open {
            read: true,
            write: true,
            create: Some(mode),
            ..Open::READ
        }
    }

    /// A new file that must not exist yet (`O_CREAT | O_EXCL`), write-only.
    pub fn create_new(mode: u32) -> Open {
        Open {
            read: false,
            write: true,
            create: Some(mode),
            exclusive: true,
            ..Open::READ
        }
    }
}

/// Opens `path` with `O_NOFOLLOW | O_CLOEXEC` as `how` says.
///
/// A symlink at `path` fails with ELOOP. With `regular_only`, the open is non-blocking and
/// anything but a regular file fails with `EINVAL` wrapped as "not a regular file" (so a FIFO
/// cannot hang the caller); the descriptor is switched back to blocking before it is returned.
pub fn open(path: &Path, how: Open) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(how.read)
        .write(how.write && !how.append)
        .append(how.append);
    let mut flags = libc::O_NOFOLLOW | libc::O_CLOEXEC;
    if how.regular_only {
        flags |= libc::O_NONBLOCK;
    }
    if let Some(mode) = how.create {
        if how.exclusive {
            opts.create_new(true);
        } else {
            opts.create(true);
        }
        opts.mode(mode);
    }
    opts.custom_flags(flags);
    let file = retry_eintr(|| opts.open(path))?;
    if how.regular_only {
        return regular_blocking(file);
    }
    Ok(file)
}

/// `file` (opened `O_NONBLOCK`) switched back to blocking, if it is a regular file; else the
/// "not a regular file" error.
fn regular_blocking(file: File) -> io::Result<File> {
    let ft = file.metadata()?.file_type();
    if !ft.is_file() {
        return Err(not_regular(ft));
    }
    set_nonblocking(&file, false)?;
    Ok(file)
}

/// Opens `path` for reading, following symlinks (a configuration file may be a symlink into a
/// dotfiles checkout), but only if it is a regular file: the open is non-blocking, so a FIFO
/// or device fails with `EINVAL` ("not a regular file") instead of hanging or streaming
/// forever (`/dev/zero`).
pub fn open_regular_following(path: &Path) -> io::Result<File> {
    let file = retry_eintr(|| {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
    })?;
    regular_blocking(file)
}

fn not_regular(ft: std::fs::FileType) -> io::Error {
    let what = if ft.is_fifo() {
        "is a FIFO, not a regular file"
    } else if ft.is_dir() {
        "is a directory, not a regular file"
    } else if ft.is_socket() {
        "is a socket, not a regular file"
    } else {
        "is not a regular file"
    };
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// Sets or clears `O_NONBLOCK` on an open file.
pub fn set_nonblocking(file: &File, on: bool) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) })?;
    }
    Ok(())
}

/// Writes `buf` with exactly one `write(2)` call (retrying only EINTR before anything is
/// written). Returns the number of bytes written, which is short only when the disk filled up
/// mid-write; the caller decides how to clean up a short write.
pub fn write_once(file: &File, buf: &[u8]) -> io::Result<usize> {
    retry_eintr(|| {
        // SAFETY: buf is a valid slice for its length; fd is owned by `file`.
        let n = unsafe { libc::write(file.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n.cast_unsigned())
        }
    })
}

/// Flushes file data (and the metadata needed to read it back) to stable storage: `fdatasync(2)`.
pub fn sync_data(file: &File) -> io::Result<()> {
    retry_eintr(|| file.sync_data())
}

/// Starts writeback of `len` bytes of `file` at `offset` and waits until the device has
/// completed it: `sync_file_range(2)` with `WAIT_BEFORE | WRITE | WAIT_AFTER`. Unlike
/// [`sync_data`] it sends no cache flush, so the bytes may still sit in the disk's volatile
/// cache: they are durable once any later flush completes (e.g. the journal commit of another
/// file's `fdatasync` on the same device). Only for blocks already allocated (no metadata is
/// written).
///
/// # Errors
/// The call's error (`EINVAL` where the filesystem does not support it).
pub fn write_out(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let off =
        libc::off64_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let n = libc::off64_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    retry_eintr(|| {
        // SAFETY: sync_file_range takes a descriptor owned by `file` and plain integers.
        cvt(unsafe { libc::sync_file_range(file.as_raw_fd(), off, n, flags) }).map(drop)
    })
}

/// True when `file` is on ext4 (or ext3, which shares its magic number) or XFS, per
/// `fstatfs(2)`: journaling filesystems where an appended file's `fdatasync` commits its new
/// size with a disk cache flush, so that bytes [`write_out`] completed earlier on the same
/// device are durable whenever the appended bytes are. Copy-on-write filesystems (btrfs, ZFS),
/// network filesystems and the rest answer false.
///
/// # Errors
/// The `fstatfs` error.
pub fn journals_appends(file: &File) -> io::Result<bool> {
    // SAFETY: statfs is plain old data; all zeros is a valid value for it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable statfs and the descriptor is owned by `file`.
    cvt(unsafe { libc::fstatfs(file.as_raw_fd(), &raw mut st) })?;
    Ok(st.f_type == libc::EXT4_SUPER_MAGIC || st.f_type == libc::XFS_SUPER_MAGIC)
}

/// Flushes data and all metadata: `fsync(2)`.
pub fn sync_all(file: &File) -> io::Result<()> {
    retry_eintr(|| file.sync_all())
}

/// Fsyncs a directory so that a create, link or rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let d = retry_eintr(|| {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
    })?;
    retry_eintr(|| d.sync_all())
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `rename(2)`: atomically replaces `to` with `from` (same filesystem).
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    retry_eintr(|| std::fs::rename(from, to))
}

/// `rename(2)` that fails with `AlreadyExists` instead of replacing (`RENAME_NOREPLACE`).
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let f = cstr(from)?;
    let t = cstr(to)?;
    retry_eintr(|| {
        // SAFETY: both pointers are valid NUL-terminated strings for the call's duration.
        cvt(unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        })
        .map(drop)
    })
}

/// `link(2)`: makes `to` a new name for `from`; fails with `AlreadyExists` if `to` exists.
/// This is the exactly-once create: of two racing links to one name, one wins.
pub fn link(from: &Path, to: &Path) -> io::Result<()> {
    retry_eintr(|| std::fs::hard_link(from, to))
}

/// Removes a file name, ignoring "not found".
pub fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A temporary file in `dir`, created `O_EXCL` under a unique name, removed on drop unless
/// [`TempFile::keep`] is called.
///
/// The name says whose it is: `.<stem>.<pid>-<start>.<n>.tmp`, with the creating process's pid
/// and start time (clock ticks since boot, see [`super::proc::start_time`]). A process killed
/// between creating and renaming its temp file cannot remove it, so each new temp file first
/// removes the same stem's temp files in `dir` whose process is gone (dead, or its pid reused by
/// a later process): litter from killed writers does not pile up. Temp files of live processes,
/// and names in another form, are never touched.
#[derive(Debug)]
pub struct TempFile {
    file: Option<File>,
    path: PathBuf,
    keep: bool,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `<pid>-<start>` of this process, for temp file names.
fn temp_owner() -> &'static str {
    static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OWNER.get_or_init(|| {
        let pid = std::process::id();
        format!("{pid}-{}", super::proc::start_time(pid).unwrap_or(0))
    })
}

/// The owner (`pid`, `start`) a temp file name of `stem` names, if it is one.
fn temp_name_owner(name: &[u8], stem: &str) -> Option<(u32, u64)> {
    let name = std::str::from_utf8(name).ok()?;
    let rest = name
        .strip_prefix('.')?
        .strip_prefix(stem)?
        .strip_prefix('.')?
        .strip_suffix(".tmp")?;
    let (owner, n) = rest.split_once('.')?;
    n.parse::<u64>().ok()?;
    let (pid, start) = owner.split_once('-')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Removes `dir`'s temp files of `stem` whose process is gone (see [`TempFile`]).
fn remove_dead_temps(dir: &Path, stem: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let me = std::process::id();
    for e in entries.flatten() {
        let name = e.file_name();
        if let Some((pid, start)) = temp_name_owner(name.as_bytes(), stem)
            && pid != me
            && start != 0
            && !super::proc::is_alive(pid, start)
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl TempFile {
    /// Creates `dir/.<stem>.<pid>-<start>.<n>.tmp` with `mode`, after removing the temp files
    /// of `stem` that dead processes left in `dir`.
    pub fn new_in(dir: &Path, stem: &str, mode: u32) -> io::Result<TempFile> {
        remove_dead_temps(dir, stem);
        loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!(".{stem}.{}.{n}.tmp", temp_owner());
            let path = dir.join(name);
            match open(&path, Open::create_new(mode)) {
                Ok(file) => {
                    return Ok(TempFile {
                        file: Some(file),
                        path,
                        keep: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The temporary file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file.
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("temp file is open until dropped")
    }

    /// Writes all of `buf` and fsyncs it (unless `fsync` is false).
    pub fn write_durable(&mut self, buf: &[u8], fsync: bool) -> io::Result<()> {
        let mut f = self.file();
        f.write_all(buf)?;
        if fsync {
            sync_data(self.file())?;
        }
        Ok(())
    }

    /// Leaves the file in place on drop (after it was renamed or linked away, say).
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How [`write_atomic`] puts a new file at its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// `rename(2)`: replaces whatever is at the target.
    Replace,
    /// `renameat2(RENAME_NOREPLACE)`: fails with `AlreadyExists` when the target exists.
    NoReplace,
    /// `link(2)`, then the temporary name goes: fails with `AlreadyExists` when the target
    /// exists (of two racing creators, one wins), and works where `renameat2` flags do not.
    Link,
}

/// What [`write_atomic`] makes durable before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Nothing is synced: a crash may leave the old file, the new one, or an empty new one.
    Volatile,
    /// The new file's data is synced before it is put in place (a crash leaves the old file or
    /// the complete new one), but not the directory (the new name may be lost in a crash).
    Data,
    /// As `Data`, and the directory is synced after: the new name survives a crash.
    Full,
}

/// How to write a file atomically with [`write_atomic`]: built with [`Atomic::new`], by default
/// mode [`DEFAULT_MODE`] (under the umask), [`Place::Replace`] and [`Durability::Full`].
#[derive(Debug, Clone, Copy)]
pub struct Atomic<'a> {
    stem: &'a str,
    mode: u32,
    exact_mode: bool,
    place: Place,
    durability: Durability,
}

impl<'a> Atomic<'a> {
    /// Atomic writes whose temporary files are named after `stem` (see [`TempFile`]: a new
    /// temp file removes the same stem's temp files that dead writers left).
    #[must_use]
    pub fn new(stem: &'a str) -> Atomic<'a> {
        Atomic {
            stem,
            mode: DEFAULT_MODE,
            exact_mode: false,
            place: Place::Replace,
            durability: Durability::Full,
        }
    }

    /// The new file's permission bits, as `open(2)` applies them (the umask clears some).
    #[must_use]
    pub fn mode(self, mode: u32) -> Atomic<'a> {
        Atomic { mode, ..self }
    }

    /// The new file's permission bits exactly (`fchmod` after the create, whatever the umask).
    #[must_use]
    pub fn exact_mode(self, mode: u32) -> Atomic<'a> {
        Atomic {
            mode,
            exact_mode: true,
            ..self
        }
    }

    /// How the new file goes in place.
    #[must_use]
    pub fn place(self, place: Place) -> Atomic<'a> {
        Atomic { place, ..self }
    }

    /// What is synced.
    #[must_use]
    pub fn durability(self, durability: Durability) -> Atomic<'a> {
        Atomic { durability, ..self }
    }

    /// [`Durability::Full`] when `fsync`, else [`Durability::Volatile`] (an `--no-fsync` option).
    #[must_use]
    pub fn fsync(self, fsync: bool) -> Atomic<'a> {
        let durability = if fsync {
            Durability::Full
        } else {
            Durability::Volatile
        };
        Atomic { durability, ..self }
    }
}

/// The step of an atomic write that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Creating the temporary file (the path is the directory).
    Create,
    /// Setting its mode (the path is the temporary file).
    Chmod,
    /// Writing or syncing it (the path is the temporary file).
    Write,
    /// Renaming or linking it to the target (the path is the target). The temporary file is
    /// gone; with [`Place::NoReplace`] or [`Place::Link`] an `AlreadyExists` error means another
    /// file is at the target and nothing was written.
    Place,
    /// Syncing the directory (the path is the directory). The new file *is* in place.
    SyncDir,
}

/// An atomic write that failed: the step, the path it was taken on, and the OS error. Before
/// [`Step::SyncDir`] nothing is left behind (the temporary file is removed).
#[derive(Debug)]
pub struct AtomicError {
    /// The step that failed.
    pub step: Step,
    /// The path of that step.
    pub path: PathBuf,
    /// The OS error.
    pub source: io::Error,
    place: Place,
}

impl AtomicError {
    /// What was attempted, as an error message starts: `cannot write temporary file`, ...
    pub fn action(&self) -> &'static str {
        match self.step {
            Step::Create => "cannot create temporary file in",
            Step::Chmod => "cannot set mode of",
            Step::Write => "cannot write temporary file",
            Step::Place if self.place == Place::Link => "cannot link",
            Step::Place => "cannot rename into",
            Step::SyncDir => "cannot fsync directory",
        }
    }

    /// True when the target existed and [`Place::NoReplace`] or [`Place::Link`] left it alone.
    pub fn target_exists(&self) -> bool {
        self.step == Step::Place && self.source.kind() == io::ErrorKind::AlreadyExists
    }
}

/// A new file written beside its target under a temporary name, synced as asked, not yet in
/// place: [`Staged::commit`] puts it there; dropping it removes it.
#[derive(Debug)]
pub struct Staged<'a> {
    tmp: TempFile,
    target: &'a Path,
    place: Place,
    durability: Durability,
}

/// Writes `bytes` to a new temporary file beside `target` as `how` says, without putting it in
/// place yet: for a caller that must decide (a fence check) or take the open file (an index it
/// keeps writing) between the write and the rename. [`write_atomic`] is both steps at once.
///
/// # Errors
/// [`Step::Create`], [`Step::Chmod`] or [`Step::Write`]; nothing is left behind.
pub fn stage<'a>(
    target: &'a Path,
    bytes: &[u8],
    how: &Atomic<'_>,
) -> Result<Staged<'a>, AtomicError> {
    let dir = parent_dir(target);
    let fail = |step, path: &Path| {
        let path = path.to_path_buf();
        let place = how.place;
        move |source| AtomicError {
            step,
            path,
            source,
            place,
        }
    };
    let mut tmp = TempFile::new_in(dir, how.stem, how.mode).map_err(fail(Step::Create, dir))?;
    if how.exact_mode {
        set_mode(tmp.file(), how.mode).map_err(fail(Step::Chmod, tmp.path()))?;
    }
    tmp.write_durable(bytes, how.durability != Durability::Volatile)
        .map_err(fail(Step::Write, tmp.path()))?;
    Ok(Staged {
        tmp,
        target,
        place: how.place,
        durability: how.durability,
    })
}

impl Staged<'_> {
    /// The temporary file, open for writing (it becomes the target's file on commit).
    pub fn file(&self) -> &File {
        self.tmp.file()
    }

    /// The temporary file's path.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Puts the file in place (rename or link), then syncs the directory if asked.
    ///
    /// # Errors
    /// [`Step::Place`] (nothing changed) or [`Step::SyncDir`] (the file is in place).
    pub fn commit(self) -> Result<(), AtomicError> {
        let target = self.target;
        let placed = match self.place {
            Place::Replace => rename(self.tmp.path(), target),
            Place::NoReplace => rename_noreplace(self.tmp.path(), target),
            Place::Link => link(self.tmp.path(), target),
        };
        if let Err(source) = placed {
            return Err(AtomicError {
                step: Step::Place,
                path: target.to_path_buf(),
                source,
                place: self.place,
            });
        }
        if self.place == Place::Link {
            drop(self.tmp); // removes the temporary name; the target keeps the file
        } else {
            self.tmp.keep();
        }
        if self.durability == Durability::Full {
            let dir = parent_dir(target);
            sync_dir(dir).map_err(|source| AtomicError {
                step: Step::SyncDir,
                path: dir.to_path_buf(),
                source,
                place: self.place,
            })?;
        }
        Ok(())
    }
}

/// Writes `bytes` as the file at `target`, all or nothing: a temporary file beside it (see
/// [`TempFile`]), written and synced, then renamed or linked over `target` and the directory
/// synced, as `how` says. A reader sees the old file or the new one, never a torn one; a writer
/// killed half-way leaves at most a temporary file, which the next writer of the same stem
/// removes.
///
/// # Errors
/// The failed [`Step`] with its path; before [`Step::SyncDir`] nothing is left behind.
///
/// # Examples
/// ```
/// use concur::sys::fs::{write_atomic, Atomic, Place};
/// let d = tempfile::tempdir().unwrap();
/// let p = d.path().join("record");
/// write_atomic(&p, b"one", &Atomic::new("record")).unwrap();
/// let e = write_atomic(&p, b"two", &Atomic::new("record").place(Place::Link)).unwrap_err();
/// assert!(e.target_exists());
/// assert_eq!(std::fs::read(&p).unwrap(), b"one");
/// ```
pub fn write_atomic(target: &Path, bytes: &[u8], how: &Atomic<'_>) -> Result<(), AtomicError> {
    stage(target, bytes, how)?.commit()
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Creates directory `dir` with `mode` if missing (not its parents). Existing is fine.
pub fn mkdir(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Sets the permission bits of an open file (`fchmod`).
pub fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_writers_temp_file_is_removed_by_the_next_one_a_live_ones_is_kept() {
        let d = tempfile::tempdir().unwrap();
        // A child that exited: its pid and start time name a dead process.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = super::super::proc::start_time(pid).unwrap_or(1);
        child.wait().unwrap();
        let dead = d.path().join(format!(".f.{pid}-{start}.0.tmp"));
        let live = d.path().join(format!(".f.{}.9.tmp", temp_owner()));
        let other = d.path().join(".g.1-1.0.tmp");
        for p in [&dead, &live, &other] {
            File::create(p).unwrap();
        }
        let t = TempFile::new_in(d.path(), "f", 0o600).unwrap();
        assert!(!dead.exists());
        assert!(live.exists() && other.exists() && t.path().exists());
    }

    #[test]
    fn open_refuses_a_symlink_with_eloop() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("t");
        std::fs::File::create(&target).unwrap();
        let link = d.path().join("l");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open(&link, Open::append(0o600)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn open_refuses_a_fifo_without_hanging() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("f");
        let c = cstr(&fifo).unwrap();
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open(&fifo, Open::READ).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    fn temps_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') && n.contains(".tmp"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_replaces_or_refuses_as_placed_and_leaves_no_temp_file() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"one", &Atomic::new("f")).unwrap();
        write_atomic(&p, b"two", &Atomic::new("f")).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        for place in [Place::NoReplace, Place::Link] {
            let e = write_atomic(&p, b"three", &Atomic::new("f").place(place)).unwrap_err();
            assert!(e.target_exists(), "{place:?}: {e:?}");
            assert_eq!(std::fs::read(&p).unwrap(), b"two", "{place:?}");
        }
        let q = d.path().join("g");
        let how = Atomic::new("g")
            .place(Place::Link)
            .exact_mode(0o751)
            .durability(Durability::Volatile);
        write_atomic(&q, b"x", &how).unwrap();
        let mode = std::fs::metadata(&q).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o751, "exact_mode ignores the umask");
        assert!(temps_in(d.path()).is_empty(), "{:?}", temps_in(d.path()));
    }

    #[test]
    fn a_staged_file_dropped_before_commit_leaves_the_target_alone() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"old", &Atomic::new("f")).unwrap();
        let staged = stage(&p, b"new", &Atomic::new("f")).unwrap();
        assert_eq!(temps_in(d.path()).len(), 1);
        drop(staged);
        assert!(temps_in(d.path()).is_empty());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        let e = write_atomic(&d.path().join("no/such/f"), b"x", &Atomic::new("f")).unwrap_err();
        assert_eq!(e.step, Step::Create);
        assert_eq!(e.path, d.path().join("no/such"));
    }

    #[test]
    fn rename_noreplace_refuses_an_existing_target() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        std::fs::File::create(&a).unwrap();
        std::fs::File::create(&b).unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    }
}
