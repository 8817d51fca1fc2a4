//! UTC timestamps for result files and directory names (through the `time` crate).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, UTC, RFC 3339 (`2026-11-26T05:28:48.123Z`).
pub fn rfc3339_now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_else(|_| "unknown".into())
}

/// Now, UTC, compact for directory names (`20261126T052848Z`).
pub fn compact_now() -> String {
    let t = OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Seconds since the Unix epoch, with fraction (for HdrHistogram log `StartTime`).
pub fn unix_seconds_now() -> f64 {
    let t = OffsetDateTime::now_utc();
    t.unix_timestamp_nanos() as f64 / 1e9
}

/// A wall-clock time: RFC 3339 (`2026-11-26T12:00:00Z`) or Unix seconds (`1795694400.5`).
///
/// # Errors
/// Neither form, with what is accepted.
pub fn parse_wall_clock(text: &str) -> Result<std::time::SystemTime, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs));
    }
    let at = OffsetDateTime::parse(t, &Rfc3339)
        .map_err(|e| format!("`{text}`: not a time ({e}); give RFC 3339 (2026-11-26T12:00:00Z) or Unix seconds"))?;
    let ns = at.unix_timestamp_nanos();
    u64::try_from(ns)
        .map(|ns| std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns))
        .map_err(|_| format!("`{text}`: before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_times_parse_in_both_forms() {
        let a = parse_wall_clock("2026-11-26T12:00:00Z").unwrap();
        let b = parse_wall_clock("1795694400").unwrap();
        assert_eq!(a, b);
        assert!(parse_wall_clock("noon").unwrap_err().contains("RFC 3339"));
    }
}
