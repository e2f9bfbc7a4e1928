//! `concur lock`, and the `flock`/`lockf` multi-call names, as real processes.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::*;

/// A way to run flock(1)-style commands: `concur lock`, a `flock` link to concur, or the
/// system's util-linux flock.
struct Runner {
    name: &'static str,
    prefix: Vec<OsString>,
    /// Supports --fcntl/--start/--length (util-linux ≥ 2.40).
    fcntl: bool,
}

pub(crate) fn link(t: &TestEnv, name: &str) -> PathBuf {
    let p = t.path(name);
    if !p.exists() {
        std::os::unix::fs::symlink(bin(), &p).unwrap();
    }
    p
}

fn runners(t: &TestEnv) -> Vec<Runner> {
    let mut v = vec![
        Runner {
            name: "concur lock",
            prefix: vec![bin().into(), "lock".into()],
            fcntl: true,
        },
        Runner {
            name: "flock link",
            prefix: vec![link(t, "flock").into()],
            fcntl: true,
        },
    ];
    if Path::new("/usr/bin/flock").exists() {
        v.push(Runner {
            name: "/usr/bin/flock",
            prefix: vec!["/usr/bin/flock".into()],
            fcntl: false,
        });
    } else {
        eprintln!("no /usr/bin/flock: comparing concur with itself only");
    }
    v
}

impl Runner {
    fn cmd(&self, t: &TestEnv, args: &[&str]) -> Command {
        sh_env(
            t,
            Command::new(&self.prefix[0])
                .args(&self.prefix[1..])
                .args(args),
        )
    }

    fn code(&self, t: &TestEnv, args: &[&str]) -> i32 {
        let o = self.cmd(t, args).output().unwrap();
        o.status
            .code()
            .unwrap_or_else(|| panic!("{}: {args:?} killed: {o:?}", self.name))
    }
}

/// `c` with the test's home, no session variables, run in the test directory.
fn sh_env(t: &TestEnv, c: &mut Command) -> Command {
    let mut out = Command::new(c.get_program());
    out.args(c.get_args())
        .env("CONCUR_HOME", &t.home)
        .env_remove("CONCUR_SESSION")
        .env_remove("CLAUDE_CODE_SESSION_ID")
        .env_remove("CLAUDE_SESSION_ID")
        .current_dir(t.dir.path())
        .stdin(Stdio::null());
    out
}

/// A process holding a lock until its stdin closes; constructed once it holds.
struct Holder {
    child: Child,
    /// The pid the held command printed (`$$` of its shell).
    inner_pid: u32,
}

