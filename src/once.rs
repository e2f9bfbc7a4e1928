//! Single-flight across processes: of all the callers that ask for key K at once, exactly one
//! runs the command; the others wait for it and get its stdout, stderr and exit status as their
//! own.
//!
//! Hooks and sessions that start together all refresh the same OAuth token, start the same
//! daemon, fill the same cache. With [`Once::run`] they share one run instead.
//!
//! ## How
//!
//! Each key has a lock file `<home>/once/K.lock` and a result file `<home>/once/K.result`
//! (0600). A caller notes the boot-clock time it arrived, then takes the key's exclusive
//! `flock(2)`:
//! - **Leader**: it got the lock at once. It runs the command (its output goes to the caller as
//!   it comes, and is kept), writes the result with an atomic replace (temp file, fsync,
//!   `rename(2)`), then releases the lock.
//! - **Waiter**: the lock was held. It blocks in the kernel (no polling) until the lock is
//!   free, then reads the result: one that finished after it arrived is the flight it waited
//!   for, and it is returned as it is. Waiters are woken as the lock passes from one to the
//!   next; each only reads and releases.
//! - **Takeover**: a waiter that gets the lock and finds no result newer than its arrival knows
//!   the leader died before finishing (the kernel frees a dead holder's `flock`): it runs the
//!   command itself, still holding the lock, so the other waiters keep waiting — for it. At any
//!   moment at most one process runs the command for a key: only the lock holder does, and the
//!   command gets SIGKILL when its leader dies (`PR_SET_PDEATHSIG`). The command also inherits
//!   the lock's descriptor (number in `$CONCUR_ONCE_FD`), so after a leader's death the key
//!   stays locked until its command — and anything that inherited the descriptor from it — is
//!   gone: a successor never starts beside a dying predecessor.
//! - **TTL**: with [`Once::ttl`], a successful result (exit 0) younger than the TTL is returned
//!   without running anything, also to callers that arrive after the flight.
//!
//! ## Not guaranteed
//!
//! - Processes the command starts in the background are not killed with a dead leader (only
//!   the command itself is); while they keep the lock descriptor, the key stays taken. A daemon
//!   the command starts should not inherit it (bash: `daemon {CONCUR_ONCE_FD}>&- &`) and should
//!   redirect its stdout and stderr, or the flight lasts as long as the daemon (its output is
//!   the result).
//! - Across machines: this is the local backend (a `flock(2)`, a file); processes on other
//!   machines sharing an NFS home are not served. The etcd backend is
//!   [`crate::etcd::once`]; [`crate::backend::Backend::flights`] picks the one in effect.
//! - The result is kept whole in memory and on disk: a command printing gigabytes is not what
//!   this is for.
//!
//! # Examples
//! ```
//! use concur::home::Home;
//! use concur::once::{Once, Role};
//! use std::process::Command;
//! let dir = tempfile::tempdir()?;
//! let home = Home::at(dir.path().join("home"))?;
//! let once = Once::new(&home, "token-refresh")?.ttl(Some(std::time::Duration::from_secs(60)));
//! let mut cmd = Command::new("sh");
//! cmd.args(["-c", "echo fresh-token"]);
//! let first = once.run(cmd, false)?;
//! assert_eq!(first.role, Role::Leader);
//! assert_eq!(first.result.stdout, b"fresh-token\n");
//! // Within the TTL the stored result is reused: nothing runs.
//! let again = once.run(Command::new("false"), false)?;
//! assert_eq!(again.role, Role::Cached);
//! assert_eq!(again.result.stdout, b"fresh-token\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::child::{self, Supervise};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::lock::{LockOptions, validate_name};
use crate::replace::ReplaceOptions;
use crate::sys;

/// The action of the [`Error::Io`] [`Once::run`] returns when the command cannot be started.
pub const CANNOT_RUN: &str = "cannot run";

/// How a caller got its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// It ran the command (nobody else was running it).
    Leader,
    /// It waited for a concurrent leader and got that leader's result.
    Waiter,
    /// It waited, the leader died before finishing, and it ran the command itself.
    Takeover,
    /// A successful result younger than the TTL was reused.
    Cached,
}

/// What one run of the command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Its exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// Its standard output, byte for byte.
    pub stdout: Vec<u8>,
    /// Its standard error, byte for byte.
    pub stderr: Vec<u8>,
    /// When it finished, milliseconds since the Unix epoch.
    pub finished_ms: u64,
    /// The pid of the leader that ran it.
    pub leader_pid: u32,
}

