//! Shared application state: configuration, the store, the services and the observability
//! hooks. Cloning is an `Arc` increment.

use crate::metrics::Metrics;
use crate::services::access::AccessService;
use crate::services::scans::ScanService;
use async_trait::async_trait;
use sentinel_cache::{
    Invalidation, InvalidationBus, LocalBus, LocalRateLimiter, LocalSiteVersions, RateLimiter,
    RemoteCache, SiteVersions,
};
use sentinel_config::Settings;
use sentinel_store::Store;
use sentinel_store::artifacts::ArtifactStore;
use sentinel_worker::WorkerPool;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Health of an external dependency.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyHealth {
    /// `ok`, `degraded`, `down` or `disabled`.
    pub status: &'static str,
    /// Round-trip time of the check, ms.
    pub latency_ms: Option<f64>,
    /// What is wrong, if anything.
    pub detail: Option<String>,
}

/// Checks an optional dependency (Redis) for `/health/*`.
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// Checks it now.
    async fn check(&self) -> DependencyHealth;
}

/// What the API is built from. Distributed backends (Redis cache, limiter, versions) are
/// passed in by the binary; `None` selects the in-process ones.
pub struct AppDeps {
    /// Configuration.
    pub settings: Arc<Settings>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Artifact storage (screenshots, diffs).
    pub artifacts: Arc<dyn ArtifactStore>,
    /// Shared L2 cache.
    pub remote_cache: Option<Arc<dyn RemoteCache>>,
    /// Rate limiter (default: in-process, from the settings).
    pub limiter: Option<Arc<dyn RateLimiter>>,
    /// Site cache versions (default: in-process).
    pub versions: Option<Arc<dyn SiteVersions>>,
    /// Invalidation messages between processes (default: in-process).
    pub bus: Option<Arc<dyn InvalidationBus>>,
    /// The in-process worker pool, if this process runs one (for health and metrics).
    pub worker: Option<Arc<WorkerPool>>,
    /// Redis health, when Redis is configured.
    pub redis_health: Option<Arc<dyn HealthCheck>>,
    /// The browser pool's gauges (instances, breakers, captures), when this process runs
    /// visual scans.
    pub browser_health: Option<Arc<dyn Fn() -> serde_json::Value + Send + Sync>>,
}

/// The state every handler sees.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Arc<Settings>,
    store: Arc<dyn Store>,
    artifacts: Arc<dyn ArtifactStore>,
    access: Arc<AccessService>,
    scans: Arc<ScanService>,
    limiter: Option<Arc<dyn RateLimiter>>,
    metrics: Arc<Metrics>,
    worker: Option<Arc<WorkerPool>>,
    redis_health: Option<Arc<dyn HealthCheck>>,
    browser_health: Option<Arc<dyn Fn() -> serde_json::Value + Send + Sync>>,
    started: Instant,
}

impl AppState {
    /// Builds the services and starts their background tasks (must run inside a Tokio
    /// runtime).
    #[must_use]
    pub fn new(deps: AppDeps) -> Self {
        let settings = deps.settings;
        let bus = deps.bus.unwrap_or_else(|| Arc::new(LocalBus::default()));
        let access = Arc::new(AccessService::new(
            deps.store.clone(),
            &settings.cache,
            deps.remote_cache.clone(),
            bus.clone(),
        ));
        let versions = deps
            .versions
            .unwrap_or_else(|| Arc::new(LocalSiteVersions::default()));
        let scans = ScanService::new(
            deps.store.clone(),
            access.clone(),
            versions,
            deps.remote_cache,
            bus.clone(),
            &settings,
        );
        let limiter = match deps.limiter {
            Some(l) => Some(l),
            None if settings.rate_limit_per_minute > 0 => Some(Arc::new(LocalRateLimiter::new(
                settings.rate_limit_per_minute,
                Duration::from_secs(60),
            ))
                as Arc<dyn RateLimiter>),
            None => None,
        };
        let state = Self {
            inner: Arc::new(Inner {
                settings,
                store: deps.store,
                artifacts: deps.artifacts,
                access,
                scans,
                limiter,
                metrics: Arc::new(Metrics::new()),
                worker: deps.worker,
                redis_health: deps.redis_health,
                browser_health: deps.browser_health,
                started: Instant::now(),
            }),
        };
        state.spawn_samplers();
        state.spawn_invalidation_listener(bus.subscribe());
        state
    }

    fn spawn_invalidation_listener(&self, mut rx: tokio::sync::broadcast::Receiver<Invalidation>) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let msg = rx.recv().await;
                let Some(inner) = weak.upgrade() else { return };
                match msg {
                    Ok(Invalidation::Grant { user, site }) => inner.access.forget_grant(user, site),
                    Ok(Invalidation::SiteResults { site }) => inner.scans.forget_site(site),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(
                            missed = n,
                            "invalidation messages lost; L1 entries expire by TTL"
                        );
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    fn spawn_samplers(&self) {
        let weak = Arc::downgrade(&self.inner);
        let upkeep = weak.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if upkeep.strong_count() == 0 {
                    return;
                }
                crate::metrics::run_upkeep();
            }
        });
        tokio::spawn(async move {
            let window = Duration::from_secs(5);
            let mut tick = tokio::time::interval(window);
            let mut pool_tick = 0u32;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                inner.metrics.sample(window);
                pool_tick += 1;
                if pool_tick.is_multiple_of(2) {
                    let p = inner.store.pool_stats();
                    metrics::gauge!("db_pool_connections", "state" => "total")
                        .set(f64::from(p.size));
                    metrics::gauge!("db_pool_connections", "state" => "idle")
                        .set(f64::from(p.idle));
                    metrics::gauge!("db_pool_connections", "state" => "waiting")
                        .set(f64::from(p.waiting));
                    if p.waiting > 5 {
                        tracing::warn!(
                            total = p.size,
                            idle = p.idle,
                            waiting = p.waiting,
                            "database pool under pressure"
                        );
                    }
                    let rss = crate::metrics::ProcessStats::read().rss_bytes;
                    if rss > 400 * 1024 * 1024 {
                        tracing::warn!(
                            rss_mb = rss / 1024 / 1024,
                            threshold_mb = 400,
                            "high memory usage"
                        );
                    }
                    let avg = inner.metrics.avg_response_ms();
                    if avg > 500.0 {
                        tracing::warn!(
                            avg_response_ms = avg,
                            threshold_ms = 500,
                            "high response time"
                        );
                    }
                }
            }
        });
    }

    /// Configuration.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub(crate) fn artifacts(&self) -> &Arc<dyn ArtifactStore> {
        &self.inner.artifacts
    }

    pub(crate) fn access(&self) -> &AccessService {
        &self.inner.access
    }

    pub(crate) fn scans(&self) -> &ScanService {
        &self.inner.scans
    }

    pub(crate) fn limiter(&self) -> Option<&Arc<dyn RateLimiter>> {
        self.inner.limiter.as_ref()
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn worker(&self) -> Option<&Arc<WorkerPool>> {
        self.inner.worker.as_ref()
    }

    pub(crate) fn redis_health(&self) -> Option<&Arc<dyn HealthCheck>> {
        self.inner.redis_health.as_ref()
    }

    pub(crate) fn browser_health(&self) -> Option<serde_json::Value> {
        self.inner.browser_health.as_ref().map(|f| f())
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}