impl Holder {
    fn start(mut cmd: Command) -> Holder {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let inner_pid = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("holder did not start: {line:?}"))
            .parse()
            .unwrap();
        Holder { child, inner_pid }
    }

    fn release(mut self) -> i32 {
        drop(self.child.stdin.take());
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

const HOLD: &str = "echo ready $$; read x; true";

#[test]
fn flock_compatibility_table() {
    let t = TestEnv::new();
    std::fs::create_dir(&t.home).unwrap();
    for r in runners(&t) {
        let n = r.name;
        // The command's status, and 128+N when it dies of signal N.
        assert_eq!(r.code(&t, &["f", "sh", "-c", "exit 7"]), 7, "{n}: status");
        assert_eq!(r.code(&t, &["f", "-c", "exit 3"]), 3, "{n}: -c");
        assert_eq!(
            r.code(&t, &["f", "-c", "kill -TERM $$"]),
            143,
            "{n}: signal"
        );
        assert_eq!(r.code(&t, &["-u", "f", "true"]), 0, "{n}: -u");
        // Missing directory: the open fails, EX_NOINPUT.
        assert_eq!(
            r.code(&t, &["-n", "nodir/f", "true"]),
            66,
            "{n}: missing dir"
        );
        // A missing file is created.
        assert_eq!(r.code(&t, &["-n", "new-file", "true"]), 0, "{n}: create");
        assert!(t.path("new-file").exists());

        // Conflicts, with a holder that has the lock for sure (it printed "ready").
        let h = Holder::start(r.cmd(&t, &["f", "-c", HOLD]));
        assert_eq!(r.code(&t, &["-n", "f", "true"]), 1, "{n}: -n conflict");
        assert_eq!(r.code(&t, &["-n", "-E", "42", "f", "true"]), 42, "{n}: -E");
        assert_eq!(r.code(&t, &["-w", "0", "f", "true"]), 1, "{n}: -w 0");
        let ran = t.path(&format!("ran-{}", n.replace(['/', ' '], "_")));
        let touch = format!("touch '{}'", ran.display());
        assert_eq!(
            r.code(&t, &["-w", "0.1", "-E", "9", "f", "-c", &touch]),
            9,
            "{n}: -w"
        );
        assert!(!ran.exists(), "{n}: the command ran after a timeout");
        assert_eq!(h.release(), 0);
        assert_eq!(r.code(&t, &["-n", "f", "-c", &touch]), 0, "{n}: free again");
        assert!(ran.exists());

        // Shared locks share, and exclude an exclusive one.
        let h = Holder::start(r.cmd(&t, &["-s", "f", "-c", HOLD]));
        assert_eq!(
            r.code(&t, &["-s", "-n", "f", "true"]),
            0,
            "{n}: shared+shared"
        );
        assert_eq!(
            r.code(&t, &["-x", "-n", "f", "true"]),
            1,
            "{n}: shared+exclusive"
        );
        h.release();

        // FD form: a shell's descriptor 9 holds the lock after the locker exits.
        let p = r
            .prefix
            .iter()
            .map(|s| format!("'{}'", s.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        let script = format!(
            "exec 9>>f; {p} 9 || exit 10; {p} -n f true; echo other=$?; {p} -u 9; {p} -n f true; echo after=$?"
        );
        let o = sh_env(&t, Command::new("sh").arg("-c").arg(&script))
            .output()
            .unwrap();
        assert_eq!(
            stdout(&o),
            "other=1\nafter=0\n",
            "{n}: FD form: {}",
            stderr(&o)
        );

        if r.fcntl {
            let h = Holder::start(r.cmd(&t, &["--fcntl", "g", "-c", HOLD]));
            assert_eq!(r.code(&t, &["--fcntl", "-n", "g", "true"]), 1, "{n}: fcntl");
            h.release();
            let h = Holder::start(r.cmd(&t, &["--start", "0", "--length", "10", "g", "-c", HOLD]));
            assert_eq!(
                r.code(&t, &["--start", "10", "--length", "10", "-n", "g", "true"]),
                0,
                "{n}: disjoint ranges"
            );
            assert_eq!(
                r.code(&t, &["--start", "5", "--length", "10", "-n", "g", "true"]),
                1,
                "{n}: overlapping ranges"
            );
            h.release();
        }
    }
}

#[test]
fn flock_link_usage_errors_match_util_linux() {
    let t = TestEnv::new();
    let f = link(&t, "flock");
    let run = |args: &[&str]| {
        Command::new(&f)
            .args(args)
            .current_dir(t.dir.path())
            .output()
            .unwrap()
    };
    let o = run(&[]);
    assert_code(&o, 64);
    assert!(
        stderr(&o).starts_with("flock: not enough arguments\n"),
        "{}",
        stderr(&o)
    );
    let o = run(&["-z", "f", "true"]);
    assert_code(&o, 64);
    assert!(
        stderr(&o).starts_with("flock: invalid option -- 'z'"),
        "{}",
        stderr(&o)
    );
    let o = run(&["-E", "300", "f", "true"]);
    assert_code(&o, 64);
    let o = run(&["-o", "-F", "f", "true"]);
    assert_code(&o, 64);
    let o = run(&["f", "no-such-command-xyz"]);
    assert_code(&o, 69);
    assert_eq!(
        stderr(&o),
        "flock: failed to execute no-such-command-xyz: No such file or directory\n"
    );
    if Path::new("/usr/bin/flock").exists() {
        for args in [
            &["-z", "f", "true"][..],
            &["f", "no-such-command-xyz"],
            &["-E", "300", "f", "true"],
        ] {
            let ours = run(args);
            let theirs = Command::new("/usr/bin/flock")
                .args(args)
                .current_dir(t.dir.path())
                .output()
                .unwrap();
            assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
        }
    }
}

#[test]
fn concurrent_increments_under_the_lock_lose_nothing() {
    let t = TestEnv::new();
    put(&t.path("counter"), b"0\n");
    let (procs, each) = (8, 25);
    let inc = "n=$(cat counter); echo $((n+1)) > counter";
    let script = format!(
        "i=0; while [ $i -lt {each} ]; do \"$0\" lock counter.lock sh -c '{inc}' || exit 1; i=$((i+1)); done"
    );
    let mut b = Barrier::new();
    for _ in 0..procs {
        b.spawn(&sh_env(
            &t,
            Command::new("sh").arg("-c").arg(&script).arg(bin()),
        ));
    }
    for o in b.run_all() {
        assert_code(&o, 0);
    }
    let n: u32 = std::fs::read_to_string(t.path("counter"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(n, procs * each);
}

/// Creates `p` with `bytes` (test fixture set-up, no concurrency).
fn put(p: &Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::File::create(p).unwrap().write_all(bytes).unwrap();
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next()),
            Some("Z" | "X")
        ),
        Err(_) => false,
    }
}

#[test]
fn killed_holder_releases_at_once_and_its_command_dies_with_it() {
    let t = TestEnv::new();
    let holder = Holder::start({
        let mut c = t.cmd([
            "--session",
            "sess-A",
            "lock",
            "f",
            "-c",
            "echo ready $$; exec sleep 1000",
        ]);
        c.stdin(Stdio::piped());
        c
    });
    let mut waiter = t.cmd(["lock", "f", "-c", "echo got"]);
    waiter.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut waiter = waiter.spawn().unwrap();
    let mut err = BufReader::new(waiter.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let hp = holder.child.id();
    assert!(
        line.starts_with(&format!(
            "concur: lock: waiting for lock on f held by pid {hp} (session sess-A, "
        )),
        "{line}"
    );
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(hp.cast_signed(), libc::SIGKILL) };
    let mut out = String::new();
    waiter
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "got\n");
    assert!(waiter.wait().unwrap().success());
    // The killed holder's command must not go on running unprotected.
    retry(
        "the holder's command to die",
        Duration::from_secs(10),
        || (!alive(holder.inner_pid)).then_some(()),
    );
    let mut h = holder;
    let _ = h.child.wait();
}

#[test]
fn lock_never_writes_into_the_users_file() {
    let t = TestEnv::new();
    let data = t.path("data.json");
    put(&data, b"{\"a\":1}\n");
    let h = Holder::start({
        let mut c = t.cmd(["lock", "data.json", "-c", HOLD]);
        c.stdin(Stdio::piped());
        c
    });
    let o = t.run(["lock", "-n", "data.json", "true"]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains(&format!("held by pid {}", h.child.id())),
        "{}",
        stderr(&o)
    );
    h.release();
    assert_eq!(std::fs::read(&data).unwrap(), b"{\"a\":1}\n");
}

#[test]
fn max_hold_kills_the_group_and_releases() {
    let t = TestEnv::new();
    let o = t.run(["lock", "--max-hold", "0.2", "f", "-c", "sleep 30 & wait"]);
    assert_code(&o, 137);
    assert!(stderr(&o).contains("--max-hold"), "{}", stderr(&o));
    assert_code(&t.run(["lock", "-n", "f", "true"]), 0);
}

#[test]
fn sigterm_is_forwarded_and_the_commands_status_returned() {
    let t = TestEnv::new();
    let h = Holder::start({
        let mut c = t.cmd([
            "lock",
            "f",
            "-c",
            "trap 'exit 5' TERM; echo ready $$; while :; do sleep 0.05; done",
        ]);
        c.stdin(Stdio::piped());
        c
    });
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(h.child.id().cast_signed(), libc::SIGTERM) };
    let mut h = h;
    assert_eq!(h.child.wait().unwrap().code(), Some(5));
}

