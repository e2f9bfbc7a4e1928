//! `concur append`: many real writer processes, lines never lost or torn, one header per file.

use std::collections::HashSet;

use std::io::Write as _;

use crate::shell::sh;
use crate::util::*;

/// Parses every line of a JSONL file, panicking on a line that is not JSON.
fn json_lines(p: &std::path::Path) -> Vec<serde_json::Value> {
    let text = String::from_utf8(content(p).expect("log exists")).expect("utf-8");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect()
}

fn hammer(line_pad: usize, writers: usize, per: usize) {
    let t = TestEnv::new();
    let log = t.path("events.jsonl");
    let pad = "x".repeat(line_pad);
    let mut b = Barrier::new();
    for w in 0..writers {
        let script = format!(
            r#"i=0; while [ $i -lt {per} ]; do i=$((i+1)); "$CONCUR" append events.jsonl "{{\"w\":{w},\"i\":$i,\"pad\":\"{pad}\"}}" || exit 9; done"#
        );
        b.spawn(&sh(&t, &script));
    }
    for o in b.run_all() {
        assert_code(&o, 0);
    }
    let lines = json_lines(&log);
    assert_eq!(lines.len(), writers * per, "lines == total");
    let seen: HashSet<(u64, u64)> = lines
        .iter()
        .map(|v| (v["w"].as_u64().unwrap(), v["i"].as_u64().unwrap()))
        .collect();
    assert_eq!(seen.len(), writers * per, "every (writer, i) exactly once");
    assert!(
        lines
            .iter()
            .all(|v| v["pad"].as_str().unwrap().len() == line_pad)
    );
}

#[test]
fn eight_writers_lose_and_tear_no_line() {
    hammer(16, 8, 25);
}

#[test]
fn eight_writers_of_lines_over_pipe_buf_never_interleave() {
    hammer(6000, 8, 8);
}

#[test]
fn exactly_one_header_per_file_over_200_races() {
    // 200 rounds, each a fresh file raced by 8 first writers; 10 rounds run behind each barrier.
    let t = TestEnv::new();
    let (rounds, writers, batch) = (200, 8, 10);
    for first in (0..rounds).step_by(batch) {
        let mut b = Barrier::new();
        for r in first..first + batch {
            for w in 0..writers {
                b.spawn(&t.cmd([
                    "append",
                    "--raw",
                    "--header",
                    "# daily log",
                    &format!("r{r}.md"),
                    &format!("w{w}"),
                ]));
            }
        }
        for o in b.run_all() {
            assert_code(&o, 0);
        }
    }
    for r in 0..rounds {
        let text = String::from_utf8(content(&t.path(&format!("r{r}.md"))).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# daily log", "round {r}: header first");
        assert_eq!(
            lines.iter().filter(|l| **l == "# daily log").count(),
            1,
            "round {r}: exactly one header in {text:?}"
        );
        let mut ws: Vec<&str> = lines[1..].to_vec();
        ws.sort_unstable();
        let want: Vec<String> = (0..writers).map(|w| format!("w{w}")).collect();
        assert_eq!(ws, want, "round {r}: every writer's line once");
    }
}

#[test]
fn dedup_key_writes_a_retried_entry_once_even_when_racing() {
    let t = TestEnv::new();
    let mut b = Barrier::new();
    for _ in 0..8 {
        b.spawn(&t.cmd([
            "append",
            "--json",
            "--dedup-key",
            "id",
            "jobs.jsonl",
            r#"{"id":"job-7","status":"done"}"#,
        ]));
    }
    let outs = b.run_all();
    let mut written = 0;
    for o in &outs {
        assert_code(o, 0);
        let v: serde_json::Value = serde_json::from_str(stdout(o).trim()).unwrap();
        if v["outcome"] == "written" {
            written += 1;
        } else {
            assert_eq!(v["outcome"], "duplicate");
        }
    }
    assert_eq!(written, 1);
    assert_eq!(json_lines(&t.path("jobs.jsonl")).len(), 1);
}

#[test]
fn entry_is_written_compactly_from_argument_or_stdin() {
    let t = TestEnv::new();
    assert_code(
        &t.run(["append", "a.jsonl", "{ \"b\": [1, 2],\n \"a\": \"x y\" }"]),
        0,
    );
    assert_code(&t.run_stdin(["append", "a.jsonl", "-"], b"{\"n\": 2}\n"), 0);
    assert_code(
        &t.run_stdin(["append", "--raw", "a.jsonl"], b"plain text\n"),
        0,
    );
    assert_eq!(
        content(&t.path("a.jsonl")).unwrap(),
        b"{\"b\":[1,2],\"a\":\"x y\"}\n{\"n\":2}\nplain text\n"
    );
}

#[test]
fn lock_wait_timeout_exits_1_and_writes_nothing() {
    let t = TestEnv::new();
    let log = t.path("busy.jsonl");
    concur::replace::ReplaceOptions::new()
        .replace(&log, b"{\"a\":1}\n")
        .unwrap();
    // Hold the sidecar lock from this process through the library.
    let _held = concur::sidecar::lock(&t.path("busy.jsonl.lock"), None).unwrap();
    let o = t.run([
        "append",
        "-w",
        "0.2",
        "--dedup-key",
        "id",
        "busy.jsonl",
        r#"{"id":2}"#,
    ]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).starts_with("concur: append: timed out"),
        "{}",
        stderr(&o)
    );
    assert_eq!(content(&log).unwrap(), b"{\"a\":1}\n");
}

