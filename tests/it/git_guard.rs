//! The git guard with real git: two sessions in one checkout; the second one's destructive git
//! commands are refused while the first holds reservations their effect would reach, and run
//! (for real, as the agent would run them) when they touch nothing of it.

use std::path::Path;
use std::process::{Child, Command};

use crate::reserve::{bash_payload, denied, file_payload, git, hook, in_repo, override_name, put};
use crate::util::*;

/// A live stand-in for session A's agent; killed and reaped on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A checkout with a.txt and b.txt committed, and session A registered with a live agent.
fn checkout_with_live_a() -> (TestEnv, std::path::PathBuf, Agent) {
    let t = TestEnv::new();
    let repo = t.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    ok(&git(&repo, &["init", "-q", "-b", "main"]));
    put(repo.join("a.txt"), "a0\n");
    put(repo.join("b.txt"), "b0\n");
    ok(&git(&repo, &["add", "."]));
    ok(&git(&repo, &["commit", "-qm", "init"]));
    let agent = Agent(Command::new("sleep").arg("1000").spawn().unwrap());
    let pid = agent.0.id().to_string();
    assert_code(
        &t.run(["session", "start", "--session", "A", "--pid", &pid]),
        0,
    );
    (t, repo, agent)
}

/// A checkout with two committed files, session A registered (live) and reserving a.txt and
/// the untracked notes.txt, both of which it has changed.
fn setup() -> (TestEnv, std::path::PathBuf, Agent) {
    let (t, repo, agent) = checkout_with_live_a();
    ok(&git(&repo, &["branch", "other"]));
    let o = t
        .cmd(["reserve", "a.txt", "notes.txt", "--session", "A"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert_code(&o, 0);
    put(repo.join("a.txt"), "A's work\n");
    put(repo.join("notes.txt"), "A's notes\n");
    (t, repo, agent)
}

/// Asks the hook as session `who`; when allowed, runs the command in the checkout as the agent
/// would. Returns the deny reason.
fn guarded(t: &TestEnv, repo: &Path, who: &str, cmd: &str) -> Option<String> {
    let reason = denied("claude", &hook(t, "claude", &bash_payload(who, repo, cmd)));
    if reason.is_none() {
        let o = in_repo(Command::new("sh").args(["-c", cmd]), repo)
            .output()
            .unwrap();
        assert!(o.status.success(), "{cmd}: {}", stderr(&o));
    }
    reason
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn another_sessions_destructive_git_is_refused_and_its_harmless_git_runs() {
    let (t, repo, _agent) = setup();
    put(repo.join("b.txt"), "B's change\n");
    for cmd in [
        "git reset --hard",
        "git reset --hard HEAD~0",
        "git checkout -- a.txt",
        "git checkout -- .",
        "git restore a.txt",
        "git stash",
        "git stash -u",
        "git clean -fd",
        "git commit -am 'take everything'",
        "git switch other",
        "cd . && git -C . checkout other",
        "git status && git reset --hard",
    ] {
        let reason = guarded(&t, &repo, "B", cmd).unwrap_or_else(|| panic!("{cmd}: allowed"));
        assert!(
            reason.contains("session A") && reason.contains("git "),
            "{cmd}: {reason}"
        );
    }
    // A's work survived every refused command.
    assert_eq!(read(repo.join("a.txt")), "A's work\n");
    assert_eq!(read(repo.join("notes.txt")), "A's notes\n");
    // What touches none of A's files runs.
    for cmd in [
        "git status --short",
        "git log --oneline",
        "git diff",
        "git restore --staged a.txt",
        "git checkout -- b.txt",
        "git switch -c topic",
        "git commit -m nothing --allow-empty",
    ] {
        assert_eq!(guarded(&t, &repo, "B", cmd), None, "{cmd}");
    }
    assert_eq!(read(repo.join("b.txt")), "b0\n", "B's own restore ran");
    assert_eq!(read(repo.join("a.txt")), "A's work\n");
    // A itself may do what it likes with its own files.
    assert_eq!(
        denied(
            "claude",
            &hook(&t, "claude", &bash_payload("A", &repo, "git stash -u"))
        ),
        None
    );
}

#[test]
fn a_dead_or_ended_session_no_longer_guards_its_files() {
    let (t, repo, agent) = setup();
    assert!(guarded(&t, &repo, "B", "git stash -u").is_some());
    drop(agent);
    assert_eq!(guarded(&t, &repo, "B", "git stash -u"), None);
    assert_eq!(read(repo.join("a.txt")), "a0\n", "the stash ran");
    assert!(!repo.join("notes.txt").exists());

    let (t, repo, _agent) = setup();
    assert!(guarded(&t, &repo, "B", "git reset --hard").is_some());
    assert_code(&t.run(["session", "end", "--session", "A"]), 0);
    assert_eq!(guarded(&t, &repo, "B", "git reset --hard"), None);
    assert_eq!(read(repo.join("a.txt")), "a0\n");
}

#[test]
fn an_override_token_lets_one_git_command_through_and_is_audited() {
    let (t, repo, _agent) = setup();
    let reason = guarded(&t, &repo, "B", "git checkout -- a.txt").expect("denied");
    let name = override_name(&reason);
    assert_code(&t.run(["token", "issue", &name]), 0);
    assert_eq!(guarded(&t, &repo, "B", "git checkout -- a.txt"), None);
    assert_eq!(read(repo.join("a.txt")), "a0\n");
    put(repo.join("a.txt"), "A's work again\n");
    assert!(guarded(&t, &repo, "B", "git checkout -- a.txt").is_some());
    let audit = read(t.home.join("audit.jsonl"));
    assert!(
        audit.contains(&name) && audit.contains("\"override\""),
        "{audit}"
    );
}

#[test]
fn outside_a_checkout_or_without_reservations_git_is_not_judged() {
    let t = TestEnv::new();
    let dir = t.path("plain");
    std::fs::create_dir_all(&dir).unwrap();
    assert_code(&t.run(["home"]), 0);
    // Nothing reserved anywhere: no database, no git run by the hook.
    assert_eq!(
        denied(
            "claude",
            &hook(&t, "claude", &bash_payload("B", &dir, "git reset --hard"))
        ),
        None
    );
}

/// Without any reservation: what a live session edited through its file tools is protected
/// from another session's destructive git, and forgotten when the session ends.
#[test]
fn another_sessions_edits_are_guarded_without_any_reservation() {
    let (t, repo, agent) = checkout_with_live_a();
    // A edits a.txt with its file tool (allowed: nothing is reserved), then writes it.
    let a_edit = file_payload("claude", "A", &repo, &repo.join("a.txt"));
    assert_eq!(denied("claude", &hook(&t, "claude", &a_edit)), None);
    put(repo.join("a.txt"), "A's work\n");
    put(repo.join("b.txt"), "B's change\n");
    assert!(
        !t.home.join("leases.db").exists(),
        "no reservation database"
    );

    for cmd in [
        "git stash",
        "git reset --hard",
        "git checkout -- .",
        "git commit -am x",
    ] {
        let reason = guarded(&t, &repo, "B", cmd).unwrap_or_else(|| panic!("{cmd}: allowed"));
        assert!(
            reason.contains("edited by session A") && reason.contains("a.txt"),
            "{cmd}: {reason}"
        );
    }
    assert_eq!(read(repo.join("a.txt")), "A's work\n");
    // B's own change may go; A may do what it likes.
    assert_eq!(guarded(&t, &repo, "B", "git checkout -- b.txt"), None);
    assert_eq!(read(repo.join("b.txt")), "b0\n");
    assert_eq!(
        denied(
            "claude",
            &hook(&t, "claude", &bash_payload("A", &repo, "git stash"))
        ),
        None
    );
    // A ends: its edits are forgotten and no longer guarded.
    assert_code(&t.run(["session", "end", "--session", "A"]), 0);
    assert!(!t.home.join("edits/A.list").exists());
    assert_eq!(guarded(&t, &repo, "B", "git stash"), None);
    assert_eq!(read(repo.join("a.txt")), "a0\n", "the stash ran");
    drop(agent);
}

/// A Claude Code file-tool payload for `event` (`PreToolUse`, `PostToolUse`,
/// `PostToolUseFailure`) of call `call` editing `file` as session `who`.
fn claude_edit(event: &str, call: &str, who: &str, cwd: &Path, file: &Path) -> serde_json::Value {
    let mut p = file_payload("claude", who, cwd, file);
    p["hook_event_name"] = event.into();
    p["tool_use_id"] = call.into();
    if event == "PostToolUse" {
        p["tool_response"] = serde_json::json!({"filePath": file, "success": true});
    }
    if event == "PostToolUseFailure" {
        p["error"] = "String to replace not found in file.".into();
    }
    p
}

/// The edit record follows how Claude Code's file-tool calls ended: an allowed edit that then
/// failed (`PostToolUseFailure`) does not guard its file; one with no report (the agent killed
/// between the write and its post-tool hook) still does; a `PostToolUse` alone (its `PreToolUse`
/// hook never recorded) does; a failed call withdraws only its own edit, not another call's
/// edit of the same file. Hook payloads only (not the real CLI).
#[test]
fn post_tool_reports_confirm_or_withdraw_edits_and_a_missing_report_still_guards() {
    let (t, repo, agent) = checkout_with_live_a();
    put(repo.join("c.txt"), "c0\n");
    ok(&git(&repo, &["add", "c.txt"]));
    ok(&git(&repo, &["commit", "-qm", "c"]));
    let (a, b, c) = (repo.join("a.txt"), repo.join("b.txt"), repo.join("c.txt"));
    let ask = |p: serde_json::Value| {
        let o = hook(&t, "claude", &p);
        assert_code(&o, 0);
        assert_eq!(denied("claude", &o), None);
        assert!(o.stdout.is_empty(), "{}", stdout(&o));
    };
    // a.txt: allowed, then the tool failed; nothing was written.
    ask(claude_edit("PreToolUse", "toolu_a", "A", &repo, &a));
    ask(claude_edit("PostToolUseFailure", "toolu_a", "A", &repo, &a));
    // b.txt: allowed and written, then the agent died before its PostToolUse.
    ask(claude_edit("PreToolUse", "toolu_b", "A", &repo, &b));
    put(&b, "A's work on b\n");
    // c.txt: two calls; the first succeeds (reported without its PreToolUse having recorded),
    // the second fails.
    put(&c, "A's work on c\n");
    ask(claude_edit("PostToolUse", "toolu_c1", "A", &repo, &c));
    ask(claude_edit("PreToolUse", "toolu_c2", "A", &repo, &c));
    ask(claude_edit(
        "PostToolUseFailure",
        "toolu_c2",
        "A",
        &repo,
        &c,
    ));

    // B's change to a.txt, which A never edited, may be discarded.
    put(&a, "B's change\n");
    assert_eq!(guarded(&t, &repo, "B", "git checkout -- a.txt"), None);
    assert_eq!(read(&a), "a0\n");
    for file in ["b.txt", "c.txt"] {
        let reason = guarded(&t, &repo, "B", &format!("git checkout -- {file}"))
            .unwrap_or_else(|| panic!("{file}: allowed"));
        assert!(
            reason.contains("edited by session A") && reason.contains(file),
            "{file}: {reason}"
        );
    }
    assert_eq!(read(&b), "A's work on b\n");
    assert_eq!(read(&c), "A's work on c\n");
    drop(agent);
}
