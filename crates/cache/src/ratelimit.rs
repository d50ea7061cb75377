//! Request limits per client.
//!
//! Fixed windows that start at a client's first request, as `@fastify/rate-limit` counts and
//! as the guide's `atomicIncrement` script does in Redis (INCR, EXPIRE on the first hit): a
//! client may send `limit` requests per window, and request `limit + n` within the window is
//! refused. governor (GCRA) was considered: it smooths bursts, but then "1,100 requests in
//! a burst get exactly 100 refusals" would not hold, and the shared Redis implementation must
//! count the same way as the local one.

use async_trait::async_trait;
use dashmap::DashMap;
use std::time::{Duration, Instant};

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The limit per window.
    pub limit: u32,
    /// Requests left in the current window.
    pub remaining: u32,
    /// Time until the window resets.
    pub reset_after: Duration,
}

/// A per-client limiter.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request of `client` and says whether it is allowed.
    async fn check(&self, client: &str) -> RateDecision;
    /// Whether this limiter is currently degraded (e.g. shared backend down, counting per
    /// process instead).
    fn degraded(&self) -> bool {
        false
    }
}

/// The in-process limiter (the embedded default, and the fallback of the shared one).
#[derive(Debug)]
pub struct LocalRateLimiter {
    limit: u32,
    window: Duration,
    windows: DashMap<Box<str>, (Instant, u32)>,
}

impl LocalRateLimiter {
    /// `limit` requests per `window` per client.
    #[must_use]
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            windows: DashMap::new(),
        }
    }

    /// Counts synchronously (the async trait method calls this).
    pub fn check_now(&self, client: &str) -> RateDecision {
        self.check_now_with_limit(client, self.limit)
    }

    /// Counts like [`check_now`](Self::check_now), but allows at most `limit` (capped at the
    /// configured limit) in the window: the fallback of the shared limiter, which gives each
    /// process only its share of the fleet's budget while the shared counter is away.
    pub fn check_now_with_limit(&self, client: &str, limit: u32) -> RateDecision {
        let limit = limit.min(self.limit);
        let now = Instant::now();
        if self.windows.len() > 100_000 {
            // Bound memory under many distinct clients: forget finished windows.
            self.windows
                .retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let mut entry = self.windows.entry(Box::from(client)).or_insert((now, 0));
        let (start, count) = entry.value_mut();
        if now.duration_since(*start) >= self.window {
            *start = now;
            *count = 0;
        }
        *count = count.saturating_add(1);
        let reset_after = self.window.saturating_sub(now.duration_since(*start));
        RateDecision {
            allowed: *count <= limit,
            limit,
            remaining: limit.saturating_sub(*count),
            reset_after,
        }
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, client: &str) -> RateDecision {
        self.check_now(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_limit_requests_pass_per_window() {
        let l = LocalRateLimiter::new(1000, Duration::from_secs(60));
        let refused = (0..1100).filter(|_| !l.check_now("k").allowed).count();
        assert_eq!(refused, 100);
        assert!(l.check_now("other").allowed, "clients are counted apart");
        let d = l.check_now("k");
        assert_eq!(d.remaining, 0);
        assert!(d.reset_after <= Duration::from_secs(60));
    }

    #[test]
    fn a_lower_limit_caps_the_same_window() {
        let l = LocalRateLimiter::new(100, Duration::from_secs(60));
        let allowed = (0..100)
            .filter(|_| l.check_now_with_limit("k", 25).allowed)
            .count();
        assert_eq!(allowed, 25);
        let d = l.check_now_with_limit("k", 1000);
        assert_eq!(
            (d.allowed, d.limit),
            (false, 100),
            "never above the configured limit"
        );
    }

    #[test]
    fn window_resets() {
        let l = LocalRateLimiter::new(2, Duration::from_millis(20));
        assert!(l.check_now("k").allowed);
        assert!(l.check_now("k").allowed);
        assert!(!l.check_now("k").allowed);
        std::thread::sleep(Duration::from_millis(30));
        assert!(l.check_now("k").allowed);
    }
}