/// A 64 KiB tmpfs mounted for one test, unmounted on drop (also when the test fails).
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    fn mount(dir: std::path::PathBuf) -> Option<SmallFs> {
        std::fs::create_dir_all(&dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
            .arg(&dir)
            .status()
            .ok()?;
        st.success().then_some(SmallFs(dir))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `dir` until a write fails with ENOSPC.
fn fill(dir: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let chunk = [0u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
    }
}

#[test]
fn full_disk_exits_74_and_leaves_no_partial_line() {
    if !is_root() {
        eprintln!("skipped: mounting a 64 KiB tmpfs needs root");
        return;
    }
    let t = TestEnv::new();
    let Some(fs) = SmallFs::mount(t.path("small")) else {
        eprintln!("skipped: cannot mount tmpfs here (no CAP_SYS_ADMIN?)");
        return;
    };
    let log = fs.0.join("log.jsonl");
    // A log whose last page is partly used, and its sidecar, created before the disk fills.
    let pad = "p".repeat(1000);
    for i in 0..3 {
        let line = format!("{{\"i\":{i},\"pad\":\"{pad}\"}}");
        assert_code(&t.run(["append", log.to_str().unwrap(), &line]), 0);
    }
    assert_code(
        &t.run([
            "append",
            "--dedup-key",
            "i",
            log.to_str().unwrap(),
            "{\"i\":0}",
        ]),
        0,
    );
    fill(&fs.0);
    let before = content(&log).unwrap();
    assert!(before.len() > 3000 && before.len() < 4096);
    // 2000 bytes: no lock, but more than the page's free space -> a short write, cleaned up.
    // 6000 bytes: over PIPE_BUF, written under the lock -> also short, also cleaned up.
    for pad in [2000, 6000] {
        let line = format!("{{\"pad\":\"{}\"}}", "x".repeat(pad));
        let o = t.run_stdin(["append", log.to_str().unwrap(), "-"], line.as_bytes());
        assert_code(&o, 74);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("No space left on device"), "{err}");
        assert_eq!(
            content(&log).unwrap(),
            before,
            "pad {pad}: partial line left behind"
        );
    }
    // A header-created file on the full disk: refused, and no file or temp file left (only its
    // sidecar lock, which is never removed).
    let o = t.run([
        "append",
        "--raw",
        "--header",
        &"# h".repeat(2000),
        fs.0.join("new.md").to_str().unwrap(),
        "line",
    ]);
    assert_code(&o, 74);
    // A first append without a header: the file it created is removed again.
    let o = t.run([
        "append",
        fs.0.join("new.jsonl").to_str().unwrap(),
        &format!("{{\"pad\":\"{}\"}}", "y".repeat(5000)),
    ]);
    assert_code(&o, 74);
    let mut names: Vec<String> = std::fs::read_dir(&fs.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "filler",
            "log.jsonl",
            "log.jsonl.lock",
            "new.jsonl.lock",
            "new.md.lock"
        ]
    );
}

#[test]
fn file_verbs_say_they_stay_local_when_a_backend_is_set() {
    let t = TestEnv::new();
    let f = t.path("log.jsonl");
    let fs = f.to_str().unwrap();
    // No etcd listens there: a file verb must not try it, only say it stays local.
    let o = t.run([
        "--backend",
        "etcd://127.0.0.1:9",
        "append",
        fs,
        r#"{"a":1}"#,
    ]);
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("append works on local files and stays local"),
        "{}",
        stderr(&o)
    );
    let o = t.run(["append", fs, r#"{"a":2}"#]);
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "", "no backend, no note");
    assert_eq!(content(&f).unwrap(), b"{\"a\":1}\n{\"a\":2}\n");
}

#[test]
fn a_line_after_a_torn_fragment_is_a_whole_line_of_its_own() {
    // What a writer killed mid-write of a long line leaves: a fragment, no newline. Cut by the
    // next appender when its record is in the lock file; without one (someone else's
    // unterminated line) the next line still starts on a line of its own.
    let t = TestEnv::new();
    let f = t.path("log.jsonl");
    let fs = f.to_str().unwrap();
    assert_code(&t.run(["append", fs, "{\"i\":1}"]), 0);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&f)
        .unwrap()
        .write_all(format!("{{\"i\":2,\"pad\":\"{}", "x".repeat(5000)).as_bytes())
        .unwrap();
    assert_code(&t.run(["append", fs, "{\"i\":3}"]), 0);
    let text = String::from_utf8(content(&f).unwrap()).unwrap();
    assert!(
        text.ends_with("\n{\"i\":3}\n"),
        "glued: {}",
        &text[text.len() - 20..]
    );
}

#[test]
fn read_only_targets_are_refused_with_77_for_every_user_root_included() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestEnv::new();
    let ledger = t.path("l.jsonl");
    assert_code(
        &t.run(["ledger", "append", ledger.to_str().unwrap(), "{\"a\":1}"]),
        0,
    );
    for mode in [0o444, 0o400] {
        let files = [t.path("a.jsonl"), t.path("s.json"), t.path("w.txt")];
        for f in &files {
            let _ = std::fs::remove_file(f);
            std::fs::File::create(f)
                .unwrap()
                .write_all(b"{\"a\":1}\n")
                .unwrap();
        }
        for f in files.iter().chain([&ledger]) {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let before: Vec<_> = files.iter().chain([&ledger]).map(|f| content(f)).collect();
        for args in [
            vec!["append", "a.jsonl", "{\"b\":2}"],
            vec!["json", "s.json", ".a = 2"],
            vec!["write", "w.txt", "new"],
            vec!["ledger", "append", "l.jsonl", "{\"b\":2}"],
        ] {
            let o = t.run(&args);
            assert_code(&o, 77);
            assert!(stderr(&o).contains("read-only"), "{args:?}: {}", stderr(&o));
        }
        let after: Vec<_> = files.iter().chain([&ledger]).map(|f| content(f)).collect();
        assert_eq!(before, after, "mode {mode:o}");
        std::fs::set_permissions(&ledger, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}
