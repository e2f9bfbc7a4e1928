//! The broker daemon: one per home, a Unix socket, a thread per connection and a group-commit
//! writer thread per file.
//!
//! ## Guarantees
//! - **One broker per home.** [`Server::bind`] takes an exclusive `flock(2)` on `broker.pid`
//!   before touching the socket; a second broker fails with a conflict naming the first. The
//!   kernel drops the lock when the broker dies, however it dies, so a stale pidfile never
//!   blocks a new broker.
//! - **Only the owner.** The socket is created 0600 (bound under a temporary name, chmodded,
//!   then renamed into place) inside the 0700 home, and every connection's `SO_PEERCRED` uid
//!   must equal the broker's: another uid is refused with a `permission` error and the
//!   connection closed, even if the file modes were loosened.
//! - **Only under the roots.** A target must be absolute, free of `..`, and its directory,
//!   with symlinks resolved, must lie under one of `[broker] roots` (resolved the same way);
//!   the file itself is opened `O_NOFOLLOW`. No roots configured: every append is refused.
//!   Pipelined requests read together for the same path share one check.
//! - **Pipelining, answers in order.** A connection's thread reads every request already
//!   waiting (up to [`MAX_PIPELINE`]) into the files' queues before it answers, then writes
//!   the answers in request order as the writers deliver them; a request is never answered
//!   before the ones sent ahead of it.
//! - **Drain on shutdown.** When [`Shutdown`] is triggered (SIGTERM/SIGINT/SIGHUP with
//!   [`Shutdown::on_signals`]) the broker stops accepting, stops reading new requests, writes
//!   and acks everything already queued, then removes its socket.
//!
//! ## Not guaranteed
//! - Requests a client wrote but the broker had not yet read at shutdown get no answer; the
//!   client sees the connection close and retries (by id) against the next broker.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::commit::{self, Counters, Outcome, Pending};
use super::protocol::{self, Failure, Line, Request, Response};
use super::shutdown::Shutdown;
use crate::config::{Config, expand_tilde};
use crate::error::{Error, ErrorKind, Result};
use crate::home::Home;
use crate::sys;

/// Connections served at once; more are refused with a `conflict` error.
pub const MAX_CONNECTIONS: usize = 1024;

/// Distinct files with a writer thread; appends to more are refused.
pub const MAX_FILES: usize = 1024;

/// Requests a connection may have read but not yet answered (pipelined); at this many the
/// broker stops reading that connection until it has written their answers.
pub const MAX_PIPELINE: usize = 256;

/// Bytes of requests a connection may have read but not yet answered: with large lines the
/// read-ahead stops here rather than at [`MAX_PIPELINE`] requests.
pub const MAX_PIPELINE_BYTES: usize = 4 << 20;

/// The directories the broker may write under, resolved.
#[derive(Debug, Clone, Default)]
pub struct Roots(Vec<PathBuf>);

impl Roots {
    /// The roots of `[broker] roots` (`~` expanded, symlinks resolved; missing ones are kept as
    /// written, so they start working once created).
    pub fn from_config(config: &Config) -> Roots {
        Roots::new(config.broker.roots.iter().map(|r| expand_tilde(r)))
    }

    /// Roots from paths.
    pub fn new(paths: impl IntoIterator<Item = PathBuf>) -> Roots {
        Roots(
            paths
                .into_iter()
                .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
                .collect(),
        )
    }

    /// The resolved roots.
    pub fn paths(&self) -> &[PathBuf] {
        &self.0
    }

    /// Checks `file` and returns the path the broker writes: the resolved directory joined
    /// with the file name.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a relative path, a `..` or a missing file name;
    /// [`Error::Unsafe`] for a path outside every root (after resolving symlinks).
    pub fn check(&self, file: &Path) -> Result<PathBuf> {
        if !file.is_absolute() {
            return Err(Error::Invalid(format!(
                "broker target must be an absolute path: {}",
                file.display()
            )));
        }
        if file.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(Error::Invalid(format!(
                "broker target may not contain '..': {}",
                file.display()
            )));
        }
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
            return Err(Error::Invalid(format!(
                "broker target has no file name: {}",
                file.display()
            )));
        };
        if self.0.is_empty() {
            return Err(Error::unsafe_path(
                "broker refuses",
                file,
                "no [broker] roots are configured in concur.toml",
            ));
        }
        let real_dir = std::fs::canonicalize(dir).map_err(Error::with("cannot resolve", dir))?;
        if !self.0.iter().any(|r| real_dir.starts_with(r)) {
            return Err(Error::unsafe_path(
                "broker refuses",
                file,
                "not under any of the [broker] roots",
            ));
        }
        Ok(real_dir.join(name))
    }
}

