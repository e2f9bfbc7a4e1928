//! Edit reservations through the binary: glob conflicts, racing claims, killed holders, the git
//! pre-commit backstop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util::*;

/// A test env with a git work tree `repo/` (a `.git` directory is all reservations look for).
pub(crate) fn repo_env() -> (TestEnv, PathBuf) {
    let t = TestEnv::new();
    let repo = t.path("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::create_dir_all(repo.join("src/api")).unwrap();
    assert_code(&t.run(["home"]), 0);
    (t, repo)
}

/// `concur ARGS` as session `who`, run in `dir`.
fn as_in(t: &TestEnv, who: &str, dir: &Path, args: &[&str]) -> Command {
    let mut c = t.cmd(args);
    c.env("CONCUR_SESSION", who).current_dir(dir);
    c
}

pub(crate) fn run_as(t: &TestEnv, who: &str, dir: &Path, args: &[&str]) -> Output {
    as_in(t, who, dir, args).output().unwrap()
}

pub(crate) fn held(t: &TestEnv) -> Vec<(String, String, String)> {
    let o = t.run(["reservations", "--json"]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["session"].as_str().unwrap().to_owned(),
                r["path"].as_str().unwrap().to_owned(),
                r["mode"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn globs_conflict_in_both_directions_and_name_the_holder() {
    let (t, repo) = repo_env();
    // A glob first, then a path under it.
    assert_code(
        &run_as(
            &t,
            "a",
            &repo,
            &["reserve", "src/**", "--reason", "parser rewrite"],
        ),
        0,
    );
    let o = run_as(&t, "b", &repo, &["reserve", "src/api/x.rs"]);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("session a") && err.contains("parser rewrite"),
        "{err}"
    );
    // A path first, then a glob over it (from another directory, spelt differently).
    assert_code(&run_as(&t, "c", &repo, &["reserve", "docs/guide.md"]), 0);
    let o = run_as(
        &t,
        "d",
        &repo.join("src/api"),
        &["reserve", "../../docs/*.md"],
    );
    assert_code(&o, 1);
    assert!(stderr(&o).contains("session c"), "{}", stderr(&o));
    // Disjoint globs do not conflict; shared claims coexist.
    assert_code(
        &run_as(&t, "d", &repo, &["reserve", "docs/*.txt", "tests/**"]),
        0,
    );
    for who in ["e", "f"] {
        assert_code(
            &run_as(&t, who, &repo, &["reserve", "--shared", "Cargo.toml"]),
            0,
        );
    }
    assert_code(&run_as(&t, "g", &repo, &["reserve", "Cargo.*"]), 1);
    // check: the holder may write, others may not.
    assert_code(
        &run_as(&t, "a", &repo, &["reserve", "check", "src/api/x.rs"]),
        0,
    );
    let o = run_as(&t, "b", &repo, &["reserve", "check", "src/api/x.rs"]);
    assert_code(&o, 1);
    assert!(stdout(&o).contains("session a"), "{}", stdout(&o));
    assert_code(
        &run_as(&t, "b", &repo, &["reserve", "check", "README.md"]),
        0,
    );
}

#[test]
fn a_refused_claim_reserves_nothing_and_release_frees() {
    let (t, repo) = repo_env();
    assert_code(&run_as(&t, "a", &repo, &["reserve", "src/a.rs"]), 0);
    let o = run_as(
        &t,
        "b",
        &repo,
        &["reserve", "free.rs", "src/a.rs", "--json"],
    );
    assert_code(&o, 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["conflicts"][0]["held"]["session"], "a");
    assert_eq!(
        held(&t),
        [("a".into(), "src/a.rs".into(), "exclusive".into())]
    );
    // Releasing something not held is exit 1; releasing all frees the path for b.
    assert_code(&run_as(&t, "a", &repo, &["release", "free.rs"]), 1);
    assert_code(&run_as(&t, "a", &repo, &["release"]), 0);
    assert!(held(&t).is_empty());
    assert_code(
        &run_as(&t, "b", &repo, &["reserve", "free.rs", "src/a.rs"]),
        0,
    );
}

#[test]
fn eight_racing_sessions_never_share_an_exclusive_path() {
    let rounds: usize = std::env::var("CONCUR_TEST_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let (t, repo) = repo_env();
    // Session i wants f{i} and f{i+1} (a ring: neighbours collide); session 7 wants `f*`.
    let wants: Vec<Vec<String>> = (0..8)
        .map(|i| {
            if i == 7 {
                vec!["f*".to_owned()]
            } else {
                vec![format!("f{i}"), format!("f{}", (i + 1) % 7)]
            }
        })
        .collect();
    for _ in 0..rounds {
        let mut b = Barrier::new();
        for (i, w) in wants.iter().enumerate() {
            let mut args = vec!["reserve"];
            args.extend(w.iter().map(String::as_str));
            b.spawn(&as_in(&t, &format!("s{i}"), &repo, &args));
        }
        let outs = b.run_all();
        let now = held(&t);
        let mut winners = 0;
        for (i, o) in outs.iter().enumerate() {
            let me = format!("s{i}");
            let mine: Vec<&String> = now.iter().filter(|h| h.0 == me).map(|h| &h.1).collect();
            match code(o) {
                0 => {
                    winners += 1;
                    assert_eq!(
                        mine.len(),
                        wants[i].len(),
                        "{me} granted but holds {mine:?}"
                    );
                }
                1 => assert!(mine.is_empty(), "{me} refused but holds {mine:?}"),
                c => panic!("{me}: exit {c}: {}", stderr(o)),
            }
        }
        assert!(winners >= 1, "nobody won");
        // No file is covered by two holders.
        for k in 0..7 {
            let f = format!("f{k}");
            let covering: Vec<_> = now
                .iter()
                .filter(|h| h.1 == f || h.1 == "f*")
                .map(|h| h.0.clone())
                .collect();
            assert!(covering.len() <= 1, "{f} held by {covering:?}");
        }
        for i in 0..8 {
            assert_code(&run_as(&t, &format!("s{i}"), &repo, &["release"]), 0);
        }
    }
}

#[test]
fn a_killed_sessions_reservations_are_gone_at_once() {
    let (t, repo) = repo_env();
    let mut agent = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = agent.id().to_string();
    assert_code(
        &run_as(&t, "a", &repo, &["session", "start", "--pid", &pid]),
        0,
    );
    assert_code(
        &run_as(&t, "a", &repo, &["reserve", "src/**", "--ttl", "1d"]),
        0,
    );
    let o = run_as(&t, "b", &repo, &["reserve", "check", "src/main.rs"]);
    assert_code(&o, 1);
    assert!(
        stdout(&o).contains("held while that session lives"),
        "{}",
        stdout(&o)
    );
    agent.kill().unwrap();
    agent.wait().unwrap();
    // No TTL wait, no gc: the holder's process is gone, so the claim is.
    assert_code(
        &run_as(&t, "b", &repo, &["reserve", "check", "src/main.rs"]),
        0,
    );
    assert!(held(&t).is_empty());
    assert_code(&run_as(&t, "b", &repo, &["reserve", "src/main.rs"]), 0);
}

#[test]
fn session_end_releases_reservations() {
    let (t, repo) = repo_env();
    let mut agent = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = agent.id().to_string();
    assert_code(
        &run_as(&t, "a", &repo, &["session", "start", "--pid", &pid]),
        0,
    );
    assert_code(&run_as(&t, "a", &repo, &["reserve", "x.rs", "y/**"]), 0);
    assert_eq!(held(&t).len(), 2);
    let o = run_as(&t, "a", &repo, &["session", "end"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("reserve:"), "{}", stdout(&o));
    assert!(held(&t).is_empty());
    agent.kill().unwrap();
    agent.wait().unwrap();
}

/// Writes `content` to `p` (test fixture files).
pub(crate) fn put(p: impl AsRef<Path>, content: impl AsRef<[u8]>) {
    use std::io::Write;
    let mut f = std::fs::File::create(p).unwrap();
    f.write_all(content.as_ref()).unwrap();
}

pub fn git(repo: &Path, args: &[&str]) -> Output {
    in_repo(Command::new("git").args(args), repo)
        .output()
        .expect("git")
}

/// `cmd` run in `repo` with a fixed git identity (commits need one; the machine may have none).
pub(crate) fn in_repo<'c>(cmd: &'c mut Command, repo: &Path) -> &'c mut Command {
    cmd.current_dir(repo)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
}

#[test]
fn pre_commit_hook_blocks_reserved_files_and_chains_an_existing_hook() {
    let t = TestEnv::new();
    let repo = t.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    assert_code(&git(&repo, &["init", "-q", "."]), 0);
    assert_code(&t.run(["home"]), 0);
    // An existing hook that records that it ran.
    let hooks = repo.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let ran = t.path("chained-ran");
    put(
        hooks.join("pre-commit"),
        format!("#!/bin/sh\necho ran >> '{}'\n", ran.display()),
    );
    std::fs::set_permissions(
        hooks.join("pre-commit"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    assert_code(&run_as(&t, "me", &repo, &["hook", "install", "--git"]), 0);
    // Idempotent: a second install changes nothing.
    let o = run_as(&t, "me", &repo, &["hook", "install", "--git"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("already installed"), "{}", stdout(&o));
    assert!(hooks.join("pre-commit.concur-chained").exists());

    put(repo.join("mine.txt"), "a");
    put(repo.join("theirs.txt"), "b");
    assert_code(
        &run_as(
            &t,
            "other",
            &repo,
            &["reserve", "theirs.txt", "--reason", "wip"],
        ),
        0,
    );
    assert_code(&git(&repo, &["add", "mine.txt", "theirs.txt"]), 0);
    // The committing session is `me` (git runs the hook with our environment).
    let commit = |msg: &str| {
        let mut c = Command::new("git");
        c.args(["commit", "-q", "-m", msg])
            .current_dir(&repo)
            .env("CONCUR_HOME", &t.home)
            .env("CONCUR_SESSION", "me")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid");
        c.output().unwrap()
    };
    let o = commit("both");
    assert_ne!(code(&o), 0, "commit went through");
    let err = stderr(&o);
    assert!(
        err.contains("theirs.txt") && err.contains("session other"),
        "{err}"
    );
    assert!(!err.contains("  mine.txt"), "{err}");
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "ran\n");
    // Unstaging the reserved file lets the commit through (and the chained hook ran again).
    assert_code(&git(&repo, &["rm", "-q", "--cached", "theirs.txt"]), 0);
    assert_code(&commit("mine only"), 0);
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "ran\nran\n");
    // A failing chained hook stops the commit before concur is asked.
    put(
        hooks.join("pre-commit.concur-chained"),
        "#!/bin/sh\nexit 7\n",
    );
    put(repo.join("mine.txt"), "changed");
    assert_code(&git(&repo, &["add", "mine.txt"]), 0);
    assert_ne!(code(&commit("blocked by chained")), 0);
}

// ---- edit-time enforcement through `concur hook AGENT` ----

use serde_json::{Value, json};

/// A payload of `agent`'s dialect: session `who` writes `file` with its file tool.
pub(crate) fn file_payload(agent: &str, who: &str, cwd: &Path, file: &Path) -> Value {
    match agent {
        "gemini" => json!({"session_id": who, "transcript_path": "/t", "cwd": cwd,
            "hook_event_name": "BeforeTool", "timestamp": "2026-01-01T00:00:00Z",
            "tool_name": "write_file", "tool_input": {"file_path": file, "content": "x"}}),
        "cursor" => json!({"conversation_id": who, "generation_id": "g", "workspace_roots": [cwd],
            "hook_event_name": "preToolUse", "tool_name": "Write",
            "tool_input": {"file_path": file, "content": "x"}}),
        "codex" => json!({"session_id": who, "transcript_path": "/t", "cwd": cwd,
            "hook_event_name": "PreToolUse", "turn_id": "1", "model": "m", "tool_name": "apply_patch",
            "tool_input": {"command": format!("*** Begin Patch\n*** Update File: {}\n@@\n-a\n+b\n*** End Patch", file.display())}}),
        _ => json!({"session_id": who, "transcript_path": "/t", "cwd": cwd,
            "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Edit",
            "tool_input": {"file_path": file, "old_string": "a", "new_string": "b"},
            "tool_use_id": "toolu_01"}),
    }
}

pub fn bash_payload(who: &str, cwd: &Path, command: &str) -> Value {
    json!({"session_id": who, "transcript_path": "/t", "cwd": cwd, "permission_mode": "default",
        "hook_event_name": "PreToolUse", "tool_name": "Bash",
        "tool_input": {"command": command}, "tool_use_id": "toolu_02"})
}

pub fn hook(t: &TestEnv, agent: &str, payload: &Value) -> Output {
    t.run_stdin(["hook", agent], payload.to_string().as_bytes())
}

/// The override token a deny reason names (`concur token issue NAME`).
pub(crate) fn override_name(reason: &str) -> String {
    reason
        .split("concur token issue ")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .expect("override command in the reason")
        .to_owned()
}

/// The deny reason of a hook answer, or `None` when it allowed.
pub(crate) fn denied(agent: &str, o: &Output) -> Option<String> {
    if code(o) == 2 {
        return Some(stderr(o));
    }
    assert_code(o, 0);
    let out = stdout(o);
    if out.trim().is_empty() {
        return None;
    }
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let reason = match agent {
        "claude" | "codex" => {
            let h = &v["hookSpecificOutput"];
            assert_eq!(h["permissionDecision"], "deny", "{out}");
            h["permissionDecisionReason"].as_str()
        }
        "gemini" => {
            assert_eq!(v["decision"], "deny", "{out}");
            v["reason"].as_str()
        }
        _ => {
            assert_eq!(v["decision"], "deny", "{out}");
            v["agent_message"].as_str()
        }
    };
    Some(reason.expect("a reason").to_owned())
}

#[test]
fn every_dialect_denies_another_sessions_reserved_file_and_allows_the_rest() {
    let (t, repo) = repo_env();
    assert_code(
        &run_as(
            &t,
            "holder",
            &repo,
            &["reserve", "src/**", "--reason", "api rewrite"],
        ),
        0,
    );
    let reserved = repo.join("src/api/x.rs");
    let free = repo.join("README.md");
    for agent in ["claude", "codex", "gemini", "cursor"] {
        let reason = denied(
            agent,
            &hook(&t, agent, &file_payload(agent, "editor", &repo, &reserved)),
        )
        .unwrap_or_else(|| panic!("{agent}: reserved file allowed"));
        assert!(
            reason.contains("session holder") && reason.contains("api rewrite"),
            "{agent}: {reason}"
        );
        assert!(reason.contains("concur token issue override-"), "{reason}");
        assert_eq!(
            denied(
                agent,
                &hook(&t, agent, &file_payload(agent, "editor", &repo, &free))
            ),
            None,
            "{agent}: free file denied"
        );
        assert_eq!(
            denied(
                agent,
                &hook(&t, agent, &file_payload(agent, "holder", &repo, &reserved))
            ),
            None,
            "{agent}: the holder was denied its own file"
        );
    }
}

#[test]
fn bash_writes_to_reserved_files_are_denied_and_reads_are_not() {
    let (t, repo) = repo_env();
    assert_code(&run_as(&t, "holder", &repo, &["reserve", "f"]), 0);
    for (cmd, deny) in [
        ("echo x > f", true),
        ("cat a | tee -a f", true),
        ("sed -i s/a/b/ f", true),
        ("mv tmp f", true),
        ("cp a f", true),
        ("rm -f f", true),
        ("ls f", false),
        ("grep x f", false),
        ("cat f > other", false),
        ("echo x > f2", false),
        ("if then fi ((", false),
    ] {
        let got = denied(
            "claude",
            &hook(&t, "claude", &bash_payload("editor", &repo, cmd)),
        );
        assert_eq!(got.is_some(), deny, "{cmd}: {got:?}");
    }
    // The holder may write its own file from the shell.
    assert_eq!(
        denied(
            "claude",
            &hook(&t, "claude", &bash_payload("holder", &repo, "echo x > f"))
        ),
        None
    );
}

#[test]
fn an_override_token_lets_exactly_one_edit_through_and_is_audited() {
    let (t, repo) = repo_env();
    assert_code(&run_as(&t, "holder", &repo, &["reserve", "x.rs"]), 0);
    let p = file_payload("claude", "editor", &repo, &repo.join("x.rs"));
    let reason = denied("claude", &hook(&t, "claude", &p)).expect("denied");
    let name = override_name(&reason);
    assert_code(&t.run(["token", "issue", &name]), 0);
    // Several edits race for the one token: exactly one gets through.
    let mut b = Barrier::new();
    for _ in 0..4 {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg("printf '%s' \"$P\" | \"$BIN\" hook claude")
            .env("P", p.to_string())
            .env("BIN", bin())
            .env("CONCUR_HOME", &t.home);
        b.spawn(&sh);
    }
    let outs = b.run_all();
    let allowed = outs
        .iter()
        .filter(|o| denied("claude", o).is_none())
        .count();
    assert_eq!(allowed, 1, "{outs:?}");
    assert!(denied("claude", &hook(&t, "claude", &p)).is_some());
    let audit = String::from_utf8(std::fs::read(t.home.join("audit.jsonl")).unwrap()).unwrap();
    assert!(
        audit.contains(&name) && audit.contains("\"override\""),
        "{audit}"
    );
}

#[test]
fn auto_reserve_claims_on_first_edit_and_denies_the_second_session() {
    let (t, repo) = repo_env();
    put(t.home.join("concur.toml"), "[reserve]\nauto = true\n");
    let file = repo.join("src/lib.rs");
    assert_eq!(
        denied(
            "claude",
            &hook(&t, "claude", &file_payload("claude", "first", &repo, &file))
        ),
        None
    );
    assert_eq!(
        held(&t),
        [("first".into(), "src/lib.rs".into(), "exclusive".into())]
    );
    assert!(
        denied(
            "claude",
            &hook(
                &t,
                "claude",
                &file_payload("claude", "second", &repo, &file)
            )
        )
        .is_some()
    );
    // The first session keeps editing (renewed).
    assert_eq!(
        denied(
            "claude",
            &hook(&t, "claude", &file_payload("claude", "first", &repo, &file))
        ),
        None
    );
}

#[test]
fn an_unusable_home_denies_file_edits() {
    let (t, repo) = repo_env();
    let loose = t.path("loose-home");
    std::fs::create_dir(&loose).unwrap();
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let p = file_payload("claude", "editor", &repo, &repo.join("a.rs"));
    let mut c = t.cmd(["hook", "claude"]);
    c.env("CONCUR_HOME", &loose)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), p.to_string().as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    let reason = denied("claude", &o).expect("fail closed");
    assert!(reason.contains("refused"), "{reason}");
}

#[test]
fn session_start_context_lists_other_sessions_reservations() {
    let (t, repo) = repo_env();
    assert_code(
        &run_as(
            &t,
            "holder",
            &repo,
            &["reserve", "docs/**", "--reason", "docs pass"],
        ),
        0,
    );
    let p = json!({"session_id": "newcomer", "transcript_path": "/t", "cwd": repo,
        "hook_event_name": "SessionStart", "source": "startup"});
    let o = hook(&t, "claude", &p);
    assert_code(&o, 0);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let ctx = v["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap();
    assert!(
        ctx.contains("docs/**") && ctx.contains("session holder") && ctx.contains("docs pass"),
        "{ctx}"
    );
}
