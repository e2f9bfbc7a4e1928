//! The same promises checked on the local backend and on etcd (see `backends.rs`).

use crate::util::{Barrier, assert_code, code, stdout};

on_both_backends! {
    /// A token issued once is taken by exactly one of 8 racing sessions; the others exit 1.
    fn token_has_exactly_one_winner(b) {
        for round in 0..5 {
            let name = format!("t{round}");
            assert_code(&b.run(["token", "issue", &name, "--data", &format!("{{\"r\":{round}}}")]), 0);
            let mut bar = Barrier::new();
            for k in 0..8 {
                bar.spawn(&b.cmd(["--session", &format!("s{k}"), "token", "take", &name]));
            }
            let outs = bar.run_all();
            let winners: Vec<_> = outs.iter().filter(|o| code(o) == 0).collect();
            assert_eq!(winners.len(), 1, "{}: round {round}: exactly one winner", b.name());
            assert_eq!(stdout(winners[0]).trim(), format!("{{\"r\":{round}}}"));
            for o in outs.iter().filter(|o| code(o) != 0) {
                assert_code(o, 1);
            }
        }
    }
}

on_both_backends! {
    /// `lock --name` admits one holder at a time among 6 processes: each appends its enter and
    /// leave lines inside the lock, and no two sections interleave.
    fn named_lock_admits_one_holder(b) {
        let log = b.env.path("log");
        let script = format!(
            "echo \"in $$\" >> {0}; echo \"out $$\" >> {0}",
            log.display()
        );
        let mut bar = Barrier::new();
        for k in 0..6 {
            bar.spawn(&b.cmd(["--session", &format!("s{k}"), "lock", "--name", "crit", "-c", &script]));
        }
        for o in bar.run_all() {
            assert_code(&o, 0);
        }
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12, "{}: {text}", b.name());
        for pair in lines.chunks(2) {
            let pid = pair[0].strip_prefix("in ").expect("enter line");
            assert_eq!(pair[1], format!("out {pid}"), "{}: sections interleaved: {text}", b.name());
        }
    }
}