/// The socket of the broker of `home`.
pub fn socket_path(home: &Home) -> PathBuf {
    home.join("broker.sock")
}

/// The pidfile (and lock) of the broker of `home`.
pub fn pid_path(home: &Home) -> PathBuf {
    home.join("broker.pid")
}

/// A bound broker, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    home: Home,
    roots: Roots,
    listener: UnixListener,
    socket: PathBuf,
    _pidfile: File,
}

impl Server {
    /// Becomes the home's broker: takes the pidfile lock, writes the pid, binds the socket 0600.
    ///
    /// # Errors
    /// [`Error::Conflict`] naming the running broker's pid when there is one; [`Error::Io`]
    /// when the pidfile or socket cannot be created.
    pub fn bind(home: &Home, roots: Roots) -> Result<Server> {
        let pid_path = pid_path(home);
        let mut pidfile = sys::fs::open(&pid_path, sys::fs::Open::read_write(0o600))
            .map_err(Error::with("cannot open pidfile", &pid_path))?;
        let won = sys::lock::try_flock(&pidfile, sys::lock::Mode::Exclusive)
            .map_err(Error::with("cannot lock pidfile", &pid_path))?;
        if !won {
            let mut s = String::new();
            let _ = pidfile.read_to_string(&mut s);
            return Err(Error::Conflict(format!(
                "a broker is already running for this home (pid {})",
                s.trim()
            )));
        }
        pidfile
            .set_len(0)
            .and_then(|()| pidfile.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .and_then(|()| sys::fs::sync_data(&pidfile))
            .map_err(Error::with("cannot write pidfile", &pid_path))?;

        let socket = socket_path(home);
        let tmp = home.join(format!(".broker.sock.{}.tmp", std::process::id()));
        sys::fs::remove_if_exists(&tmp).map_err(Error::with("cannot remove", &tmp))?;
        let listener = UnixListener::bind(&tmp).map_err(Error::with("cannot bind socket", &tmp))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                .map_err(Error::with("cannot chmod socket", &tmp))?;
        }
        sys::fs::rename(&tmp, &socket).map_err(Error::with("cannot install socket", &socket))?;
        Ok(Server {
            home: home.clone(),
            roots,
            listener,
            socket,
            _pidfile: pidfile,
        })
    }

    /// The socket path clients connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Serves until `shutdown` is triggered, then drains every queue and returns the counters.
    ///
    /// # Errors
    /// [`Error::Io`] when the dedup directory cannot be created.
    pub fn run(self, shutdown: &Shutdown) -> Result<serde_json::Value> {
        // A thread per connection would otherwise give most threads a malloc arena of their own.
        sys::proc::limit_malloc_arenas(2);
        let dedup_dir = self.home.subdir("broker")?;
        let state = Arc::new(State {
            roots: self.roots.clone(),
            dedup_dir,
            writers: Mutex::new(HashMap::new()),
            writer_threads: Mutex::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
            live: AtomicUsize::new(0),
            next_conn: AtomicU64::new(0),
            counters: Arc::new(Counters::default()),
            started: Instant::now(),
            socket: self.socket.clone(),
            shutdown: shutdown.clone(),
        });
        shutdown.wake_with(&self.socket);
        let mut conn_threads: Vec<JoinHandle<()>> = Vec::new();
        for stream in self.listener.incoming() {
            if shutdown.is_triggered() {
                break;
            }
            let Ok(stream) = stream else { continue };
            conn_threads.retain(|h| !h.is_finished());
            let st = Arc::clone(&state);
            let spawned = std::thread::Builder::new()
                .name("concur-broker-conn".into())
                .stack_size(128 << 10)
                .spawn(move || serve_conn(stream, &st));
            if let Ok(h) = spawned {
                conn_threads.push(h);
            }
        }
        // Drain: no new connections; no new requests on existing ones (their reads see EOF);
        // what is queued is written and acked before the writers end.
        drop(self.listener);
        let _ = sys::fs::remove_if_exists(&self.socket);
        for s in state.conns.lock().expect("conns lock").values() {
            let _ = s.shutdown(std::net::Shutdown::Read);
        }
        for h in conn_threads {
            let _ = h.join();
        }
        state.writers.lock().expect("writers lock").clear();
        let threads = std::mem::take(&mut *state.writer_threads.lock().expect("threads lock"));
        for h in threads {
            let _ = h.join();
        }
        Ok(state.status())
    }
}

