//! Open-file-description locks (`fcntl(F_OFD_SETLK/F_OFD_SETLKW/F_OFD_GETLK)`) and the kernel's
//! table of held locks (`/proc/locks`).
//!
//! OFD locks are POSIX byte-range locks owned by the open file description, like `flock(2)`
//! locks: closing another descriptor for the same file does not drop them (classic `F_SETLK`
//! locks would be), and they are released when the last descriptor sharing the description is
//! closed — at once when the holder dies. They do not interact with `flock(2)` locks on Linux.
//! An exclusive OFD lock needs a descriptor open for writing (EBADF otherwise).
//!
//! `/proc/locks` is read only to *describe* holders (pids) to a caller that must wait; nothing
//! decides correctness on it.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use super::cvt;
use super::lock::Mode;

/// A byte range: `len == 0` means "to the end of the file, however large it grows".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// Number of bytes; 0 = to EOF.
    pub len: u64,
}

fn flock_struct(kind: libc::c_short, range: Range) -> io::Result<libc::flock> {
    let start = libc::off_t::try_from(range.start)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "lock start out of range"))?;
    let len = libc::off_t::try_from(range.len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "lock length out of range"))?;
    // SAFETY: libc::flock is a plain C struct; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = short(libc::SEEK_SET);
    fl.l_start = start;
    fl.l_len = len;
    Ok(fl)
}

/// The small `fcntl` constants (lock types, whence) as the struct's `c_short` fields.
fn short(v: libc::c_int) -> libc::c_short {
    libc::c_short::try_from(v).expect("fcntl constants fit in a short")
}

fn kind(mode: Mode) -> libc::c_short {
    short(match mode {
        Mode::Shared => libc::F_RDLCK,
        Mode::Exclusive => libc::F_WRLCK,
    })
}

/// Tries to take an OFD lock on `range` without waiting; `Ok(false)` when someone holds a
/// conflicting lock.
pub fn try_lock(fd: impl AsFd, mode: Mode, range: Range) -> io::Result<bool> {
    let fl = flock_struct(kind(mode), range)?;
    let raw = fd.as_fd().as_raw_fd();
    loop {
        // SAFETY: fl is a valid flock struct that outlives the call; raw is open.
        match cvt(unsafe { libc::fcntl(raw, libc::F_OFD_SETLK, &raw const fl) }) {
            Ok(_) => return Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => {
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Waits in the kernel for an OFD lock on `range`. A signal handler installed without
/// `SA_RESTART` makes it return `Interrupted`, so a timer can bound the wait.
pub fn lock_interruptible(fd: impl AsFd, mode: Mode, range: Range) -> io::Result<()> {
    let fl = flock_struct(kind(mode), range)?;
    // SAFETY: as in try_lock.
    cvt(unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_OFD_SETLKW, &raw const fl) }).map(drop)
}

/// Waits for an OFD lock, retrying on EINTR.
pub fn lock(fd: impl AsFd, mode: Mode, range: Range) -> io::Result<()> {
    let fd = fd.as_fd();
    super::retry_eintr(|| lock_interruptible(fd, mode, range))
}

/// Releases the OFD lock on `range`.
pub fn unlock(fd: impl AsFd, range: Range) -> io::Result<()> {
    let fl = flock_struct(short(libc::F_UNLCK), range)?;
    super::retry_eintr(|| {
        // SAFETY: as in try_lock.
        cvt(unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_OFD_SETLK, &raw const fl) })
            .map(drop)
    })
}

/// True when some other open file description holds a lock on `range` that conflicts with
/// `mode` (`F_OFD_GETLK`); takes nothing.
pub fn is_held(fd: impl AsFd, mode: Mode, range: Range) -> io::Result<bool> {
    let mut fl = flock_struct(kind(mode), range)?;
    // SAFETY: fl is a valid, writable flock struct for the call.
    cvt(unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_OFD_GETLK, &raw mut fl) })?;
    Ok(i32::from(fl.l_type) != libc::F_UNLCK)
}

