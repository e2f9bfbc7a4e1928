//! A timer on the boot clock (`timerfd` with `CLOCK_BOOTTIME`), and waiting for the first of
//! several descriptors to become readable (`poll(2)`).
//!
//! A lease holder's validity bound is a point on the boot clock, which keeps counting while the
//! machine is suspended — as the lease's TTL does on the etcd servers. A timer on the monotonic
//! clock (`Instant`, `recv_timeout`, `poll`'s own timeout) stops during suspend and would fire
//! late by the whole suspension; this one fires at the bound.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// A timerfd on `CLOCK_BOOTTIME`, close-on-exec; readable once it has fired.
#[derive(Debug)]
pub struct BootTimer(OwnedFd);

impl BootTimer {
    /// A new, disarmed timer.
    ///
    /// # Errors
    /// As `timerfd_create(2)`.
    pub fn new() -> io::Result<BootTimer> {
        // SAFETY: timerfd_create takes a clock id and flags and returns a new descriptor or -1.
        let fd = super::cvt(unsafe {
            libc::timerfd_create(libc::CLOCK_BOOTTIME, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK)
        })?;
        // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
        Ok(BootTimer(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Arms the timer to fire when the boot clock reaches `at` (at once if it has), and clears
    /// an earlier expiry that was not read.
    ///
    /// # Errors
    /// As `timerfd_settime(2)`.
    pub fn fire_at(&self, at: Duration) -> io::Result<()> {
        self.clear();
        // A zero it_value disarms the timer: a bound already passed fires 1 ns after boot.
        let at = at.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: libc::time_t::try_from(at.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::from(at.subsec_nanos()),
            },
        };
        // SAFETY: spec is a valid itimerspec; the old value is not asked for (null).
        super::cvt(unsafe {
            libc::timerfd_settime(
                self.0.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &raw const spec,
                std::ptr::null_mut(),
            )
        })
        .map(drop)
    }

    /// Reads (and so clears) an expiry, if any.
    fn clear(&self) {
        let mut n = 0u64;
        // SAFETY: reads at most 8 bytes into `n`; the descriptor is non-blocking.
        let _ = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&raw mut n).cast::<libc::c_void>(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

impl AsFd for BootTimer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Waits until at least one of `fds` is readable (or at end of file, or hung up); returns which
/// are. No timeout: arm a [`BootTimer`] and pass it along to bound the wait.
///
/// # Errors
/// As `poll(2)`; EINTR is retried.
pub fn wait_readable(fds: &[BorrowedFd<'_>]) -> io::Result<Vec<bool>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let n = libc::nfds_t::try_from(p.len()).unwrap_or(libc::nfds_t::MAX);
    super::retry_eintr(|| {
        // SAFETY: `p` holds `n` valid pollfds for the duration of the call.
        super::cvt(unsafe { libc::poll(p.as_mut_ptr(), n, -1) })
    })?;
    Ok(p.iter().map(|x| x.revents != 0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_a_point_of_the_boot_clock_and_not_before() {
        let t = BootTimer::new().unwrap();
        let (r, w) = super::super::signal::pipe().unwrap();
        // Far ahead: only the pipe wakes the wait.
        t.fire_at(super::super::proc::boot_clock() + Duration::from_secs(3600))
            .unwrap();
        std::io::Write::write_all(&mut &w, b"x").unwrap();
        assert_eq!(
            wait_readable(&[r.as_fd(), t.as_fd()]).unwrap(),
            [true, false]
        );
        // Already passed: fires at once, and re-arming clears the expiry.
        t.fire_at(Duration::ZERO).unwrap();
        assert_eq!(wait_readable(&[t.as_fd()]).unwrap(), [true]);
        t.fire_at(super::super::proc::boot_clock() + Duration::from_secs(3600))
            .unwrap();
        std::io::Read::read_exact(&mut &r, &mut [0u8]).unwrap();
        std::io::Write::write_all(&mut &w, b"y").unwrap();
        assert_eq!(
            wait_readable(&[r.as_fd(), t.as_fd()]).unwrap(),
            [true, false]
        );
    }
}