impl Outcome {
    /// The conventional exit status: the code, or 128+N for signal N.
    pub fn exit_code(&self) -> u8 {
        match (self.code, self.signal) {
            (Some(c), _) => u8::try_from(c & 0xff).unwrap_or(1),
            (None, Some(s)) => u8::try_from(128 + s).unwrap_or(255),
            _ => 1,
        }
    }

    /// True when the command exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A caller's answer: the result and how it was had.
#[derive(Debug, Clone)]
pub struct Flight {
    /// Leader, waiter, takeover or cached.
    pub role: Role,
    /// The command's result.
    pub result: Outcome,
}

/// The header line of a stored result (a local file, an etcd value); the stdout and stderr
/// bytes follow it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Header {
    v: u32,
    code: Option<i32>,
    signal: Option<i32>,
    finished_ms: u64,
    #[serde(default)]
    boot_id: String,
    #[serde(default)]
    finished_boot_us: u64,
    leader_pid: u32,
    stdout_len: usize,
    stderr_len: usize,
    /// etcd: the leader key's create revision (recognises one's own retried commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flight: Option<i64>,
    /// etcd: the TTL the result's lease was granted (its age is this minus what is left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_s: Option<u64>,
    /// etcd: the output was this many bytes, over the cap, and is not stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oversize: Option<usize>,
}

/// A stored result with the facts needed to tell whether a waiter's flight produced it.
pub(crate) struct Stored {
    pub(crate) outcome: Outcome,
    pub(crate) facts: Facts,
}

/// What a stored result carries besides the outcome: where and when (boot clock) it finished on
/// the local backend, the flight's token and lease on etcd.
#[derive(Debug, Default, Clone)]
pub(crate) struct Facts {
    pub(crate) boot_id: String,
    pub(crate) finished_boot_us: u64,
    pub(crate) flight: Option<i64>,
    pub(crate) lease_s: Option<u64>,
    pub(crate) oversize: Option<usize>,
}

/// Single-flight for one key; see the module docs.
#[derive(Debug, Clone)]
pub struct Once {
    key: String,
    lock: PathBuf,
    result: PathBuf,
    ttl: Option<Duration>,
}

impl Once {
    /// The single-flight for `key` in `home` (`<home>/once/KEY.lock` and `KEY.result`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a key outside `[A-Za-z0-9._-]{1,128}`; home errors.
    pub fn new(home: &Home, key: &str) -> Result<Once> {
        validate_name("once key", key)?;
        Ok(Once::in_dir(&home.subdir("once")?, key))
    }

    /// The single-flight for `key` with its files in `dir` (the key is not checked).
    pub fn in_dir(dir: &Path, key: &str) -> Once {
        Once {
            key: key.to_owned(),
            lock: dir.join(format!("{key}.lock")),
            result: dir.join(format!("{key}.result")),
            ttl: None,
        }
    }

