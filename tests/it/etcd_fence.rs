//! Fenced writes and JSON compare-and-swap through the verbs, against a real single-node etcd:
//! `json --key` on etcd (8 racing processes, stale fences refused in the transaction), and
//! `write --fence` / `json --fence` on local files checked against the etcd lock's holder.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use concur::etcd::Wait;

use crate::etcd_util::{Cluster, anon_lock, available};
use crate::util::{Barrier, TestEnv, assert_code, bin, content, retry, stderr, stdout};

const TTL: Duration = Duration::from_secs(10);

/// `concur ARGS` in `t` on the etcd at `url`.
fn on(t: &TestEnv, url: &str, args: &[&str]) -> Command {
    let mut c = t.cmd(args);
    c.env("CONCUR_BACKEND", url);
    c
}

fn run(t: &TestEnv, url: &str, args: &[&str]) -> Output {
    on(t, url, args).output().unwrap()
}

fn value(o: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(o).trim())
        .unwrap_or_else(|e| panic!("{e}: {:?} / {:?}", stdout(o), stderr(o)))
}

#[test]
fn etcd_json_key_counter_loses_no_increment_among_8_processes() {
    if !available("etcd_json_key_counter_loses_no_increment_among_8_processes") {
        return;
    }
    let cl = Cluster::start(1);
    let url = cl.url();
    let t = TestEnv::new();
    let script = format!(
        "i=0; while [ $i -lt 25 ]; do {} json --key counter '.n += 1' --init '{{\"n\":0}}' \
         >/dev/null || exit 1; i=$((i+1)); done",
        bin().display()
    );
    let mut b = Barrier::new();
    for _ in 0..8 {
        let mut c = Command::new("sh");
        c.args(["-c", &script])
            .env("CONCUR_HOME", &t.home)
            .env("CONCUR_BACKEND", &url)
            .env_remove("CONCUR_SESSION");
        b.spawn(&c);
    }
    for o in b.run_all() {
        assert_code(&o, 0);
    }
    let o = run(&t, &url, &["json", "--key", "counter", "."]);
    assert_code(&o, 0);
    assert_eq!(value(&o), serde_json::json!({"n": 200}));
    let o = run(&t, &url, &["--json", "json", "--key", "counter", "."]);
    assert_code(&o, 0);
    let v = value(&o);
    let again = value(&run(&t, &url, &["--json", "json", "--key", "counter", "."]));
    assert_eq!(
        again["revision"], v["revision"],
        "a read wrote: {again} after {v}"
    );
    assert_eq!(
        (&v["value"]["n"], &v["changed"], &v["backend"]),
        (
            &serde_json::json!(200),
            &serde_json::json!(false),
            &serde_json::json!("etcd")
        ),
        "{v}"
    );
    // Usage and input errors.
    assert_code(&run(&t, &url, &["json", "--key", "missing", "."]), 4);
    assert_code(&run(&t, &url, &["json", "--key", "counter", ".n +"]), 4);
    assert_code(
        &run(&t, &url, &["json", "--key", "counter", "f.json", "."]),
        2,
    );
    assert_code(
        &run(
            &t,
            &url,
            &["json", "--key", "counter", "--mode", "600", "."],
        ),
        2,
    );
    // Without a backend the document is the home's, which has no counter.
    assert_code(&t.run(["json", "--key", "counter", "."]), 4);
    assert_code(&run(&t, &url, &["json", "--key", "a/b", "."]), 4);
}

