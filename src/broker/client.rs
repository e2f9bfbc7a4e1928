//! The client side: one connection, requests answered in order.
//!
//! Appends can be pipelined: [`Client::send_append`] queues a request without waiting and
//! [`Client::recv_append`] reads the next answer (answers come back in request order), up to
//! [`MAX_IN_FLIGHT`] at a time; [`Client::append_many`] does both with a window. Requests sent
//! this way are written together when the client next has to wait, so the broker reads them
//! together and commits them in as few batches as it can.
//!
//! A transport failure (broker gone, connection cut) is an [`Error::Io`] from
//! [`Client::try_append`]'s outer `Result`; the broker's own refusal is the inner `Err`. Retry
//! the former with the same id (against a restarted broker) and it is written once; the latter
//! will fail the same way again.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::commit::{Ack, Outcome};
use super::protocol::{Failure, Line, Request, Response};
use super::server::socket_path;
use crate::error::{Error, Result};
use crate::home::Home;

/// A connection to a broker.
///
/// # Examples
/// ```no_run
/// use concur::broker::{Client, Line};
/// let home = concur::Home::resolve()?;
/// let mut c = Client::connect(&home)?;
/// let ack = c.append("/home/u/.agent/log.jsonl".as_ref(),
///                    &Line::Json(serde_json::json!({"event": "start"})), Some("evt-1"))?;
/// assert!(!ack.duplicate);
/// # Ok::<(), concur::Error>(())
/// ```
#[derive(Debug)]
pub struct Client {
    out: UnixStream,
    reader: BufReader<UnixStream>,
    socket: PathBuf,
    /// Pipelined requests not yet written.
    unsent: Vec<u8>,
    /// Pipelined appends sent (or queued in `unsent`) whose answers are unread.
    in_flight: usize,
}

/// The most pipelined appends a [`Client`] keeps in flight on its connection. The broker reads
/// ahead up to [`super::server::MAX_PIPELINE`] requests per connection; keeping well below it
/// keeps the unread answers small enough for the socket buffer, so neither side can block
/// writing while the other does too.
pub const MAX_IN_FLIGHT: usize = 64;

/// Unsent pipelined requests are written once they reach this many bytes.
const UNSENT_FLUSH: usize = 64 << 10;

impl Client {
    /// Connects to the broker of `home`.
    ///
    /// # Errors
    /// [`Error::Io`] when no broker listens there.
    pub fn connect(home: &Home) -> Result<Client> {
        Client::connect_to(&socket_path(home))
    }

    /// Connects to the broker listening on `socket`.
    ///
    /// # Errors
    /// [`Error::Io`] when no broker listens there.
    pub fn connect_to(socket: &Path) -> Result<Client> {
        let out =
            UnixStream::connect(socket).map_err(Error::with("cannot reach broker", socket))?;
        let r = out
            .try_clone()
            .map_err(Error::with("cannot reach broker", socket))?;
        Ok(Client {
            out,
            reader: BufReader::new(r),
            socket: socket.to_path_buf(),
            unsent: Vec::new(),
            in_flight: 0,
        })
    }

