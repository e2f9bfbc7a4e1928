//! The lockf(1) engine (FreeBSD's): take the lock of a file or inherited descriptor, run a
//! command while holding it, remove the file afterwards unless asked to keep it. The `lockf`
//! multi-call name parses the arguments into a [`Plan`]; see its docs for the options.
//!
//! - exclusive `flock(2)` lock on the file, created 0666 unless `-n` (then a missing file is
//!   exit 69, `EX_UNAVAILABLE`); `-w` opens it for writing; `-s` silences "already locked".
//! - `-t seconds` bounds the wait (a SIGALRM timer); `-t 0` fails at once. Busy or timed out:
//!   exit 75 (`EX_TEMPFAIL`) and the command does not run. Cannot open/create: 73.
//! - Without `-k` the file is removed when the command ends (while the lock is still held), so
//!   a waiter waits for the old file's lock, drops it, and takes a fresh non-blocking lock on
//!   whatever the name holds now; it also checks, after locking, that the name still refers to
//!   the file it locked (FreeBSD does not) and retries if not. With `-k` it simply blocks.
//! - While the command runs, SIGINT and SIGQUIT are ignored (the command gets them from the
//!   terminal); SIGTERM removes the file (unless `-k`) and ends lockf with it.
//! - `fd` form: locks the inherited descriptor; the lock stays with it after lockf exits.

pub mod program;

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::flock::sysexits::{EX_CANTCREAT, EX_OSERR, EX_UNAVAILABLE};
use crate::sys::lock::{self as rawlock, Mode};
use crate::sys::supervise::{self, SigSet};

const EX_SOFTWARE: u8 = 70;
const EX_TEMPFAIL: u8 = 75;

/// A lockf run, parsed from its arguments.
#[derive(Debug, Clone)]
#[allow(clippy::struct_excessive_bools)] // lockf's four flags
pub struct Plan {
    /// `-k`: keep the lock file.
    pub keep: bool,
    /// Create a missing file (`-n` clears it).
    pub create: bool,
    /// `-s`: no "already locked" message.
    pub silent: bool,
    /// `-w`: open the file for writing.
    pub write: bool,
    /// `-t SECS`.
    pub wait: Option<u64>,
    /// The lock file (for the fd form, as given).
    pub name: PathBuf,
    /// The fd form's descriptor.
    pub fd: Option<i32>,
    /// The command and its arguments (empty in the fd form).
    pub command: Vec<OsString>,
}

fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_owned()
}

enum Got {
    Locked(File),
    Busy,
}

fn open_and_try(name: &Path, o: &Plan, create: bool, block: bool) -> Result<Got, u8> {
    let mut flags = if o.write {
        libc::O_WRONLY
    } else {
        libc::O_RDONLY
    };
    if create {
        flags |= libc::O_CREAT;
    }
    let f = match crate::sys::ofd::open_for_lock(name, flags, 0o666) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINTR) => return Ok(Got::Busy),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && !create => {
            if !o.silent {
                eprintln!("lockf: {}: {}", name.display(), strerror(&e));
            }
            return Err(EX_UNAVAILABLE);
        }
        Err(e) => {
            eprintln!("lockf: cannot open {}: {}", name.display(), strerror(&e));
            return Err(EX_CANTCREAT);
        }
    };
    let got = if block {
        match rawlock::flock_interruptible(&f, Mode::Exclusive) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => false,
            Err(e) => {
                eprintln!("lockf: cannot lock {}: {}", name.display(), strerror(&e));
                return Err(EX_CANTCREAT);
            }
        }
    } else {
        rawlock::try_flock(&f, Mode::Exclusive).map_err(|e| {
            eprintln!("lockf: cannot lock {}: {}", name.display(), strerror(&e));
            EX_CANTCREAT
        })?
    };
    if !got {
        return Ok(Got::Busy);
    }
    // Without -k the previous holder removes the name while holding the lock: a lock on a
    // file that no longer has this name is worth nothing. Check, and let the caller retry.
    if !o.keep {
        let same = match (f.metadata(), std::fs::metadata(name)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if !same {
            return Ok(Got::Busy);
        }
    }
    Ok(Got::Locked(f))
}

/// Waits until the file at `name` might be free: lock and drop it (not creating it).
fn wait_for_lock(name: &Path) -> Result<(), u8> {
    match crate::sys::ofd::open_for_lock(name, libc::O_RDONLY, 0o666) {
        Ok(f) => {
            let _ = rawlock::flock_interruptible(&f, Mode::Exclusive);
            Ok(())
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINTR)) => Ok(()),
        Err(e) => {
            eprintln!("lockf: cannot open {}: {}", name.display(), strerror(&e));
            Err(EX_CANTCREAT)
        }
    }
}

