//! Unix-socket facts the standard library does not expose on stable: the peer's credentials.
//!
//! `SO_PEERCRED` reports the pid, uid and gid the peer had when it called `connect(2)`; the
//! kernel fills it in, so the peer cannot lie about it (unlike anything sent over the socket).

use std::io;
use std::os::unix::io::AsRawFd;

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
pub fn peer_cred(sock: &impl AsRawFd) -> io::Result<PeerCred> {
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
            sock.as_raw_fd(),
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
