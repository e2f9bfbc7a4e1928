//! The client side: one connection, requests answered in order.
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

use super::commit::Ack;
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
}

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
    /// [`Error::Io`] when the connection fails or the answer is not a response line.
    pub fn request(&mut self, req: &Request) -> Result<Response> {
        let mut line = serde_json::to_vec(req).map_err(|e| Error::Invalid(e.to_string()))?;
        line.push(b'\n');
        self.out
            .write_all(&line)
            .map_err(Error::with("lost connection to broker", &self.socket))?;
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
    /// [`Error::Io`] when the connection fails.
    pub fn try_append(
        &mut self,
        file: &Path,
        line: &Line,
        id: Option<&str>,
    ) -> Result<std::result::Result<Ack, Failure>> {
        let (body, json, text) = match line {
            Line::JsonText(l) => (Some(l.clone()), None, None),
            Line::Json(v) => (None, Some(v.clone()), None),
            Line::Text(t) => (None, None, Some(t.clone())),
        };
        let r = self.request(&Request::Append {
            file: file.to_path_buf(),
            line: body,
            json,
            text,
            id: id.map(str::to_owned),
        })?;
        if r.ok {
            Ok(Ok(Ack {
                duplicate: r.duplicate,
            }))
        } else {
            Ok(Err(r.error.unwrap_or(Failure {
                kind: "io".into(),
                message: "the broker refused without a reason".into(),
            })))
        }
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
