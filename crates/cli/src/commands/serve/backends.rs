//! The shared backends of the API: in-process by default; Redis (single node or Cluster)
//! when `REDIS_URL` is set.

use sentinel_api::HealthCheck;
use sentinel_cache::{InvalidationBus, RateLimiter, RemoteCache, SiteVersions};
use sentinel_config::Settings;
use std::sync::Arc;

/// What the API shares with other processes. `None` fields select the in-process defaults.
#[derive(Default)]
pub(super) struct Shared {
    pub remote_cache: Option<Arc<dyn RemoteCache>>,
    pub limiter: Option<Arc<dyn RateLimiter>>,
    pub versions: Option<Arc<dyn SiteVersions>>,
    pub bus: Option<Arc<dyn InvalidationBus>>,
    pub redis_health: Option<Arc<dyn HealthCheck>>,
}

/// Builds the shared backends the settings ask for.
pub(super) async fn shared(settings: &Settings) -> anyhow::Result<Shared> {
    if settings.redis_url.is_some() {
        anyhow::bail!("REDIS_URL is set, but this build runs in-process backends only");
    }
    Ok(Shared::default())
}