#[test]
fn etcd_json_key_with_a_stale_fence_is_refused_in_the_transaction() {
    if !available("etcd_json_key_with_a_stale_fence_is_refused_in_the_transaction") {
        return;
    }
    let cl = Cluster::start(1);
    let url = cl.url();
    let t = TestEnv::new();
    let first = t.path("first");
    // The first holder: its command records $CONCUR_FENCE, then the lock is released.
    let script = format!("printf %s \"$CONCUR_FENCE\" > {}", first.display());
    assert_code(&run(&t, &url, &["lock", "--name", "F", "-c", &script]), 0);
    let stale = String::from_utf8(content(&first).unwrap()).unwrap();
    assert!(stale.starts_with("F:"), "{stale}");
    // A second holder takes the lock.
    let c = cl.client();
    let g = anon_lock(&c, "F", TTL, Wait::No).unwrap().unwrap();
    let fresh = format!("F:{}", g.token());
    let init = ["--init", r#"{"v":0}"#];
    let upd = |fence: &str, filter: &str| {
        let mut a = vec!["json", "--key", "doc", "--fence", fence, filter];
        a.extend(init);
        run(&t, &url, &a)
    };
    assert_code(
        &run(&t, &url, &["json", "--key", "doc", ".", init[0], init[1]]),
        0,
    );
    let o = upd(&stale, ".v = 1");
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("now held with token {}", g.token()))
            && err.contains(&format!("fencing token {}", &stale[2..])),
        "{err}"
    );
    assert_code(&upd(&stale, "."), 3);
    let o = run(&t, &url, &["json", "--key", "doc", "."]);
    assert_eq!(
        value(&o),
        serde_json::json!({"v": 0}),
        "the stale update got through"
    );
    let o = upd(&fresh, ".v = 2");
    assert_code(&o, 0);
    assert_eq!(value(&o), serde_json::json!({"v": 2}));
    let o = upd(&fresh, ".");
    assert_code(&o, 0);
    assert_eq!(value(&o), serde_json::json!({"v": 2}));
    g.unlock().unwrap();
    let o = upd(&fresh, ".v = 3");
    assert_code(&o, 3);
    assert!(stderr(&o).contains("nobody holds it now"), "{}", stderr(&o));
}

#[test]
fn etcd_fenced_local_writes_are_checked_against_the_holder() {
    if !available("etcd_fenced_local_writes_are_checked_against_the_holder") {
        return;
    }
    let cl = Cluster::start(1);
    let url = cl.url();
    let t = TestEnv::new();
    let c = cl.client();
    let g1 = anon_lock(&c, "W", TTL, Wait::No).unwrap().unwrap();
    let stale = format!("W:{}", g1.token());
    g1.unlock().unwrap();
    let g2 = anon_lock(&c, "W", TTL, Wait::No).unwrap().unwrap();
    let fresh = format!("W:{}", g2.token());
    // The file has never seen a fenced write: only etcd knows the first token is stale.
    let o = run(&t, &url, &["write", "--fence", &stale, "f.txt", "stale"]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("is stale for lock W"), "{}", stderr(&o));
    assert!(content(&t.path("f.txt")).is_none() && content(&t.path("f.txt.fence")).is_none());
    let ahead = format!("W:{}", g2.token() + 1000);
    assert_code(
        &run(&t, &url, &["write", "--fence", &ahead, "f.txt", "ahead"]),
        3,
    );
    assert_code(
        &run(&t, &url, &["write", "--fence", &fresh, "f.txt", "fresh"]),
        0,
    );
    let j = |fence: &str| {
        run(
            &t,
            &url,
            &[
                "json",
                "--fence",
                fence,
                "d.json",
                ".n += 1",
                "--init",
                r#"{"n":0}"#,
            ],
        )
    };
    assert_code(&j(&stale), 3);
    assert_code(&j(&fresh), 0);
    g2.unlock().unwrap();
    // Released: the holder's token no longer writes either.
    assert_code(
        &run(&t, &url, &["write", "--fence", &fresh, "f.txt", "late"]),
        3,
    );
    assert_code(&j(&fresh), 3);
    assert_eq!(content(&t.path("f.txt")).unwrap(), b"fresh");
    assert_eq!(content(&t.path("d.json")).unwrap(), b"{\n  \"n\": 1\n}\n");
}