struct State {
    roots: Roots,
    dedup_dir: PathBuf,
    writers: Mutex<HashMap<PathBuf, SyncSender<Pending>>>,
    writer_threads: Mutex<Vec<JoinHandle<()>>>,
    conns: Mutex<HashMap<u64, UnixStream>>,
    live: AtomicUsize,
    next_conn: AtomicU64,
    counters: Arc<Counters>,
    started: Instant,
    socket: PathBuf,
    shutdown: Shutdown,
}

impl State {
    fn status(&self) -> serde_json::Value {
        let c = &self.counters;
        serde_json::json!({
            "pid": std::process::id(),
            "socket": self.socket,
            "uptime_ms": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "connections": self.live.load(Ordering::Relaxed),
            "files": self.writers.lock().map_or(0, |w| w.len()),
            "appends": c.appends.load(Ordering::Relaxed),
            "duplicates": c.duplicates.load(Ordering::Relaxed),
            "batches": c.batches.load(Ordering::Relaxed),
            "fsyncs": c.fsyncs.load(Ordering::Relaxed),
            "index_writes": c.index_writes.load(Ordering::Relaxed),
            "failures": c.failures.load(Ordering::Relaxed),
            "roots": self.roots.paths(),
        })
    }

    /// The queue of `file`'s writer, starting the writer if needed.
    fn queue(&self, file: &Path) -> Result<SyncSender<Pending>> {
        let mut writers = self.writers.lock().expect("writers lock");
        if let Some(q) = writers.get(file) {
            return Ok(q.clone());
        }
        if writers.len() >= MAX_FILES {
            return Err(Error::Conflict(format!(
                "the broker already writes {MAX_FILES} files"
            )));
        }
        let index = commit::index_path(&self.dedup_dir, file);
        let (q, h) = commit::spawn(file.to_path_buf(), index, Arc::clone(&self.counters))?;
        writers.insert(file.to_path_buf(), q.clone());
        self.writer_threads.lock().expect("threads lock").push(h);
        Ok(q)
    }
}

/// Decrements the live-connection count and unregisters the connection when it ends.
struct ConnGuard<'a> {
    state: &'a State,
    id: u64,
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.state.live.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut c) = self.state.conns.lock() {
            c.remove(&self.id);
        }
    }
}

