//! For starting a process that must not keep its starter's descriptors: marks every inherited
//! descriptor above stderr close-on-exec, so a detached helper never holds a pipe its
//! starter's caller waits on (an agent reading a hook's output until EOF).
//!
//! Not guaranteed: kernels before 5.11 lack `CLOSE_RANGE_CLOEXEC`; there the call fails and
//! the caller goes on (descriptors opened by Rust's standard library are close-on-exec anyway).

use std::io;

/// `CLOSE_RANGE_CLOEXEC` from `linux/close_range.h`.
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// For `pre_exec`: marks descriptors `first..` close-on-exec.
///
/// # Safety
/// Call only between `fork` and `exec` (one async-signal-safe system call).
pub unsafe fn child_cloexec_from(first: libc::c_uint) -> io::Result<()> {
    // SAFETY: close_range takes two descriptor numbers and flags; no pointers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
