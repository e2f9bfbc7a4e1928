//! SIGKILL torture: concur writers killed at random moments, then the files checked.
//!
//! Targets: `append` with short lines and with long ones (4 KiB up to `CONCUR_TORTURE_MAX_LINE`,
//! default 64 KiB; 400 KB at full scale), `write`, `json` (a counter), `ledger append`, broker
//! clients (`append --broker --id`, retried with the same id after a kill) and the broker daemon
//! itself (killed under pipelined batches of long lines; the clients reconnect with
//! `--autostart` and resend the same ids). Each round starts a few writers at once and SIGKILLs
//! some after a random delay — the delay is the test input, not synchronisation; it adapts to
//! how long the writers really take, so that kills land mid-operation. A kill counts only when
//! the process died of it.
//!
//! Checked per target: invalid lines (not a whole JSON entry), acknowledged records lost,
//! duplicates, the counter's bounds (acked ≤ n ≤ attempted), `ledger verify`, and leftover temp
//! files. `CONCUR_TORTURE_SCALE` is the number of kills (default 300, the normal test run);
//! `bench/torture.sh` runs the full scale and prints the table for docs/RELIABILITY.md.
//! `CONCUR_TORTURE_SEED` replays a run.

#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::broker::write_file;
use crate::util::*;

/// xorshift64*: enough randomness for kill timing and line sizes, replayable from a seed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("CONCUR_TORTURE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                t.as_nanos() as u64 ^ u64::from(std::process::id())
            });
        eprintln!("torture: CONCUR_TORTURE_SEED={seed}");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// What one target's rounds found.
#[derive(Default, Debug)]
struct Tally {
    kills: usize,
    attempted: usize,
    acked: usize,
    invalid: usize,
    lost: usize,
    duplicates: usize,
    /// Other broken promises, named (counter bounds, ledger verify, litter, failed retries).
    broken: Vec<String>,
}

/// Random kill delays that follow how long the writers really take: a delay that came too late
/// (the victim had finished) shrinks the range, one that landed widens it.
struct Killer {
    max_us: u64,
}

impl Killer {
    fn new() -> Killer {
        Killer { max_us: 20_000 }
    }

    /// Waits a random delay, SIGKILLs `victim`; true when it died of the signal (it was still
    /// running). The caller must still reap it.
    fn kill(&mut self, rng: &mut Rng, victim: &mut Child) -> bool {
        std::thread::sleep(Duration::from_micros(rng.below(self.max_us)));
        // SAFETY: kill with plain integers, on a child this test spawned and has not reaped.
        unsafe { libc::kill(victim.id() as libc::pid_t, libc::SIGKILL) };
        let died = victim.wait().unwrap().signal() == Some(libc::SIGKILL);
        self.max_us = if died {
            (self.max_us + self.max_us / 8).min(200_000)
        } else {
            (self.max_us * 3 / 4).max(200)
        };
        died
    }
}

/// One round: spawns `cmds` at once, kills `victims` of them (random picks, random delays),
/// reaps the rest. Returns per command: (acked = exit 0, killed).
fn round(
    cmds: Vec<Command>,
    victims: usize,
    rng: &mut Rng,
    killer: &mut Killer,
) -> Vec<(bool, bool)> {
    let mut children: Vec<Child> = cmds
        .into_iter()
        .map(|mut c| {
            c.stdout(Stdio::null()).stderr(Stdio::null());
            c.spawn().expect("spawn")
        })
        .collect();
    let mut out = vec![(false, false); children.len()];
    let mut pick: Vec<usize> = (0..children.len()).collect();
    for _ in 0..victims.min(children.len()) {
        let i = pick.swap_remove(rng.below(pick.len() as u64) as usize);
        out[i].1 = killer.kill(rng, &mut children[i]);
    }
    for (i, c) in children.iter_mut().enumerate() {
        let st = c.wait().unwrap();
        out[i].0 = st.success();
        if !out[i].1 && st.signal().is_some() {
            out[i].1 = true;
        }
    }
    out
}

/// A file holding `bytes`, for a writer's stdin (lines over the 128 KiB argument limit).
fn input(dir: &Path, name: &str, bytes: &[u8]) -> Stdio {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    Stdio::from(std::fs::File::open(&p).unwrap())
}

