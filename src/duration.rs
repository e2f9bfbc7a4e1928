//! Human durations on the command line: `30s`, `5m`, `2h`, `1d`, `250ms`, or bare seconds.
//!
//! One parser for every verb that takes a time (`--ttl`, `-w`, `--max-hold`), so they all accept
//! the same spellings. Fractions are allowed (`1.5h`, `0.25`); negative values, empty strings,
//! unknown units and values that do not fit a [`Duration`] are rejected.

use std::time::Duration;

use crate::error::{Error, Result};

/// Parses `30s`, `5m`, `2h`, `1d`, `250ms` or a bare number of seconds.
///
/// # Errors
/// [`Error::Invalid`] naming the text and the accepted forms.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use concur::duration::parse;
/// assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
/// assert_eq!(parse("1.5").unwrap(), Duration::from_millis(1500));
/// assert!(parse("-1s").is_err());
/// ```
pub fn parse(text: &str) -> Result<Duration> {
    let bad = || {
        Error::Invalid(format!(
            "invalid duration {text:?}: expected a number with an optional unit ms, s, m, h or d (e.g. 30s, 5m, 2h, 1d)"
        ))
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() || num.starts_with('.') && num.len() == 1 {
        return Err(bad());
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" | "hr" | "hrs" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(n * scale).map_err(|_| bad())
}

/// Formats a duration the way [`parse`] reads it, in the largest whole unit (`90s`, `5m`, `1d`).
pub fn format(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_nanos() != 0 {
        return format!("{}ms", d.as_millis());
    }
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if s >= size && s.is_multiple_of(size) {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_unit() {
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_nonsense() {
        for bad in ["", "s", "-1", "1x", "1.2.3s", "ms", ".", "1e999", "nan"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn format_round_trips() {
        for text in ["90s", "5m", "2h", "1d", "250ms"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