#[test]
fn named_locks_json_and_bad_names() {
    let t = TestEnv::new();
    let o = t.run(["lock", "--json", "--name", "build", "--", "true"]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["status"], 0);
    assert!(t.home.join("locks/build").exists());
    let o = t.run(["lock", "--name", "../x", "true"]);
    assert_code(&o, 4);
    assert_eq!(stderr(&o).lines().count(), 1);
    let o = t.run(["lock", "--session", "../evil", "new.lock", "true"]);
    assert_code(&o, 4);
    assert!(
        !t.path("new.lock").exists(),
        "a file was touched before validation"
    );
}

#[test]
fn lockf_link_basics() {
    let t = TestEnv::new();
    let lockf = link(&t, "lockf");
    let run = |args: &[&str]| {
        Command::new(&lockf)
            .args(args)
            .current_dir(t.dir.path())
            .output()
            .unwrap()
    };
    assert_code(&run(&["-k", "l", "sh", "-c", "exit 3"]), 3);
    assert!(t.path("l").exists(), "-k keeps the file");
    assert_code(&run(&["m", "true"]), 0);
    assert!(!t.path("m").exists(), "without -k the file is removed");
    assert_code(&run(&["-n", "missing", "true"]), 69);
    assert_code(&run(&[]), 64);
    let o = run(&["-t", "x", "l", "true"]);
    assert_code(&o, 64);
    let h = Holder::start({
        let mut c = Command::new(&lockf);
        c.args(["-k", "l", "sh", "-c", HOLD])
            .current_dir(t.dir.path());
        c
    });
    let o = run(&["-t", "0", "l", "true"]);
    assert_code(&o, 75);
    assert_eq!(stderr(&o), "lockf: l: already locked\n");
    let o = run(&["-s", "-t", "0", "l", "true"]);
    assert_code(&o, 75);
    assert_eq!(stderr(&o), "");
    h.release();
}

