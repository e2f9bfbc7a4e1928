//! `concur token`: exactly one winner per token, every take audited.

use crate::util::*;

#[test]
fn exactly_one_winner_per_token_over_200_rounds() {
    // 200 tokens, each raced by 8 takers; 25 rounds (200 processes) run behind each barrier.
    // Tokens are issued in-process (the race under test is the take).
    let t = TestEnv::new();
    let (rounds, takers, batch) = (200, 8, 25);
    let home = concur::Home::at(&t.home).unwrap();
    for r in 0..rounds {
        let data = serde_json::json!({ "r": r });
        concur::token::issue(&home, &format!("t{r}"), None, &data, None, false).unwrap();
    }
    for first in (0..rounds).step_by(batch) {
        let mut b = Barrier::new();
        for r in first..first + batch {
            for k in 0..takers {
                b.spawn(&t.cmd([
                    "--session",
                    &format!("s{k}"),
                    "token",
                    "take",
                    &format!("t{r}"),
                ]));
            }
        }
        let outs = b.run_all();
        for (i, chunk) in outs.chunks(takers).enumerate() {
            let r = first + i;
            let winners: Vec<_> = chunk.iter().filter(|o| code(o) == 0).collect();
            assert_eq!(winners.len(), 1, "round {r}: exactly one winner");
            assert_eq!(stdout(winners[0]).trim(), format!("{{\"r\":{r}}}"));
            for o in chunk.iter().filter(|o| code(o) != 0) {
                assert_code(o, 1);
            }
        }
    }
    let audit = String::from_utf8(content(&t.home.join("audit.jsonl")).unwrap()).unwrap();
    let recs: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), rounds * takers, "every take audited");
    assert_eq!(
        recs.iter().filter(|v| v["outcome"] == "won").count(),
        rounds
    );
    assert!(
        recs.iter()
            .all(|v| v["session"].as_str().is_some_and(|s| s.starts_with('s')))
    );
}

#[test]
fn expired_token_exits_3_and_cannot_be_taken_again() {
    let t = TestEnv::new();
    assert_code(&t.run(["token", "issue", "old", "--ttl", "0s"]), 0);
    let o = t.run(["token", "take", "old"]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("expired"), "{}", stderr(&o));
    // Consumed by that take, and still expired (not "taken") for the next taker.
    assert!(!t.home.join("tokens/old").exists());
    assert_code(&t.run(["token", "take", "old"]), 3);
    // Issued again, it can be won.
    assert_code(&t.run(["token", "issue", "old", "--data", "2"]), 0);
    let o = t.run(["token", "take", "old"]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o).trim(), "2");
    assert_code(&t.run(["token", "take", "old"]), 1);
}

#[test]
fn path_token_is_taken_once_and_prints_its_content() {
    let t = TestEnv::new();
    let p = t.path("opus-override-token");
    std::fs::File::create(&p).unwrap();
    concur::replace::ReplaceOptions::new()
        .replace(&p, b"approved by alice\n")
        .unwrap();
    let mut b = Barrier::new();
    for _ in 0..8 {
        b.spawn(&t.cmd(["token", "take", "--path", p.to_str().unwrap()]));
    }
    let outs = b.run_all();
    let winners: Vec<_> = outs.iter().filter(|o| code(o) == 0).collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(stdout(winners[0]), "approved by alice\n");
    assert!(content(&p).is_none());
}

#[test]
fn issuing_an_untaken_token_twice_is_a_conflict() {
    let t = TestEnv::new();
    assert_code(&t.run(["token", "issue", "x"]), 0);
    assert_code(&t.run(["token", "issue", "x"]), 1);
    assert_code(
        &t.run(["token", "issue", "--replace", "x", "--data", "2"]),
        0,
    );
    let o = t.run(["token", "take", "x"]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o).trim(), "2");
}

#[test]
fn a_take_whose_audit_record_cannot_be_written_puts_the_token_back() {
    let t = TestEnv::new();
    assert_code(&t.run(["token", "issue", "once", "--data", "\"go\""]), 0);
    let audit = t.home.join("audit.jsonl");
    std::os::unix::fs::symlink(t.path("elsewhere"), &audit).unwrap();
    let o = t.run(["token", "take", "once"]);
    assert_code(&o, 77);
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    // Not burnt: once the audit can be written, the take wins.
    std::fs::remove_file(&audit).unwrap();
    let o = t.run(["token", "take", "once"]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o).trim(), "\"go\"");
    assert_code(&t.run(["token", "take", "once"]), 1);
}
