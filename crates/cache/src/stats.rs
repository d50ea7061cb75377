//! Hit and miss counters per cache and level.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one named cache. Plain atomics, read when metrics are scraped: cheaper on the
/// request path than a labelled metrics call per lookup.
#[derive(Debug, Default)]
pub struct CacheStats {
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    loads: AtomicU64,
    misses: AtomicU64,
    l2_errors: AtomicU64,
}

/// A copy of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStatsSnapshot {
    /// Answered from the in-process L1.
    pub l1_hits: u64,
    /// Answered from the shared L2.
    pub l2_hits: u64,
    /// Computed by the load function (the store) after missing both levels.
    pub loads: u64,
    /// Looked up without a load function and not found.
    pub misses: u64,
    /// L2 operations that failed (and were answered without it).
    pub l2_errors: u64,
}

impl CacheStatsSnapshot {
    /// All lookups.
    #[must_use]
    pub const fn total(&self) -> u64 {
        self.l1_hits + self.l2_hits + self.loads + self.misses
    }

    /// Share of lookups answered by L1 (0 when there were none).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn l1_hit_rate(&self) -> f64 {
        let t = self.total();
        if t == 0 {
            0.0
        } else {
            self.l1_hits as f64 / t as f64
        }
    }

    /// Share of lookups answered by L2.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn l2_hit_rate(&self) -> f64 {
        let t = self.total();
        if t == 0 {
            0.0
        } else {
            self.l2_hits as f64 / t as f64
        }
    }

    /// Share of lookups answered by either cache level.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn hit_rate(&self) -> f64 {
        let t = self.total();
        if t == 0 {
            0.0
        } else {
            (self.l1_hits + self.l2_hits) as f64 / t as f64
        }
    }
}

impl CacheStats {
    pub(crate) fn l1_hit(&self) {
        self.l1_hits.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn l2_hit(&self) {
        self.l2_hits.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn load(&self) {
        self.loads.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn l2_error(&self) {
        self.l2_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The current counts.
    #[must_use]
    pub fn snapshot(&self) -> CacheStatsSnapshot {
        CacheStatsSnapshot {
            l1_hits: self.l1_hits.load(Ordering::Relaxed),
            l2_hits: self.l2_hits.load(Ordering::Relaxed),
            loads: self.loads.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            l2_errors: self.l2_errors.load(Ordering::Relaxed),
        }
    }
}