#[test]
fn the_command_gets_the_lock_fd_only_when_asked() {
    let t = TestEnv::new();
    let lockf = t.path("f");
    let list = "for d in /proc/$$/fd/*; do readlink \"$d\"; done; true";
    let o = t.run(["lock", "f", "-c", list]);
    assert_code(&o, 0);
    let target = lockf.to_str().unwrap();
    assert!(
        !stdout(&o).lines().any(|l| l == target),
        "inherited: {}",
        stdout(&o)
    );
    let o = t.run(["lock", "--fd", "9", "f", "-c", "readlink /proc/$$/fd/9"]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o).trim(), target);
    // The flock(1) dialect inherits it, as util-linux flock does, unless -o.
    let fl = link(&t, "flock");
    let o = sh_env(&t, Command::new(&fl).args(["f", "-c", list]))
        .output()
        .unwrap();
    assert!(stdout(&o).lines().any(|l| l == target), "{}", stdout(&o));
    let o = sh_env(&t, Command::new(&fl).args(["-o", "f", "-c", list]))
        .output()
        .unwrap();
    assert!(!stdout(&o).lines().any(|l| l == target), "{}", stdout(&o));
}

#[test]
fn lockf_without_k_still_excludes_while_the_file_comes_and_goes() {
    // Without -k each holder removes the lock file on release; waiters must never end up
    // holding locks on two different files of the same name.
    let t = TestEnv::new();
    let lockf = link(&t, "lockf");
    put(&t.path("counter"), b"0\n");
    let (procs, each) = (8, 15);
    let inc = "n=$(cat counter); echo $((n+1)) > counter";
    let script = format!(
        "i=0; while [ $i -lt {each} ]; do \"$0\" counter.lock sh -c '{inc}' || exit 1; i=$((i+1)); done"
    );
    let mut b = Barrier::new();
    for _ in 0..procs {
        b.spawn(&sh_env(
            &t,
            Command::new("sh").arg("-c").arg(&script).arg(&lockf),
        ));
    }
    for o in b.run_all() {
        assert_code(&o, 0);
    }
    let n: u32 = std::fs::read_to_string(t.path("counter"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(n, procs * each);
    assert!(!t.path("counter.lock").exists());
}
