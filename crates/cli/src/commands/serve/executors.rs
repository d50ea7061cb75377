//! The executors this binary registers with its worker pool.

use sentinel_config::{BalanceStrategy, Settings};
use sentinel_links::{EgressPolicy, ExternalCache};
use sentinel_resilience::Strategy;
use sentinel_store::Store;
use sentinel_store::artifacts::ArtifactStore;
use sentinel_visual::{BrowserSource, PoolConfig};
use sentinel_worker::ExecutorRegistry;
use sentinel_worker::executors::{BrokenLinksExecutor, VisualExecutor};
use std::sync::Arc;
use std::time::Duration;

/// The registered executors, and the visual one for health reports and shutdown.
pub(super) struct Executors {
    pub registry: ExecutorRegistry,
    pub visual: Arc<VisualExecutor>,
}

/// Every check type this build can run.
pub(super) async fn registry(
    settings: &Settings,
    store: &Arc<dyn Store>,
    artifacts: &Arc<dyn ArtifactStore>,
) -> anyhow::Result<Executors> {
    // The SSRF guard refuses private, loopback, link-local, metadata and other special
    // addresses unless the configuration opens a range (`SENTINEL_SCAN_ALLOW`); the link
    // checker and Chromium's own requests go through the same policy.
    let egress = EgressPolicy::new().allow_all(settings.scan_allow.iter().copied());
    let cache = ExternalCache::new(
        settings.links.external_cache_capacity,
        Duration::from_secs(settings.links.external_cache_ttl_secs),
    );
    let links = BrokenLinksExecutor::new(egress.clone(), cache, settings.links.user_agent.clone());
    let guard = sentinel_netguard::Guard::with_system_resolver(egress)?;
    let visual = Arc::new(VisualExecutor::new(
        pool_config(settings, Arc::new(guard)),
        store.clone(),
        artifacts.clone(),
    ));
    let registry = ExecutorRegistry::new()
        .with(Arc::new(links))
        .with(visual.clone());
    Ok(Executors { registry, visual })
}

fn pool_config(settings: &Settings, egress: Arc<dyn sentinel_visual::EgressCheck>) -> PoolConfig {
    let b = &settings.browser;
    let mut config = PoolConfig::new(egress);
    let local = usize::try_from(b.instances).unwrap_or(1);
    config.instances = std::iter::repeat_n(BrowserSource::Local, local)
        .chain(
            b.remote_endpoints
                .iter()
                .map(|url| BrowserSource::Remote { url: url.clone() }),
        )
        .collect();
    if let Some(executable) = &b.executable {
        config.executable.clone_from(executable);
    }
    config.pages_per_browser = usize::try_from(b.pages_per_instance).unwrap_or(1);
    config.strategy = match b.strategy {
        BalanceStrategy::RoundRobin => Strategy::RoundRobin,
        BalanceStrategy::LeastConnections => Strategy::LeastConnections,
        BalanceStrategy::WeightedResponseTime => Strategy::WeightedResponseTime,
    };
    config.breaker.consecutive_failures = Some(b.breaker_failures.max(1));
    config.breaker.reset_timeout = Duration::from_secs(b.breaker_reset_secs);
    config.breaker.call_timeout = Some(Duration::from_secs(b.capture_timeout_secs));
    config.max_full_page_height = b.max_full_page_height;
    config
}