    /// Reuse a successful result for this long (`None`: only concurrent callers share a run).
    #[must_use]
    pub fn ttl(mut self, ttl: Option<Duration>) -> Once {
        self.ttl = ttl;
        self
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The result file.
    pub fn result_path(&self) -> &Path {
        &self.result
    }

    /// Runs `cmd` once for every caller of this key that arrives while it runs (or reuses a
    /// result younger than the TTL). With `tee`, a leader copies the command's output to this
    /// process's stdout and stderr as it comes; a waiter's caller prints the result itself.
    ///
    /// # Errors
    /// [`Error::Io`] when the lock or the result cannot be had, or the command cannot be
    /// started (nothing ran; the next waiter tries itself).
    pub fn run(&self, cmd: Command, tee: bool) -> Result<Flight> {
        if let Some(s) = self.fresh()? {
            return Ok(Flight {
                role: Role::Cached,
                result: s.outcome,
            });
        }
        let boot_id = sys::proc::boot_id().unwrap_or_default();
        let arrived = boot_us();
        let opts = LockOptions::new(&self.lock);
        let (guard, waited) = match opts.try_lock()? {
            Some(g) => (g, false),
            None => (opts.lock()?, true),
        };
        if waited {
            if let Some(s) = self.stored()?
                && s.facts.boot_id == boot_id
                && s.facts.finished_boot_us >= arrived
            {
                return Ok(Flight {
                    role: Role::Waiter,
                    result: s.outcome,
                });
            }
            if let Some(s) = self.fresh()? {
                return Ok(Flight {
                    role: Role::Cached,
                    result: s.outcome,
                });
            }
        }
        let outcome = run_captured(cmd, guard.lock_file().as_fd(), tee)?;
        self.store(&outcome, &boot_id)?;
        // Unlocked explicitly: a background process the command left behind shares the
        // descriptor, and a mere close would leave the key locked while it lives.
        guard.unlock()?;
        Ok(Flight {
            role: if waited { Role::Takeover } else { Role::Leader },
            result: outcome,
        })
    }

    /// The stored result if it is successful and younger than the TTL.
    fn fresh(&self) -> Result<Option<Stored>> {
        let Some(ttl) = self.ttl else { return Ok(None) };
        let now = crate::time::now_unix_ms();
        Ok(self.stored()?.filter(|s| {
            s.outcome.success()
                && now.saturating_sub(s.outcome.finished_ms)
                    < u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
        }))
    }

    /// The stored result, if there is one (a malformed one counts as none).
    fn stored(&self) -> Result<Option<Stored>> {
        let mut bytes = Vec::new();
        match std::fs::File::open(&self.result) {
            Ok(mut f) => f
                .read_to_end(&mut bytes)
                .map_err(Error::with("cannot read", &self.result))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot open", &self.result, e)),
        };
        Ok(decode(&bytes))
    }

    /// Writes the result atomically, 0600.
    fn store(&self, o: &Outcome, boot_id: &str) -> Result<()> {
        let facts = Facts {
            boot_id: boot_id.to_owned(),
            finished_boot_us: boot_us(),
            ..Facts::default()
        };
        let bytes = encode(o, &facts);
        ReplaceOptions::new()
            .mode(0o600)
            .replace_locked(&self.result, &bytes)?;
        Ok(())
    }
}

fn boot_us() -> u64 {
    u64::try_from(sys::proc::boot_clock().as_micros()).unwrap_or(u64::MAX)
}

/// A result as stored: a JSON header line, then the stdout and stderr bytes (none when
/// [`Facts::oversize`] says they were not kept).
pub(crate) fn encode(o: &Outcome, facts: &Facts) -> Vec<u8> {
    let kept = facts.oversize.is_none();
    let h = Header {
        v: 1,
        code: o.code,
        signal: o.signal,
        finished_ms: o.finished_ms,
        boot_id: facts.boot_id.clone(),
        finished_boot_us: facts.finished_boot_us,
        leader_pid: o.leader_pid,
        stdout_len: if kept { o.stdout.len() } else { 0 },
        stderr_len: if kept { o.stderr.len() } else { 0 },
        flight: facts.flight,
        lease_s: facts.lease_s,
        oversize: facts.oversize,
    };
    let mut out = serde_json::to_vec(&h).unwrap_or_default();
    out.push(b'\n');
    if kept {
        out.extend_from_slice(&o.stdout);
        out.extend_from_slice(&o.stderr);
    }
    out
}

/// The stored result in `bytes`; `None` when malformed or of another format version.
pub(crate) fn decode(bytes: &[u8]) -> Option<Stored> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let h: Header = serde_json::from_slice(&bytes[..nl]).ok()?;
    let body = &bytes[nl + 1..];
    if h.v != 1 || body.len() != h.stdout_len.checked_add(h.stderr_len)? {
        return None;
    }
    Some(Stored {
        outcome: Outcome {
            code: h.code,
            signal: h.signal,
            stdout: body[..h.stdout_len].to_vec(),
            stderr: body[h.stdout_len..].to_vec(),
            finished_ms: h.finished_ms,
            leader_pid: h.leader_pid,
        },
        facts: Facts {
            boot_id: h.boot_id,
            finished_boot_us: h.finished_boot_us,
            flight: h.flight,
            lease_s: h.lease_s,
            oversize: h.oversize,
        },
    })
}

/// Runs `cmd` with its stdout and stderr captured (and copied to ours with `tee`), killed if
/// this process dies. The command inherits the key's lock descriptor `lock_fd` (its number in
/// `$CONCUR_ONCE_FD`): should this process die, the key stays locked until the command and
/// whatever inherited the descriptor from it are gone too, so a waiter can never take over
/// while the dead leader's command is still running.
fn run_captured(cmd: Command, lock_fd: BorrowedFd<'_>, tee: bool) -> Result<Outcome> {
    // Reader threads inherit the blocked mask, so the supervisor alone takes SIGCHLD.
    let program = PathBuf::from(cmd.get_program());
    child::block_signals().map_err(|e| Error::io(CANNOT_RUN, &program, e))?;
    let (ended, outcome) = capture(cmd, tee, |mut cmd| {
        let number = lock_fd.as_raw_fd();
        cmd.env("CONCUR_ONCE_FD", number.to_string());
        let how = Supervise {
            die_with_parent: true,
            pass_fds: vec![(lock_fd, number)],
            ..Supervise::default()
        };
        child::run(cmd, &how).map_err(|e| Error::io(CANNOT_RUN, &program, e))
    })?;
    Ok(outcome(ended.status))
}

