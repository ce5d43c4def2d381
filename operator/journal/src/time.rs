//! Timestamps: stored as unix milliseconds, shown as RFC 3339.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    // A clock before 1970 is a broken clock; 0 keeps the ordering sane rather than failing.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// A unix-milliseconds timestamp as RFC 3339 in UTC, to the second
/// (`2025-01-02T03:04:05Z`). Times before 1970 show as the epoch.
pub fn format_time(ms: i64) -> String {
    let since_epoch = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(UNIX_EPOCH + since_epoch).to_string()
}

/// A duration in milliseconds for display (`1m 2s 345ms`).
pub fn format_duration(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_durations() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_735_787_045_999), "2025-01-02T03:04:05Z");
        assert_eq!(format_time(-5), "1970-01-01T00:00:00Z");
        assert_eq!(format_duration(62_345), "1m 2s 345ms");
        assert!(now_ms() > 1_700_000_000_000);
    }
}
