//! Durations as people write and read them: `250ms`, `30s`, `5m`, `1h30m`.

use std::time::Duration;

/// The longest duration accepted: 100 years. Every deadline is the clock
/// plus a duration (sometimes plus a grace or a sweep on top), and the
/// clock's `Instant + Duration` panics past its range; a bound far below
/// it, checked once here, keeps every such sum in range without a checked
/// addition at each of them. Nobody waits a century for a container.
pub const MAX: Duration = Duration::from_secs(36_525 * 24 * 3600);

/// Parses a duration; a bare number means seconds. `0` is `Duration::ZERO`,
/// which callers read as "no deadline" where that makes sense. Longer than
/// [`MAX`] is an error (callers prefix the flag or key it came from).
///
/// Integer arithmetic only: parsing floats would pull the standard
/// library's decimal-to-float tables into a binary whose size we count.
pub fn parse(text: &str) -> Result<Duration, String> {
    let d = parse_any(text)?;
    if d > MAX {
        return Err(format!("duration {text:?} is too long: at most 100 years (876600h)"));
    }
    Ok(d)
}

/// [`parse`] without the bound: nanoseconds up to `u64::MAX` seconds.
fn parse_any(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}: write it like 250ms, 30s, 5m or 1h30m");
    if text.is_empty() {
        return Err(bad());
    }
    if let Some(nanos) = decimal(text, NANOS_PER_SEC) {
        return to_duration(nanos).ok_or_else(bad);
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3600 * NANOS_PER_SEC,
            _ => return Err(bad()),
        };
        total = total.checked_add(decimal(number, scale).ok_or_else(bad)?).ok_or_else(bad)?;
        rest = tail;
    }
    to_duration(total).ok_or_else(bad)
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// `12`, `0.5` or `1.25` times `scale` nanoseconds, truncated to whole
/// nanoseconds; `None` unless `text` is digits with at most one `.` between
/// or after them.
fn decimal(text: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let mut nanos: u128 = 0;
    for b in whole.bytes() {
        nanos = nanos.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    nanos = nanos.checked_mul(scale)?;
    // Digits past the 18th cannot change a nanosecond count below 10^20.
    let mut part = scale;
    for b in fraction.bytes().take(18) {
        part /= 10;
        nanos += u128::from(b - b'0') * part;
        if part == 0 {
            break;
        }
    }
    Some(nanos)
}

fn to_duration(nanos: u128) -> Option<Duration> {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, (nanos % NANOS_PER_SEC) as u32))
}

/// Formats a duration briefly: `800ms`, `1.23s`, `12.3s`, `4m05s`, `1h02m`, rounded
/// to the last digit shown (integer arithmetic, as in [`parse`]).
pub fn human(d: Duration) -> String {
    let ms = millis(d);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    // Keep two digits below ten seconds so fast handoffs stay visible.
    let hundredths = (ms + 5) / 10;
    if hundredths < 1000 {
        return format!("{}.{:02}s", hundredths / 100, hundredths % 100);
    }
    let tenths = (ms + 50) / 100;
    if tenths < 600 {
        return format!("{}.{}s", tenths / 10, tenths % 10);
    }
    let s = (ms + 500) / 1000;
    match s {
        0..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Whole milliseconds as a `u64` (enough for 584 million years), the unit
/// the formatters and the wire's seconds count in.
pub fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Formats seconds as sent on the wire.
pub fn human_secs(secs: f64) -> String {
    human(from_secs(secs))
}

/// A moment on the server's timeline to the millisecond, `+1.234s` or
/// `@1.234s` (`mark` first), in integer arithmetic like [`human`].
pub fn stamp(mark: char, d: Duration) -> String {
    let ms = millis(d);
    format!("{mark}{}.{:03}s", ms / 1000, ms % 1000)
}

/// [`stamp`] of seconds as sent on the wire.
pub fn stamp_secs(mark: char, secs: f64) -> String {
    stamp(mark, from_secs(secs))
}

/// Seconds from the wire, rounded to the millisecond they were sent with;
/// nonsense (negative, NaN) reads as zero.
fn from_secs(secs: f64) -> Duration {
    Duration::from_millis((secs * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_people_write() {
        let ok = |s: &str| parse(s).unwrap();
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1m30s500ms"), Duration::from_millis(90_500));
        assert_eq!(ok("12"), Duration::from_secs(12));
        assert_eq!(ok("0.5"), Duration::from_millis(500));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("500us"), Duration::from_micros(500));
        assert_eq!(ok("1h2m3s"), Duration::from_secs(3723));
        assert_eq!(ok("0.001"), Duration::from_millis(1));
        assert_eq!(ok("1.5ms"), Duration::from_micros(1500));
        assert_eq!(ok("7."), Duration::from_secs(7));
        assert_eq!(ok("0.333333333333333333333333s"), Duration::new(0, 333_333_333));
        for bad in [
            "",
            "5x",
            "m",
            "-1",
            "1h-3m",
            "s5",
            "1..2s",
            "inf",
            "NaN",
            ".5",
            "1e3",
            "+1",
            "99999999999999999999999h",
        ] {
            assert_eq!(
                parse(bad).unwrap_err(),
                format!("invalid duration {bad:?}: write it like 250ms, 30s, 5m or 1h30m")
            );
        }
    }

    #[test]
    fn refuses_more_than_a_century() {
        assert_eq!(parse("876600h").unwrap(), MAX);
        assert_eq!(parse("3155760000").unwrap(), MAX);
        let long = "duration {:?} is too long: at most 100 years (876600h)";
        for text in ["876600h1ns", "3155760001", "9223372036854775807", "18446744073709551615s"] {
            assert_eq!(parse(text).unwrap_err(), long.replace("{:?}", &format!("{text:?}")));
        }
        // The bound leaves room for the clock: a deadline at MAX, plus a
        // grace of MAX on top, is still an instant.
        let now = std::time::Instant::now();
        assert!(now.checked_add(MAX).and_then(|t| t.checked_add(MAX)).is_some());
    }

    #[test]
    fn stamps_to_the_millisecond() {
        assert_eq!(stamp('+', Duration::from_micros(1_234_567)), "+1.234s");
        assert_eq!(stamp_secs('@', 0.0), "@0.000s");
        assert_eq!(stamp_secs('@', 12.3456), "@12.346s");
        assert_eq!(stamp_secs('+', 0.001), "+0.001s");
        assert_eq!(stamp_secs('+', -1.0), "+0.000s");
    }

    #[test]
    fn formats_briefly() {
        let h = |ms: u64| human(Duration::from_millis(ms));
        assert_eq!(h(0), "0ms");
        assert_eq!(h(42), "42ms");
        assert_eq!(h(999), "999ms");
        assert_eq!(h(2900), "2.90s");
        assert_eq!(h(2996), "3.00s");
        assert_eq!(h(9996), "10.0s");
        assert_eq!(h(59_960), "1m00s");
        assert_eq!(h(12_340), "12.3s");
        assert_eq!(h(245_000), "4m05s");
        assert_eq!(h(3_720_000), "1h02m");
    }
}
