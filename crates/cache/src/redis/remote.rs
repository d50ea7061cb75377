//! The shared L2 cache on Redis.

use super::{Conn, Redis};
use crate::remote::{RemoteCache, RemoteError};
use async_trait::async_trait;
use redis::AsyncCommands;
use redis::cluster_routing::Slot;
use std::collections::HashMap;
use std::time::Duration;

/// [`RemoteCache`] on Redis: values are opaque bytes with a millisecond expiry.
#[derive(Clone, Debug)]
pub struct RedisCache {
    redis: Redis,
}

impl RedisCache {
    /// The L2 on `redis`.
    #[must_use]
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

pub(crate) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `SET key value PX ms` (`key` already prefixed).
fn set_px(key: &str, value: &[u8], ttl: Duration) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value).arg("PX").arg(ttl_ms(ttl));
    cmd
}

#[async_trait]
impl RemoteCache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        let key = Redis::key(key);
        self.redis
            .call(|mut c| async move { c.get(key).await })
            .await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), RemoteError> {
        let cmd = set_px(&Redis::key(key), value, ttl);
        self.redis
            .call(|mut c| async move { cmd.query_async::<()>(&mut c).await })
            .await
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        // `SET … PX ms NX GET` (Redis 7.0 or later): nil when it wrote, else the value the
        // key holds, left unchanged.
        let mut cmd = set_px(&Redis::key(key), value, ttl);
        cmd.arg("NX").arg("GET");
        self.redis
            .call(|mut c| async move { cmd.query_async::<Option<Vec<u8>>>(&mut c).await })
            .await
    }

    async fn del(&self, key: &str) -> Result<(), RemoteError> {
        let key = Redis::key(key);
        // UNLINK frees the value in a background thread: never a pause for a big entry.
        self.redis
            .call(|mut c| async move { c.unlink::<_, ()>(key).await })
            .await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, RemoteError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = keys.iter().map(|k| Redis::key(k)).collect();
        // One MGET. In a cluster the client splits it by slot, sends the parts to their
        // nodes in parallel and reassembles the answer in key order.
        self.redis
            .call(|mut c| async move {
                redis::cmd("MGET")
                    .arg(&keys)
                    .query_async::<Vec<Option<Vec<u8>>>>(&mut c)
                    .await
            })
            .await
    }

    async fn set_many(
        &self,
        items: &[(String, Vec<u8>)],
        ttl: Duration,
    ) -> Result<(), RemoteError> {
        if items.is_empty() {
            return Ok(());
        }
        // There is no MSET with an expiry: a pipeline of `SET … PX` does it in one round
        // trip. A cluster pipeline must stay within one slot, so there it is one pipeline
        // per slot, all sent at once.
        let mut groups: HashMap<Option<Slot>, redis::Pipeline> = HashMap::new();
        let cluster = self.redis.topology().is_cluster();
        for (key, value) in items {
            let key = Redis::key(key);
            let slot = cluster.then(|| Slot::for_key(&key));
            groups
                .entry(slot)
                .or_default()
                .add_command(set_px(&key, value, ttl))
                .ignore();
        }
        self.redis
            .call(|c: Conn| async move {
                let sends = groups.into_values().map(|pipe| {
                    let mut c = c.clone();
                    async move { pipe.exec_async(&mut c).await }
                });
                futures::future::try_join_all(sends).await.map(|_| ())
            })
            .await
    }
}
