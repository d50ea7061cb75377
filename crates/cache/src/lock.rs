//! Mutual exclusion across workers: "one site+options is never scanned twice at once".
//!
//! A lock here is a lease: it is held for a time-to-live and must be renewed while the work
//! goes on, so that a holder that dies (`kill -9`) frees it by itself. Ownership is proved by
//! a random token: renewal and release compare it before acting (compare-and-delete), so a
//! holder whose lock expired and was taken by someone else can never release or extend the
//! new holder's lock.
//!
//! A lease lock is not a correctness guarantee on its own: a holder paused for longer than
//! the TTL (a stopped process, a long GC-like stall) can wake up believing it still holds
//! it. Every write a scan makes is therefore also fenced by the store's job lease token
//! (`complete_job … WHERE lease_token = $token`); this lock only keeps two *different* jobs
//! for the same work from running side by side and wasting a worker slot and the target
//! site's patience.

use async_trait::async_trait;
use sentinel_core::{ScanOptions, SiteId};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A lock this process holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldLock {
    key: String,
    token: String,
}

impl HeldLock {
    /// A lock on `key` proved by `token`.
    #[must_use]
    pub(crate) fn new(key: String, token: String) -> Self {
        Self { key, token }
    }

    /// The locked key (without the backend's prefix).
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The random token that proves ownership.
    #[must_use]
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// A lock backend failed; the caller decides whether to go on without the lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The backend could not be reached or did not answer in time.
    #[error("lock backend unavailable: {0}")]
    Unavailable(String),
}

/// Lease locks.
#[async_trait]
pub trait Locks: Send + Sync + 'static {
    /// Takes `key` for `ttl` unless someone holds it. `Ok(None)`: held elsewhere.
    async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<Option<HeldLock>, LockError>;

    /// Extends a held lock to `ttl` from now. `Ok(false)`: it is no longer ours (it expired,
    /// and perhaps someone else holds it now).
    async fn renew(&self, lock: &HeldLock, ttl: Duration) -> Result<bool, LockError>;

    /// Releases a held lock if it is still ours. `Ok(false)`: it was not ours any more.
    async fn release(&self, lock: &HeldLock) -> Result<bool, LockError>;

    /// Whether locks are shared with other processes (Redis) or only within this one.
    fn distributed(&self) -> bool {
        false
    }
}

/// The lock key of a scan's work: its site, URL and normalised options. Two scans with the
/// same key would do the same work. The site id is a hash tag so that, in a Redis Cluster,
/// every key of one site lives in one slot.
#[must_use]
pub fn scan_lock_key(site: SiteId, url: &str, options: &ScanOptions) -> String {
    let mut h = Sha256::new();
    h.update(url.as_bytes());
    h.update([0u8]);
    h.update(options.canonical_json().as_bytes());
    let digest = h.finalize();
    format!("lock:scan:{{{site}}}:{}", hex::encode(&digest[..12]))
}

/// 128 random bits, hex: unguessable, so only the holder can renew or release.
pub(crate) fn random_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Locks within one process (the embedded default: one process runs every worker).
#[derive(Debug, Default)]
pub struct LocalLocks {
    held: parking_lot::Mutex<HashMap<String, (String, Instant)>>,
}

impl LocalLocks {
    /// No lock held.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Locks for LocalLocks {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<Option<HeldLock>, LockError> {
        let now = Instant::now();
        let mut held = self.held.lock();
        if held.len() > 10_000 {
            // Bound memory if holders die without releasing (a panic in a scan task).
            held.retain(|_, (_, until)| *until > now);
        }
        if held.get(key).is_some_and(|(_, until)| *until > now) {
            return Ok(None);
        }
        let token = random_token();
        held.insert(key.to_owned(), (token.clone(), now + ttl));
        Ok(Some(HeldLock::new(key.to_owned(), token)))
    }

    async fn renew(&self, lock: &HeldLock, ttl: Duration) -> Result<bool, LockError> {
        let now = Instant::now();
        let mut held = self.held.lock();
        match held.get_mut(&lock.key) {
            Some((token, until)) if *token == lock.token && *until > now => {
                *until = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, lock: &HeldLock) -> Result<bool, LockError> {
        let mut held = self.held.lock();
        match held.get(&lock.key) {
            Some((token, _)) if *token == lock.token => {
                held.remove(&lock.key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_and_only_the_holder_releases() {
        let locks = LocalLocks::new();
        let ttl = Duration::from_secs(30);
        let a = locks.try_acquire("k", ttl).await.unwrap().unwrap();
        assert!(locks.try_acquire("k", ttl).await.unwrap().is_none());
        assert!(locks.try_acquire("other", ttl).await.unwrap().is_some());
        let forged = HeldLock::new("k".into(), "not-the-token".into());
        assert!(!locks.release(&forged).await.unwrap());
        assert!(!locks.renew(&forged, ttl).await.unwrap());
        assert!(locks.renew(&a, ttl).await.unwrap());
        assert!(locks.release(&a).await.unwrap());
        assert!(!locks.release(&a).await.unwrap(), "released twice");
        assert!(locks.try_acquire("k", ttl).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_expired_lock_is_free_and_its_old_holder_cannot_touch_the_new_one() {
        let locks = LocalLocks::new();
        let a = locks
            .try_acquire("k", Duration::from_millis(20))
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!locks.renew(&a, Duration::from_secs(1)).await.unwrap());
        let b = locks
            .try_acquire("k", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(a.token(), b.token());
        assert!(!locks.release(&a).await.unwrap());
        assert!(
            locks
                .try_acquire("k", Duration::from_secs(30))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn scan_lock_keys_separate_urls_and_options_and_tag_the_site() {
        let site = SiteId::new();
        let opts = ScanOptions::default();
        let a = scan_lock_key(site, "http://127.0.0.1/a", &opts);
        let b = scan_lock_key(site, "http://127.0.0.1/b", &opts);
        assert_ne!(a, b);
        assert_eq!(a, scan_lock_key(site, "http://127.0.0.1/a", &opts));
        assert!(a.starts_with(&format!("lock:scan:{{{site}}}:")), "{a}");
    }
}
