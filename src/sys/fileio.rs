//! Positioned file operations used to clean up after a short append: where a write landed,
//! switching `O_APPEND` off so a positioned write really goes where it is told (Linux `pwrite(2)`
//! on an `O_APPEND` descriptor appends regardless of the offset), overwriting in place and
//! truncating.

use std::fs::File;
use std::io::{self, Seek};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

use super::{cvt, retry_eintr};

/// The descriptor's current offset (`lseek(fd, 0, SEEK_CUR)`). After a `write(2)` on an
/// `O_APPEND` descriptor it is the end of what that write put in the file.
pub fn position(file: &File) -> io::Result<u64> {
    let mut f = file;
    f.stream_position()
}

/// Sets or clears `O_APPEND` on an open descriptor (`fcntl(F_SETFL)`).
pub fn set_append(file: &File, on: bool) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor `file` owns, with integer arguments only.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if on {
        flags | libc::O_APPEND
    } else {
        flags & !libc::O_APPEND
    };
    if new != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) })?;
    }
    Ok(())
}

/// Writes all of `buf` at `offset` (`pwrite(2)`). The descriptor must not be in `O_APPEND` mode
/// (see [`set_append`]), or Linux appends instead.
pub fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    retry_eintr(|| file.write_all_at(buf, offset))
}

/// Cuts the file to `len` bytes (`ftruncate(2)`).
pub fn truncate(file: &File, len: u64) -> io::Result<()> {
    retry_eintr(|| file.set_len(len))
}

/// The file's current size (`fstat(2)`).
pub fn size(file: &File) -> io::Result<u64> {
    Ok(file.metadata()?.len())
}

/// Whether this process may write `path` by its permission bits and flags (`faccessat(2)`
/// with `AT_EACCESS`, without following a final symlink). A file without any write bit
/// (`0444`, `0400`) is read-only for root too: concur honours the mode bits for every user.
pub fn writable(path: &std::path::Path) -> io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let r = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::W_OK,
            libc::AT_EACCESS | libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        // Root passes faccessat on any file: honour the mode bits for root too (a file with no
        // write bit at all is read-only for everyone).
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::symlink_metadata(path)?.permissions().mode();
        return Ok(mode & 0o222 != 0);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::ETXTBSY) => Ok(false),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positioned_write_lands_in_place_once_append_is_off() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::File::create(&p).unwrap();
        let f = super::super::fs::open(&p, super::super::fs::Open::append(0o600)).unwrap();
        super::super::fs::write_once(&f, b"abcdef").unwrap();
        assert_eq!(position(&f).unwrap(), 6);
        set_append(&f, false).unwrap();
        write_all_at(&f, b"XY", 1).unwrap();
        truncate(&f, 4).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"aXYd");
        assert_eq!(size(&f).unwrap(), 4);
    }
}
