//! The text table and the `--json` document.

use std::fmt::Write;

use super::run::Outcome;

/// The table's column headings.
pub const HEADINGS: [&str; 9] = [
    "TARGET", "MODE", "WRITERS", "OPS", "ROUNDS", "EXPECTED", "OBSERVED", "VERDICT", "TIME",
];

/// Renders outcomes as an aligned text table (one header line, one line per outcome).
pub fn table(outcomes: &[Outcome]) -> String {
    let rows: Vec<[String; 9]> = outcomes
        .iter()
        .map(|o| {
            [
                o.target.clone(),
                o.mode.clone(),
                o.writers.to_string(),
                o.ops.to_string(),
                o.rounds.to_string(),
                o.expected.clone(),
                o.observed.clone(),
                o.verdict.clone(),
                format!("{:.2}s", o.seconds),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = HEADINGS.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&HEADINGS);
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

/// The `--json` document: `{"results":[{target, mode, writers, ops, rounds, expected,
/// observed, verdict, seconds}]}`.
pub fn json(outcomes: &[Outcome]) -> serde_json::Value {
    serde_json::json!({ "results": outcomes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(target: &str, observed: &str, verdict: &str) -> Outcome {
        Outcome {
            target: target.into(),
            mode: "naive".into(),
            writers: 4,
            ops: 25,
            rounds: 1,
            expected: "count == 100".into(),
            observed: observed.into(),
            verdict: verdict.into(),
            seconds: 0.5,
            pass: true,
            trace: Vec::new(),
            chaos: None,
        }
    }

    #[test]
    fn table_snapshot() {
        let t = table(&[
            outcome(
                "json-counter",
                "count 63: lost 37 of 100",
                "LAST_WRITER_WINS",
            ),
            outcome("token", "1 winner", "SAFE"),
        ]);
        let want = "\
TARGET        MODE   WRITERS  OPS  ROUNDS  EXPECTED      OBSERVED                  VERDICT           TIME
json-counter  naive  4        25   1       count == 100  count 63: lost 37 of 100  LAST_WRITER_WINS  0.50s
token         naive  4        25   1       count == 100  1 winner                  SAFE              0.50s
";
        assert_eq!(t, want);
    }

    #[test]
    fn json_has_the_documented_fields_only() {
        let v = json(&[outcome("token", "1 winner", "SAFE")]);
        let keys: Vec<&String> = v["results"][0].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 9, "{keys:?}");
    }
}
