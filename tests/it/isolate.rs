//! `concur isolate` with dummy stdio servers (small sh scripts).

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::util::*;

fn alive(pid: i32) -> bool {
    // A zombie is as good as gone; /proc/PID/stat's state says which.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn bytes_pass_through_unchanged_and_status_too() {
    let t = TestEnv::new();
    let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let o = t.run_stdin(["--session", "s1", "isolate", "--", "cat"], &input);
    assert_code(&o, 0);
    assert!(o.stdout == input, "stdout differs from stdin");
    let o = t.run_stdin(
        ["--session", "s1", "isolate", "--", "sh", "-c", "exit 7"],
        b"x",
    );
    assert_code(&o, 7);
    assert!(o.stdout.is_empty(), "concur added bytes to stdout");
}

#[test]
fn grandchildren_are_gone_after_stdin_closes() {
    let t = TestEnv::new();
    let pids = t.path("pids");
    // A server that ignores stdin EOF and leaves two background grandchildren.
    let script = format!(
        "sleep 1000 & echo $! > {p}.tmp; sleep 1000 & echo $! >> {p}.tmp; mv {p}.tmp {p}; exec sleep 1000",
        p = pids.display()
    );
    let mut c = t.cmd(["--session", "s1", "isolate", "--", "sh", "-c", &script]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let text = retry("grandchildren started", Duration::from_secs(20), || {
        std::fs::read_to_string(&pids).ok()
    });
    let gc: Vec<i32> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(gc.len(), 2);
    assert!(gc.iter().all(|&p| alive(p)));
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15), "server ended by SIGTERM");
    retry("grandchildren gone", Duration::from_secs(10), || {
        gc.iter().all(|&p| !alive(p)).then_some(())
    });
}

#[test]
fn two_sessions_get_different_dirs_and_ports_and_each_keeps_its_own() {
    let t = TestEnv::new();
    let show = |s: &str| {
        let o = t.run([
            "--session",
            s,
            "isolate",
            "--",
            "echo",
            "{session} {session_dir} {port}",
        ]);
        assert_code(&o, 0);
        stdout(&o).trim().to_owned()
    };
    let a = show("a");
    let b = show("b");
    let fa: Vec<&str> = a.split(' ').collect();
    let fb: Vec<&str> = b.split(' ').collect();
    assert_eq!(fa[0], "a");
    assert_ne!(fa[1], fb[1], "dirs");
    assert_ne!(fa[2], fb[2], "ports");
    assert!(std::path::Path::new(fa[1]).is_dir());
    assert_eq!(show("a"), a, "stable per session");
}

#[test]
fn exclusive_refuses_the_second_session_naming_the_holder() {
    let t = TestEnv::new();
    let mut c = t.cmd([
        "--session",
        "first",
        "isolate",
        "--exclusive",
        "browser",
        "--",
        "cat",
    ]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut holder = c.spawn().unwrap();
    retry(
        "lease taken by the first session",
        Duration::from_secs(20),
        || {
            let o = t.run(["lease", "list", "--json"]);
            stdout(&o).contains("\"first\"").then_some(())
        },
    );
    let o = t.run([
        "--session",
        "second",
        "isolate",
        "--exclusive",
        "browser",
        "--",
        "true",
    ]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("held by session first"),
        "{}",
        stderr(&o)
    );
    holder.stdin.take().unwrap().write_all(b"bye").unwrap();
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"bye");
    let o = t.run([
        "--session",
        "second",
        "isolate",
        "--exclusive",
        "browser",
        "--",
        "true",
    ]);
    assert_code(&o, 0);
}