/// Checks a JSONL file of `{"id":...}` entries: counts invalid lines, duplicates and acked ids
/// missing.
fn check_lines(file: &Path, acked: &[String], t: &mut Tally) {
    let text = content(file).unwrap_or_default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned))
        {
            Some(id) => *seen.entry(id).or_default() += 1,
            None => t.invalid += 1,
        }
    }
    if !text.is_empty() && !text.ends_with(b"\n") {
        t.broken.push("file ends in a torn line".into());
    }
    t.duplicates += seen.values().map(|n| n - 1).sum::<usize>();
    t.lost += acked.iter().filter(|id| !seen.contains_key(*id)).count();
}

struct Torture<'a> {
    t: &'a TestEnv,
    rng: Rng,
    kills_each: usize,
    max_line: usize,
}

impl Torture<'_> {
    fn pad(&mut self, long: bool) -> String {
        let n = if long {
            4096 + self.rng.below((self.max_line - 4096) as u64) as usize
        } else {
            self.rng.below(300) as usize
        };
        "x".repeat(n)
    }

    /// Rounds of `width` processes made by `make(round, slot)` until `kills_each` kills landed
    /// (bounded by a round limit); `after` sees each round's (id, acked, killed).
    fn rounds(
        &mut self,
        width: usize,
        victims: usize,
        mut make: impl FnMut(&mut Self, usize, usize) -> (String, Command),
        mut after: impl FnMut(&mut Self, &[(String, bool, bool)]),
        t: &mut Tally,
    ) {
        let mut killer = Killer::new();
        let mut r = 0;
        while t.kills < self.kills_each && r < self.kills_each * 20 {
            let (ids, cmds): (Vec<String>, Vec<Command>) =
                (0..width).map(|w| make(self, r, w)).unzip();
            let res = round(cmds, victims, &mut self.rng, &mut killer);
            let res: Vec<(String, bool, bool)> = ids
                .into_iter()
                .zip(res)
                .map(|(id, (a, k))| (id, a, k))
                .collect();
            t.attempted += res.len();
            t.acked += res.iter().filter(|x| x.1).count();
            t.kills += res.iter().filter(|x| x.2).count();
            after(self, &res);
            r += 1;
        }
    }

    fn append(&mut self, long: bool) -> Tally {
        let mut t = Tally::default();
        let dir = self
            .t
            .path(if long { "append-long" } else { "append-short" });
        std::fs::create_dir(&dir).unwrap();
        let f = dir.join("log.jsonl");
        let mut acked = Vec::new();
        self.rounds(
            4,
            2,
            |s, r, w| {
                let id = format!("{r}-{w}");
                let line = format!(
                    "{{\"id\":\"{id}\",\"pad\":\"{}\"}}",
                    s.pad(long && w % 4 != 3)
                );
                let mut c = s.t.cmd(["append", f.to_str().unwrap(), "-"]);
                c.stdin(input(s.t.dir.path(), &format!("in-{w}"), line.as_bytes()));
                (id, c)
            },
            |_, res| acked.extend(res.iter().filter(|x| x.1).map(|x| x.0.clone())),
            &mut t,
        );
        check_lines(&f, &acked, &mut t);
        t
    }

    /// Runs `args` once more (a writer of the file in `dir`, which removes what killed writers
    /// left), then counts the temp files still in `dir`.
    fn check_litter(&self, dir: &Path, args: &[&str], t: &mut Tally) {
        assert_code(&self.t.run(args), 0);
        let left = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                let n = n.to_string_lossy();
                n.starts_with('.') && n.ends_with(".tmp")
            })
            .count();
        if left > 0 {
            t.broken.push(format!("{left} temp files left"));
        }
    }

    fn write(&mut self) -> Tally {
        let mut t = Tally::default();
        let dir = self.t.path("write");
        std::fs::create_dir(&dir).unwrap();
        let f = dir.join("state.txt");
        let mut contents: Vec<Vec<u8>> = Vec::new();
        self.rounds(
            4,
            2,
            |s, r, w| {
                let id = format!("{r}-{w}");
                let body = format!("{id}:{}", s.pad(w % 2 == 0));
                let mut c = s.t.cmd(["write", f.to_str().unwrap(), "-"]);
                c.stdin(input(s.t.dir.path(), &format!("in-{w}"), body.as_bytes()));
                contents.push(body.into_bytes());
                (id, c)
            },
            |_, _| {},
            &mut t,
        );
        if let Some(now) = content(&f)
            && !contents.contains(&now)
        {
            t.invalid += 1;
        }
        // One more write: it removes what the killed writers left.
        self.check_litter(&dir, &["write", f.to_str().unwrap(), "last"], &mut t);
        t
    }

    fn json(&mut self) -> Tally {
        let mut t = Tally::default();
        let dir = self.t.path("json");
        std::fs::create_dir(&dir).unwrap();
        let f = dir.join("count.json");
        let fs = f.to_str().unwrap().to_owned();
        self.rounds(
            4,
            2,
            |s, r, w| {
                let args = ["json", "--init", "{\"n\":0}", &fs, ".n += 1"];
                (format!("{r}-{w}"), s.t.cmd(args))
            },
            |_, _| {},
            &mut t,
        );
        let Some(Ok(v)) = content(&f).map(|b| serde_json::from_slice::<serde_json::Value>(&b))
        else {
            t.invalid += 1;
            return t;
        };
        let n = v["n"].as_u64().unwrap_or(u64::MAX) as usize;
        if !(t.acked <= n && n <= t.attempted) {
            t.broken.push(format!(
                "counter {n} outside acked {} ..= attempted {}",
                t.acked, t.attempted
            ));
        }
        self.check_litter(&dir, &["json", &fs, ".checked = true"], &mut t);
        t
    }

    fn ledger(&mut self) -> Tally {
        let mut t = Tally::default();
        let dir = self.t.path("ledger");
        std::fs::create_dir(&dir).unwrap();
        let f = dir.join("l.jsonl");
        let fs = f.to_str().unwrap().to_owned();
        let mut acked = Vec::new();
        let mut refused = 0;
        self.rounds(
            4,
            2,
            |s, r, w| {
                let id = format!("{r}-{w}");
                let entry = format!("{{\"id\":\"{id}\",\"pad\":\"{}\"}}", s.pad(w == 0));
                let mut c = s.t.cmd(["ledger", "append", "--no-fsync", &fs, "-"]);
                c.stdin(input(s.t.dir.path(), &format!("in-{w}"), entry.as_bytes()));
                (id, c)
            },
            |_, res| {
                acked.extend(res.iter().filter(|x| x.1).map(|x| x.0.clone()));
                refused += res.iter().filter(|x| !x.1 && !x.2).count();
            },
            &mut t,
        );
        if refused > 0 {
            t.broken
                .push(format!("{refused} appends refused (not killed)"));
        }
        // A last append repairs a torn tail; then the chain must verify.
        let o = self.t.run(["ledger", "append", &fs, "{\"id\":\"last\"}"]);
        assert_code(&o, 0);
        let o = self.t.run(["ledger", "verify", &fs]);
        if code(&o) != 0 {
            t.broken.push(format!("verify: {}", stderr(&o).trim()));
        }
        check_lines(&f, &acked, &mut t);
        t
    }

    /// Broker clients killed mid-append, each retried with its id afterwards.
    fn broker_clients(&mut self, root: &Path) -> Tally {
        let mut t = Tally::default();
        let f = root.join("clients.jsonl");
        let fs = f.to_str().unwrap().to_owned();
        let mut all = Vec::new();
        let mut failed_retries = 0;
        self.rounds(
            4,
            2,
            |s, r, w| {
                let id = format!("{r}-{w}");
                let line = format!("{{\"id\":\"{id}\",\"pad\":\"{}\"}}", s.pad(w == 0));
                let mut c =
                    s.t.cmd(["append", "--broker", "--autostart", "--id", &id, &fs, "-"]);
                c.stdin(input(s.t.dir.path(), &format!("in-{w}"), line.as_bytes()));
                (id, c)
            },
            |s, res| {
                for (id, acked, _) in res {
                    all.push(id.clone());
                    if !acked {
                        let line = format!("{{\"id\":\"{id}\",\"retry\":true}}");
                        let args = ["append", "--broker", "--autostart", "--id", id, &fs, &line];
                        if code(&s.t.run(args)) != 0 {
                            failed_retries += 1;
                        }
                    }
                }
            },
            &mut t,
        );
        if failed_retries > 0 {
            t.broken.push(format!("{failed_retries} retries failed"));
        }
        // Every id was acked, first time or on retry: each must be there exactly once.
        check_lines(&f, &all, &mut t);
        t
    }

    /// The broker daemon killed under pipelined clients, which reconnect (`--autostart`) and
    /// resend the same ids.
    fn broker_daemon(&mut self, root: &Path) -> Tally {
        let mut t = Tally::default();
        let f = root.join("daemon.jsonl");
        let fs = f.to_str().unwrap().to_owned();
        let mut all = Vec::new();
        let mut failed = 0;
        let mut killer = Killer::new();
        let mut r = 0;
        let lines = 24;
        while t.kills < self.kills_each && r < self.kills_each * 20 {
            // Make sure a broker runs (the clients may have autostarted one: exit 1 then), then
            // start clients and kill it under them.
            let o = self.t.run(["broker", "serve", "--detach"]);
            assert!(matches!(code(&o), 0 | 1), "{}", stderr(&o));
            let pid = self.broker_pid();
            let mut clients = Vec::new();
            for c in 0..3 {
                let mut body = Vec::new();
                for n in 1..=lines {
                    let long = self.rng.below(4) == 0;
                    let pad = self.pad(long);
                    writeln!(body, "{{\"id\":\"{r}-{c}-{n}\",\"pad\":\"{pad}\"}}").unwrap();
                    all.push(format!("{r}-{c}-{n}"));
                }
                let id = format!("{r}-{c}");
                let mut cmd =
                    self.t
                        .cmd(["broker", "append", "--autostart", "--id", &id, &fs, "-"]);
                cmd.stdin(input(self.t.dir.path(), &format!("in-{c}"), &body))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                clients.push(cmd.spawn().unwrap());
            }
            // The delay is the input; whether the broker was still alive to die decides.
            std::thread::sleep(Duration::from_micros(self.rng.below(killer.max_us)));
            // SAFETY: kill with plain integers on the broker this test started.
            let hit = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } == 0;
            let done = clients.iter_mut().all(|c| c.try_wait().unwrap().is_some());
            killer.max_us = if hit && !done {
                (killer.max_us + killer.max_us / 8).min(200_000)
            } else {
                (killer.max_us * 3 / 4).max(200)
            };
            if hit {
                t.kills += 1;
            }
            for c in clients {
                let o = c.wait_with_output().unwrap();
                t.attempted += lines;
                if o.status.success() {
                    t.acked += lines;
                } else {
                    failed += 1;
                    eprintln!(
                        "torture: broker client failed: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
            }
            r += 1;
        }
        if failed > 0 {
            t.broken.push(format!("{failed} clients failed"));
        }
        check_lines(&f, &all, &mut t);
        t
    }

    fn broker_pid(&self) -> u32 {
        let o = self.t.run(["broker", "status", "--json"]);
        assert_code(&o, 0);
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        u32::try_from(v["pid"].as_u64().unwrap()).unwrap()
    }
}

