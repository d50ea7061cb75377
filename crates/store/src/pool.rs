//! What the pools do not tell: how many callers are waiting for a connection; and when a
//! pooled connection is worth testing before use.

use futures::future::BoxFuture;
use sqlx::pool::{PoolConnection, PoolConnectionMetadata, PoolOptions};
use sqlx::{Connection, Database, Pool};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A connection idle for longer than this is pinged before it is handed out.
pub(crate) const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Options every pool of the store starts from: [`ping_if_idle`] as the test before a
/// connection is handed out, in place of sqlx's default `test_before_acquire`, which pings
/// every connection at every acquire: a round trip to PostgreSQL (or a hand-off to SQLite's
/// worker thread) in front of every query.
pub(crate) fn pool_options<DB: Database>() -> PoolOptions<DB> {
    PoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(ping_if_idle::<DB>)
}

/// A connection that was in use less than [`PING_AFTER_IDLE`] ago answered then; one idle for
/// longer may have been cut off (a restarted server, a firewall's idle timeout) and is tested
/// as before, so a dead one is replaced instead of failing the caller's query.
fn ping_if_idle<DB: Database>(
    conn: &mut DB::Connection,
    meta: PoolConnectionMetadata,
) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        if meta.idle_for >= PING_AFTER_IDLE {
            conn.ping().await?;
        }
        Ok(true)
    })
}

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
        self.wait(pool.acquire()).await
    }

    /// Awaits `f`, counted as waiting until it completes (or is cancelled).
    pub(crate) async fn wait<F: Future>(&self, f: F) -> F::Output {
        self.0.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.0);
        f.await
    }

    /// How many callers wait right now.
    pub(crate) fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Decrements the count on drop, so a cancelled wait is not counted forever.
struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