fn serve_conn(stream: UnixStream, state: &State) {
    let mut out = stream;
    let me = sys::proc::euid();
    match sys::sock::peer_cred(&out) {
        Ok(c) if c.uid == me => {}
        Ok(c) => {
            let f = Failure::new(
                ErrorKind::Permission,
                format!(
                    "peer uid {} refused: this broker serves uid {me} only",
                    c.uid
                ),
            );
            let _ = out.write_all(&Response::failed(None, f).to_line());
            return;
        }
        Err(_) => return,
    }
    let id = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let n = state.live.fetch_add(1, Ordering::Relaxed) + 1;
    let _guard = ConnGuard { state, id };
    if n > MAX_CONNECTIONS {
        let f = Failure::new(
            ErrorKind::Conflict,
            format!("the broker already serves {MAX_CONNECTIONS} connections"),
        );
        let _ = out.write_all(&Response::failed(None, f).to_line());
        return;
    }
    let Ok(read_half) = out.try_clone() else {
        return;
    };
    if let Ok(s) = out.try_clone() {
        state.conns.lock().expect("conns lock").insert(id, s);
    }
    // Registered first, checked second: a drain that began meanwhile has either seen this
    // connection in the registry or set the flag seen here.
    if state.shutdown.is_triggered() {
        return;
    }
    let mut reader = BufReader::with_capacity(4 << 10, read_half);
    let mut owed = Owed::new();
    let mut owed_bytes = 0usize;
    let mut line = Vec::new();
    loop {
        // Pipelining: read every request already sent before answering any, so that all of
        // them reach their files' queues together (and into the same batches). Answer once
        // nothing more is waiting, or when MAX_PIPELINE answers are owed.
        if !owed.is_empty() {
            let more = owed.len() < MAX_PIPELINE
                && owed_bytes < MAX_PIPELINE_BYTES
                && (reader.buffer().contains(&b'\n')
                    || sys::sock::readable_now(reader.get_ref()).unwrap_or(false));
            if !more {
                if !owed.answer_all(&mut out) {
                    return;
                }
                owed_bytes = 0;
                continue;
            }
        }
        line.clear();
        let limit = (protocol::MAX_REQUEST + 1) as u64;
        match (&mut reader).take(limit).read_until(b'\n', &mut line) {
            // The client closed its side (it may still read): answer what was sent.
            Ok(0) | Err(_) => {
                owed.answer_all(&mut out);
                return;
            }
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') {
            if !owed.answer_all(&mut out) {
                return;
            }
            if line.len() > protocol::MAX_REQUEST {
                let f = Failure::new(
                    ErrorKind::Invalid,
                    format!("request over {} bytes", protocol::MAX_REQUEST),
                );
                let _ = out.write_all(&Response::failed(None, f).to_line());
            }
            // A request cut off by EOF is never executed: the client died mid-send.
            return;
        }
        owed_bytes += line.len();
        let slot = handle(&line, state, &mut owed);
        owed.push(slot);
    }
}

/// Answers a connection owes pipelined requests it has read, in request order.
struct Owed {
    /// The tag of `slots[0]`; tags count the connection's requests.
    first: u64,
    slots: VecDeque<Slot>,
    tx: mpsc::Sender<(u64, Outcome)>,
    rx: mpsc::Receiver<(u64, Outcome)>,
    buf: Vec<u8>,
    /// The last append target of the current burst: the requested path and the queue of the
    /// file it resolved to. Forgotten when the burst is answered, so the roots are checked
    /// again (symlinks re-resolved) at least once per burst of pipelined requests.
    resolved: Option<(PathBuf, SyncSender<Pending>)>,
}

/// One owed answer.
enum Slot {
    /// Answered at once (ping, status, ledger, a refused request).
    Done(Response),
    /// An append in a file's queue, with its retry id; its outcome comes from the writer.
    Queued(Option<String>),
}

