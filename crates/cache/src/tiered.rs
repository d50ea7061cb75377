//! The typed multi-level cache.

use crate::l1::TtlCache;
use crate::remote::RemoteCache;
use crate::stats::CacheStats;
use dashmap::DashMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// A key of a [`Tiered`] cache: typed for L1 (no formatting on the hot path), rendered to a
/// string only when the shared L2 is consulted.
pub trait CacheKey: Eq + Hash + Clone + Send + Sync + 'static {
    /// The L2 key (without the backend's global prefix), e.g. `perm:{user}:{site}`.
    fn remote_key(&self) -> String;
}

/// L1 → L2 → load, with per-process single-flight on misses.
pub struct Tiered<K, V> {
    name: &'static str,
    l1: TtlCache<K, V>,
    remote: Option<Arc<dyn RemoteCache>>,
    stats: Arc<CacheStats>,
    inflight: DashMap<K, Arc<OnceCell<V>>>,
}

impl<K: CacheKey, V: Clone> std::fmt::Debug for Tiered<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiered")
            .field("name", &self.name)
            .field("l1", &self.l1)
            .finish()
    }
}

impl<K, V> Tiered<K, V>
where
    K: CacheKey,
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    /// A cache named `name` (for metrics), with an L1 of `capacity` entries that die after
    /// `idle` without a read, and an optional shared L2.
    #[must_use]
    pub fn new(
        name: &'static str,
        capacity: u64,
        idle: Duration,
        remote: Option<Arc<dyn RemoteCache>>,
    ) -> Self {
        Self {
            name,
            l1: TtlCache::new(capacity, Some(idle)),
            remote,
            stats: Arc::new(CacheStats::default()),
            inflight: DashMap::new(),
        }
    }

    /// The cache's name.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Its counters.
    #[must_use]
    pub fn stats(&self) -> &Arc<CacheStats> {
        &self.stats
    }

    /// Whether a shared L2 is configured.
    #[must_use]
    pub fn has_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// The L1 only (no L2 round trip): the fast path for values that are always written
    /// through this process or that may be slightly stale.
    pub fn get_local(&self, key: &K) -> Option<V> {
        let v = self.l1.get(key);
        if v.is_some() {
            self.stats.l1_hit();
        }
        v
    }

    /// Looks a key up in L1, then L2 (filling L1). No load on a miss.
    pub async fn get(&self, key: &K, ttl: Duration) -> Option<V> {
        if let Some(v) = self.l1.get(key) {
            self.stats.l1_hit();
            return Some(v);
        }
        if let Some(v) = self.get_remote(key).await {
            return Some(self.l2_hit(key, v, ttl));
        }
        self.stats.miss();
        None
    }

    async fn get_remote(&self, key: &K) -> Option<V> {
        let remote = self.remote.as_ref()?;
        match remote.get(&key.remote_key()).await {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(cache = self.name, error = %e, "undecodable L2 entry ignored");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                self.stats.l2_error();
                tracing::debug!(cache = self.name, error = %e, "L2 read failed; continuing without it");
                None
            }
        }
    }

    /// Looks a key up in L1, then L2, else runs `load` and stores its value in both levels
    /// (`ttl` is the entry's lifetime; L1 also drops it after its idle time). Concurrent
    /// misses of one key in this process share a single load.
    pub async fn get_or_load<E, F, Fut>(&self, key: &K, ttl: Duration, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.single_flight(key, || async {
            if let Some(v) = self.get_remote(key).await {
                return Ok(self.l2_hit(key, v, ttl));
            }
            let v = load().await?;
            self.stats.load();
            self.store(key, &v, ttl).await;
            Ok(v)
        })
        .await
    }

    /// Like [`get_or_load`](Self::get_or_load), for a value that exists before it is durable
    /// (a new scan's id, known before its row commits). On an L1 miss, `make` returns a
    /// value (or refuses), which is offered to L2 in one atomic step that also returns the
    /// value L2 already holds, if any: a value found there is the answer (and `persist` is
    /// not run); otherwise `persist` makes the new value durable. A miss costs one round trip
    /// to L2 before `persist`, not a read and a write, and of two processes that miss at once
    /// only one creates. L1 takes the value only once `persist` succeeded; a failed
    /// `persist` takes the L2 entry back. Until the value is durable, another process may
    /// find it in L2: its reader must treat a value it cannot resolve yet as stale (the
    /// scan service then starts a scan of its own). When `make` refuses, a value in L2 is
    /// still an answer.
    pub async fn get_or_create<E, M, P, Fut>(
        &self,
        key: &K,
        ttl: Duration,
        make: M,
        persist: P,
    ) -> Result<V, E>
    where
        M: FnOnce() -> Result<V, E>,
        P: FnOnce(V) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        self.single_flight(key, || async {
            let v = match make() {
                Ok(v) => v,
                Err(refused) => {
                    return match self.get_remote(key).await {
                        Some(v) => Ok(self.l2_hit(key, v, ttl)),
                        None => Err(refused),
                    };
                }
            };
            if let Some(held) = self.claim_remote(key, &v, ttl).await {
                return Ok(self.l2_hit(key, held, ttl));
            }
            match persist(v.clone()).await {
                Ok(()) => {
                    self.stats.load();
                    self.l1.insert(key.clone(), v.clone(), ttl);
                    Ok(v)
                }
                Err(e) => {
                    self.invalidate(key).await;
                    Err(e)
                }
            }
        })
        .await
    }

    /// A value found in L2: counted, and kept in L1 for `ttl`.
    fn l2_hit(&self, key: &K, v: V, ttl: Duration) -> V {
        self.stats.l2_hit();
        self.l1.insert(key.clone(), v.clone(), ttl);
        v
    }

    /// Offers `value` to L2 under `key`; returns the value L2 already held instead, if any.
    /// `None` also when there is no L2, it failed (counted), or it held an undecodable
    /// entry (overwritten): the caller goes on as the key's creator.
    async fn claim_remote(&self, key: &K, value: &V, ttl: Duration) -> Option<V> {
        let remote = self.remote.as_ref()?;
        let bytes = match serde_json::to_vec(value) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(cache = self.name, error = %e, "value not serialisable for L2");
                return None;
            }
        };
        match remote.set_if_absent(&key.remote_key(), &bytes, ttl).await {
            // Our own value back: a client that retried the write after a lost answer
            // (a cluster redirection) reads what its first attempt wrote.
            Ok(None) => None,
            Ok(Some(held)) if held == bytes => None,
            Ok(Some(held)) => match serde_json::from_slice(&held) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(cache = self.name, error = %e, "undecodable L2 entry replaced");
                    self.store_remote(key, value, ttl).await;
                    None
                }
            },
            Err(e) => {
                self.stats.l2_error();
                tracing::debug!(cache = self.name, error = %e, "L2 claim failed; continuing without it");
                None
            }
        }
    }

    /// L1, then (once per key in this process at a time) `on_miss`.
    async fn single_flight<E, F, Fut>(&self, key: &K, on_miss: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if let Some(v) = self.l1.get(key) {
            self.stats.l1_hit();
            return Ok(v);
        }
        let cell = self
            .inflight
            .entry(key.clone())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let result = cell.get_or_try_init(on_miss).await.cloned();
        self.inflight.remove_if(key, |_, c| Arc::ptr_eq(c, &cell));
        result
    }

    /// Stores a value in both levels.
    pub async fn insert(&self, key: &K, value: V, ttl: Duration) {
        self.store(key, &value, ttl).await;
    }

    async fn store(&self, key: &K, value: &V, ttl: Duration) {
        self.l1.insert(key.clone(), value.clone(), ttl);
        self.store_remote(key, value, ttl).await;
    }

    /// Writes a value to L2 (if any); failures only count.
    async fn store_remote(&self, key: &K, value: &V, ttl: Duration) {
        if let Some(remote) = &self.remote {
            match serde_json::to_vec(value) {
                Ok(bytes) => {
                    if let Err(e) = remote.set(&key.remote_key(), &bytes, ttl).await {
                        self.stats.l2_error();
                        tracing::debug!(cache = self.name, error = %e, "L2 write failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(cache = self.name, error = %e, "value not serialisable for L2")
                }
            }
        }
    }

    /// Stores a value in L1 only.
    pub fn insert_local(&self, key: K, value: V, ttl: Duration) {
        self.l1.insert(key, value, ttl);
    }

    /// Drops a key from both levels.
    pub async fn invalidate(&self, key: &K) {
        self.l1.remove(key);
        if let Some(remote) = &self.remote
            && let Err(e) = remote.del(&key.remote_key()).await
        {
            self.stats.l2_error();
            tracing::debug!(cache = self.name, error = %e, "L2 delete failed");
        }
    }

    /// Drops a key from L1 only (another process already changed L2).
    pub fn invalidate_local(&self, key: &K) {
        self.l1.remove(key);
    }

    /// Drops every L1 entry for which `keep` is false.
    pub fn retain_local(&self, keep: impl Fn(&K, &V) -> bool) {
        self.l1.retain(keep);
    }

    /// Entries in L1.
    #[must_use]
    pub fn local_len(&self) -> usize {
        self.l1.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Clone, PartialEq, Eq, Hash)]
    struct K(u32);
    impl CacheKey for K {
        fn remote_key(&self) -> String {
            format!("k:{}", self.0)
        }
    }

    #[tokio::test]
    async fn concurrent_misses_load_once() {
        let cache: Arc<Tiered<K, u32>> =
            Arc::new(Tiered::new("t", 100, Duration::from_secs(60), None));
        let loads = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, loads) = (cache.clone(), loads.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load(&K(1), Duration::from_secs(60), || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, ()>(7)
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(7));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        let s = cache.stats().snapshot();
        assert_eq!(s.loads, 1);
    }

    #[tokio::test]
    async fn failed_load_is_not_cached() {
        let cache: Tiered<K, u32> = Tiered::new("t", 100, Duration::from_secs(60), None);
        let r = cache
            .get_or_load(&K(1), Duration::from_secs(60), || async {
                Err::<u32, _>("down")
            })
            .await;
        assert_eq!(r, Err("down"));
        let r = cache
            .get_or_load(&K(1), Duration::from_secs(60), || async {
                Ok::<_, &str>(3)
            })
            .await;
        assert_eq!(r, Ok(3));
        assert_eq!(cache.get_local(&K(1)), Some(3));
        cache.invalidate(&K(1)).await;
        assert_eq!(cache.get_local(&K(1)), None);
    }

    /// An in-memory L2 (no expiry) for the tests.
    #[derive(Default)]
    struct MemRemote(parking_lot::Mutex<std::collections::HashMap<String, Vec<u8>>>);

    #[async_trait::async_trait]
    impl RemoteCache for MemRemote {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, crate::RemoteError> {
            Ok(self.0.lock().get(key).cloned())
        }
        async fn set(
            &self,
            key: &str,
            value: &[u8],
            _: Duration,
        ) -> Result<(), crate::RemoteError> {
            self.0.lock().insert(key.to_owned(), value.to_vec());
            Ok(())
        }
        async fn set_if_absent(
            &self,
            key: &str,
            value: &[u8],
            _: Duration,
        ) -> Result<Option<Vec<u8>>, crate::RemoteError> {
            let mut map = self.0.lock();
            if let Some(held) = map.get(key) {
                return Ok(Some(held.clone()));
            }
            map.insert(key.to_owned(), value.to_vec());
            Ok(None)
        }
        async fn del(&self, key: &str) -> Result<(), crate::RemoteError> {
            self.0.lock().remove(key);
            Ok(())
        }
        async fn get_many(
            &self,
            keys: &[String],
        ) -> Result<Vec<Option<Vec<u8>>>, crate::RemoteError> {
            let map = self.0.lock();
            Ok(keys.iter().map(|k| map.get(k).cloned()).collect())
        }
        async fn set_many(
            &self,
            items: &[(String, Vec<u8>)],
            _: Duration,
        ) -> Result<(), crate::RemoteError> {
            let mut map = self.0.lock();
            for (k, v) in items {
                map.insert(k.clone(), v.clone());
            }
            Ok(())
        }
    }

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_created_value_is_shared_while_it_persists_and_local_once_durable() {
        let remote = Arc::new(MemRemote::default());
        let cache: Tiered<K, u32> = Tiered::new("t", 100, TTL, Some(remote.clone()));
        let (release, durable) = tokio::sync::oneshot::channel::<()>();
        let create = cache.get_or_create(
            &K(1),
            TTL,
            || Ok::<_, &str>(9),
            |v| async move {
                assert_eq!(v, 9);
                durable.await.map_err(|_| "dropped")
            },
        );
        let observe = async {
            // While the value persists: in L2 already, not in L1.
            for _ in 0..100 {
                if remote.0.lock().contains_key("k:1") {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert_eq!(
                remote.0.lock().get("k:1").map(Vec::as_slice),
                Some(&b"9"[..])
            );
            assert_eq!(cache.get_local(&K(1)), None);
            release.send(()).unwrap();
        };
        let (created, ()) = tokio::join!(create, observe);
        assert_eq!(created, Ok(9));
        assert_eq!(cache.get_local(&K(1)), Some(9));
        assert_eq!(cache.stats().snapshot().loads, 1);
        // A hit neither makes nor persists.
        let again = cache
            .get_or_create(
                &K(1),
                TTL,
                || Err("made again"),
                |_| async { Err("persisted again") },
            )
            .await;
        assert_eq!(again, Ok(9));
    }

    #[tokio::test]
    async fn a_failed_persist_takes_the_shared_entry_back() {
        let remote = Arc::new(MemRemote::default());
        let cache: Tiered<K, u32> = Tiered::new("t", 100, TTL, Some(remote.clone()));
        let r = cache
            .get_or_create(&K(2), TTL, || Ok(5), |_| async { Err("commit failed") })
            .await;
        assert_eq!(r, Err("commit failed"));
        assert!(remote.0.lock().is_empty(), "the L2 entry was taken back");
        assert_eq!(cache.get_local(&K(2)), None);
    }

    #[tokio::test]
    async fn a_refused_make_writes_nothing() {
        let remote = Arc::new(MemRemote::default());
        let cache: Tiered<K, u32> = Tiered::new("t", 100, TTL, Some(remote.clone()));
        let persisted = AtomicU32::new(0);
        let r = cache
            .get_or_create(
                &K(3),
                TTL,
                || Err("queue full"),
                |_| async {
                    persisted.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                },
            )
            .await;
        assert_eq!(r, Err("queue full"));
        assert_eq!(persisted.load(Ordering::SeqCst), 0);
        assert!(remote.0.lock().is_empty());
    }

    #[tokio::test]
    async fn another_process_value_in_l2_is_reused_not_made() {
        let remote = Arc::new(MemRemote::default());
        remote.0.lock().insert("k:4".into(), b"44".to_vec());
        let cache: Tiered<K, u32> = Tiered::new("t", 100, TTL, Some(remote.clone()));
        let r = cache
            .get_or_create(&K(4), TTL, || Err("made"), |_| async { Err("persisted") })
            .await;
        assert_eq!(r, Ok(44));
        assert_eq!(cache.get_local(&K(4)), Some(44));
    }

    #[tokio::test]
    async fn a_value_held_in_l2_is_the_answer_even_when_one_was_made() {
        let remote = Arc::new(MemRemote::default());
        remote.0.lock().insert("k:5".into(), b"55".to_vec());
        let cache: Tiered<K, u32> = Tiered::new("t", 100, TTL, Some(remote.clone()));
        let r = cache
            .get_or_create(&K(5), TTL, || Ok(6), |_| async { Err("persisted") })
            .await;
        assert_eq!(r, Ok(55));
        assert_eq!(
            remote.0.lock().get("k:5").map(Vec::as_slice),
            Some(&b"55"[..])
        );
        assert_eq!(cache.stats().snapshot().l2_hits, 1);
    }

    #[tokio::test]
    async fn of_two_processes_that_miss_at_once_only_one_creates() {
        let remote = Arc::new(MemRemote::default());
        let a: Tiered<K, u32> = Tiered::new("t", 100, TTL, Some(remote.clone()));
        let b: Tiered<K, u32> = Tiered::new("t", 100, TTL, Some(remote.clone()));
        let persisted = AtomicU32::new(0);
        let persist = |_| async {
            persisted.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok::<_, &str>(())
        };
        let (ra, rb) = tokio::join!(
            a.get_or_create(&K(6), TTL, || Ok(1), persist),
            b.get_or_create(&K(6), TTL, || Ok(2), persist),
        );
        assert_eq!(ra, rb);
        assert_eq!(persisted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn our_own_value_back_from_l2_still_persists() {
        let remote = Arc::new(MemRemote::default());
        // As if a retried claim found what its first attempt wrote.
        remote.0.lock().insert("k:7".into(), b"7".to_vec());
        let cache: Tiered<K, u32> = Tiered::new("t", 100, TTL, Some(remote.clone()));
        let persisted = AtomicU32::new(0);
        let r = cache
            .get_or_create(
                &K(7),
                TTL,
                || Ok(7),
                |_| async {
                    persisted.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, &str>(())
                },
            )
            .await;
        assert_eq!(r, Ok(7));
        assert_eq!(persisted.load(Ordering::SeqCst), 1);
    }
}
