//! clap value parsers shared by verbs: durations (`30s`, `5m`) and octal modes (`0644`).

use std::time::Duration;

/// The longest duration an option keeps: a wait or a hold longer than a century is one for
/// ever, and capped, a deadline (now + it) cannot overflow the clock.
pub const FOREVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses a duration as `concur::duration::parse` does (`-w 10`, `-w 1.5s`, `--ttl 5m`), or a
/// plain number of seconds as flock(1) reads one (`-w 1e3`), capped at [`FOREVER`].
pub fn duration(s: &str) -> Result<Duration, String> {
    let plain = s
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| Duration::try_from_secs_f64(v).unwrap_or(FOREVER));
    match plain {
        Some(d) => Ok(d),
        None => concur::duration::parse(s),
    }
    .map(|d| d.min(FOREVER))
    .map_err(|e| e.to_string())
}

/// Parses octal permission bits (`600`, `0644`, `0o640`); at most 0o7777.
pub fn mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(m),
        _ => Err(format!(
            "invalid mode {s:?}: expected octal permission bits such as 0644"
        )),
    }
}
