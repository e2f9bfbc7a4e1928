//! The width of the terminal a descriptor writes to, for tables that should fit it.

use std::os::fd::AsFd;
use std::os::unix::io::AsRawFd;

/// The column count of the terminal `fd` is, or `None` when it is not a terminal (a pipe, a
/// file) or reports no width.
pub fn width(fd: impl AsFd) -> Option<usize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the valid, exclusively borrowed `ws`.
    let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCGWINSZ, &raw mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}
