//! The in-process L1 cache.
//!
//! quick_cache (S3-FIFO, sharded) holds the entries; it has no notion of time, so each entry
//! carries its absolute deadline and its last-read instant, checked on read. moka was the
//! first choice but has an open report of eviction stalling under sustained re-insertion
//! (moka#590), which is exactly the scan-dedup write pattern under load.
//!
//! Entries live inline in quick_cache's slab, not behind an `Arc`: a read is the table probe
//! and one slab entry, where the `Arc` added a third dependent load (and a reference-count
//! write) per lookup. `perf annotate` of `GET /api/scans/{id}` put most of the cache's time
//! on exactly those loads: four lookups per request, each on memory the network stack had
//! evicted since. The price is that a read cannot refresh the idle age in place; it writes
//! the age back (under the shard's write lock) only when the recorded one is more than
//! ⅛ of the idle time old ([`IDLE_SLACK`]), so an entry dies between 7/8 and all of its idle
//! time after its last read, and a hot key costs one write per ⅛ of the idle time.

use quick_cache::sync::{Cache, EntryAction};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The recorded last read may lag the real one by this share of the idle time (one eighth).
pub(crate) const IDLE_SLACK: u32 = 8;

#[derive(Clone)]
struct Entry<V> {
    value: V,
    /// The cache's clock (milliseconds) after which the entry is dead.
    expires_at: u64,
    /// The cache's clock (milliseconds) at the last recorded read (for time-to-idle).
    last_read: u64,
}

/// A bounded concurrent cache whose entries die at an absolute deadline (their TTL) or after
/// `idle` without a read, whichever comes first. Reading an entry refreshes its idle age
/// (to within [`IDLE_SLACK`]).
pub struct TtlCache<K, V> {
    inner: Cache<K, Entry<V>>,
    /// The idle time in milliseconds, and the age after which a read records itself.
    idle: Option<(u64, u64)>,
    /// Added to the clock: lets tests move time forward without sleeping.
    skew_ms: AtomicU64,
}

impl<K: Eq + Hash + Clone, V: Clone> std::fmt::Debug for TtlCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlCache")
            .field("len", &self.inner.len())
            .field("idle_ms", &self.idle.map(|(idle, _)| idle))
            .finish()
    }
}

/// Milliseconds on the kernel's coarse monotonic clock: a read of the vDSO's data page,
/// without the clock source the precise clock reads (`perf` put `clock_gettime` at 2 % of a
/// cached read's time, one call per lookup). It moves once per kernel tick (1–4 ms), plenty
/// for lifetimes of seconds.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn coarse_now_ms() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let ms = u64::try_from(t.tv_nsec).unwrap_or(0) / 1_000_000;
    secs.saturating_mul(1000).saturating_add(ms)
}

/// Elsewhere: the precise monotonic clock, from a process-wide start.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn coarse_now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    millis(START.get_or_init(std::time::Instant::now).elapsed())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
            idle: idle.map(|d| {
                let ms = millis(d);
                (ms, ms / u64::from(IDLE_SLACK))
            }),
            skew_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        coarse_now_ms().saturating_add(self.skew_ms.load(Ordering::Relaxed))
    }

    /// Moves this cache's clock forward (tests of expiry).
    #[doc(hidden)]
    pub fn advance_clock(&self, by: Duration) {
        self.skew_ms.fetch_add(millis(by), Ordering::Relaxed);
    }

    fn is_dead(&self, entry: &Entry<V>, now: u64) -> bool {
        now >= entry.expires_at
            || self
                .idle
                .is_some_and(|(idle, _)| now.saturating_sub(entry.last_read) >= idle)
    }

    /// The value, if present and alive.
    pub fn get(&self, key: &K) -> Option<V> {
        let entry = self.inner.get(key)?;
        let now = self.now_ms();
        if self.is_dead(&entry, now) {
            // Only if it is still dead: another thread may have stored a fresh value since.
            self.inner.remove_if(key, |e| self.is_dead(e, now));
            return None;
        }
        if let Some((_, step)) = self.idle
            && now.saturating_sub(entry.last_read) > step
        {
            // In place, so a value stored meanwhile is never overwritten with this older one.
            // A zero timeout: if the key is being loaded right now, skip the refresh.
            let _ = self.inner.entry(key, Some(Duration::ZERO), |_, e| {
                e.last_read = e.last_read.max(now);
                EntryAction::Retain(())
            });
        }
        Some(entry.value)
    }

    /// Stores a value that lives at most `ttl`.
    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        let now = self.now_ms();
        let entry = Entry {
            value,
            expires_at: now.saturating_add(millis(ttl)),
            last_read: now,
        };
        self.inner.insert(key, entry);
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
    fn a_read_records_itself_once_per_slack_step() {
        // idle 80 s: a read within 10 s (⅛) of the recorded one is not written back.
        let c: TtlCache<u32, u32> = TtlCache::new(10, Some(Duration::from_secs(80)));
        c.insert(1, 1, Duration::from_secs(3600));
        c.insert(2, 2, Duration::from_secs(3600));
        c.advance_clock(Duration::from_secs(9));
        assert_eq!(c.get(&1), Some(1), "read 9 s in: not recorded");
        c.advance_clock(Duration::from_secs(2));
        assert_eq!(c.get(&2), Some(2), "read 11 s in: recorded");
        // 80 s after insertion: 1's recorded read is the insertion, 2's is 11 s in.
        c.advance_clock(Duration::from_secs(69));
        assert_eq!(
            c.get(&1),
            None,
            "died 71 s after its last read (≥ ⅞ of idle)"
        );
        assert_eq!(c.get(&2), Some(2), "69 s after its recorded read");
    }

    #[test]
    fn a_dead_entry_read_is_dropped_and_a_fresh_one_kept() {
        let c: TtlCache<u32, &str> = TtlCache::new(10, None);
        c.insert(1, "old", Duration::from_secs(10));
        c.advance_clock(Duration::from_secs(11));
        assert_eq!(c.get(&1), None);
        assert_eq!(c.len(), 0, "the dead entry was removed on read");
        c.insert(1, "new", Duration::from_secs(10));
        assert_eq!(c.get(&1), Some("new"));
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
