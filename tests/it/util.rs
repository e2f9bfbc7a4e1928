//! The test harness: a private home per test, the real binary, and a start barrier for N
//! real processes.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The concur binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_concur"))
}

/// A temporary directory with a private runtime home inside it.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        TestEnv { dir, home }
    }

    /// A path inside the test directory (not the home).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `concur ARGS...` with this env's home and no inherited session variables.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(bin());
        for v in concur::id::ENV_VARS {
            c.env_remove(v);
        }
        c.args(args)
            .env("CONCUR_HOME", &self.home)
            .env_remove("CONCUR_BACKEND")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }

    /// Runs `concur ARGS...` to completion.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd(args).output().expect("spawn concur")
    }

    /// Runs `concur ARGS...` with `input` on stdin.
    pub fn run_stdin<I, S>(&self, args: I, input: &[u8]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn concur");
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

/// Exit code of an output, panicking with its stderr if it was killed.
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or_else(|| panic!("killed: {o:?}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit code `want`, showing stdout and stderr when it differs.
#[track_caller]
pub fn assert_code(o: &Output, want: i32) {
    assert_eq!(
        o.status.code(),
        Some(want),
        "exit code\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// A start barrier for real processes: each one waits (in a tiny `sh` prelude, after fork and
/// exec) until [`Barrier::release`] closes the pipe, then execs its real command. So N processes
/// are fully started before any of them runs, and all run at once.
pub struct Barrier {
    read: Option<OwnedFd>,
    write: Option<OwnedFd>,
    children: Vec<Child>,
}

impl Barrier {
    pub fn new() -> Barrier {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid array of two ints; pipe2 fills it on success.
        let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(r, 0, "pipe2");
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Barrier {
            read: Some(read),
            write: Some(write),
            children: Vec::new(),
        }
    }

    /// Spawns `cmd` behind the barrier. Its program and arguments run once released.
    pub fn spawn(&mut self, cmd: &Command) -> &mut Child {
        let mut wrapped = Command::new("sh");
        wrapped
            .arg("-c")
            .arg("read -r _ <&3; exec 3<&-; exec \"$@\"")
            .arg("sh")
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        if let Some(d) = cmd.get_current_dir() {
            wrapped.current_dir(d);
        }
        let rfd = self
            .read
            .as_ref()
            .expect("barrier already released")
            .as_raw_fd();
        // SAFETY: dup2 and fcntl are async-signal-safe; they only make the pipe's read end fd 3
        // in the child. When the pipe already is fd 3, dup2 is a no-op that leaves close-on-exec
        // set, so it is cleared explicitly (else the child's `read <&3` fails and skips the
        // barrier).
        unsafe {
            wrapped.pre_exec(move || {
                if libc::dup2(rfd, 3) == -1 || libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        wrapped
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        self.children
            .push(wrapped.spawn().expect("spawn behind barrier"));
        self.children.last_mut().unwrap()
    }

    /// Lets every spawned process run.
    pub fn release(&mut self) {
        self.read.take();
        self.write.take();
    }

    /// Releases and waits for all, returning their outputs in spawn order.
    pub fn run_all(mut self) -> Vec<Output> {
        self.release();
        self.children
            .drain(..)
            .map(|c| c.wait_with_output().expect("wait"))
            .collect()
    }
}

/// Polls `f` until it returns `Some`, for at most `timeout`; panics naming `what` otherwise.
/// For waiting on another process's observable state, never as a substitute for a barrier.
#[track_caller]
pub fn retry<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// True when the tests run as root (some hostile-input cases need it, some cannot run as it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Byte-for-byte content of a file, or `None` when it does not exist.
pub fn content(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}
