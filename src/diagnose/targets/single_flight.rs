//! single-flight: W sessions start together and all need a fresh OAuth token; the refresh (a
//! real command) must run once and every session must end up with the token it produced.
//!
//! Naive (what hooks do): `[ -f token ] || refresh > token`, then use `token` — every session
//! that checked before the first refresh landed runs its own refresh (with a rotating refresh
//! token, all but one are logged out) → `DOUBLE_RUN`, and sessions hold different tokens →
//! `SPLIT_RESULT`. Concur: `concur once refresh --ttl 1h -- CMD` ([`crate::once`]): one
//! caller runs it, the others wait on the key's lock and get its output.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::{MAX_MARKS, OneOf, exactly_one, put, read_text, work};
use crate::diagnose::{Events, Mode, RoundCheck, Sizes, Target, WriterRun, WriterSpec, now_us};
use crate::error::{Error, Result};
use crate::once::{Once, Role};

const TOKEN: &str = "token";
/// The refresh: a real process whose output differs per run.
const REFRESH: &str = "echo token-$$";

/// The single-flight target.
pub struct SingleFlight;

fn refresh() -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", REFRESH]);
    c
}

impl Target for SingleFlight {
    fn name(&self) -> &'static str {
        "single-flight"
    }

    fn violations(&self) -> &'static str {
        "DOUBLE_RUN / SPLIT_RESULT"
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            writers: 4,
            ops: 1,
            rounds: 10,
        }
    }

    fn expected(&self, _s: &Sizes) -> String {
        "1 run per round, one token for all".into()
    }

    fn write(&self, spec: &WriterSpec, ev: &mut Events) -> Result<()> {
        let path = spec.dir.join(TOKEN);
        for _ in 0..spec.ops {
            let t = now_us();
            let (ran, token) = if spec.mode == Mode::Protected {
                let once = Once::in_dir(&spec.dir, "refresh").ttl(Some(Duration::from_secs(3600)));
                let f = once.run(refresh(), false)?;
                let ran = matches!(f.role, Role::Leader | Role::Takeover);
                (ran, String::from_utf8_lossy(&f.result.stdout).into_owned())
            } else if let Some(token) = read_text(&path)? {
                (false, token)
            } else {
                work(2000); // read the refresh token, build the request
                let out = refresh()
                    .output()
                    .map_err(Error::with("cannot run", Path::new("sh")))?;
                put(&path, &out.stdout)?;
                (true, String::from_utf8_lossy(&out.stdout).into_owned())
            };
            ev.op(t, json!({ "ran": ran, "token": token.trim() }));
        }
        Ok(())
    }

    fn check(&self, _dir: &Path, _s: &Sizes, runs: &[WriterRun]) -> Result<RoundCheck> {
        let one = exactly_one(
            runs,
            &OneOf {
                field: "ran",
                noun: "run",
                none: "NO_RUN",
                many: "DOUBLE_RUN",
                again: |w| format!("writer {w} ran the refresh again"),
                limit: MAX_MARKS,
            },
        );
        if one.violation.is_some() {
            return Ok(one);
        }
        let mut tokens: Vec<&str> = runs
            .iter()
            .flat_map(|r| r.events_of("op"))
            .filter_map(|e| e.data["token"].as_str())
            .collect();
        tokens.sort_unstable();
        tokens.dedup();
        Ok(if tokens.len() == 1 {
            RoundCheck::held("1 run, one token for all")
        } else {
            RoundCheck::broke(
                "SPLIT_RESULT",
                format!("{} different tokens", tokens.len()),
                Vec::new(),
            )
        })
    }
}