/// Stops the home's broker when the test ends, however it ends.
struct StopBroker<'a>(&'a TestEnv);

impl Drop for StopBroker<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(["broker", "stop"]);
    }
}

#[test]
fn sigkill_torture_leaves_no_torn_lost_or_doubled_record() {
    let scale = env_num("CONCUR_TORTURE_SCALE", 300);
    let max_line = env_num("CONCUR_TORTURE_MAX_LINE", 64 << 10).max(8192);
    let t = TestEnv::new();
    assert_code(&t.run(["home"]), 0);
    let root: PathBuf = t.path("root");
    std::fs::create_dir(&root).unwrap();
    write_file(
        &t.home.join("concur.toml"),
        &format!("[broker]\nroots = [{:?}]\n", root.to_str().unwrap()),
    );
    let _stop = StopBroker(&t);
    let mut s = Torture {
        t: &t,
        rng: Rng::new(),
        kills_each: scale.div_ceil(7),
        max_line,
    };
    let started = Instant::now();
    let results = [
        ("append, short lines (< 300 B)", s.append(false)),
        ("append, long lines (4 KiB ..)", s.append(true)),
        ("write", s.write()),
        ("json (counter)", s.json()),
        ("ledger append", s.ledger()),
        ("broker clients", s.broker_clients(&root)),
        ("broker daemon", s.broker_daemon(&root)),
    ];
    let mut table = String::from(
        "| target | kills | attempted | acked | invalid lines | acked lost | duplicates | other |\n|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let mut kills = 0;
    for (name, r) in &results {
        kills += r.kills;
        let _ = writeln!(
            table,
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            r.kills,
            r.attempted,
            r.acked,
            r.invalid,
            r.lost,
            r.duplicates,
            if r.broken.is_empty() {
                "—".into()
            } else {
                r.broken.join("; ")
            }
        );
    }
    eprintln!(
        "torture: {kills} kills, lines up to {max_line} bytes, {:.0} s\n{table}",
        started.elapsed().as_secs_f64()
    );
    if let Ok(p) = std::env::var("CONCUR_TORTURE_REPORT") {
        write_file(Path::new(&p), &table);
    }
    assert!(kills >= scale, "only {kills} of {scale} kills landed");
    for (name, r) in &results {
        assert!(
            r.invalid == 0 && r.lost == 0 && r.duplicates == 0 && r.broken.is_empty(),
            "{name}: {r:?}"
        );
    }
}