#[test]
fn etcd_paused_holders_fenced_write_is_refused_after_the_next_holder_wrote() {
    if !available("etcd_paused_holders_fenced_write_is_refused_after_the_next_holder_wrote") {
        return;
    }
    let cl = Cluster::start(1);
    let url = cl.url();
    let t = TestEnv::new();
    let (tok, rc) = (t.path("tok"), t.path("rc"));
    // The holder's command records its fence and hands the write to a background child that
    // waits for a line, then writes with it. The lease watchdog kills the command itself when
    // the paused holder's bound passes; its children are where fencing is the only protection.
    let script = format!(
        "printf %s \"$CONCUR_FENCE\" > {tok}; exec 3<&0; (read -r _ <&3; {bin} write --fence \
         \"$CONCUR_FENCE\" data.txt stale; echo $? > {rc}) & wait",
        tok = tok.display(),
        rc = rc.display(),
        bin = bin().display()
    );
    let mut holder = on(&t, &url, &["lock", "--name", "P", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stale = retry("the holder's fence", Duration::from_secs(30), || {
        String::from_utf8(content(&tok)?)
            .ok()
            .filter(|s| !s.is_empty())
    });
    let pid = i32::try_from(holder.id()).unwrap();
    // Pause the holder's concur (its lease keepalive with it); its command waits on stdin.
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let c = cl.client();
    let g = anon_lock(&c, "P", TTL, Wait::For(Duration::from_secs(60)))
        .unwrap()
        .unwrap();
    assert!(format!("P:{}", g.token()) != stale);
    let fresh = format!("P:{}", g.token());
    assert_code(
        &run(&t, &url, &["write", "--fence", &fresh, "data.txt", "fresh"]),
        0,
    );
    holder.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let code = retry(
        "the stale write's exit code",
        Duration::from_secs(30),
        || {
            let s = String::from_utf8(content(&rc)?).ok()?;
            s.ends_with('\n').then(|| s.trim().to_string())
        },
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let _ = holder.wait();
    assert_eq!(code, "3", "the paused holder's write was not refused");
    assert_eq!(content(&t.path("data.txt")).unwrap(), b"fresh");
    g.unlock().unwrap();
}

#[test]
fn etcd_fenced_local_writes_accept_a_task_lease_token() {
    if !available("etcd_fenced_local_writes_accept_a_task_lease_token") {
        return;
    }
    let cl = Cluster::start(1);
    let url = cl.url();
    let t = TestEnv::new();
    let acquire = |session: &str| {
        let o = run(&t, &url, &["--session", session, "lease", "acquire", "job"]);
        assert_code(&o, 0);
        format!("job:{}", stdout(&o).trim())
    };
    // The token `lease acquire` prints on etcd fences the holder's writes (docs/etcd.md).
    let first = acquire("s1");
    let o = run(&t, &url, &["write", "--fence", &first, "f.txt", "one"]);
    assert_code(&o, 0);
    // And its updates of a document in etcd, checked in the transaction.
    let doc = |fence: &str| {
        let a = ["json", "--key", "doc", "--fence", fence, ".n += 1"];
        run(&t, &url, &[&a[..], &["--init", r#"{"n":0}"#]].concat())
    };
    assert_code(&doc(&first), 0);
    assert_code(
        &run(&t, &url, &["--session", "s1", "lease", "release", "job"]),
        0,
    );
    // Released: its token no longer writes, not even to a file that never saw the next one.
    assert_code(
        &run(&t, &url, &["write", "--fence", &first, "g.txt", "late"]),
        3,
    );
    let second = acquire("s2");
    assert_ne!(first, second);
    assert_code(
        &run(&t, &url, &["write", "--fence", &first, "f.txt", "stale"]),
        3,
    );
    assert_code(
        &run(&t, &url, &["write", "--fence", &second, "f.txt", "two"]),
        0,
    );
    assert_code(&doc(&first), 3);
    assert_code(&doc(&second), 0);
    assert_eq!(content(&t.path("f.txt")).unwrap(), b"two");
    assert!(content(&t.path("g.txt")).is_none());
    let o = run(&t, &url, &["json", "--key", "doc", "."]);
    assert_eq!(value(&o), serde_json::json!({"n": 2}));
}
