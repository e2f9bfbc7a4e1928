//! `concur completions SHELL` and `concur man`: generated from the CLI definition, they name
//! every verb; the bash script parses, the man page renders.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{TestEnv, assert_code, stdout};

/// The visible verbs, from the top-level help's command list.
fn verbs(t: &TestEnv) -> Vec<String> {
    let help = stdout(&t.run(["--help"]));
    let list = help
        .split("Commands:")
        .nth(1)
        .expect("a command list")
        .split("\n\n")
        .next()
        .unwrap();
    let verbs: Vec<String> = list
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .map(str::to_string)
        .collect();
    assert!(verbs.len() > 20, "{verbs:?}");
    verbs
}

/// Feeds `input` to `program args` and returns its status and stdout, or `None` if the
/// program is not installed.
fn pipe(program: &str, args: &[&str], input: &[u8]) -> Option<(bool, String)> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

#[test]
fn completions_name_every_verb_and_the_bash_script_parses() {
    let t = TestEnv::new();
    let verbs = verbs(&t);
    for shell in ["bash", "zsh", "fish"] {
        let o = t.run(["completions", shell]);
        assert_code(&o, 0);
        let script = stdout(&o);
        for v in &verbs {
            assert!(script.contains(v.as_str()), "{shell} completions lack {v}");
        }
    }
    let bash = t.run(["completions", "bash"]).stdout;
    let (ok, _) = pipe("bash", &["-n"], &bash).expect("bash");
    assert!(ok, "bash -n rejects the completion script");
    assert_code(&t.run(["completions", "tcsh"]), 2);
}

#[test]
fn man_page_has_every_verb_and_renders() {
    let t = TestEnv::new();
    let o = t.run(["man"]);
    assert_code(&o, 0);
    let page = stdout(&o);
    assert!(
        page.starts_with(".ie") || page.contains(".TH concur 1"),
        "{page}"
    );
    for v in verbs(&t) {
        assert!(page.contains(&v), "the man page lacks {v}");
    }
    let lock = t.run(["man", "lock"]);
    assert_code(&lock, 0);
    assert!(stdout(&lock).contains(".TH concur-lock 1"));
    assert_code(&t.run(["man", "no-such-verb"]), 2);
    // Rendered by man(1) where it is installed.
    match pipe("man", &["-l", "-"], &o.stdout) {
        Some((ok, text)) => assert!(ok && text.contains("concur"), "man -l: {text}"),
        None => eprintln!("man is not installed: the page is not rendered"),
    }
}