/// Opens a file to lock it, the way flock(1) does: `flags` (`O_RDONLY`, `O_WRONLY`, plus e.g.
/// `O_CREAT`, `O_NOFOLLOW`, `O_NONBLOCK`) with `O_NOCTTY | O_CLOEXEC` always added, created with
/// `mode` (before the umask). A directory (EISDIR on a create or write open) is opened
/// read-only instead, as flock(1) does: directories can be locked too.
pub fn open_for_lock(
    path: &std::path::Path,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<std::fs::File> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::FromRawFd;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let extra = libc::O_NOCTTY | libc::O_CLOEXEC;
    let open = |fl: libc::c_int| {
        super::retry_eintr(|| {
            // SAFETY: c is a valid NUL-terminated path for the call.
            cvt(unsafe { libc::open(c.as_ptr(), fl | extra, libc::c_uint::from(mode)) })
        })
    };
    let fd = match open(flags) {
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
            open(libc::O_RDONLY | (flags & (libc::O_NOFOLLOW | libc::O_NONBLOCK)))?
        }
        r => r?,
    };
    // SAFETY: fd was just opened and is owned by nobody else.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// One held (not waiting) lock from `/proc/locks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLock {
    /// `FLOCK`, `OFDLCK` or `POSIX`.
    pub class: String,
    /// True for a write (exclusive) lock.
    pub exclusive: bool,
    /// The pid the kernel records; `None` for OFD locks (which belong to no process).
    pub pid: Option<u32>,
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Inode number.
    pub ino: u64,
}

/// The held locks on inode `ino` of device (`major`, `minor`), from `/proc/locks`.
pub fn kernel_locks(major: u32, minor: u32, ino: u64) -> io::Result<Vec<KernelLock>> {
    let text = std::fs::read_to_string("/proc/locks")?;
    Ok(text
        .lines()
        .filter_map(parse_proc_locks_line)
        .filter(|l| l.major == major && l.minor == minor && l.ino == ino)
        .collect())
}

/// Parses `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`; waiting entries (`1: -> FLOCK
/// ...`) are skipped.
fn parse_proc_locks_line(line: &str) -> Option<KernelLock> {
    let mut it = line.split_whitespace();
    it.next()?; // "N:"
    let class = it.next()?;
    if class == "->" {
        return None;
    }
    it.next()?; // ADVISORY / MANDATORY
    let access = it.next()?;
    let pid: i64 = it.next()?.parse().ok()?;
    let mut dev = it.next()?.split(':');
    let major = u32::from_str_radix(dev.next()?, 16).ok()?;
    let minor = u32::from_str_radix(dev.next()?, 16).ok()?;
    let ino = dev.next()?.parse().ok()?;
    Some(KernelLock {
        class: class.to_owned(),
        exclusive: access == "WRITE",
        pid: u32::try_from(pid).ok().filter(|p| *p > 0),
        major,
        minor,
        ino,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_locks_lines_parse_and_waiters_are_skipped() {
        let l = parse_proc_locks_line("1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF").unwrap();
        assert_eq!((l.pid, l.major, l.minor, l.ino), (Some(1234), 8, 1, 5678));
        assert!(l.exclusive);
        let o = parse_proc_locks_line("2: OFDLCK ADVISORY  READ -1 00:2a:99 0 9").unwrap();
        assert_eq!(o.pid, None);
        assert_eq!(o.minor, 0x2a);
        assert!(
            parse_proc_locks_line("1: -> FLOCK  ADVISORY  WRITE 77 08:01:5678 0 EOF").is_none()
        );
    }

    #[test]
    fn ofd_ranges_conflict_only_where_they_overlap() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r");
        let a = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let b = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let r0 = Range { start: 0, len: 10 };
        let r1 = Range { start: 10, len: 10 };
        assert!(try_lock(&a, Mode::Exclusive, r0).unwrap());
        assert!(try_lock(&b, Mode::Exclusive, r1).unwrap());
        assert!(!try_lock(&b, Mode::Exclusive, r0).unwrap());
        assert!(is_held(&b, Mode::Shared, r0).unwrap());
        unlock(&a, r0).unwrap();
        assert!(!is_held(&b, Mode::Exclusive, r0).unwrap());
    }
}
