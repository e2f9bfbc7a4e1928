//! Client of the scripted model server (tests/agents/model, Python stdlib): starts it, holds and
//! releases a session's turns, reads what the agent sent back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::Value;

/// Seconds the server lives at most; it also stops when this process is gone (its stdin closes).
const LIFETIME_SECS: &str = "600";

/// A running scripted model server. Dropping it stops it.
pub struct Model {
    child: Child,
    _stdin: ChildStdin,
    port: u16,
}

fn server_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agents/model")
}

impl Model {
    /// Starts the server with `script`: `{"SESSION": [turn, ...], ...}` (see core.py).
    pub fn start(dir: &Path, script: &Value) -> Model {
        let file = dir.join("model-script.json");
        super::put_file(&file, &script.to_string());
        let mut child = Command::new("python3")
            .arg(server_dir())
            .arg(&file)
            .arg(LIFETIME_SECS)
            .env("PYTHONDONTWRITEBYTECODE", "1") // nothing written into the source tree
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 tests/agents/model");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("model server printed {line:?}, not its port"));
        let stdin = child.stdin.take().unwrap();
        Model {
            child,
            _stdin: stdin,
            port,
        }
    }

    /// The base URL a session's agent is pointed at.
    pub fn url(&self, session: &str) -> String {
        format!("http://127.0.0.1:{}/{session}", self.port)
    }

    fn call(&self, method: &str, path: &str) -> Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        assert!(
            head.contains(" 200 "),
            "model server: {method} {path}: {resp}"
        );
        serde_json::from_str(body).unwrap()
    }

    /// Blocks until `session`'s request for the turn marked `"hold": hold` has arrived: the
    /// agent has run every earlier turn and is now waiting for the model.
    pub fn wait(&self, session: &str, hold: &str) {
        self.call("GET", &format!("/_ctl/wait/{session}/{hold}"));
    }

    /// Lets the held turn's answer go.
    pub fn release(&self, session: &str, hold: &str) {
        self.call("POST", &format!("/_ctl/release/{session}/{hold}"));
    }

    /// The model requests of `session` that carried a turn of its script (side requests left
    /// out), in order: entry `k` got turn `k` and carries the results of turn `k - 1`.
    pub fn turns(&self, session: &str) -> Vec<Value> {
        let log = self.call("GET", &format!("/_ctl/log/{session}"));
        log.as_array()
            .unwrap()
            .iter()
            .filter(|r| r.get("side").is_none())
            .cloned()
            .collect()
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
