//! issue 13 item 14: `lease acquire` on etcd reports the time really left on the lease,
//! counted from its grant, not the whole TTL, when the transaction after the grant was slow.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::etcd::verb;
use crate::etcd_util::{Cluster, available};
use crate::util::*;

/// A TCP proxy to `upstream` that holds the first request for `path` back by `delay` (as a
/// slow network or a loaded member would). Runs until the test process ends.
fn delaying_proxy(upstream: String, path: &'static str, delay: Duration) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let once = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(down) = conn else { return };
            let Ok(up) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut d2, mut u2) = (down.try_clone().unwrap(), up.try_clone().unwrap());
            let once = Arc::clone(&once);
            std::thread::spawn(move || {
                let (mut down, mut up) = (down, up);
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = down.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let hit = buf[..n].windows(path.len()).any(|w| w == path.as_bytes());
                    if hit && !once.swap(true, Ordering::SeqCst) {
                        std::thread::sleep(delay);
                    }
                    if up.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = up.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut d2);
                let _ = d2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

#[test]
fn etcd_lease_acquire_reports_the_time_left_from_the_grant() {
    if !available("etcd_lease_acquire_reports_the_time_left_from_the_grant") {
        return;
    }
    let cl = Cluster::start(1);
    let upstream = cl.url().trim_start_matches("etcd://").to_owned();
    let delay = Duration::from_millis(1500);
    let port = delaying_proxy(upstream, "POST /v3/kv/txn", delay);
    let t = TestEnv::new();
    let be = format!("etcd://127.0.0.1:{port}");
    let lease = |action: &str| {
        let o = verb(
            &t,
            Some(&be),
            [
                "lease",
                action,
                "job",
                "--session",
                "s1",
                "--ttl",
                "5s",
                "--json",
            ],
        )
        .output()
        .unwrap();
        assert_code(&o, 0);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let v = lease("acquire");
    let left = v["lease"]["expires_in_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("{v}"));
    // The grant was sent before the held-back transaction: at least the delay is spent.
    assert!(
        left <= 5000 - 1500,
        "reported {left} ms left on a 5 s lease granted before a 1.5 s stall: {v}"
    );
    assert!(left > 0, "{v}");
    // A renewal reports from its own grant too (no stall now: most of the TTL).
    let v = lease("renew");
    assert!(v["lease"]["expires_in_ms"].as_u64().unwrap() <= 5000, "{v}");
}

/// The state letter of process `pid` (`Z` zombie), or `None` when it is gone.
fn proc_state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(") ")?.1.chars().next()
}

/// A `concur lock --name` holder stopped by SIGSTOP while its command runs: the command is killed by
/// the watchdog at the holder's bound, before the lease can expire on the server, so none of
/// its writes lands in the next holder's section.
#[test]
fn etcd_a_stopped_holders_command_dies_before_the_next_holder_starts() {
    if !available("etcd_a_stopped_holders_command_dies_before_the_next_holder_starts") {
        return;
    }
    let cl = Cluster::start(1);
    let be = cl.url();
    let t = TestEnv::new();
    let pidfile = t.path("cmd.pid");
    let log = t.path("log");
    let script = format!(
        "echo $$ > {p}.tmp && mv {p}.tmp {p}; while :; do echo A >> {l}; sleep 0.05; done",
        p = pidfile.display(),
        l = log.display()
    );
    let mut holder = verb(
        &t,
        Some(&be),
        ["lock", "--name", "W", "--", "sh", "-c", &script],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let cmd_pid: i32 = retry("the command's pid", Duration::from_secs(30), || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    });
    let hp = i32::try_from(holder.id()).unwrap();
    // SAFETY: kill(2) on a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(hp, libc::SIGSTOP) }, 0);
    let o = verb(
        &t,
        Some(&be),
        [
            "lock",
            "--name",
            "W",
            "-w",
            "60",
            "--",
            "sh",
            "-c",
            &format!("echo B >> {}", log.display()),
        ],
    )
    .output()
    .unwrap();
    // The first command is dead (a zombie: its stopped parent cannot reap it) by the time the
    // next holder ran.
    let state = proc_state(cmd_pid);
    // SAFETY: as above.
    unsafe {
        libc::kill(hp, libc::SIGCONT);
    }
    let _ = holder.wait();
    assert_code(&o, 0);
    assert!(
        matches!(state, None | Some('Z')),
        "the stopped holder's command was still running (state {state:?}) in the next holder's section"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let after_b = text.split_once("B\n").map_or("", |(_, rest)| rest);
    assert!(!after_b.contains('A'), "A wrote after B: {text}");
}
