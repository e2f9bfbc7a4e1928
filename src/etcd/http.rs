//! A minimal HTTP/1.1 client for etcd's JSON gateway: `POST` with a JSON body, keep-alive
//! connections, `Content-Length` and chunked responses, and a line reader for streaming calls
//! (watch).
//!
//! Guarantees: every read and write has a timeout (a silent member cannot hang a caller); a
//! response is returned only when it was read completely. Not provided: TLS, redirects,
//! proxies, compression — concur talks plain HTTP to etcd members it is pointed at (loopback or a
//! trusted network). Use an authenticating TLS proxy in front of etcd where that is not enough.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The gRPC metadata header that makes etcd refuse a request when its member has no leader
/// (etcd's `hasleader` require-leader metadata, forwarded by the gateway).
const REQUIRE_LEADER: &str = "Grpc-Metadata-hasleader: true\r\n";

/// Largest response body accepted (a range over many keys is still far below this).
const MAX_BODY: usize = 64 << 20;

/// One keep-alive connection to one member.
#[derive(Debug)]
pub(crate) struct Conn {
    reader: BufReader<TcpStream>,
    host: String,
    /// Set when the server said `Connection: close` or a response was not fully read.
    dead: bool,
}

/// A parsed response head.
struct Head {
    status: u16,
    chunked: bool,
    length: Option<usize>,
    close: bool,
}

