//! The executors this binary registers with its worker pool.

use sentinel_config::Settings;
use sentinel_links::{EgressPolicy, ExternalCache};
use sentinel_store::Store;
use sentinel_store::artifacts::ArtifactStore;
use sentinel_worker::ExecutorRegistry;
use sentinel_worker::executors::BrokenLinksExecutor;
use std::sync::Arc;
use std::time::Duration;

/// Every check type this build can run.
pub(super) async fn registry(
    settings: &Settings,
    _store: &Arc<dyn Store>,
    _artifacts: &Arc<dyn ArtifactStore>,
) -> anyhow::Result<ExecutorRegistry> {
    // The SSRF guard refuses private, loopback, link-local, metadata and other special
    // addresses unless the configuration opens a range (`SENTINEL_SCAN_ALLOW`).
    let egress = EgressPolicy::new().allow_all(settings.scan_allow.iter().copied());
    let cache = ExternalCache::new(
        settings.links.external_cache_capacity,
        Duration::from_secs(settings.links.external_cache_ttl_secs),
    );
    let links = BrokenLinksExecutor::new(egress, cache, settings.links.user_agent.clone());
    Ok(ExecutorRegistry::new().with(Arc::new(links)))
}
