//! Progress reporting, for the CLI's progress bar and the worker's heartbeat.

/// Where a run is. Counts only grow, except `queued` and `in_flight`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    /// Pages fetched and parsed for links.
    pub pages_crawled: u64,
    /// Unique URLs found so far.
    pub links_found: u64,
    /// Unique URLs whose check has finished.
    pub links_checked: u64,
    /// Checks waiting for a slot (including retries waiting for their backoff).
    pub queued: u64,
    /// Requests in flight.
    pub in_flight: u64,
    /// Checks that ended broken so far (fragments are only known at the end).
    pub broken: u64,
}

/// Receives progress updates. Called from the run's coordinating task after every
/// finished check, so an implementation must be quick (store, or draw at its own pace).
pub trait Progress: Send + Sync {
    /// The latest state.
    fn update(&self, snapshot: &ProgressSnapshot);
}

impl<F: Fn(&ProgressSnapshot) + Send + Sync> Progress for F {
    fn update(&self, snapshot: &ProgressSnapshot) {
        self(snapshot);
    }
}

/// Ignores progress.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _: &ProgressSnapshot) {}
}
