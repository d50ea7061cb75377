//! When to try again, and how long to wait first.

use http::HeaderMap;
use http::header::RETRY_AFTER;
use rand::Rng;
use sentinel_netguard::ErrorKind;
use std::time::{Duration, SystemTime};

/// Statuses worth another try: rate limiting and server trouble that is usually
/// temporary. 501 (not implemented) and 505 (version not supported) are permanent.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    status == 429 || ((500..=599).contains(&status) && status != 501 && status != 505)
}

/// Transport failures worth another try.
pub(crate) fn is_retryable_error(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Timeout | ErrorKind::Connect | ErrorKind::Protocol
    )
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential backoff with jitter: `base · 2^attempt`, drawn from its upper half so that
/// retries of many URLs spread out instead of arriving together.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(16));
    let half = ceiling / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&past).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn backoff_doubles_within_jitter_bounds() {
        let base = Duration::from_millis(100);
        for attempt in 0..5 {
            let ceiling = base * (1 << attempt);
            for _ in 0..50 {
                let d = backoff(base, attempt);
                assert!(d >= ceiling / 2 && d <= ceiling, "{attempt}: {d:?}");
            }
        }
        assert!(backoff(base, 60) <= base * (1 << 16));
    }

    #[test]
    fn retryable_statuses_and_errors() {
        for s in [429, 500, 502, 503, 504, 522] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 301, 400, 403, 404, 410, 501, 505] {
            assert!(!is_retryable_status(s), "{s}");
        }
        assert!(is_retryable_error(ErrorKind::Timeout));
        assert!(!is_retryable_error(ErrorKind::Dns));
        assert!(!is_retryable_error(ErrorKind::Blocked));
    }
}
