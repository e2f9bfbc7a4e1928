//! `--report FILE.html`: a self-contained page (inline SVG and CSS, no script, no network) with,
//! for every result, one lane per writer showing each writer process's life, each operation,
//! each lock/slot hold, and red marks where an invariant broke, labelled with round and moment.

use std::fmt::Write;

use super::RunStatus;
use super::run::{Outcome, RoundTrace};

const LEFT: f64 = 90.0;
const WIDTH: f64 = 1000.0;
const LANE: f64 = 24.0;
const TOP: f64 = 26.0;

/// Escapes text for HTML content and attributes.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// Renders the whole page of a local run.
pub fn page(outcomes: &[Outcome]) -> String {
    page_on(outcomes, "local files", &[])
}

/// Renders the whole page, saying which backend the run used (`local files`, or the etcd URL
/// and key prefix) and which targets were skipped on it.
pub fn page_on(outcomes: &[Outcome], backend: &str, skipped: &[&str]) -> String {
    let mut h = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>concur diagnose report</title>\n<style>\
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}\
h1{font-size:20px}h2{font-size:16px;margin:28px 0 4px}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
.SAFE{color:#176b2c;font-weight:bold}.bad{color:#b00020;font-weight:bold}\
svg{background:#fafafa;border:1px solid #ddd}\
.legend span{display:inline-block;margin-right:14px}\
.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}\
</style></head><body>\n<h1>concur diagnose</h1>\n",
    );
    let _ = writeln!(h, "<p class=\"backend\">backend: {}</p>", escape(backend));
    if !skipped.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"skipped\">skipped (local-only targets, not run on etcd): {}</p>",
            escape(&skipped.join(", "))
        );
    }
    h.push_str("<table class=\"summary\"><tr>");
    for c in super::report::HEADINGS {
        let _ = write!(h, "<th>{c}</th>");
    }
    h.push_str("</tr>\n");
    for o in outcomes {
        let class = if o.verdict == "SAFE" { "SAFE" } else { "bad" };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
<td class=\"{class}\">{}</td><td>{:.2}s</td></tr>",
            escape(&o.target),
            escape(&o.mode),
            o.writers,
            o.ops,
            o.rounds,
            escape(&o.expected),
            escape(&o.observed),
            escape(&o.verdict),
            o.seconds
        );
    }
    h.push_str(
        "</table>\n<p class=\"legend\">\
<span><i class=\"sw\" style=\"background:#d5d9e0\"></i>writer process alive</span>\
<span><i class=\"sw\" style=\"background:#4a7bd0\"></i>operation</span>\
<span><i class=\"sw\" style=\"background:#e08a1e\"></i>lock / slot held</span>\
<span><i class=\"sw\" style=\"background:#d01f3c\"></i>invariant broke here</span></p>\n",
    );
    for (i, o) in outcomes.iter().enumerate() {
        if o.trace.is_empty() {
            continue;
        }
        let _ = writeln!(
            h,
            "<section class=\"result\" id=\"r{i}\"><h2>{} — {} — <span class=\"{}\">{}</span></h2>\
<p>expected {}; observed {}</p>",
            escape(&o.target),
            escape(&o.mode),
            if o.verdict == "SAFE" { "SAFE" } else { "bad" },
            escape(&o.verdict),
            escape(&o.expected),
            escape(&o.observed)
        );
        h.push_str(&svg(&o.trace));
        let marks: Vec<_> = o.trace.iter().flat_map(|r| r.marks.iter()).collect();
        if !marks.is_empty() {
            let t0 = o.trace[0].start;
            h.push_str("<ul class=\"marks\">");
            for m in marks {
                #[allow(clippy::cast_precision_loss)]
                let ms = m.at.saturating_sub(t0) as f64 / 1000.0;
                let who = m
                    .writer
                    .map(|w| format!(", writer {w}"))
                    .unwrap_or_default();
                let _ = write!(
                    h,
                    "<li>round {}, +{ms:.1} ms{who}: {}</li>",
                    m.round,
                    escape(&m.label)
                );
            }
            h.push_str("</ul>");
        }
        h.push_str("</section>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// One result's timeline as an inline SVG.
#[allow(clippy::cast_precision_loss)]
fn svg(trace: &[RoundTrace]) -> String {
    let t0 = trace.iter().map(|r| r.start).min().unwrap_or(0);
    let t1 = trace.iter().map(|r| r.end).max().unwrap_or(t0).max(t0 + 1);
    let lanes = trace
        .iter()
        .flat_map(|r| r.runs.iter().map(|w| w.writer + 1))
        .max()
        .unwrap_or(1);
    let x = |t: u64| LEFT + (t.clamp(t0, t1) - t0) as f64 / (t1 - t0) as f64 * WIDTH;
    let y = |lane: usize| TOP + lane as f64 * LANE;
    let height = TOP + lanes as f64 * LANE + 20.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" \
viewBox=\"0 0 {} {height}\">",
        LEFT + WIDTH + 10.0,
        LEFT + WIDTH + 10.0
    );
    for lane in 0..lanes {
        let _ = write!(
            s,
            "<text x=\"6\" y=\"{}\" font-size=\"12\">writer {lane}</text>",
            y(lane) + 15.0
        );
    }
    for r in trace {
        let rx = x(r.start);
        let _ = write!(
            s,
            "<line class=\"round\" x1=\"{rx:.1}\" y1=\"4\" x2=\"{rx:.1}\" y2=\"{:.1}\" \
stroke=\"#999\" stroke-dasharray=\"3,3\"/><text x=\"{:.1}\" y=\"14\" font-size=\"10\" \
fill=\"#666\">round {}</text>",
            height - 16.0,
            rx + 2.0,
            r.round
        );
        for w in &r.runs {
            let ly = y(w.writer);
            let stroke = match w.status {
                RunStatus::Ok => "none",
                _ => "#d01f3c",
            };
            let _ = write!(
                s,
                "<rect class=\"run\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"18\" \
fill=\"#d5d9e0\" stroke=\"{stroke}\"><title>writer {} pid {} ({})</title></rect>",
                x(w.start),
                ly + 2.0,
                (x(w.end) - x(w.start)).max(1.0),
                w.writer,
                w.pid,
                escape(&format!("{:?}", w.status))
            );
            // Operations first, holds on top of them.
            let ops = w.events.iter().filter(|e| e.kind == "op");
            let holds = w.events.iter().filter(|e| e.kind != "op");
            for e in ops.chain(holds) {
                let (class, fill, dy, hgt) = match e.kind.as_str() {
                    "op" => ("op", "#4a7bd0", 5.0, 12.0),
                    "hold" | "held" => ("hold", "#e08a1e", 8.0, 6.0),
                    _ => continue,
                };
                let end = if e.kind == "held" { w.end } else { e.end };
                let _ = write!(
                    s,
                    "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.2}\" \
height=\"{hgt}\" fill=\"{fill}\" opacity=\"0.85\"><title>{}</title></rect>",
                    x(e.start),
                    ly + dy,
                    (x(end) - x(e.start)).max(0.8),
                    escape(&e.data.to_string())
                );
            }
        }
        marks(&mut s, r, lanes, &x);
    }
    let _ = write!(
        s,
        "<text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"10\" fill=\"#666\">0 ms</text>\
<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#666\" text-anchor=\"end\">{:.1} ms</text></svg>",
        height - 4.0,
        LEFT + WIDTH,
        height - 4.0,
        (t1 - t0) as f64 / 1000.0
    );
    s
}

/// Red marks where an invariant broke: on the writer's lane, or across all lanes.
#[allow(clippy::cast_precision_loss)]
fn marks(s: &mut String, r: &RoundTrace, lanes: usize, x: &dyn Fn(u64) -> f64) {
    let y = |lane: usize| TOP + lane as f64 * LANE;
    for m in &r.marks {
        let mx = x(m.at);
        let (ya, yb) = match m.writer {
            Some(w) if w < lanes => (y(w), y(w) + LANE),
            _ => (TOP, TOP + lanes as f64 * LANE),
        };
        let _ = write!(
            s,
            "<g class=\"mark\"><title>round {}: {}</title><line x1=\"{mx:.1}\" y1=\"{ya:.1}\" \
x2=\"{mx:.1}\" y2=\"{yb:.1}\" stroke=\"#d01f3c\" stroke-width=\"2\"/><path d=\"M{:.1},{:.1} \
l5,-8 l-10,0 z\" fill=\"#d01f3c\"/></g>",
            m.round,
            escape(&m.label),
            mx,
            ya + 1.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn a_page_without_traces_is_still_a_whole_page() {
        let p = page(&[]);
        assert!(p.starts_with("<!DOCTYPE html>") && p.ends_with("</html>\n"));
        assert!(!p.contains("<svg"));
    }
}