impl Conn {
    /// Connects to `host` (`h:port`) within `timeout`; reads and writes time out after `timeout`.
    pub(crate) fn connect(host: &str, timeout: Duration) -> io::Result<Conn> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in host.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    s.set_read_timeout(Some(timeout))?;
                    s.set_write_timeout(Some(timeout))?;
                    return Ok(Conn {
                        reader: BufReader::new(s),
                        host: host.to_string(),
                        dead: false,
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Whether the connection can carry another request.
    pub(crate) fn is_reusable(&self) -> bool {
        !self.dead
    }

    /// Changes the read timeout (streams wait longer than calls).
    pub(crate) fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(Some(t))
    }

    /// Sends a `POST` and returns the status and the whole body.
    pub(crate) fn post(&mut self, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        self.dead = true; // until the response has been read completely
        self.send(path, body)?;
        let head = self.read_head()?;
        let body = if head.chunked {
            let mut out = Vec::new();
            while let Some(chunk) = self.read_chunk()? {
                out.extend_from_slice(&chunk);
                if out.len() > MAX_BODY {
                    return Err(invalid("response too large"));
                }
            }
            out
        } else if let Some(n) = head.length {
            if n > MAX_BODY {
                return Err(invalid("response too large"));
            }
            let mut out = vec![0; n];
            self.reader.read_exact(&mut out)?;
            out
        } else {
            let mut out = Vec::new();
            (&mut self.reader)
                .take(MAX_BODY as u64)
                .read_to_end(&mut out)?;
            return Ok((head.status, out));
        };
        self.dead = head.close;
        Ok((head.status, body))
    }

    /// Sends a `POST` whose response is a stream of JSON messages (watch). The connection is
    /// consumed: a stream never returns it to the pool.
    pub(crate) fn post_stream(mut self, path: &str, body: &[u8]) -> io::Result<Stream> {
        self.send(path, body)?;
        let head = self.read_head()?;
        Ok(Stream {
            conn: self,
            status: head.status,
            chunked: head.chunked,
            pending: Vec::new(),
        })
    }

    fn send(&mut self, path: &str, body: &[u8]) -> io::Result<()> {
        let mut req = Vec::with_capacity(body.len() + 200);
        write!(
            req,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{REQUIRE_LEADER}Content-Length: {}\r\n\r\n",
            self.host,
            body.len()
        )?;
        req.extend_from_slice(body);
        let s = self.reader.get_mut();
        s.write_all(&req)?;
        s.flush()
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        let n = (&mut self.reader).take(16 * 1024).read_line(&mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        if !line.ends_with('\n') {
            return Err(invalid("header line too long"));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    fn read_head(&mut self) -> io::Result<Head> {
        let status_line = self.read_line()?;
        let mut parts = status_line.split(' ');
        let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
            return Err(invalid("malformed status line"));
        };
        if !version.starts_with("HTTP/1.") {
            return Err(invalid("not an HTTP/1 response"));
        }
        let status = code
            .parse::<u16>()
            .map_err(|_| invalid("malformed status code"))?;
        let mut head = Head {
            status,
            chunked: false,
            length: None,
            close: version == "HTTP/1.0",
        };
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                return Ok(head);
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(invalid("malformed header"));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                head.length = Some(value.parse().map_err(|_| invalid("bad content-length"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                head.chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                head.close = value.eq_ignore_ascii_case("close");
            }
        }
    }

    /// Reads one chunk; `None` at the terminating zero-length chunk.
    fn read_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let line = self.read_line()?;
        let size = line.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if n > MAX_BODY {
            return Err(invalid("chunk too large"));
        }
        if n == 0 {
            // trailers, then the empty line
            while !self.read_line()?.is_empty() {}
            return Ok(None);
        }
        let mut buf = vec![0; n];
        self.reader.read_exact(&mut buf)?;
        let mut crlf = [0; 2];
        self.reader.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(invalid("chunk not terminated by CRLF"));
        }
        Ok(Some(buf))
    }
}

/// A streaming response: newline-delimited JSON messages in chunks.
#[derive(Debug)]
pub(crate) struct Stream {
    conn: Conn,
    /// The response status; a stream with a non-200 status carries one error message.
    pub(crate) status: u16,
    chunked: bool,
    pending: Vec<u8>,
}

impl Stream {
    /// The next message (one line of the body). `Ok(None)` when the stream ended; a read
    /// timeout comes back as an error of kind `WouldBlock`/`TimedOut`.
    pub(crate) fn next_message(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let rest = self.pending.split_off(i + 1);
                let mut line = std::mem::replace(&mut self.pending, rest);
                line.pop();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
            let more = if self.chunked {
                self.conn.read_chunk()?
            } else {
                let mut buf = vec![0; 8192];
                let n = self.conn.reader.read(&mut buf)?;
                buf.truncate(n);
                (n > 0).then_some(buf)
            };
            match more {
                Some(b) => {
                    self.pending.extend_from_slice(&b);
                    if self.pending.len() > MAX_BODY {
                        return Err(invalid("stream message too large"));
                    }
                }
                None if self.pending.iter().all(u8::is_ascii_whitespace) => return Ok(None),
                None => return Ok(Some(std::mem::take(&mut self.pending))),
            }
        }
    }

    /// Changes how long [`Stream::next_message`] waits for data.
    pub(crate) fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.conn.set_read_timeout(t)
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves one canned response to the first connection and returns what was requested.
    fn serve(response: &'static [u8]) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = vec![0; 4096];
            let n = s.read(&mut req).unwrap();
            req.truncate(n);
            s.write_all(response).unwrap();
            req
        });
        (addr, h)
    }

    #[test]
    fn content_length_response_is_read_and_connection_kept() {
        let (addr, h) = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
        let mut c = Conn::connect(&addr, Duration::from_secs(5)).unwrap();
        let (status, body) = c.post("/v3/kv/range", b"{}").unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"{\"a\":1}"[..]));
        assert!(c.is_reusable());
        let req = String::from_utf8(h.join().unwrap()).unwrap();
        assert!(req.starts_with("POST /v3/kv/range HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("Grpc-Metadata-hasleader: true\r\n"), "{req}");
        assert!(req.ends_with("\r\n\r\n{}"), "{req}");
    }

    #[test]
    fn chunked_stream_yields_each_line() {
        let (addr, _h) = serve(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n4\r\n1}\n{\r\n4\r\n}\n\n\n\r\n0\r\n\r\n",
        );
        let c = Conn::connect(&addr, Duration::from_secs(5)).unwrap();
        let mut s = c.post_stream("/v3/watch", b"{}").unwrap();
        assert_eq!(s.next_message().unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(s.next_message().unwrap().unwrap(), b"{}");
        assert!(s.next_message().unwrap().is_none());
    }

    #[test]
    fn truncated_body_is_an_error_not_a_short_response() {
        let (addr, _h) = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 70\r\n\r\n{\"a\":1}");
        let mut c = Conn::connect(&addr, Duration::from_secs(5)).unwrap();
        assert!(c.post("/", b"{}").is_err());
        assert!(!c.is_reusable());
    }
}
