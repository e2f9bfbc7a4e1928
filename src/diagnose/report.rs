//! The text table and the `--json` document.

use std::fmt::Write;

use super::run::Outcome;

/// The narrowest a wrapped EXPECTED or OBSERVED column gets.
const MIN: usize = 24;

/// The table's column headings.
pub const HEADINGS: [&str; 9] = [
    "TARGET", "MODE", "WRITERS", "OPS", "ROUNDS", "EXPECTED", "OBSERVED", "VERDICT", "TIME",
];

/// Renders outcomes as an aligned text table (one header line, one line per outcome).
pub fn table(outcomes: &[Outcome]) -> String {
    table_fitted(outcomes, None)
}

/// [`table`] fitted to `width` columns where it is given: when the lines would be longer, the
/// EXPECTED and OBSERVED cells are wrapped at spaces onto continuation lines (the widest first,
/// down to 24 columns each); the other columns keep their width.
pub fn table_fitted(outcomes: &[Outcome], width: Option<usize>) -> String {
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
    // Narrow EXPECTED (5) and OBSERVED (6) until a line fits, or both are at their minimum.
    if let Some(max) = width {
        let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * (w.len() - 1);
        while total(&widths) > max {
            let i = if widths[6] >= widths[5] { 6 } else { 5 };
            if widths[i] <= MIN {
                break;
            }
            let over = total(&widths) - max;
            widths[i] = widths[i].saturating_sub(over).max(MIN);
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
        // Each cell as lines of at most its column's width; short cells are one line.
        let wrapped: Vec<Vec<String>> = r.iter().zip(&widths).map(|(c, w)| wrap(c, *w)).collect();
        let height = wrapped.iter().map(Vec::len).max().unwrap_or(1);
        for k in 0..height {
            let cells: Vec<&str> = wrapped
                .iter()
                .map(|c| c.get(k).map_or("", String::as_str))
                .collect();
            line(&cells);
        }
    }
    out
}

/// `text` in lines of at most `width` characters, broken at spaces (a longer word is cut).
fn wrap(text: &str, width: usize) -> Vec<String> {
    if text.chars().count() <= width {
        return vec![text.to_string()];
    }
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ') {
        let mut word = word.to_string();
        loop {
            let n = cur.chars().count();
            let extra = word.chars().count() + usize::from(n > 0);
            if n + extra <= width {
                if n > 0 {
                    cur.push(' ');
                }
                cur.push_str(&word);
                break;
            }
            if n > 0 {
                lines.push(std::mem::take(&mut cur));
                continue;
            }
            // A word longer than the column: cut it.
            let cut: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            lines.push(cut);
            if word.is_empty() {
                break;
            }
        }
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
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
    fn a_narrow_terminal_wraps_expected_and_observed() {
        let long = "4 holders at once (max 2) (round 0; 1 of 2 rounds); slot still taken after \
                    holder pid 21346 killed -9 (round 1; 1 of 2 rounds)";
        let rows = [outcome("semaphore", long, "OVER_ADMISSION")];
        let wide = table(&rows);
        assert!(wide.lines().all(|l| !l.is_empty()) && wide.lines().count() == 2);
        let fitted = table_fitted(&rows, Some(110));
        assert!(fitted.lines().count() > 2, "{fitted}");
        for l in fitted.lines() {
            assert!(
                l.chars().count() <= 110,
                "{} columns: {l}",
                l.chars().count()
            );
        }
        // Every word of the observation is still there, in order.
        let words: Vec<&str> = fitted.split_whitespace().collect();
        let joined = words.join(" ");
        assert!(
            joined.contains("slot still taken after holder pid 21346 killed -9"),
            "{fitted}"
        );
        assert_eq!(table_fitted(&rows, Some(1000)), wide);
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
