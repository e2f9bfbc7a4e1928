//! `concur write` / `concur read`: readers never see a partial replace; stale etags are refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::shell::sh;
use crate::util::*;

const SIZE: usize = 256 * 1024;

#[test]
fn readers_never_see_an_empty_or_partial_file_while_writers_replace_it() {
    let t = TestEnv::new();
    let f = t.path("big.txt");
    concur::replace::ReplaceOptions::new()
        .replace(&f, &vec![b'Z'; SIZE])
        .unwrap();
    let mut b = Barrier::new();
    for letter in ['A', 'B', 'C', 'D'] {
        let script = format!(
            r#"i=0; while [ $i -lt 15 ]; do i=$((i+1)); head -c {SIZE} /dev/zero | tr '\0' '{letter}' | "$CONCUR" write big.txt - >/dev/null || exit 9; done"#
        );
        b.spawn(&sh(&t, &script));
    }
    // A reader process too: `concur read` output must always be one whole generation.
    let reader = format!(
        r#"i=0; while [ $i -lt 40 ]; do i=$((i+1)); "$CONCUR" read big.txt > snap || exit 7
           c=$(head -c 1 snap); [ "$(wc -c < snap)" -eq {SIZE} ] || exit 8
           [ "$(tr -d "$c" < snap | wc -c)" -eq 0 ] || exit 9; done"#
    );
    b.spawn(&sh(&t, &reader));
    let done = Arc::new(AtomicBool::new(false));
    let seen = {
        let done = Arc::clone(&done);
        let f = f.clone();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) || reads == 0 {
                let data = std::fs::read(&f).expect("file always exists");
                assert_eq!(data.len(), SIZE, "partial file seen");
                assert!(data.iter().all(|&c| c == data[0]), "mixed generations seen");
                reads += 1;
            }
            reads
        })
    };
    let outs = b.run_all();
    done.store(true, Ordering::Relaxed);
    let reads = seen.join().expect("reader thread saw only whole files");
    for o in outs {
        assert_code(&o, 0);
    }
    assert!(reads > 0);
}

#[test]
fn stale_etag_exits_3_and_leaves_the_file_unchanged() {
    let t = TestEnv::new();
    assert_code(&t.run(["write", "n.txt", "one\n"]), 0);
    let etag = stdout(&t.run(["read", "--etag", "n.txt"]))
        .trim()
        .to_owned();
    assert_eq!(etag.len(), 32);
    let o = t.run(["write", "--if-match", &etag, "n.txt", "two\n"]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o).trim(), concur::replace::etag(b"two\n"));
    let o = t.run(["write", "--if-match", &etag, "n.txt", "three\n"]);
    assert_code(&o, 3);
    assert!(stderr(&o).starts_with("concur: write: "), "{}", stderr(&o));
    assert_eq!(content(&t.path("n.txt")).unwrap(), b"two\n");
}

#[test]
fn compare_and_swap_loop_from_eight_processes_loses_no_update() {
    // Each process: read the number and its etag, write number+1 only if unchanged, retry on 3.
    let t = TestEnv::new();
    assert_code(&t.run(["write", "n.txt", "0"]), 0);
    let mut b = Barrier::new();
    for _ in 0..8 {
        let script = r#"k=0; while [ $k -lt 5 ]; do
            e=$("$CONCUR" read --etag n.txt); n=$("$CONCUR" read n.txt)
            "$CONCUR" write --if-match "$e" n.txt "$((n+1))" >/dev/null 2>&1; rc=$?
            if [ $rc -eq 0 ]; then k=$((k+1)); elif [ $rc -ne 3 ]; then exit 9; fi
        done"#;
        b.spawn(&sh(&t, script));
    }
    for o in b.run_all() {
        assert_code(&o, 0);
    }
    assert_eq!(content(&t.path("n.txt")).unwrap(), b"40");
}

#[test]
fn json_output_carries_content_and_etag_and_mode_is_kept() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestEnv::new();
    assert_code(&t.run(["write", "--mode", "640", "m.txt", "hi"]), 0);
    let mode = |p| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(t.path("m.txt")), 0o640);
    assert_code(&t.run(["write", "m.txt", "again"]), 0);
    assert_eq!(mode(t.path("m.txt")), 0o640);
    let o = t.run(["read", "--json", "m.txt"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["content"], "again");
    assert_eq!(v["etag"], concur::replace::etag(b"again"));
}
