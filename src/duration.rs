//! Durations as people write and read them: `250ms`, `30s`, `5m`, `1h30m`.

use std::time::Duration;

/// Parses a duration; a bare number means seconds. `0` is `Duration::ZERO`,
/// which callers read as "no deadline" where that makes sense.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}: write it like 250ms, 30s, 5m or 1h30m");
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        let value: f64 = number.parse().map_err(|_| bad())?;
        total += Duration::try_from_secs_f64(value * scale).map_err(|_| bad())?;
        rest = tail;
    }
    Ok(total)
}

/// Formats a duration briefly: `0.8s`, `12.3s`, `4m05s`, `1h02m`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 10_000 {
        // Keep two digits so fast handoffs stay visible.
        if ms < 1000 {
            return format!("{ms}ms");
        }
        return format!("{:.2}s", d.as_secs_f64());
    }
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Formats seconds as sent on the wire.
pub fn human_secs(secs: f64) -> String {
    human(Duration::try_from_secs_f64(secs).unwrap_or_default())
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
        for bad in ["", "5x", "m", "-1", "1h-3m", "s5", "1..2s", "inf", "NaN"] {
            assert_eq!(
                parse(bad).unwrap_err(),
                format!("invalid duration {bad:?}: write it like 250ms, 30s, 5m or 1h30m")
            );
        }
    }

    #[test]
    fn formats_briefly() {
        let h = |ms: u64| human(Duration::from_millis(ms));
        assert_eq!(h(0), "0ms");
        assert_eq!(h(42), "42ms");
        assert_eq!(h(2900), "2.90s");
        assert_eq!(h(12_340), "12.3s");
        assert_eq!(h(245_000), "4m05s");
        assert_eq!(h(3_720_000), "1h02m");
    }
}
