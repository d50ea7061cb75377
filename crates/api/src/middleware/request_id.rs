//! Request ids.

use axum::http::HeaderValue;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

tokio::task_local! {
    /// The id of the request the current task is handling (set by the front around the
    /// router, read by error bodies).
    pub(crate) static REQUEST_ID: HeaderValue;
}

/// The id of the request being handled, if called inside one.
pub(crate) fn current_request_id() -> Option<String> {
    REQUEST_ID
        .try_with(|v| v.to_str().ok().map(str::to_owned))
        .ok()
        .flatten()
}

/// A new request id: a random per-process prefix and a counter, so ids are unique across a
/// fleet and cost a counter increment, not a UUID, per request.
pub(crate) fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(rand_u32);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut s = String::with_capacity(24);
    let _ = write!(s, "{prefix:08x}-{n:x}");
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn rand_u32() -> u32 {
    // std's RandomState is seeded from the OS: enough entropy for a process id prefix.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    u32::try_from(h.finish() & 0xffff_ffff).unwrap_or(0)
}