impl Owed {
    fn new() -> Owed {
        let (tx, rx) = mpsc::channel();
        Owed {
            first: 0,
            slots: VecDeque::new(),
            tx,
            rx,
            buf: Vec::new(),
            resolved: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    /// The tag the next pushed slot gets.
    fn next_tag(&self) -> u64 {
        self.first + self.slots.len() as u64
    }

    fn push(&mut self, slot: Slot) {
        self.slots.push_back(slot);
    }

    /// Records a writer's outcome in its slot.
    fn settle(&mut self, tag: u64, outcome: Outcome) {
        let Some(i) = tag
            .checked_sub(self.first)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let Slot::Queued(id) = slot else {
            return;
        };
        let id = id.take();
        *slot = Slot::Done(match outcome {
            Ok(ack) => Response {
                ok: true,
                id,
                duplicate: ack.duplicate,
                ..Response::default()
            },
            Err(f) => Response::failed(id, f),
        });
    }

    /// Writes every owed answer, in order, as the writers deliver them: each run of answers
    /// that are ready goes out in one `write`. False when the connection is gone.
    fn answer_all(&mut self, out: &mut UnixStream) -> bool {
        loop {
            while let Ok((tag, outcome)) = self.rx.try_recv() {
                self.settle(tag, outcome);
            }
            while let Some(Slot::Done(_)) = self.slots.front() {
                if let Some(Slot::Done(r)) = self.slots.pop_front() {
                    self.buf.extend_from_slice(&r.to_line());
                }
                self.first += 1;
            }
            if !self.buf.is_empty() {
                let sent = out.write_all(&self.buf);
                self.buf.clear();
                if sent.is_err() {
                    return false;
                }
            }
            if self.slots.is_empty() {
                self.resolved = None;
                return true;
            }
            // This connection holds a sender, so the channel never disconnects; a writer
            // answers every request it took, also when it fails.
            match self.rx.recv() {
                Ok((tag, outcome)) => self.settle(tag, outcome),
                Err(_) => return false,
            }
        }
    }
}

fn handle(line: &[u8], state: &State, owed: &mut Owed) -> Slot {
    let req: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => {
            return Slot::Done(Response::failed(
                None,
                Failure::new(ErrorKind::Invalid, format!("bad request: {e}")),
            ));
        }
    };
    let done = match req {
        Request::Ping => {
            let mut r = Response {
                ok: true,
                ..Response::default()
            };
            r.extra.insert("pid".into(), std::process::id().into());
            r
        }
        Request::Status => {
            let mut r = Response {
                ok: true,
                ..Response::default()
            };
            if let serde_json::Value::Object(m) = state.status() {
                r.extra = m;
            }
            r
        }
        Request::Ledger { file, json } => {
            let done = state.roots.check(&file).and_then(|target| {
                crate::ledger::append(
                    &target,
                    &json,
                    crate::ledger::Options {
                        wait: Some(commit::LOCK_WAIT),
                        fsync: true,
                    },
                )
            });
            match done {
                Ok(a) => {
                    let mut r = Response {
                        ok: true,
                        ..Response::default()
                    };
                    r.extra.insert("seq".into(), a.seq.into());
                    r.extra.insert("prev".into(), a.prev.into());
                    r.extra.insert("hash".into(), a.hash.into());
                    r
                }
                Err(e) => Response::failed(None, Failure::from_error(&e)),
            }
        }
        Request::Append {
            file,
            line,
            json,
            text,
            id,
        } => {
            return match enqueue(state, &file, (line, json, text), id.as_deref(), owed) {
                Ok(()) => Slot::Queued(id),
                Err(f) => Slot::Done(Response::failed(id, f)),
            };
        }
    };
    Slot::Done(done)
}

/// Validates an append and puts it in its file's queue (blocking while the queue is full:
/// back-pressure); the outcome reaches `owed` tagged with the request's tag.
fn enqueue(
    state: &State,
    file: &Path,
    body: (Option<String>, Option<serde_json::Value>, Option<String>),
    id: Option<&str>,
    owed: &mut Owed,
) -> std::result::Result<(), Failure> {
    let fail = |e: Error| Failure::from_error(&e);
    let line = match body {
        (Some(l), None, None) => Line::JsonText(l),
        (None, Some(v), None) => Line::Json(v),
        (None, None, Some(t)) => Line::Text(t),
        _ => {
            return Err(Failure::new(
                ErrorKind::Invalid,
                "an append needs exactly one of \"line\", \"json\" and \"text\"",
            ));
        }
    };
    let bytes = line.encode().map_err(fail)?;
    if let Some(id) = id {
        protocol::check_id(id).map_err(fail)?;
    }
    let q = match &owed.resolved {
        Some((asked, q)) if asked == file => q.clone(),
        _ => {
            let target = state.roots.check(file).map_err(fail)?;
            let q = state.queue(&target).map_err(fail)?;
            owed.resolved = Some((file.to_path_buf(), q.clone()));
            q
        }
    };
    q.send(Pending {
        line: bytes,
        id: id.map(str::to_owned),
        tag: owed.next_tag(),
        reply: owed.tx.clone(),
    })
    .map_err(|_| Failure::new(ErrorKind::Io, "the file's writer has stopped"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_refuse_escapes_and_accept_what_is_inside() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let outside = d.path().join("out");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let roots = Roots::new([root.clone()]);
        assert!(roots.check(&root.join("a.jsonl")).is_ok());
        for bad in [
            root.join("../out/a"),
            root.join("link/a"),
            outside.join("a"),
            PathBuf::from("rel/a"),
        ] {
            assert!(roots.check(&bad).is_err(), "{} accepted", bad.display());
        }
        assert!(Roots::default().check(&root.join("a")).is_err());
    }
}
