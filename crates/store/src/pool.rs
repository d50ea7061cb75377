//! What the pools do not tell: how many callers are waiting for a connection.

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use std::sync::atomic::{AtomicU32, Ordering};

/// Counts callers waiting in `acquire` (sqlx keeps that number private). A rising count with
/// a full pool is the first sign of a saturated database, before timeouts turn into 503s.
#[derive(Debug, Default)]
pub(crate) struct Waiters(AtomicU32);

impl Waiters {
    /// Acquires a connection from `pool`, counted as waiting until it has one (or gives up,
    /// or the caller is cancelled).
    pub(crate) async fn acquire<DB: Database>(
        &self,
        pool: &Pool<DB>,
    ) -> Result<PoolConnection<DB>, sqlx::Error> {
        self.0.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.0);
        pool.acquire().await
    }

    /// How many callers wait right now.
    pub(crate) fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Decrements the count on drop, so a cancelled `acquire` is not counted forever.
struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
