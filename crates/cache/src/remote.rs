//! The shared L2 interface (Redis in distributed mode).

use async_trait::async_trait;
use std::time::Duration;

/// Errors of the shared cache. Callers treat every one as "L2 unavailable" and carry on
/// with L1 and the store: the cache is an accelerator, never the source of truth.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The backend could not be reached or did not answer in time.
    #[error("shared cache unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with an error.
    #[error("shared cache error: {0}")]
    Backend(String),
}

/// A shared key-value cache with expiry. Keys are full keys (the implementation adds its own
/// prefix, `qa:` for Redis).
#[async_trait]
pub trait RemoteCache: Send + Sync + 'static {
    /// Reads a value.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RemoteError>;
    /// Writes a value that expires after `ttl`.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), RemoteError>;
    /// Writes a value that expires after `ttl` unless the key already holds one, and returns
    /// the value it holds (`None`: the key was free and now holds `value`). Atomic, one
    /// round trip: of two processes that claim a key at once, one writes and the other
    /// reads what was written.
    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, RemoteError>;
    /// Deletes a key.
    async fn del(&self, key: &str) -> Result<(), RemoteError>;
    /// Reads many values in one round trip (pipelined).
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, RemoteError>;
    /// Writes many values in one round trip (pipelined).
    async fn set_many(&self, items: &[(String, Vec<u8>)], ttl: Duration)
    -> Result<(), RemoteError>;
}
