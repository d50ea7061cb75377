//! Lease locks in Redis: `SET key token NX PX ttl`, renewal and release by compare-and-set
//! scripts that act only while the key still holds our token.
//!
//! One Redis node decides (in a cluster, the master of the key's slot). This is not
//! Redlock: a failover that loses the key lets a second holder in. That is acceptable here
//! because the lock only avoids duplicate work; the store's fenced job lease keeps results
//! correct (see [`crate::lock`]).

use super::Redis;
use super::remote::ttl_ms;
use super::scripts::{RELEASE_LOCK, RENEW_LOCK};
use crate::lock::{HeldLock, LockError, Locks, random_token};
use crate::remote::RemoteError;
use async_trait::async_trait;
use std::time::Duration;

/// [`Locks`] in Redis (`qa:` + key).
#[derive(Clone, Debug)]
pub struct RedisLocks {
    redis: Redis,
}

impl RedisLocks {
    /// Locks in `redis`.
    #[must_use]
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

fn unavailable(e: RemoteError) -> LockError {
    LockError::Unavailable(e.to_string())
}

#[async_trait]
impl Locks for RedisLocks {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<Option<HeldLock>, LockError> {
        let token = random_token();
        let full = Redis::key(key);
        let ms = ttl_ms(ttl);
        let value = token.clone();
        let set: Option<String> = self
            .redis
            .call(|mut c| async move {
                redis::cmd("SET")
                    .arg(full)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await
            .map_err(unavailable)?;
        Ok(set.map(|_| HeldLock::new(key.to_owned(), token)))
    }

    async fn renew(&self, lock: &HeldLock, ttl: Duration) -> Result<bool, LockError> {
        let full = Redis::key(lock.key());
        let token = lock.token().to_owned();
        let ms = ttl_ms(ttl);
        let n: i64 = self
            .redis
            .call(|mut c| async move {
                RENEW_LOCK
                    .key(full)
                    .arg(token)
                    .arg(ms)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    async fn release(&self, lock: &HeldLock) -> Result<bool, LockError> {
        let full = Redis::key(lock.key());
        let token = lock.token().to_owned();
        let n: i64 = self
            .redis
            .call(|mut c| async move {
                RELEASE_LOCK
                    .key(full)
                    .arg(token)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    fn distributed(&self) -> bool {
        true
    }
}
