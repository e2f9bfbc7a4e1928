//! The hostile-input table: every case ends with its documented exit code, a one-line error
//! naming the verb, and every file it aimed at byte-for-byte unchanged.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::*;

/// One row: how to call concur, what it must exit with, which files must not change.
struct Case {
    verb: &'static str,
    args: Vec<String>,
    stdin: Vec<u8>,
    home: Option<PathBuf>,
    as_nobody: bool,
    want: i32,
    watch: Vec<PathBuf>,
}

fn case(verb: &'static str, args: &[&str], want: i32) -> Case {
    Case {
        verb,
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        stdin: Vec::new(),
        home: None,
        as_nobody: false,
        want,
        watch: Vec::new(),
    }
}

impl Case {
    fn watch(mut self, paths: &[PathBuf]) -> Self {
        self.watch.extend_from_slice(paths);
        self
    }
    fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = bytes.to_vec();
        self
    }
    fn home(mut self, p: PathBuf) -> Self {
        self.home = Some(p);
        self
    }
    fn nobody(mut self) -> Self {
        self.as_nobody = true;
        self
    }
}

fn put(p: &Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::File::create(p).unwrap().write_all(bytes).unwrap();
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

fn chown_nobody(p: &Path) {
    let st = Command::new("chown").arg("nobody").arg(p).status().unwrap();
    assert!(st.success());
}

/// Runs a case in `t` and checks it.
fn check(t: &TestEnv, name: &str, c: &Case) {
    let before: Vec<Option<Vec<u8>>> = c.watch.iter().map(|p| content(p)).collect();
    let mut cmd = if c.as_nobody {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(bin())
            .args(&c.args)
            .env("CONCUR_HOME", t.path("nobody-home"))
            .current_dir(t.dir.path());
        cmd
    } else {
        t.cmd(&c.args)
    };
    if let Some(h) = &c.home {
        cmd.env("CONCUR_HOME", h);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        // The child may refuse before reading all of a large input; a broken pipe is fine.
        let _ = child.stdin.take().unwrap().write_all(&c.stdin);
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(c.want),
        "{name}: exit code\nstderr: {}",
        stderr(&o)
    );
    let err = stderr(&o);
    assert_eq!(
        err.lines().count(),
        1,
        "{name}: one-line error, got {err:?}"
    );
    let prefix = format!("concur: {}: ", c.verb);
    assert!(err.starts_with(&prefix), "{name}: {err:?}");
    for (p, was) in c.watch.iter().zip(before) {
        assert_eq!(content(p), was, "{name}: {} changed", p.display());
    }
}

type Setup = fn(&TestEnv) -> Case;

/// Rows where the path or the home is unsafe: symlinks, loose homes, FIFOs (exit 77).
fn unsafe_path_rows() -> Vec<(&'static str, Setup)> {
    vec![
        ("append to a symlinked target", |t| {
            put(&t.path("real.jsonl"), b"{\"a\":0}\n");
            symlink(t.path("real.jsonl"), t.path("link.jsonl")).unwrap();
            case("append", &["append", "link.jsonl", "{\"a\":1}"], 77)
                .watch(&[t.path("real.jsonl")])
        }),
        ("write to a symlinked target", |t| {
            put(&t.path("real.txt"), b"keep");
            symlink(t.path("real.txt"), t.path("link.txt")).unwrap();
            case("write", &["write", "link.txt", "new"], 77).watch(&[t.path("real.txt")])
        }),
        ("json on a symlinked target", |t| {
            put(&t.path("real.json"), b"{\"n\":1}");
            symlink(t.path("real.json"), t.path("link.json")).unwrap();
            case("json", &["json", "link.json", ".n += 1"], 77).watch(&[t.path("real.json")])
        }),
        ("append with a symlinked sidecar", |t| {
            put(&t.path("f.jsonl"), b"{\"id\":0}\n");
            put(&t.path("elsewhere"), b"victim");
            symlink(t.path("elsewhere"), t.path("f.jsonl.lock")).unwrap();
            case(
                "append",
                &["append", "--dedup-key", "id", "f.jsonl", "{\"id\":1}"],
                77,
            )
            .watch(&[t.path("f.jsonl"), t.path("elsewhere")])
        }),
        ("json with a symlinked sidecar", |t| {
            put(&t.path("s.json"), b"{}");
            put(&t.path("elsewhere"), b"victim");
            symlink(t.path("elsewhere"), t.path("s.json.lock")).unwrap();
            case("json", &["json", "s.json", ".a = 1"], 77)
                .watch(&[t.path("s.json"), t.path("elsewhere")])
        }),
        ("token with a symlinked home", |t| {
            std::fs::create_dir(t.path("realhome")).unwrap();
            symlink(t.path("realhome"), t.path("linkhome")).unwrap();
            case("token", &["token", "issue", "x"], 77)
                .home(t.path("linkhome"))
                .watch(&[t.path("realhome/tokens/x")])
        }),
        ("token with a world-writable home", |t| {
            std::fs::create_dir(&t.home).unwrap();
            std::fs::set_permissions(&t.home, std::fs::Permissions::from_mode(0o777)).unwrap();
            case("token", &["token", "issue", "x"], 77).watch(&[t.home.join("tokens/x")])
        }),
        ("FIFO as append target", |t| {
            mkfifo(&t.path("fifo"));
            case("append", &["append", "fifo", "{}"], 77)
        }),
        ("FIFO as write target", |t| {
            mkfifo(&t.path("fifo"));
            case("write", &["write", "fifo", "x"], 77)
        }),
        ("FIFO as json target", |t| {
            mkfifo(&t.path("fifo"));
            case("json", &["json", "fifo", "."], 77)
        }),
        ("directory as append target", |t| {
            std::fs::create_dir(t.path("d")).unwrap();
            case("append", &["append", "d", "{}"], 77)
        }),
    ]
}

/// Rows where the input is bad (exit 4) or the parent directory is missing (exit 74).
fn bad_input_rows() -> Vec<(&'static str, Setup)> {
    vec![
        ("traversing session id", |t| {
            let home = concur::Home::at(&t.home).unwrap();
            concur::token::issue(&home, "t", None, &serde_json::Value::Null, None, false).unwrap();
            case("token", &["--session", "../x", "token", "take", "t"], 4)
                .watch(&[t.home.join("tokens/t"), t.home.join("audit.jsonl")])
        }),
        ("empty session id", |t| {
            let home = concur::Home::at(&t.home).unwrap();
            concur::token::issue(&home, "t", None, &serde_json::Value::Null, None, false).unwrap();
            case("token", &["--session", "", "token", "take", "t"], 4)
                .watch(&[t.home.join("tokens/t"), t.home.join("audit.jsonl")])
        }),
        ("traversing token name", |t| {
            case("token", &["token", "issue", "../escape"], 4).watch(&[t.path("escape")])
        }),
        ("invalid JSON", |t| {
            put(&t.path("f.jsonl"), b"{\"a\":0}\n");
            case("append", &["append", "f.jsonl", "{\"a\":"], 4).watch(&[t.path("f.jsonl")])
        }),
        ("invalid --argjson", |t| {
            put(&t.path("s.json"), b"{}");
            case(
                "json",
                &["json", "s.json", ".a = $v", "--argjson", "v", "{x"],
                4,
            )
            .watch(&[t.path("s.json")])
        }),
        ("NUL in a raw line", |t| {
            put(&t.path("f.log"), b"one\n");
            case("append", &["append", "--raw", "f.log", "-"], 4)
                .stdin(b"a\0b")
                .watch(&[t.path("f.log")])
        }),
        ("newline in a raw line", |t| {
            put(&t.path("f.log"), b"one\n");
            case("append", &["append", "--raw", "f.log", "two\nthree"], 4).watch(&[t.path("f.log")])
        }),
        ("invalid UTF-8 in a raw line", |t| {
            put(&t.path("f.log"), b"one\n");
            case("append", &["append", "--raw", "f.log", "-"], 4)
                .stdin(b"caf\xe9\n")
                .watch(&[t.path("f.log")])
        }),
        ("10 MiB line", |t| {
            put(&t.path("f.jsonl"), b"{\"a\":0}\n");
            let mut big = b"{\"pad\":\"".to_vec();
            big.extend(std::iter::repeat_n(b'x', 10 << 20));
            big.extend_from_slice(b"\"}");
            case("append", &["append", "f.jsonl", "-"], 4)
                .stdin(&big)
                .watch(&[t.path("f.jsonl")])
        }),
        ("missing parent directory", |t| {
            case("append", &["append", "no/such/dir/f.jsonl", "{}"], 74).watch(&[t.path("no")])
        }),
        ("write into a missing parent directory", |t| {
            case("write", &["write", "no/such/f.txt", "x"], 74).watch(&[t.path("no")])
        }),
    ]
}

#[test]
fn hostile_inputs_get_their_exit_code_and_change_nothing() {
    for (name, setup) in unsafe_path_rows().into_iter().chain(bad_input_rows()) {
        let t = TestEnv::new();
        let c = setup(&t);
        check(&t, name, &c);
    }
}

#[test]
fn foreign_owned_home_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to chown the home to another user");
        return;
    }
    let t = TestEnv::new();
    std::fs::create_dir(&t.home).unwrap();
    std::fs::set_permissions(&t.home, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown_nobody(&t.home);
    let c = case("token", &["token", "issue", "x"], 77).watch(&[t.home.join("tokens/x")]);
    check(&t, "foreign-owned home", &c);
}

#[test]
fn read_only_files_are_refused_with_77() {
    // As root, run the binary as `nobody` on root-owned 0644 files; otherwise the files are
    // made 0444, which their non-root owner cannot write either.
    let t = TestEnv::new();
    let root = is_root();
    if root && Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    std::fs::set_permissions(t.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mode = if root { 0o644 } else { 0o444 };
    let rows: [(&str, &str, &[&str]); 3] = [
        ("append", "ro.jsonl", &["append", "ro.jsonl", "{\"a\":1}"]),
        ("write", "ro.txt", &["write", "ro.txt", "new"]),
        ("json", "ro.json", &["json", "ro.json", ".a = 1"]),
    ];
    for (verb, file, args) in rows {
        put(&t.path(file), b"{\"orig\":true}\n");
        std::fs::set_permissions(t.path(file), std::fs::Permissions::from_mode(mode)).unwrap();
        let mut c = case(verb, args, 77).watch(&[t.path(file)]);
        if root {
            c = c.nobody();
        }
        check(&t, &format!("read-only file ({verb})"), &c);
    }
}