    /// Connects to the broker of `home`, starting one first if none runs: runs
    /// `exe broker serve --detach` (two clients doing so at once end with one broker, because
    /// only one can take the pidfile lock) and then connects, waiting up to `wait` for the
    /// socket to appear.
    ///
    /// # Errors
    /// [`Error::Io`] when the broker cannot be started or reached in time.
    pub fn connect_or_start(
        home: &Home,
        exe: &Path,
        config: Option<&Path>,
        wait: Duration,
    ) -> Result<Client> {
        if let Ok(c) = Client::connect(home) {
            return Ok(c);
        }
        let mut cmd = Command::new(exe);
        cmd.args(["broker", "serve", "--detach"]);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.env("CONCUR_HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = cmd.output().map_err(Error::with("cannot run", exe))?;
        // Exit 1 means another broker holds the home: also fine, connect to it.
        if !out.status.success() && out.status.code() != Some(1) {
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(Error::io(
                "cannot start broker",
                home.path(),
                std::io::Error::other(msg),
            ));
        }
        let start = Instant::now();
        loop {
            match Client::connect(home) {
                Ok(c) => return Ok(c),
                Err(e) if start.elapsed() >= wait => return Err(e),
                // The winner of a start race may not have bound its socket yet.
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// The socket this client is connected to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends one request and reads its response.
    ///
    /// # Errors
    /// [`Error::Invalid`] while pipelined appends are in flight (read their answers first);
    /// [`Error::Io`] when the connection fails or the answer is not a response line.
    pub fn request(&mut self, req: &Request) -> Result<Response> {
        if self.in_flight > 0 {
            return Err(Error::Invalid(format!(
                "{} pipelined appends are still in flight: read their answers first",
                self.in_flight
            )));
        }
        let mut line = serde_json::to_vec(req).map_err(|e| Error::Invalid(e.to_string()))?;
        line.push(b'\n');
        self.out
            .write_all(&line)
            .map_err(Error::with("lost connection to broker", &self.socket))?;
        self.read_response()
    }

    /// Reads one response line.
    fn read_response(&mut self) -> Result<Response> {
        let mut answer = Vec::new();
        let n = self
            .reader
            .read_until(b'\n', &mut answer)
            .map_err(Error::with("lost connection to broker", &self.socket))?;
        if n == 0 || answer.last() != Some(&b'\n') {
            return Err(Error::io(
                "lost connection to broker",
                &self.socket,
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            ));
        }
        serde_json::from_slice(&answer).map_err(|e| {
            Error::io(
                "bad answer from broker",
                &self.socket,
                std::io::Error::other(e),
            )
        })
    }

    /// Appends `line` to `file` and waits until it is durable. The outer error is a transport
    /// failure (retry it with the same `id`); the inner one is the broker's refusal.
    ///
    /// # Errors
    /// [`Error::Invalid`] while pipelined appends are in flight; [`Error::Io`] when the
    /// connection fails.
    pub fn try_append(&mut self, file: &Path, line: &Line, id: Option<&str>) -> Result<Outcome> {
        let r = self.request(&append_request(file, line, id))?;
        Ok(outcome(r))
    }

    /// Pipelining: queues an append without waiting for its answer. Queued requests are
    /// written when [`recv_append`](Client::recv_append) has to wait for an answer (or
    /// [`flush`](Client::flush) is called), so that the broker gets them together (a client
    /// dropped before that never sends them). Read each answer with
    /// [`recv_append`](Client::recv_append); they come back in the order sent.
    ///
    /// # Examples
    /// ```no_run
    /// use concur::broker::{Client, Line};
    /// let mut c = Client::connect(&concur::Home::resolve()?)?;
    /// let log = std::path::Path::new("/home/u/.agent/log.jsonl");
    /// for n in 0..8 {
    ///     c.send_append(log, &Line::Text(format!("line {n}")), Some(&format!("run7-{n}")))?;
    /// }
    /// for _ in 0..8 {
    ///     c.recv_append()?.expect("refused");   // durable, in order
    /// }
    /// # Ok::<(), concur::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] when [`MAX_IN_FLIGHT`] appends are already in flight; [`Error::Io`]
    /// when the connection fails.
    pub fn send_append(&mut self, file: &Path, line: &Line, id: Option<&str>) -> Result<()> {
        if self.in_flight >= MAX_IN_FLIGHT {
            return Err(Error::Invalid(format!(
                "{MAX_IN_FLIGHT} appends already in flight: read an answer first"
            )));
        }
        serde_json::to_writer(&mut self.unsent, &append_request(file, line, id))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        self.unsent.push(b'\n');
        self.in_flight += 1;
        if self.unsent.len() >= UNSENT_FLUSH {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the queued pipelined requests now.
    ///
    /// # Errors
    /// [`Error::Io`] when the connection fails.
    pub fn flush(&mut self) -> Result<()> {
        if self.unsent.is_empty() {
            return Ok(());
        }
        let r = self
            .out
            .write_all(&self.unsent)
            .map_err(Error::with("lost connection to broker", &self.socket));
        self.unsent.clear();
        r
    }

    /// Reads the answer to the oldest pipelined append (writing the queued requests first if
    /// it has to wait). The outer error is a transport failure: resend every append still in
    /// flight, with the same ids, on a new connection.
    ///
    /// # Errors
    /// [`Error::Invalid`] when no append is in flight; [`Error::Io`] when the connection fails.
    pub fn recv_append(&mut self) -> Result<Outcome> {
        if self.in_flight == 0 {
            return Err(Error::Invalid("no pipelined append is in flight".into()));
        }
        // A broker that is shutting down stops reading (the flush fails) but still answers
        // what it had read: take those answers before reporting the failure.
        let flushed = if self.reader.buffer().contains(&b'\n') {
            Ok(())
        } else {
            self.flush()
        };
        let r = match (self.read_response(), flushed) {
            (Ok(r), _) => r,
            (Err(_), Err(e)) | (Err(e), Ok(())) => return Err(e),
        };
        self.in_flight -= 1;
        Ok(outcome(r))
    }

    /// Pipelined appends whose answers have not been read yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Appends every `(line, id)` of `items` to `file`, keeping up to `window` (at most
    /// [`MAX_IN_FLIGHT`]) requests in flight, and returns each one's outcome in order. All are
    /// durable (or refused) when it returns. On a transport error, resend them all with the
    /// same ids: those already written are answered as duplicates.
    ///
    /// # Errors
    /// [`Error::Invalid`] while other pipelined appends are in flight; [`Error::Io`] when the
    /// connection fails.
    pub fn append_many(
        &mut self,
        file: &Path,
        items: impl IntoIterator<Item = (Line, Option<String>)>,
        window: usize,
    ) -> Result<Vec<Outcome>> {
        if self.in_flight > 0 {
            return Err(Error::Invalid(format!(
                "{} pipelined appends are still in flight: read their answers first",
                self.in_flight
            )));
        }
        let window = window.clamp(1, MAX_IN_FLIGHT);
        let mut out = Vec::new();
        for (line, id) in items {
            if self.in_flight >= window {
                out.push(self.recv_append()?);
            }
            self.send_append(file, &line, id.as_deref())?;
        }
        while self.in_flight > 0 {
            out.push(self.recv_append()?);
        }
        Ok(out)
    }

    /// [`Client::try_append`] with both errors as one.
    ///
    /// # Errors
    /// [`Error::Io`] when the connection fails; the broker's refusal as an error of its kind.
    pub fn append(&mut self, file: &Path, line: &Line, id: Option<&str>) -> Result<Ack> {
        self.try_append(file, line, id)?
            .map_err(|f| f.into_error(file))
    }

    /// Appends `entry` to the hash-chained ledger `file` through the broker; returns the
    /// answer's fields (`seq`, `prev`, `hash`).
    ///
    /// # Errors
    /// [`Error::Io`] when the connection fails; the broker's refusal as an error of its kind.
    pub fn ledger_append(
        &mut self,
        file: &Path,
        entry: &serde_json::Value,
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        let r = self.request(&Request::Ledger {
            file: file.to_path_buf(),
            json: entry.clone(),
        })?;
        if r.ok {
            Ok(r.extra)
        } else {
            Err(r
                .error
                .unwrap_or(Failure {
                    kind: "io".into(),
                    message: "the broker refused without a reason".into(),
                })
                .into_error(file))
        }
    }

    /// The broker's counters (`pid`, `connections`, `appends`, `batches`, `fsyncs`, ...).
    ///
    /// # Errors
    /// [`Error::Io`] when the connection fails.
    pub fn status(&mut self) -> Result<serde_json::Map<String, serde_json::Value>> {
        Ok(self.request(&Request::Status)?.extra)
    }
}

fn append_request(file: &Path, line: &Line, id: Option<&str>) -> Request {
    let (body, json, text) = match line {
        Line::JsonText(l) => (Some(l.clone()), None, None),
        Line::Json(v) => (None, Some(v.clone()), None),
        Line::Text(t) => (None, None, Some(t.clone())),
    };
    Request::Append {
        file: file.to_path_buf(),
        line: body,
        json,
        text,
        id: id.map(str::to_owned),
    }
}

fn outcome(r: Response) -> Outcome {
    if r.ok {
        Ok(Ack {
            duplicate: r.duplicate,
        })
    } else {
        Err(r.error.unwrap_or(Failure {
            kind: "io".into(),
            message: "the broker refused without a reason".into(),
        }))
    }
}
