//! Multi-call: invoked as `lockf`, the binary is FreeBSD's lockf(1):
//! `lockf [-knsw] [-t seconds] file command [arguments]` and `lockf [-s] [-t seconds] fd`.
//!
//! - exclusive `flock(2)` lock on `file`, created 0666 unless `-n` (then a missing file is exit
//!   69, EX_UNAVAILABLE); `-w` opens it for writing; `-s` silences the "already locked" message.
//! - `-t seconds` (an integer) bounds the wait; `-t 0` fails at once. Busy or timed out: exit 75
//!   (EX_TEMPFAIL) and the command does not run. Cannot open/create: 73 (EX_CANTCREAT). Usage:
//!   64. Otherwise the command's exit status (70, EX_SOFTWARE, if a signal killed it).
//! - Without `-k` the file is removed when the command ends (while the lock is still held).
//!   Because a removed file's lock is worthless to whoever waits on it, a waiter then waits
//!   for the old file's lock, drops it, and takes a fresh non-blocking lock on whatever the
//!   name holds now; concur also checks, after locking, that the name still refers to the
//!   file it locked (FreeBSD does not) and retries if not. With `-k` it simply blocks.
//! - While the command runs, SIGINT and SIGQUIT are ignored by lockf (the command gets them
//!   from the terminal); SIGTERM removes the file (unless `-k`) and ends lockf with it.
//! - `fd` form: locks the inherited descriptor; the lock stays with it after lockf exits.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use concur::sys::lock::{self as rawlock, Mode};
use concur::sys::supervise::{self, SigSet};

use concur::flock::sysexits::{EX_CANTCREAT, EX_OSERR, EX_UNAVAILABLE};

const EX_USAGE: u8 = 64;
const EX_SOFTWARE: u8 = 70;
const EX_TEMPFAIL: u8 = 75;

fn usage() -> ExitCode {
    eprintln!(
        "usage: lockf [-knsw] [-t seconds] file command [arguments]\n       lockf [-s] [-t seconds] fd"
    );
    ExitCode::from(EX_USAGE)
}

fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_owned()
}

struct Opts {
    keep: bool,
    create: bool,
    silent: bool,
    write: bool,
    wait: Option<u64>,
}

enum Got {
    Locked(File),
    Busy,
}

