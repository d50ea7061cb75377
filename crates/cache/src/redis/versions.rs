//! Per-site cache versions in Redis: `INCR` moves a site to a new version, which drops all
//! of its cached scan results at once (their keys carry the version) without `KEYS` or
//! `SCAN`: O(1) and invisible to other clients, where the guide's `KEYS scan:{site}:*`
//! blocks Redis for the whole keyspace and, in a cluster, misses other nodes' keys.

use super::Redis;
use crate::versions::SiteVersions;
use async_trait::async_trait;
use dashmap::DashMap;
use redis::AsyncCommands;
use sentinel_core::SiteId;
use std::time::{Duration, Instant};

/// How long a process reuses a version it read without asking Redis again. Invalidations
/// reach other processes through the invalidation bus within milliseconds ([`forget`]);
/// this only bounds how stale a process can be if such a message is lost.
///
/// [`forget`]: SiteVersions::forget
pub const LOCAL_VERSION_TTL: Duration = Duration::from_secs(5);

/// [`SiteVersions`] shared through Redis (`qa:ver:{site}`; the site id is a hash tag, so the
/// version lives in the same Cluster slot as the site's cached results).
///
/// Every scan submission needs its site's version, so a process keeps the versions it read
/// for [`LOCAL_VERSION_TTL`] instead of paying a Redis round trip per request (on the dedup
/// path that round trip was a third of the cost of a request). A bump is seen at once by
/// the process that made it, and by the others as soon as its invalidation message arrives
/// (the API calls [`SiteVersions::forget`] on receipt).
///
/// While Redis is unreachable, lookups answer with the last version seen (results cached
/// in L1 under it stay usable), and an invalidation that cannot be recorded is kept as a
/// local override (a version no shared entry carries, so this process stops reusing the
/// site's results at once) and written to Redis as soon as it answers again, so that it is
/// not lost for the rest of the fleet.
#[derive(Debug)]
pub struct RedisSiteVersions {
    redis: Redis,
    /// The last version read or written per site, and until when it may be reused.
    seen: DashMap<SiteId, (u64, Instant)>,
    /// Sites whose bump could not be recorded yet, with their local override version.
    pending: DashMap<SiteId, u64>,
}

impl RedisSiteVersions {
    /// Versions in `redis`.
    #[must_use]
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            seen: DashMap::new(),
            pending: DashMap::new(),
        }
    }

    fn key(site: SiteId) -> String {
        Redis::key(&format!("ver:{{{site}}}"))
    }

    fn remember(&self, site: SiteId, version: u64) {
        let now = Instant::now();
        if self.seen.len() > 100_000 {
            // Bound memory under very many sites: forget the stale ones.
            self.seen.retain(|_, (_, fresh_until)| *fresh_until > now);
        }
        self.seen.insert(site, (version, now + LOCAL_VERSION_TTL));
    }

    async fn incr(&self, site: SiteId) -> Result<u64, crate::RemoteError> {
        let key = Self::key(site);
        let v = self
            .redis
            .call(|mut c| async move { c.incr::<_, _, u64>(key, 1u64).await })
            .await?;
        self.remember(site, v);
        Ok(v)
    }
}

#[async_trait]
impl SiteVersions for RedisSiteVersions {
    async fn current(&self, site: SiteId) -> u64 {
        if let Some(override_version) = self.pending.get(&site).map(|v| *v) {
            // A bump is owed to the fleet: pay it now if Redis is back.
            return match self.incr(site).await {
                Ok(v) => {
                    self.pending.remove(&site);
                    tracing::info!(site = %site, "deferred cache invalidation recorded");
                    v
                }
                Err(_) => override_version,
            };
        }
        let last = self.seen.get(&site).map(|e| *e);
        if let Some((v, fresh_until)) = last
            && Instant::now() < fresh_until
        {
            return v;
        }
        let key = Self::key(site);
        match self
            .redis
            .call(|mut c| async move { c.get::<_, Option<u64>>(key).await })
            .await
        {
            Ok(v) => {
                let v = v.unwrap_or(0);
                self.remember(site, v);
                v
            }
            Err(_) => last.map_or(0, |(v, _)| v),
        }
    }

    async fn bump(&self, site: SiteId) -> u64 {
        match self.incr(site).await {
            Ok(v) => {
                self.pending.remove(&site);
                v
            }
            Err(e) => {
                // Random with the top bit set: no INCR ever reaches it, so no shared entry
                // carries it.
                let v = rand::random::<u64>() | (1 << 63);
                self.pending.insert(site, v);
                tracing::warn!(site = %site, error = %e,
                    "cache invalidation not shared yet (Redis unavailable); applied in this process and retried");
                v
            }
        }
    }

    fn forget(&self, site: SiteId) {
        // Keep the value as the fallback for an outage, but make the next lookup ask Redis.
        if let Some(mut e) = self.seen.get_mut(&site) {
            e.1 = Instant::now();
        }
    }
}
