//! The shared backends: in-process by default; Redis (one node or a Redis Cluster) when
//! `REDIS_URL` is set.
//!
//! Redis is an accelerator and a coordinator, never the source of truth: the process starts
//! while it is unreachable and keeps serving without it (L1 and the database for reads, a
//! per-process share of the rate limit, scans without the cross-worker lock), and
//! `/health/*` reports it `degraded`, not down.

use async_trait::async_trait;
use sentinel_api::{DependencyHealth, HealthCheck};
use sentinel_cache::redis::{
    Redis, RedisBus, RedisCache, RedisLocks, RedisOptions, RedisRateLimiter, RedisSiteVersions,
};
use sentinel_cache::{InvalidationBus, Locks, RateLimiter, RemoteCache, SiteVersions};
use sentinel_config::Settings;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// What this process shares with others. `None` fields select the in-process defaults.
#[derive(Default)]
pub(super) struct Shared {
    pub remote_cache: Option<Arc<dyn RemoteCache>>,
    pub limiter: Option<Arc<dyn RateLimiter>>,
    pub versions: Option<Arc<dyn SiteVersions>>,
    pub bus: Option<Arc<dyn InvalidationBus>>,
    pub redis_health: Option<Arc<dyn HealthCheck>>,
    /// Scan locks for the worker pool.
    pub locks: Option<Arc<dyn Locks>>,
}

/// Builds the shared backends the settings ask for; the API parts only for roles that
/// serve the API (a worker must not count itself in the API fleet that shares the rate
/// limit).
pub(super) async fn shared(settings: &Settings) -> anyhow::Result<Shared> {
    let Some(url) = settings.redis_url.as_deref() else {
        return Ok(Shared::default());
    };
    let redis = Redis::connect(url, RedisOptions::default())?;
    let topology = if redis.topology().is_cluster() {
        "cluster"
    } else {
        "single"
    };
    match redis.ping().await {
        Ok(rtt) => info!(topology, rtt_us = rtt.as_micros(), "Redis reachable"),
        Err(e) => warn!(
            topology, error = %e,
            "Redis unreachable at start; running degraded until it answers"
        ),
    }
    // Gauges every 10 s, like the database pool's.
    redis.start_gauges(Duration::from_secs(10));
    let mut shared = Shared {
        locks: Some(Arc::new(RedisLocks::new(redis.clone()))),
        ..Shared::default()
    };
    if settings.role.runs_api() {
        let limiter = (settings.rate_limit_per_minute > 0).then(|| {
            RedisRateLimiter::start(
                redis.clone(),
                settings.rate_limit_per_minute,
                Duration::from_secs(60),
            )
        });
        shared.remote_cache = Some(Arc::new(RedisCache::new(redis.clone())));
        shared.versions = Some(Arc::new(RedisSiteVersions::new(redis.clone())));
        shared.bus = Some(RedisBus::start(redis.clone()));
        shared.redis_health = Some(Arc::new(RedisHealth {
            redis,
            limiter: limiter.clone(),
        }));
        shared.limiter = limiter.map(|l| l as Arc<dyn RateLimiter>);
    }
    Ok(shared)
}

/// `/health/*`'s view of Redis: `ok`, or `degraded` with what the API does without it.
struct RedisHealth {
    redis: Redis,
    limiter: Option<Arc<RedisRateLimiter>>,
}

#[async_trait]
impl HealthCheck for RedisHealth {
    async fn check(&self) -> DependencyHealth {
        let limiter_fallback = self.limiter.as_ref().filter(|l| l.degraded());
        match self.redis.ping().await {
            Ok(rtt) => match limiter_fallback {
                // Redis answers again but the limiter has not had a request since.
                Some(_) => DependencyHealth {
                    status: "degraded",
                    latency_ms: Some(rtt.as_secs_f64() * 1000.0),
                    detail: Some("rate limiting per process until the next request".into()),
                },
                None => DependencyHealth {
                    status: "ok",
                    latency_ms: Some(rtt.as_secs_f64() * 1000.0),
                    detail: None,
                },
            },
            Err(e) => {
                let limits = match &self.limiter {
                    Some(l) => format!(
                        "; rate limits counted per process ({}/min per client in each of {} API processes)",
                        l.fallback_limit(),
                        l.fleet_size()
                    ),
                    None => String::new(),
                };
                DependencyHealth {
                    status: "degraded",
                    latency_ms: None,
                    detail: Some(format!(
                        "{e}; serving from the in-process cache and the database{limits}"
                    )),
                }
            }
        }
    }
}
