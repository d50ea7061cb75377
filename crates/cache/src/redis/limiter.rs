//! One rate-limit budget per client across every API process.

use super::Redis;
use super::scripts::{FLEET_HEARTBEAT, INCR_WITH_EXPIRY};
use crate::lock::random_token;
use crate::ratelimit::{LocalRateLimiter, RateDecision, RateLimiter};
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

/// How often a process tells the fleet it is alive, and how long a silent one still counts.
const FLEET_BEAT: Duration = Duration::from_secs(10);
const FLEET_HORIZON: Duration = Duration::from_secs(35);

/// The shared limiter: a fixed window per client in Redis, counted exactly like
/// [`LocalRateLimiter`] (the window starts at the client's first request; `limit` requests
/// pass, request `limit + n` is refused), by one atomic script (`INCR`, `PEXPIRE` on the
/// first hit, `PTTL`), so 1,100 requests spread over any number of processes get exactly
/// 100 refusals.
///
/// When Redis cannot be reached the limiter fails *open but bounded*: each process counts
/// on its own, allowing its share of the budget (`limit / live API processes`, the fleet
/// size last seen in Redis), so the fleet as a whole stays near the limit instead of
/// becoming unlimited (or refusing everyone, the other classic failure). The switch is
/// logged once each way, counted in `ratelimit_backend_unavailable_total` and reported by
/// [`RateLimiter::degraded`] for `/health/performance`.
pub struct RedisRateLimiter {
    redis: Redis,
    limit: u32,
    window: Duration,
    fallback: LocalRateLimiter,
    degraded: AtomicBool,
    fleet: AtomicU32,
    instance: String,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("degraded", &self.degraded())
            .field("fleet", &self.fleet_size())
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// `limit` requests per `window` per client, counted in `redis`. Starts a background
    /// task (inside the current Tokio runtime) that keeps this process registered in the
    /// fleet; it ends when the limiter is dropped.
    #[must_use]
    pub fn start(redis: Redis, limit: u32, window: Duration) -> Arc<Self> {
        let this = Arc::new(Self {
            redis,
            limit,
            window,
            fallback: LocalRateLimiter::new(limit, window),
            degraded: AtomicBool::new(false),
            fleet: AtomicU32::new(1),
            instance: random_token(),
        });
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLEET_BEAT);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { return };
                this.heartbeat().await;
            }
        });
        this
    }

    /// API processes seen alive in the last heartbeat (at least 1: this one).
    #[must_use]
    pub fn fleet_size(&self) -> u32 {
        self.fleet.load(Ordering::Relaxed).max(1)
    }

    /// Registers this process in the fleet and refreshes the fleet size.
    pub async fn heartbeat(&self) {
        let key = Redis::key("fleet:{api}");
        let now = sentinel_core::now_millis();
        let instance = self.instance.clone();
        let result = self
            .redis
            .call(|mut c| async move {
                FLEET_HEARTBEAT
                    .key(key)
                    .arg(instance)
                    .arg(now)
                    .arg(super::remote::ttl_ms(FLEET_HORIZON))
                    .invoke_async::<u32>(&mut c)
                    .await
            })
            .await;
        match result {
            Ok(n) => {
                self.fleet.store(n.max(1), Ordering::Relaxed);
                metrics::gauge!("api_fleet_size").set(f64::from(n.max(1)));
            }
            // Keep the last size: it is the best guess of how many share the budget.
            Err(e) => tracing::debug!(error = %e, "fleet heartbeat failed"),
        }
    }

    /// What each process allows per client and window while Redis is unreachable: its share
    /// of the limit.
    #[must_use]
    pub fn fallback_limit(&self) -> u32 {
        self.limit.div_ceil(self.fleet_size()).max(1)
    }

    fn fallback_check(&self, client: &str, why: &str) -> RateDecision {
        metrics::counter!("ratelimit_backend_unavailable_total").increment(1);
        let share = self.fallback_limit();
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = why,
                limit_per_process = share,
                fleet = self.fleet_size(),
                "shared rate limiter unavailable: counting per process until Redis is back"
            );
        }
        self.fallback.check_now_with_limit(client, share)
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, client: &str) -> RateDecision {
        let key = Redis::key(&format!("rl:{{{client}}}"));
        let window_ms = super::remote::ttl_ms(self.window);
        let result = self
            .redis
            .call(|mut c| async move {
                INCR_WITH_EXPIRY
                    .key(key)
                    .arg(window_ms)
                    .invoke_async::<(u64, i64)>(&mut c)
                    .await
            })
            .await;
        match result {
            Ok((count, ttl_ms)) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("shared rate limiter restored");
                }
                let count = u32::try_from(count).unwrap_or(u32::MAX);
                RateDecision {
                    allowed: count <= self.limit,
                    limit: self.limit,
                    remaining: self.limit.saturating_sub(count),
                    reset_after: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0)),
                }
            }
            Err(e) => self.fallback_check(client, &e.to_string()),
        }
    }

    fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }
}
