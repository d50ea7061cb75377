//! Domain types of qa-sentinel.
//!
//! Everything here is pure: no IO, no async runtime. The store, the API and the worker
//! runtime all speak in these types, so a rule that is written here (which roles may scan,
//! what a valid scan request is, how a dedup key is formed) holds everywhere.

pub mod auth;
pub mod finding;
pub mod ids;
pub mod page;
pub mod scan;
pub mod site;
pub mod validation;

pub use auth::{ApiKey, ApiKeyHash, Principal, Role, SiteRole};
pub use finding::{Finding, FindingKind, NewFinding, Severity};
pub use ids::{FindingId, ScanId, SiteId, UserId};
pub use page::{Cursor, Page};
pub use scan::{
    CheckType, LinkOptions, NewScan, Scan, ScanOptions, ScanRequest, ScanStatus, Viewport,
    VisualOptions,
};
pub use site::{Site, SiteUrl};
pub use validation::{FieldError, ValidationErrors};

/// Milliseconds since the Unix epoch, the one timestamp representation the store and the
/// API share (SQLite has no native timestamp type; integers sort and compare everywhere).
pub type EpochMillis = i64;

/// The current wall-clock time in epoch milliseconds.
#[must_use]
pub fn now_millis() -> EpochMillis {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Formats epoch milliseconds as an RFC 3339 UTC timestamp (`2026-11-26T21:07:18.123Z`).
#[must_use]
pub fn rfc3339(ms: EpochMillis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
            let (h, mi, s, milli) = (t.hour(), t.minute(), t.second(), t.millisecond());
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
        }
        Err(_) => String::from("1970-01-01T00:00:00.000Z"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_millis() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
    }
}
