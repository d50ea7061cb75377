//! The executors this binary registers with its worker pool.

use sentinel_config::Settings;
use sentinel_store::Store;
use sentinel_store::artifacts::ArtifactStore;
use sentinel_worker::ExecutorRegistry;
use std::sync::Arc;

/// Every check type this build can run.
pub(super) async fn registry(
    _settings: &Settings,
    _store: &Arc<dyn Store>,
    _artifacts: &Arc<dyn ArtifactStore>,
) -> anyhow::Result<ExecutorRegistry> {
    Ok(ExecutorRegistry::new())
}