fn open_and_try(name: &Path, o: &Opts, create: bool, block: bool) -> Result<Got, ExitCode> {
    let mut flags = if o.write {
        libc::O_WRONLY
    } else {
        libc::O_RDONLY
    };
    if create {
        flags |= libc::O_CREAT;
    }
    let f = match concur::sys::ofd::open_for_lock(name, flags, 0o666) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINTR) => return Ok(Got::Busy),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && !create => {
            if !o.silent {
                eprintln!("lockf: {}: {}", name.display(), strerror(&e));
            }
            return Err(ExitCode::from(EX_UNAVAILABLE));
        }
        Err(e) => {
            eprintln!("lockf: cannot open {}: {}", name.display(), strerror(&e));
            return Err(ExitCode::from(EX_CANTCREAT));
        }
    };
    let got = if block {
        match rawlock::flock_interruptible(&f, Mode::Exclusive) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => false,
            Err(e) => {
                eprintln!("lockf: cannot lock {}: {}", name.display(), strerror(&e));
                return Err(ExitCode::from(EX_CANTCREAT));
            }
        }
    } else {
        rawlock::try_flock(&f, Mode::Exclusive).map_err(|e| {
            eprintln!("lockf: cannot lock {}: {}", name.display(), strerror(&e));
            ExitCode::from(EX_CANTCREAT)
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
fn wait_for_lock(name: &Path) -> Result<(), ExitCode> {
    match concur::sys::ofd::open_for_lock(name, libc::O_RDONLY, 0o666) {
        Ok(f) => {
            let _ = rawlock::flock_interruptible(&f, Mode::Exclusive);
            Ok(())
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINTR)) => Ok(()),
        Err(e) => {
            eprintln!("lockf: cannot open {}: {}", name.display(), strerror(&e));
            Err(ExitCode::from(EX_CANTCREAT))
        }
    }
}

/// Runs as lockf(1) with `args` (without argv[0]).
#[allow(clippy::too_many_lines)] // getopt, the two forms and the wait loop, in lockf's order
pub fn main(args: &[OsString]) -> ExitCode {
    let mut o = Opts {
        keep: false,
        create: true,
        silent: false,
        write: false,
        wait: None,
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        if a == b"--" {
            i += 1;
            break;
        }
        if a.len() < 2 || a[0] != b'-' {
            break;
        }
        let mut j = 1;
        while j < a.len() {
            match a[j] {
                b'k' => o.keep = true,
                b'n' => o.create = false,
                b's' => o.silent = true,
                b'w' => o.write = true,
                b't' => {
                    let v = if j + 1 < a.len() {
                        String::from_utf8_lossy(&a[j + 1..]).into_owned()
                    } else {
                        i += 1;
                        let Some(v) = args.get(i) else {
                            eprintln!("lockf: option requires an argument -- t");
                            return usage();
                        };
                        v.to_string_lossy().into_owned()
                    };
                    match v.parse::<u64>() {
                        Ok(n) if u32::try_from(n).is_ok() && !v.starts_with('+') => {
                            o.wait = Some(n);
                        }
                        _ => {
                            eprintln!("lockf: invalid timeout \"{v}\"");
                            return ExitCode::from(EX_USAGE);
                        }
                    }
                    break;
                }
                c => {
                    eprintln!("lockf: illegal option -- {}", c as char);
                    return usage();
                }
            }
            j += 1;
        }
        i += 1;
    }
    let rest = &args[i..];
    let Some((lockname, command)) = rest.split_first() else {
        return usage();
    };
    let name_bytes = lockname.as_bytes();
    let fd_form: Option<i32> = if command.is_empty() && !name_bytes.starts_with(b"/") {
        match lockname.to_string_lossy().parse::<i32>() {
            Ok(fd) if fd >= 0 => Some(fd),
            Ok(fd) => {
                eprintln!("fd '{fd}' out of range");
                return usage();
            }
            Err(_) => {
                eprintln!("Expected fd, got '{}'", lockname.to_string_lossy());
                return usage();
            }
        }
    } else if let Some(n) = name_bytes.strip_prefix(b"/dev/fd/") {
        std::str::from_utf8(n)
            .ok()
            .and_then(|s| s.parse::<i32>().ok())
    } else {
        if command.is_empty() {
            eprintln!("Expected fd, got '{}'", lockname.to_string_lossy());
            return usage();
        }
        None
    };
    let name = PathBuf::from(lockname);

    if let Some(secs) = o.wait.filter(|s| *s > 0)
        && supervise::start_timer(Duration::from_secs(secs)).is_err()
    {
        eprintln!("lockf: cannot set up timer");
        return ExitCode::from(EX_OSERR);
    }
    let may_wait = o.wait != Some(0);
    let mut lock: Option<File> = None;
    let mut first = true;
    loop {
        if !first && (supervise::timer_fired() || !may_wait) {
            break;
        }
        let r = if let Some(fd) = fd_form {
            if !supervise::is_open(fd) {
                eprintln!("lockf: cannot lock fd {fd}: Bad file descriptor");
                return ExitCode::from(EX_CANTCREAT);
            }
            // SAFETY: fd is open; ManuallyDrop keeps it open (it belongs to our caller).
            let f = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
            let got = if first {
                rawlock::try_flock(&*f, Mode::Exclusive)
            } else {
                match rawlock::flock_interruptible(&*f, Mode::Exclusive) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(false),
                    r => r.map(|()| true),
                }
            };
            match got {
                Ok(true) if command.is_empty() => {
                    supervise::stop_timer();
                    return ExitCode::SUCCESS; // the lock stays with the inherited descriptor
                }
                Ok(true) => match f.try_clone() {
                    Ok(dup) => Ok(Got::Locked(dup)),
                    Err(e) => {
                        eprintln!("lockf: cannot lock fd {fd}: {}", strerror(&e));
                        return ExitCode::from(EX_CANTCREAT);
                    }
                },
                Ok(false) => Ok(Got::Busy),
                Err(e) => {
                    eprintln!("lockf: cannot lock fd {fd}: {}", strerror(&e));
                    return ExitCode::from(EX_CANTCREAT);
                }
            }
        } else if first || !o.keep {
            if !first {
                if let Err(c) = wait_for_lock(&name) {
                    return c;
                }
                if supervise::timer_fired() {
                    break;
                }
            }
            open_and_try(&name, &o, o.create, false)
        } else {
            open_and_try(&name, &o, o.create, true)
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
        if !o.silent {
            eprintln!("lockf: {}: already locked", name.display());
        }
        return ExitCode::from(EX_TEMPFAIL);
    };

    // Run the command with SIGTERM and SIGCHLD taken synchronously.
    let set = SigSet::of(&[libc::SIGTERM, libc::SIGCHLD]);
    let Ok(orig) = supervise::block(&set) else {
        return ExitCode::from(EX_OSERR);
    };
    let keep = o.keep || fd_form.is_some();
    let cleanup = |f: &File| {
        if keep {
            let _ = rawlock::unlock(f);
        } else {
            let _ = concur::sys::fs::remove_if_exists(&name);
        }
    };
    let mut cmd = std::process::Command::new(&command[0]);
    cmd.args(&command[1..]);
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
            eprintln!("lockf: {}: {}", command[0].to_string_lossy(), strerror(&e));
            cleanup(&lockfile);
            return ExitCode::from(1);
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
                return ExitCode::from(EX_OSERR);
            }
        }
        match supervise::wait_signal(&set, None) {
            Ok(Some(c)) if c.signo == libc::SIGTERM => {
                cleanup(&lockfile);
                supervise::raise_default(libc::SIGTERM);
                return ExitCode::from(EX_OSERR);
            }
            Ok(_) => {}
            Err(_) => {
                cleanup(&lockfile);
                return ExitCode::from(EX_OSERR);
            }
        }
    };
    cleanup(&lockfile);
    match status.code() {
        Some(c) => ExitCode::from(u8::try_from(c & 0xff).unwrap_or(1)),
        None => ExitCode::from(EX_SOFTWARE),
    }
}
