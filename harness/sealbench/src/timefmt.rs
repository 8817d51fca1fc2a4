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
