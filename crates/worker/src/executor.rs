//! The interface between the runtime and the checks.

use async_trait::async_trait;
use sentinel_core::{CheckType, NewFinding, Scan, Site};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Everything an executor gets for one run.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// The scan (status `running`).
    pub scan: Scan,
    /// Its site.
    pub site: Site,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// Cancelled when the run must stop (lease lost, shutdown, time limit): stop promptly.
    pub cancel: CancellationToken,
}

/// What a successful run produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScanOutcome {
    /// The scan's summary (stored on the scan, returned by the API).
    pub summary: Value,
    /// The findings (stored in bulk with the completion).
    pub findings: Vec<NewFinding>,
}

/// Why a run failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// Worth another attempt (a browser crashed, the site timed out, a dependency is down).
    #[error("{0}")]
    Retryable(String),
    /// Another attempt would fail the same way (the scan's input cannot work).
    #[error("{0}")]
    Permanent(String),
}

/// A check. One executor per [`CheckType`]; the runtime only leases jobs of the types it
/// has executors for.
#[async_trait]
pub trait ScanExecutor: Send + Sync + 'static {
    /// The check type it runs.
    fn check_type(&self) -> CheckType;

    /// Runs one scan.
    async fn execute(&self, ctx: &JobContext) -> Result<ScanOutcome, ExecError>;
}

/// Executors by check type.
#[derive(Clone, Default)]
pub struct ExecutorRegistry {
    executors: HashMap<CheckType, Arc<dyn ScanExecutor>>,
}

impl std::fmt::Debug for ExecutorRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.check_types()).finish()
    }
}

impl ExecutorRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an executor (replacing one of the same check type).
    #[must_use]
    pub fn with(mut self, executor: Arc<dyn ScanExecutor>) -> Self {
        self.executors.insert(executor.check_type(), executor);
        self
    }

    /// The executor of a check type.
    #[must_use]
    pub fn get(&self, check_type: CheckType) -> Option<&Arc<dyn ScanExecutor>> {
        self.executors.get(&check_type)
    }

    /// The registered check types, in a stable order.
    #[must_use]
    pub fn check_types(&self) -> Vec<CheckType> {
        let mut types: Vec<CheckType> = self.executors.keys().copied().collect();
        types.sort();
        types
    }
}
