//! token: W writers race to consume one one-time token, over several rounds.
//!
//! Naive (the seed's TOCTOU block before P1-8): `[ -f token ] && tok=$(cat token)`, validate
//! it, then `rm -f token` — every writer that checked before the first `rm` uses the token →
//! `MULTIPLE_WINNERS`. Concur: `concur::token` — take = `rename(2)` to a unique consumed name; exactly one rename of
//! the name succeeds. On an etcd run: an etcd token issued per round, taken in one
//! transaction (`concur token take`).

use std::path::Path;

use serde_json::json;

use super::{OneOf, exactly_one, put, work};
use crate::diagnose::etcd::{Etcd, issue_token};
use crate::diagnose::{Events, Mode, RoundCheck, Sizes, Target, WriterRun, WriterSpec, now_us};
use crate::error::Result;
use crate::token;

const FILE: &str = "override-token";

/// The token target.
pub struct Token;

impl Target for Token {
    fn name(&self) -> &'static str {
        "token"
    }

    fn violations(&self) -> &'static str {
        "MULTIPLE_WINNERS / NO_WINNER"
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            writers: 4,
            ops: 1,
            rounds: 10,
        }
    }

    fn expected(&self, _s: &Sizes) -> String {
        "1 winner per round".into()
    }

    fn setup(&self, dir: &Path, _mode: Mode, _s: &Sizes) -> Result<()> {
        put(&dir.join(FILE), format!("tok-{}\n", now_us()).as_bytes())
    }

    fn write(&self, spec: &WriterSpec, ev: &mut Events) -> Result<()> {
        let path = spec.dir.join(FILE);
        let etcd = Etcd::for_spec(spec)?;
        for _ in 0..spec.ops {
            let t = now_us();
            let won = if spec.mode == Mode::Protected
                && let Some(etcd) = &etcd
            {
                etcd.take_token(FILE)?
            } else if spec.mode == Mode::Protected {
                matches!(token::take_path(&path)?, token::Taken::Won { .. })
            } else if path.exists() {
                let tok = std::fs::read_to_string(&path).ok();
                work(3000); // validate the token, log the override
                let _ = std::fs::remove_file(&path);
                tok.is_some()
            } else {
                false
            };
            ev.op(t, json!({ "won": won }));
        }
        Ok(())
    }

    fn on_etcd(&self) -> bool {
        true
    }

    fn setup_etcd(&self, url: &str, mode: Mode, _s: &Sizes) -> Result<()> {
        if mode == Mode::Protected {
            issue_token(url, FILE)?;
        }
        Ok(())
    }

    fn check(&self, _dir: &Path, _s: &Sizes, runs: &[WriterRun]) -> Result<RoundCheck> {
        Ok(exactly_one(
            runs,
            &OneOf {
                field: "won",
                noun: "winner",
                none: "NO_WINNER",
                many: "MULTIPLE_WINNERS",
                again: |w| format!("writer {w} also used the token"),
                limit: usize::MAX,
            },
        ))
    }
}
