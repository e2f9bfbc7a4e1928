//! The client side of `concur broker append`: lines checked before anything is sent, sent
//! pipelined, resent by retry id when the broker goes away, or written directly when no broker
//! can be reached; and the broker's status as shown to people.
//!
//! What it guarantees: bad input writes nothing (every line is checked first); after a refusal
//! no further line is sent; with a retry id a line is written at most once, whether it was resent
//! after a reconnect or written directly while the broker was down. What it does not: without an
//! id (and without autostart, which makes one up), a line resent after a broken connection may be
//! written twice — which is why nothing is resent then.

use std::path::Path;
use std::time::Duration;

use super::{Ack, Client, Line, Roots, commit, protocol, running};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::home::Home;

/// How many times an append is retried (same id) after the connection broke.
pub const RETRIES: u32 = 100;

/// Lines of one batch in flight on its connection at once.
pub const PIPELINE: usize = 32;

/// A line to append and its retry id.
pub type Item = (Line, Option<String>);

/// Starting a broker when none runs: the `concur` binary and the configuration file it gets.
#[derive(Debug, Clone, Copy)]
pub struct Autostart<'a> {
    /// The `concur` binary to run as `broker serve --detach`.
    pub exe: &'a Path,
    /// `--config` for the broker, if given.
    pub config: Option<&'a Path>,
}

/// How a client reaches the broker of a home.
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    /// The home whose broker is used.
    pub home: &'a Home,
    /// `Some`: start a broker when none runs, and after a broken connection reconnect and
    /// resend the unanswered lines with their ids.
    pub autostart: Option<Autostart<'a>>,
}

impl Reach<'_> {
    /// Connects, starting a broker first when [`Reach::autostart`] is set and none runs.
    ///
    /// # Errors
    /// [`Error::Io`] when no broker can be reached (or started within 10 s).
    pub fn connect(&self) -> Result<Client> {
        match self.autostart {
            Some(a) => {
                Client::connect_or_start(self.home, a.exe, a.config, Duration::from_secs(10))
            }
            None => Client::connect(self.home),
        }
    }

    /// Appends `lines` to `file` through the broker on `c`, pipelined ([`PIPELINE`] in flight),
    /// calling `acked(n, ack)` for each line in order. After a refusal no further line is sent
    /// (those already in flight are answered and reported) and the first refusal is returned.
    /// When the broker goes away mid-run and autostart is set, it reconnects (starting a
    /// broker) and resends every unanswered line with its id: the dedup index writes each at
    /// most once.
    ///
    /// # Errors
    /// The broker's first refusal, as an error of its kind; [`Error::Io`] when the connection
    /// broke and cannot be made again (after [`RETRIES`] tries with autostart).
    pub fn send_all(
        &self,
        c: &mut Client,
        file: &Path,
        lines: &[Item],
        mut acked: impl FnMut(usize, Ack),
    ) -> Result<()> {
        let (mut done, mut sent, mut tries) = (0, 0, 0);
        let mut refused: Option<Error> = None;
        // Lines that may be sent: all of them, until a refusal stops it at those already sent
        // (which a reconnect still resends: they were sent, and must be answered).
        let mut stop = lines.len();
        loop {
            let mut step = Ok(());
            while step.is_ok() && sent < stop && sent - done < PIPELINE {
                let (line, id) = &lines[sent];
                step = c.send_append(file, line, id.as_deref());
                sent += 1;
            }
            if step.is_ok() {
                if done == sent {
                    return refused.map_or(Ok(()), Err);
                }
                match c.recv_append() {
                    Ok(Ok(ack)) => {
                        acked(done, ack);
                        done += 1;
                    }
                    Ok(Err(f)) => {
                        if refused.is_none() {
                            stop = sent;
                        }
                        refused.get_or_insert_with(|| f.into_error(file));
                        done += 1;
                    }
                    Err(e) => step = Err(e),
                }
            }
            if let Err(e) = step {
                if tries >= RETRIES || self.autostart.is_none() {
                    return Err(e);
                }
                // The broker went away mid-request: reconnect (starting a new one) and send
                // every unanswered line again, with the same ids. Never on the dead connection:
                // its client still counts the unanswered lines as in flight.
                *c = loop {
                    tries += 1;
                    match self.connect() {
                        Ok(n) => break n,
                        Err(e) if tries >= RETRIES => return Err(e),
                        Err(_) => {}
                    }
                };
                sent = done;
            }
        }
    }

    /// Appends one line in this process instead of through the broker (`--fallback direct`).
    /// With a retry id, through the broker's own dedup index, so an id retried while the broker
    /// is down (and again once it is back) is written once; a broker that runs but did not
    /// answer is not bypassed then.
    ///
    /// # Errors
    /// [`Error::Conflict`] when a retry id is given and a broker runs; the file's checks
    /// against the configured roots; [`Error::Io`] when the append fails.
    pub fn direct(
        &self,
        config: &Config,
        file: &Path,
        line: &Line,
        id: Option<&str>,
    ) -> Result<Ack> {
        let target = Roots::from_config(config).check(file)?;
        let bytes = line.encode()?;
        let Some(id) = id else {
            let mut bytes = bytes;
            bytes.push(b'\n');
            crate::append::AppendOptions::new().append(&target, &bytes)?;
            return Ok(Ack { duplicate: false });
        };
        if let Some(pid) = running(self.home)? {
            return Err(Error::Conflict(format!(
                "the broker (pid {pid}) runs but could not be reached; not appending directly with a retry id (it could be written twice)"
            )));
        }
        let index = commit::index_path(&self.home.subdir("broker")?, &target);
        commit::append_direct(&target, &index, &bytes, Some(id))
    }
}