#[test]
fn gc_removes_dirs_of_dead_sessions_only() {
    let t = TestEnv::new();
    // The owner of a session dir is the agent above concur (past shells and wrappers): here a
    // process that exits right after (a `concur lock` running the isolate).
    let lock = t.path("agent.lock");
    let mut agent = t.cmd([
        std::ffi::OsStr::new("lock"),
        lock.as_os_str(),
        "--".as_ref(),
    ]);
    agent
        .arg(bin())
        .args(["--session", "gone", "isolate", "--", "true"]);
    assert!(agent.status().unwrap().success());
    // A live one: this test process is its owner.
    assert_code(&t.run(["--session", "live", "isolate", "--", "true"]), 0);
    let o = t.run(["isolate", "gc", "--json"]);
    assert_code(&o, 0);
    assert!(!t.home.join("isolate/gone").exists(), "{}", stdout(&o));
    assert!(t.home.join("isolate/live").exists());
}

#[test]
fn the_whole_group_dies_with_the_parent() {
    use std::io::BufRead;
    let t = TestEnv::new();
    // The server reports on its stdout (a pipe to this test, passed through by isolate): its
    // parent (concur isolate), itself and a background grandchild; then it ignores stdin.
    let server = "sleep 1000 & echo $PPID $$ $!; exec sleep 1000";
    // The agent: a shell that runs isolate as a child (not exec'd: a command follows) and is
    // then killed -9, so isolate's parent dies without closing isolate's stdin.
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg("\"$0\" --session s1 isolate -- sh -c \"$1\"; exit 0")
        .arg(bin())
        .arg(server);
    for (k, v) in t.cmd(["home"]).get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    sh.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut agent = sh.spawn().unwrap();
    // Held open until the end: stdin EOF must not be what stops the server.
    let _stdin = agent.stdin.take().unwrap();
    let mut out = std::io::BufReader::new(agent.stdout.take().unwrap());
    let mut report = String::new();
    out.read_line(&mut report).unwrap();
    let pids: Vec<i32> = report
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3, "report: {report:?}");
    assert!(pids.iter().all(|&p| alive(p)), "all running at first");
    let isolate = pids[0];
    assert_ne!(
        u32::try_from(isolate).unwrap(),
        agent.id(),
        "isolate is the agent's child, not the agent itself"
    );
    agent.kill().unwrap();
    agent.wait().unwrap();
    retry(
        "isolate, its child and grandchild gone after the parent's death",
        Duration::from_secs(20),
        || pids.iter().all(|&p| !alive(p)).then_some(()),
    );
}

/// Gemini CLI and Codex start MCP servers before `SessionStart` and give them no id: an isolate
/// with no session id runs for its agent process (the nearest ancestor that is not a shell), one
/// instance per process, and `gc` keeps its directory while that process lives.
#[test]
fn without_a_session_id_the_instance_is_the_agent_process() {
    let t = TestEnv::new();
    let me = std::process::id();
    let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).unwrap();
    let name: String = comm
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let want = format!("{}-{me}", name.trim_matches('-'));
    // Directly, and through a shell in between (as an MCP config's `sh -c 'exec …'` would).
    let direct = t.run(["isolate", "--", "sh", "-c", "echo {session}"]);
    assert_code(&direct, 0);
    assert_eq!(stdout(&direct).trim(), want);
    let bin = bin();
    let mut via_sh = std::process::Command::new("sh");
    via_sh
        .args(["-c", "\"$0\" isolate -- sh -c 'echo {session_dir}'"])
        .arg(&bin)
        .env("CONCUR_HOME", &t.home)
        .env_remove("CONCUR_SESSION")
        .env_remove("CONCUR_BACKEND");
    for v in concur::id::ENV_VARS {
        via_sh.env_remove(v);
    }
    let o = via_sh.output().unwrap();
    assert_code(&o, 0);
    let dir = stdout(&o).trim().to_string();
    assert!(dir.ends_with(&format!("isolate/{want}")), "{dir}");
    // This process is alive: gc keeps its instance's directory.
    let gc = t.run(["--json", "isolate", "gc"]);
    assert_code(&gc, 0);
    assert!(
        std::path::Path::new(&dir).is_dir(),
        "gc removed a live agent's instance"
    );
}
