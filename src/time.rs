//! Wall-clock instants as text: Unix milliseconds to UTC `YYYY-MM-DDTHH:MM:SS[.mmm]Z`.
//!
//! Guarantees: pure arithmetic on the proleptic Gregorian calendar (Howard Hinnant's
//! civil-from-days), no time-zone database, no leap seconds, no allocation beyond the result.
//! Not: parsing, local time, or instants before 1970 (the input is unsigned).

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix milliseconds; the milliseconds are dropped.
///
/// # Examples
/// ```
/// assert_eq!(concur::time::utc_seconds(1_709_210_096_789), "2024-02-29T12:34:56Z");
/// ```
#[must_use]
pub fn utc_seconds(ms: u64) -> String {
    let (date, rem) = civil(ms);
    format!(
        "{date}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A short age like `12s`, `5m`, `3h`, `2d` between two Unix-ms instants (0 when `then_ms` is
/// later than `now_ms`).
///
/// # Examples
/// ```
/// assert_eq!(concur::time::age(200_000, 50_000), "2m");
/// ```
#[must_use]
pub fn age(now_ms: u64, then_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for Unix milliseconds.
///
/// # Examples
/// ```
/// assert_eq!(concur::time::utc_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
/// ```
#[must_use]
pub fn utc_millis(ms: u64) -> String {
    let (date, rem) = civil(ms);
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// The `YYYY-MM-DD` date of `ms` and the seconds since that day's midnight.
fn civil(ms: u64) -> (String, u64) {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86400).unwrap_or(0);
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (format!("{y:04}-{m:02}-{d:02}"), rem)
}