/// A line as given: raw text with `raw`, else JSON text (validated here). `stdin_line` is the
/// 1-based number of a line read from stdin: its id is `ID-N`, and an error names the line.
///
/// # Errors
/// [`Error::Invalid`] for a line that is not valid JSON (without `raw`).
pub fn line(text: &str, raw: bool, id: Option<&str>, stdin_line: Option<usize>) -> Result<Item> {
    let id = match stdin_line {
        Some(n) => id.map(|id| format!("{id}-{n}")),
        None => id.map(str::to_owned),
    };
    if raw {
        return Ok((Line::Text(text.to_owned()), id));
    }
    let line = Line::JsonText(text.to_owned());
    line.encode().map_err(|e| match stdin_line {
        // serde counts within the one line: its column is what matters.
        Some(n) => on_line(
            n,
            &e.to_string().replace(" at line 1 column ", " at column "),
            e,
        ),
        None => e,
    })?;
    Ok((line, id))
}

/// Checks every line and id before anything is sent (bad input writes nothing); with
/// `autostart`, gives each line without an id a unique one, since a retry needs one to stay
/// exactly-once.
///
/// # Errors
/// [`Error::Invalid`] for the first bad line or id (naming its stdin line when there are
/// several).
pub fn prepare(lines: Vec<Item>, autostart: bool) -> Result<Vec<Item>> {
    for (n, (l, id)) in lines.iter().enumerate() {
        let checked = l
            .encode()
            .and_then(|_| id.as_deref().map_or(Ok(()), protocol::check_id));
        checked.map_err(|e| {
            if lines.len() > 1 {
                on_line(n + 1, &e.to_string(), e)
            } else {
                e
            }
        })?;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let auto = format!("auto.{}.{nanos}", std::process::id());
    Ok(lines
        .into_iter()
        .enumerate()
        .map(|(n, (line, id))| {
            let id = id.or_else(|| autostart.then(|| format!("{auto}.{}", n + 1)));
            (line, id)
        })
        .collect())
}

/// `e` (an invalid-input error) with its message put on stdin line `n`.
fn on_line(n: usize, why: &str, e: Error) -> Error {
    match e {
        Error::Invalid(_) => Error::Invalid(format!("stdin line {n}: {why}")),
        e => e,
    }
}

/// A running broker's pid and counters, as `broker status` shows them.
#[derive(Debug, Clone)]
pub struct Status {
    /// The broker's pid.
    pub pid: u32,
    /// Its counters (`connections`, `files`, `appends`, `batches`, `fsyncs`, ...); empty when
    /// it did not answer.
    pub counters: serde_json::Map<String, serde_json::Value>,
}

impl Status {
    /// The broker of `home` and its counters, or `None` when none runs.
    ///
    /// # Errors
    /// [`Error::Io`] when the pidfile cannot be read or locked.
    pub fn of(home: &Home) -> Result<Option<Status>> {
        let Some(pid) = running(home)? else {
            return Ok(None);
        };
        let counters = Client::connect(home)
            .and_then(|mut c| c.status())
            .unwrap_or_default();
        Ok(Some(Status { pid, counters }))
    }

    /// The `--json` fields: `running`, `pid` and the counters.
    pub fn to_json(&self) -> serde_json::Value {
        let mut info = serde_json::Map::new();
        info.insert("running".into(), true.into());
        info.insert("pid".into(), self.pid.into());
        info.extend(self.counters.clone());
        serde_json::Value::Object(info)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let info = self.to_json();
        let get = |k: &str| info.get(k).cloned().unwrap_or(serde_json::Value::Null);
        write!(
            f,
            "broker running (pid {}): {} connections, {} files, {} appends in {} batches, {} fsyncs",
            self.pid,
            get("connections"),
            get("files"),
            get("appends"),
            get("batches"),
            get("fsyncs")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_stdin_line_is_named_with_its_column() {
        let e = line("{x", false, None, Some(3)).unwrap_err().to_string();
        assert!(e.starts_with("stdin line 3: invalid JSON: "), "{e}");
        assert!(e.contains(" at column "), "{e}");
    }

    #[test]
    fn stdin_lines_number_their_ids_and_autostart_makes_up_the_missing_ones() {
        let (_, id) = line("{}", false, Some("run"), Some(2)).unwrap();
        assert_eq!(id.as_deref(), Some("run-2"));
        let items = prepare(vec![(Line::Text("a".into()), None)], true).unwrap();
        assert!(items[0].1.as_deref().unwrap().starts_with("auto."));
        let items = prepare(vec![(Line::Text("a".into()), None)], false).unwrap();
        assert_eq!(items[0].1, None);
    }

    #[test]
    fn a_bad_id_among_several_lines_names_its_line() {
        let items = vec![
            (Line::Text("a".into()), Some("ok".into())),
            (Line::Text("b".into()), Some(String::new())),
        ];
        let e = prepare(items, false).unwrap_err().to_string();
        assert!(e.starts_with("stdin line 2: retry id"), "{e}");
    }
}
