//! A watchdog process that kills a command at a bound its supervisor keeps moving, and that does
//! not stop when the supervisor does.
//!
//! The supervisor publishes the bound (nanoseconds on the boot clock) in a shared anonymous
//! page ([`Bound`]); the watchdog is forked from the command's child after `fork` and before
//! `execve` (twice, so it is nobody's child that the command might wait for), moves to a process
//! group of its own (a terminal's job-control stop does not reach it), closes every descriptor
//! it inherited, and then sleeps on a boot-clock timer set to the published bound and on a pidfd
//! of the command. At the bound it re-reads the page: a bound the supervisor moved re-arms the
//! timer; one that passed kills the command (SIGKILL through the pidfd, so never a recycled
//! pid). It exits when the command does. So a supervisor that is stopped (SIGSTOP), swapped out or
//! starved stops renewing, its published bound stays where it was, and the command dies there.
//!
//! Not guaranteed: the command's own children (as for the supervisor's kill), and kernels
//! without `pidfd_open` (before 5.3), where the watchdog does not start (the supervisor's own
//! timer still applies while it runs).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A bound shared with a watchdog: one `u64` in a `MAP_SHARED` anonymous page.
#[derive(Debug)]
pub struct Bound {
    page: *mut AtomicU64,
}

// SAFETY: the page is only accessed through an atomic.
unsafe impl Send for Bound {}
// SAFETY: as above.
unsafe impl Sync for Bound {}

const PAGE: usize = 4096;

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

impl Bound {
    /// A shared page holding `until` (boot clock).
    ///
    /// # Errors
    /// As `mmap(2)`.
    pub fn new(until: Duration) -> io::Result<Bound> {
        // SAFETY: a fresh anonymous shared mapping; checked for MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let b = Bound {
            page: p.cast::<AtomicU64>(),
        };
        b.set(until);
        Ok(b)
    }

    fn cell(&self) -> &AtomicU64 {
        // SAFETY: the page is mapped, aligned and lives as long as `self`.
        unsafe { &*self.page }
    }

    /// Publishes a new bound.
    pub fn set(&self, until: Duration) {
        self.cell().store(ns(until), Ordering::Release);
    }

    /// Tells the watchdog to stand down (it also exits when the command does).
    pub fn clear(&self) {
        self.cell().store(0, Ordering::Release);
    }

    /// What a `pre_exec` closure captures to start the watchdog ([`Arm::in_child`]).
    pub fn arm(&self) -> Arm {
        Arm(self.page as usize)
    }
}

/// The address of a [`Bound`]'s page, for the command's `pre_exec`.
#[derive(Debug, Clone, Copy)]
pub struct Arm(usize);

impl Arm {
    /// Forks the watchdog of the calling process. For `pre_exec` (after `fork`, before
    /// `execve`): only async-signal-safe calls. The watchdog never returns.
    ///
    /// # Errors
    /// As `fork(2)`.
    pub fn in_child(self) -> io::Result<()> {
        let page = self.0;
        // SAFETY: getpid, fork, waitpid and _exit are async-signal-safe; the watchdog branch
        // never returns into the caller.
        unsafe {
            let command = libc::getpid();
            let middle = libc::fork();
            if middle < 0 {
                return Err(io::Error::last_os_error());
            }
            if middle == 0 {
                if libc::fork() == 0 {
                    watch(page, command);
                }
                libc::_exit(0);
            }
            let mut status = 0;
            libc::waitpid(middle, &raw mut status, 0);
        }
        Ok(())
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe {
            libc::munmap(self.page.cast(), PAGE);
        }
    }
}

/// The watchdog's loop (raw system calls only: it runs in a fork of a threaded process).
fn watch(page: usize, command: libc::pid_t) -> ! {
    // SAFETY: raw system calls on descriptors this process owns; `page` is the shared mapping
    // inherited from the supervisor, read through an atomic.
    unsafe {
        libc::setpgid(0, 0);
        if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) != 0 {
            for fd in 0..1024 {
                libc::close(fd);
            }
        }
        let cell = &*(page as *const AtomicU64);
        let pidfd = libc::syscall(libc::SYS_pidfd_open, command, 0u32);
        let timer =
            libc::timerfd_create(libc::CLOCK_BOOTTIME, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK);
        if pidfd < 0 || timer < 0 {
            libc::_exit(0);
        }
        let pidfd = libc::c_int::try_from(pidfd).unwrap_or(-1);
        loop {
            let until = cell.load(Ordering::Acquire);
            if until == 0 {
                libc::_exit(0);
            }
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut now);
            let now_ns = u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000
                + u64::try_from(now.tv_nsec).unwrap_or(0);
            if now_ns >= until {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd,
                    libc::SIGKILL,
                    0usize,
                    0u32,
                );
                libc::_exit(0);
            }
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: libc::time_t::try_from(until / 1_000_000_000).unwrap_or(0),
                    tv_nsec: libc::c_long::try_from(until % 1_000_000_000).unwrap_or(0),
                },
            };
            libc::timerfd_settime(
                timer,
                libc::TFD_TIMER_ABSTIME,
                &raw const spec,
                std::ptr::null_mut(),
            );
            let mut fds = [
                libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: timer,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            if libc::poll(fds.as_mut_ptr(), 2, -1) > 0 && fds[0].revents != 0 {
                // The command exited.
                libc::_exit(0);
            }
            let mut ticks = 0u64;
            libc::read(timer, (&raw mut ticks).cast(), 8);
        }
    }
}