/// Runs `cmd` through `run` (which spawns it and waits for it) with its stdout and stderr
/// captured, and copied to ours as they come with `tee`. Returns what `run` returned and a
/// maker of the [`Outcome`] from the command's exit status. Every backend's leader runs its
/// command through this.
///
/// # Errors
/// `run`'s error; [`Error::Io`] with [`CANNOT_RUN`] when the pipes cannot be made.
pub(crate) fn capture<T>(
    mut cmd: Command,
    tee: bool,
    run: impl FnOnce(Command) -> Result<T>,
) -> Result<(T, impl FnOnce(std::process::ExitStatus) -> Outcome)> {
    use std::os::unix::process::ExitStatusExt;
    let program = PathBuf::from(cmd.get_program());
    let pipes = std::io::pipe().and_then(|o| std::io::pipe().map(|e| (o, e)));
    let ((out_r, out_w), (err_r, err_w)) = pipes.map_err(|e| Error::io(CANNOT_RUN, &program, e))?;
    cmd.stdin(Stdio::inherit())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w));
    let pump = |mut r: std::io::PipeReader, to_stdout: bool| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            loop {
                match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        kept.extend_from_slice(&buf[..n]);
                        if tee {
                            let _ = if to_stdout {
                                let mut o = std::io::stdout().lock();
                                o.write_all(&buf[..n]).and_then(|()| o.flush())
                            } else {
                                std::io::stderr().lock().write_all(&buf[..n])
                            };
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            kept
        })
    };
    let out_t = pump(out_r, true);
    let err_t = pump(err_r, false);
    // `cmd` (and with it our copies of the pipes' write ends) is dropped when run returns.
    let ran = run(cmd);
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    let ran = ran?;
    Ok((ran, move |status: std::process::ExitStatus| Outcome {
        code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
        finished_ms: crate::time::now_unix_ms(),
        leader_pid: std::process::id(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(stdout: &[u8], stderr: &[u8]) -> Outcome {
        Outcome {
            code: Some(3),
            signal: None,
            stdout: stdout.to_vec(),
            stderr: stderr.to_vec(),
            finished_ms: 1_700_000_000_000,
            leader_pid: 42,
        }
    }

    #[test]
    fn a_result_round_trips_byte_for_byte() {
        let o = outcome(b"\x00\xffout\n\nno newline", b"err\r\n");
        let facts = Facts {
            boot_id: "boot".into(),
            finished_boot_us: 7,
            ..Facts::default()
        };
        let s = decode(&encode(&o, &facts)).unwrap();
        assert_eq!(s.outcome, o);
        assert_eq!(
            (s.facts.boot_id.as_str(), s.facts.finished_boot_us),
            ("boot", 7)
        );
    }

    #[test]
    fn a_truncated_or_foreign_result_counts_as_none() {
        let bytes = encode(&outcome(b"abc", b"de"), &Facts::default());
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(decode(b"not a result").is_none());
        assert!(decode(b"{\"v\":2}\n").is_none());
    }

    #[test]
    fn an_oversize_result_keeps_its_header_and_no_bytes() {
        let facts = Facts {
            flight: Some(9),
            lease_s: Some(60),
            oversize: Some(5),
            ..Facts::default()
        };
        let bytes = encode(&outcome(b"abc", b"de"), &facts);
        assert_eq!(bytes.last(), Some(&b'\n'));
        let s = decode(&bytes).unwrap();
        assert!(s.outcome.stdout.is_empty() && s.outcome.stderr.is_empty());
        assert_eq!(
            (s.facts.flight, s.facts.lease_s, s.facts.oversize),
            (Some(9), Some(60), Some(5))
        );
    }

    #[test]
    fn exit_code_is_the_code_or_128_plus_the_signal() {
        assert_eq!(outcome(b"", b"").exit_code(), 3);
        let killed = Outcome {
            code: None,
            signal: Some(9),
            ..outcome(b"", b"")
        };
        assert_eq!(killed.exit_code(), 137);
    }
}
