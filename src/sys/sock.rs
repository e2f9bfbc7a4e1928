//! Unix-socket facts the standard library does not expose on stable: the peer's credentials,
//! and whether a read would block right now.
//!
//! `SO_PEERCRED` reports the pid, uid and gid the peer had when it called `connect(2)`; the
//! kernel fills it in, so the peer cannot lie about it (unlike anything sent over the socket).

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use super::cvt;

/// The credentials of a connected Unix-socket peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer's process id at connect time.
    pub pid: u32,
    /// The peer's effective user id at connect time.
    pub uid: u32,
    /// The peer's effective group id at connect time.
    pub gid: u32,
}

/// `getsockopt(SO_PEERCRED)` on a connected Unix stream socket.
pub fn peer_cred(sock: impl AsFd) -> io::Result<PeerCred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>())
        .expect("ucred fits a socklen_t");
    // SAFETY: cred and len are valid, writable and sized for SO_PEERCRED's ucred.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    })?;
    Ok(PeerCred {
        pid: cred.pid.cast_unsigned(),
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// True when a read on `sock` would not block right now (data is waiting, or the peer hung
/// up): `poll(2)` with a zero timeout.
///
/// # Errors
/// The `poll` error, other than `EINTR` (which reads as "not readable").
pub fn readable_now(sock: impl AsFd) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: sock.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: pfd is one valid, writable pollfd; a zero timeout never blocks.
    let n = unsafe { libc::poll(&raw mut pfd, 1, 0) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(n > 0 && pfd.revents != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socketpair_peer_is_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let c = peer_cred(&a).unwrap();
        assert_eq!(c.pid, std::process::id());
        assert_eq!(c.uid, super::super::proc::euid());
    }
}
