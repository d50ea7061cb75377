//! The in-process L1 cache.
//!
//! quick_cache (S3-FIFO, sharded) holds the entries; it has no notion of time, so each entry
//! carries its absolute deadline and its last-read instant, checked on read. moka was the
//! first choice but has an open report of eviction stalling under sustained re-insertion
//! (moka#590), which is exactly the scan-dedup write pattern under load.

use quick_cache::sync::Cache;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Entry<V> {
    value: V,
    /// Milliseconds since the cache's epoch after which the entry is dead.
    expires_at: u64,
    /// Milliseconds since the cache's epoch of the last read (for time-to-idle).
    last_read: AtomicU64,
}

/// A bounded concurrent cache whose entries die at an absolute deadline (their TTL) or after
/// `idle` without a read, whichever comes first. Reading an entry refreshes its idle age.
pub struct TtlCache<K, V> {
    inner: Cache<K, Arc<Entry<V>>>,
    idle: Option<Duration>,
    epoch: Instant,
    /// Added to the clock: lets tests move time forward without sleeping.
    skew_ms: AtomicU64,
}

impl<K: Eq + Hash + Clone, V: Clone> std::fmt::Debug for TtlCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlCache")
            .field("len", &self.inner.len())
            .field("idle", &self.idle)
            .finish()
    }
}

impl<K, V> TtlCache<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    /// A cache of at most `capacity` entries; `idle` (if any) bounds how long an unread entry
    /// lives.
    #[must_use]
    pub fn new(capacity: u64, idle: Option<Duration>) -> Self {
        let capacity = usize::try_from(capacity.max(1)).unwrap_or(usize::MAX);
        Self {
            inner: Cache::new(capacity),
            idle,
            epoch: Instant::now(),
            skew_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(self.skew_ms.load(Ordering::Relaxed))
    }

    /// Moves this cache's clock forward (tests of expiry).
    #[doc(hidden)]
    pub fn advance_clock(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.skew_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// The value, if present and alive.
    pub fn get(&self, key: &K) -> Option<V> {
        self.get_by(key)
    }

    fn is_dead(&self, entry: &Entry<V>, now: u64) -> bool {
        if now >= entry.expires_at {
            return true;
        }
        match self.idle {
            Some(idle) => {
                let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
                now.saturating_sub(entry.last_read.load(Ordering::Relaxed)) >= idle_ms
            }
            None => false,
        }
    }

    /// Like [`TtlCache::get`], looked up by a borrowed form of the key (`&str` for a
    /// `Box<str>` key), so the hot path does not allocate a key to ask.
    pub fn get_by<Q>(&self, key: &Q) -> Option<V>
    where
        Q: std::hash::Hash + quick_cache::Equivalent<K> + ?Sized,
    {
        let entry = self.inner.get(key)?;
        let now = self.now_ms();
        if self.is_dead(&entry, now) {
            self.inner.remove_if(key, |e| Arc::ptr_eq(e, &entry));
            return None;
        }
        if self.idle.is_some() {
            entry.last_read.store(now, Ordering::Relaxed);
        }
        Some(entry.value.clone())
    }

    /// Stores a value that lives at most `ttl`.
    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        let now = self.now_ms();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let entry = Entry {
            value,
            expires_at: now.saturating_add(ttl_ms),
            last_read: AtomicU64::new(now),
        };
        self.inner.insert(key, Arc::new(entry));
    }

    /// Drops an entry.
    pub fn remove(&self, key: &K) {
        self.inner.remove(key);
    }

    /// Drops every entry for which `keep` is false.
    pub fn retain(&self, keep: impl Fn(&K, &V) -> bool) {
        self.inner.retain(|k, e| keep(k, &e.value));
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.inner.clear();
    }

    /// Entries held (including dead ones not yet read).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether it holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_and_idle_expire_entries() {
        let c: TtlCache<u32, &str> = TtlCache::new(10, Some(Duration::from_secs(60)));
        c.insert(1, "a", Duration::from_secs(300));
        c.insert(2, "b", Duration::from_secs(10));
        c.advance_clock(Duration::from_secs(11));
        assert_eq!(c.get(&1), Some("a"));
        assert_eq!(c.get(&2), None, "absolute TTL passed");
        for _ in 0..4 {
            c.advance_clock(Duration::from_secs(50));
            assert_eq!(c.get(&1), Some("a"), "reads keep it alive");
        }
        c.advance_clock(Duration::from_secs(61));
        assert_eq!(c.get(&1), None, "idle too long");
        c.insert(3, "c", Duration::from_secs(300));
        for _ in 0..10 {
            c.advance_clock(Duration::from_secs(50));
            let _ = c.get(&3);
        }
        assert_eq!(c.get(&3), None, "reads never extend past the TTL");
    }

    #[test]
    fn capacity_is_bounded() {
        let c: TtlCache<u32, u32> = TtlCache::new(100, None);
        for i in 0..10_000 {
            c.insert(i, i, Duration::from_secs(60));
        }
        assert!(c.len() <= 110, "{}", c.len());
    }
}