/// Runs `p` as lockf(1) does; returns the exit code.
#[allow(clippy::too_many_lines)] // the two forms and the wait loop, in lockf's order
pub fn execute(p: &Plan) -> u8 {
    if let Some(secs) = p.wait.filter(|s| *s > 0)
        && supervise::start_timer(Duration::from_secs(secs)).is_err()
    {
        eprintln!("lockf: cannot set up timer");
        return EX_OSERR;
    }
    let may_wait = p.wait != Some(0);
    let mut lock: Option<File> = None;
    let mut first = true;
    loop {
        if !first && (supervise::timer_fired() || !may_wait) {
            break;
        }
        let r = if let Some(fd) = p.fd {
            // Borrowed: it belongs to our caller and stays open.
            let Ok(f) = crate::sys::fd::inherited(fd) else {
                eprintln!("lockf: cannot lock fd {fd}: Bad file descriptor");
                return EX_CANTCREAT;
            };
            let got = if first {
                rawlock::try_flock(f, Mode::Exclusive)
            } else {
                match rawlock::flock_interruptible(f, Mode::Exclusive) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(false),
                    r => r.map(|()| true),
                }
            };
            match got {
                Ok(true) if p.command.is_empty() => {
                    supervise::stop_timer();
                    return 0; // the lock stays with the inherited descriptor
                }
                Ok(true) => match f.try_clone_to_owned() {
                    Ok(dup) => Ok(Got::Locked(File::from(dup))),
                    Err(e) => {
                        eprintln!("lockf: cannot lock fd {fd}: {}", strerror(&e));
                        return EX_CANTCREAT;
                    }
                },
                Ok(false) => Ok(Got::Busy),
                Err(e) => {
                    eprintln!("lockf: cannot lock fd {fd}: {}", strerror(&e));
                    return EX_CANTCREAT;
                }
            }
        } else if first || !p.keep {
            if !first {
                if let Err(c) = wait_for_lock(&p.name) {
                    return c;
                }
                if supervise::timer_fired() {
                    break;
                }
            }
            open_and_try(&p.name, p, p.create, false)
        } else {
            open_and_try(&p.name, p, p.create, true)
        };
        first = false;
        match r {
            Ok(Got::Locked(f)) => {
                lock = Some(f);
                break;
            }
            Ok(Got::Busy) => {}
            Err(code) => return code,
        }
    }
    supervise::stop_timer();
    let Some(lockfile) = lock else {
        if !p.silent {
            eprintln!("lockf: {}: already locked", p.name.display());
        }
        return EX_TEMPFAIL;
    };

    // Run the command with SIGTERM and SIGCHLD taken synchronously.
    let set = SigSet::of(&[libc::SIGTERM, libc::SIGCHLD]);
    let Ok(orig) = supervise::block(&set) else {
        return EX_OSERR;
    };
    let keep = p.keep || p.fd.is_some();
    let cleanup = |f: &File| {
        if keep {
            let _ = rawlock::unlock(f);
        } else {
            let _ = crate::sys::fs::remove_if_exists(&p.name);
        }
    };
    let mut cmd = std::process::Command::new(&p.command[0]);
    cmd.args(&p.command[1..]);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: pthread_sigmask only; async-signal-safe.
        unsafe {
            cmd.pre_exec(move || supervise::set_mask(&orig));
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "lockf: {}: {}",
                p.command[0].to_string_lossy(),
                strerror(&e)
            );
            cleanup(&lockfile);
            return 1;
        }
    };
    supervise::ignore(libc::SIGINT, true);
    supervise::ignore(libc::SIGQUIT, true);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(_) => {
                cleanup(&lockfile);
                return EX_OSERR;
            }
        }
        match supervise::wait_signal(&set, None) {
            Ok(Some(c)) if c.signo == libc::SIGTERM => {
                cleanup(&lockfile);
                supervise::raise_default(libc::SIGTERM);
                return EX_OSERR;
            }
            Ok(_) => {}
            Err(_) => {
                cleanup(&lockfile);
                return EX_OSERR;
            }
        }
    };
    cleanup(&lockfile);
    match status.code() {
        Some(c) => u8::try_from(c & 0xff).unwrap_or(1),
        None => EX_SOFTWARE,
    }
}
