//! Results of external URLs kept across scans.
//!
//! Many sites of one tenant link to the same external pages (a framework's docs, a CDN);
//! a worker process keeps one [`ExternalCache`] and hands it to every run, so each external
//! URL is fetched once per TTL rather than once per scan. Only URLs outside the scanned
//! site's origin are cached: the site's own pages change with each deploy and are always
//! fetched, and only they receive the site's headers and cookies, so cached external
//! results never depend on one tenant's credentials.

use crate::checker::CheckResult;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A bounded, TTL-expiring cache of external check results. Cheap to clone (shared).
#[derive(Clone)]
pub struct ExternalCache {
    inner: moka::sync::Cache<String, Arc<CheckResult>>,
}

impl fmt::Debug for ExternalCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalCache")
            .field("entries", &self.inner.entry_count())
            .finish()
    }
}

impl ExternalCache {
    /// A cache of at most `capacity` URLs, each kept for `ttl`.
    #[must_use]
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            inner: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// How many URLs are cached (approximate: expiry is lazy).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }

    /// Whether the cache is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.inner.invalidate_all();
    }

    pub(crate) fn get(&self, url: &str) -> Option<Arc<CheckResult>> {
        self.inner.get(url)
    }

    pub(crate) fn insert(&self, url: String, result: Arc<CheckResult>) {
        self.inner.insert(url, result);
    }
}
