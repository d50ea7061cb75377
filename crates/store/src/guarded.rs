//! A [`Store`] behind a circuit breaker, so that a database outage turns into fast, clear
//! answers instead of piled-up requests.
//!
//! Without it, every request during an outage waits for the pool's acquire timeout (or, if
//! the server hangs instead of refusing, for as long as the TCP stack lets it), holds its
//! connection slot and its memory meanwhile, and the API slows to a crawl long before it
//! says anything useful. [`GuardedStore`] runs every call through one [`CircuitBreaker`]
//! (`circuit_breaker_state{name="database"}`) with a per-call deadline: once the database
//! has failed often enough, calls are refused at once with [`StoreError::Unavailable`]
//! (which the API answers with 503 and `Retry-After`), and after the breaker's reset
//! timeout a few probe calls find out whether it is back.
//!
//! Only unavailability counts against the database: a conflict or a missing row proves it
//! answered. And an overloaded database is not a dead one: when a call fails while the pool
//! holds all the connections it may open (they are busy, and none came free in time), the
//! breaker is told nothing, since opening it would turn a slow spell into seconds of refusing every
//! request, including the ones that would have succeeded. A call that runs past its
//! deadline always counts: a hung server holds on to the connections it has, so its pool
//! looks full too. Schema migration and bulk import are administrative, run once, and may
//! take long: they pass through unguarded.

use crate::{
    Backend, Baseline, ImportBatch, ImportCounts, JobFate, Lease, NewUser, PoolStats, QueueDepth,
    Result, Store, StoreError, StoreEvent, User,
};
use async_trait::async_trait;
use sentinel_core::{
    ApiKeyHash, CheckType, Cursor, EpochMillis, Finding, NewFinding, NewScan, Page, Principal,
    Scan, ScanId, Site, SiteId, SiteRole, UserId, Viewport,
};
use sentinel_resilience::{BreakerConfig, BreakerConfigError, CircuitBreaker};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Deadlines and breaker rules of a [`GuardedStore`].
#[derive(Clone, Debug)]
pub struct GuardOptions {
    /// Deadline of an ordinary call (one row or one small batch): long enough for a
    /// healthy but busy database, short enough that a hung one is noticed within seconds.
    pub call_timeout: Duration,
    /// Deadline of a bulk write (a finished scan's findings): the statement timeout plus
    /// the time to get a connection.
    pub bulk_timeout: Duration,
    /// The breaker (its own `call_timeout` is not used: deadlines are per call kind).
    pub breaker: BreakerConfig,
}

impl GuardOptions {
    /// Deadlines derived from the pool's connect timeout and the statement timeout.
    #[must_use]
    pub fn from_timeouts(connect_timeout: Duration, statement_timeout: Duration) -> Self {
        Self {
            call_timeout: connect_timeout + Duration::from_secs(3),
            bulk_timeout: connect_timeout + statement_timeout,
            ..Self::default()
        }
    }
}

impl Default for GuardOptions {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(5),
            bulk_timeout: Duration::from_secs(32),
            breaker: BreakerConfig {
                window: 20,
                minimum_calls: 10,
                failure_rate: 0.5,
                // Workers and an idle API make few calls: five failures in a row suffice.
                consecutive_failures: Some(5),
                slow_call: None,
                call_timeout: None,
                reset_timeout: Duration::from_secs(5),
                half_open_probes: 3,
            },
        }
    }
}

/// See the module docs.
pub struct GuardedStore {
    inner: Arc<dyn Store>,
    breaker: CircuitBreaker,
    options: GuardOptions,
}

impl std::fmt::Debug for GuardedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedStore")
            .field("backend", &self.inner.backend())
            .field("breaker", &self.breaker.state_hint())
            .field("options", &self.options)
            .finish()
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Call,
    Bulk,
}

impl GuardedStore {
    /// Guards `inner` with a breaker named `database`.
    ///
    /// # Errors
    /// The breaker configuration is invalid.
    pub fn new(
        inner: Arc<dyn Store>,
        options: GuardOptions,
    ) -> std::result::Result<Self, BreakerConfigError> {
        let breaker = CircuitBreaker::new("database", options.breaker.clone())?;
        Ok(Self {
            inner,
            breaker,
            options,
        })
    }

    /// The breaker (for health answers and tests).
    #[must_use]
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    async fn guard<T, F>(&self, kind: Kind, call: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let permit = self.breaker.try_acquire().map_err(|r| {
            StoreError::Unavailable(format!(
                "database circuit breaker is {} after repeated failures; not trying",
                r.state
            ))
        })?;
        let limit = match kind {
            Kind::Call => self.options.call_timeout,
            Kind::Bulk => self.options.bulk_timeout,
        };
        match tokio::time::timeout(limit, call).await {
            Err(_elapsed) => {
                permit.timed_out();
                Err(StoreError::Unavailable(format!(
                    "the database did not answer within {} ms",
                    limit.as_millis()
                )))
            }
            Ok(Err(e @ StoreError::Unavailable(_))) => {
                // Saturated, not gone: every connection is open (an outage closes them,
                // and new ones cannot be made). Neither a failure nor a success.
                let pool = self.inner.pool_stats();
                if pool.max > 0 && pool.size >= pool.max {
                    drop(permit);
                } else {
                    permit.failure();
                }
                Err(e)
            }
            Ok(other) => {
                permit.success();
                other
            }
        }
    }
}

#[async_trait]
impl Store for GuardedStore {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }

    async fn migrate(&self) -> Result<()> {
        self.inner.migrate().await
    }

    async fn ping(&self) -> Result<()> {
        self.guard(Kind::Call, self.inner.ping()).await
    }

    fn pool_stats(&self) -> PoolStats {
        self.inner.pool_stats()
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.subscribe()
    }

    async fn create_user(&self, user: &NewUser) -> Result<User> {
        self.guard(Kind::Call, self.inner.create_user(user)).await
    }

    async fn add_api_key(&self, user: UserId, key: &ApiKeyHash) -> Result<()> {
        self.guard(Kind::Call, self.inner.add_api_key(user, key))
            .await
    }

    async fn principal_by_key(&self, key: &ApiKeyHash) -> Result<Option<Principal>> {
        self.guard(Kind::Call, self.inner.principal_by_key(key))
            .await
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        self.guard(Kind::Call, self.inner.get_user(id)).await
    }

    async fn create_site(&self, site: &Site, owner: UserId) -> Result<()> {
        self.guard(Kind::Call, self.inner.create_site(site, owner))
            .await
    }

    async fn get_site(&self, id: SiteId) -> Result<Option<Site>> {
        self.guard(Kind::Call, self.inner.get_site(id)).await
    }

    async fn list_sites(
        &self,
        member: Option<UserId>,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Site>> {
        self.guard(Kind::Call, self.inner.list_sites(member, after, limit))
            .await
    }

    async fn set_grant(&self, site: SiteId, user: UserId, role: SiteRole) -> Result<()> {
        self.guard(Kind::Call, self.inner.set_grant(site, user, role))
            .await
    }

    async fn grant(&self, user: UserId, site: SiteId) -> Result<Option<SiteRole>> {
        self.guard(Kind::Call, self.inner.grant(user, site)).await
    }

    async fn create_scans(&self, scans: &[NewScan], max_attempts: u32) -> Result<()> {
        self.guard(Kind::Call, self.inner.create_scans(scans, max_attempts))
            .await
    }

    async fn get_scan(&self, id: ScanId) -> Result<Option<Scan>> {
        self.guard(Kind::Call, self.inner.get_scan(id)).await
    }

    async fn list_scans(
        &self,
        site: SiteId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Scan>> {
        self.guard(Kind::Call, self.inner.list_scans(site, after, limit))
            .await
    }

    async fn list_findings(
        &self,
        scan: ScanId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Finding>> {
        self.guard(Kind::Call, self.inner.list_findings(scan, after, limit))
            .await
    }

    async fn queue_depth(&self) -> Result<QueueDepth> {
        self.guard(Kind::Call, self.inner.queue_depth()).await
    }

    async fn lease_jobs(
        &self,
        worker: &str,
        check_types: &[CheckType],
        max: u32,
        lease_for: Duration,
    ) -> Result<Vec<Lease>> {
        self.guard(
            Kind::Call,
            self.inner.lease_jobs(worker, check_types, max, lease_for),
        )
        .await
    }

    async fn heartbeat(&self, lease: &Lease, lease_for: Duration) -> Result<bool> {
        self.guard(Kind::Call, self.inner.heartbeat(lease, lease_for))
            .await
    }

    async fn complete_job(
        &self,
        lease: &Lease,
        summary: &Value,
        findings: &[NewFinding],
    ) -> Result<bool> {
        self.guard(
            Kind::Bulk,
            self.inner.complete_job(lease, summary, findings),
        )
        .await
    }

    async fn fail_job(
        &self,
        lease: &Lease,
        error: &str,
        retry_at: Option<EpochMillis>,
    ) -> Result<JobFate> {
        self.guard(Kind::Call, self.inner.fail_job(lease, error, retry_at))
            .await
    }

    async fn release_job(&self, lease: &Lease) -> Result<bool> {
        self.guard(Kind::Call, self.inner.release_job(lease)).await
    }

    async fn requeue_expired(&self) -> Result<u64> {
        self.guard(Kind::Call, self.inner.requeue_expired()).await
    }

    async fn put_baseline(&self, baseline: &Baseline) -> Result<()> {
        self.guard(Kind::Call, self.inner.put_baseline(baseline))
            .await
    }

    async fn get_baseline(
        &self,
        site: SiteId,
        page_url: &str,
        viewport: Viewport,
        full_page: bool,
    ) -> Result<Option<Baseline>> {
        self.guard(
            Kind::Call,
            self.inner.get_baseline(site, page_url, viewport, full_page),
        )
        .await
    }

    async fn import(&self, batch: &ImportBatch) -> Result<ImportCounts> {
        self.inner.import(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;
    use sentinel_resilience::BreakerState;

    fn options() -> GuardOptions {
        let mut o = GuardOptions {
            call_timeout: Duration::from_millis(100),
            ..GuardOptions::default()
        };
        o.breaker.reset_timeout = Duration::from_millis(300);
        o
    }

    #[tokio::test]
    async fn answers_pass_through_and_conflicts_do_not_count_against_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Store> = Arc::new(
            SqliteStore::open(dir.path().join("db"), &crate::SqliteOptions::default())
                .await
                .unwrap(),
        );
        inner.migrate().await.unwrap();
        let store = GuardedStore::new(inner, options()).unwrap();
        store.ping().await.unwrap();
        assert_eq!(store.get_scan(ScanId::new()).await.unwrap(), None);
        for _ in 0..20 {
            // A grant for nobody: `NotFound`, an answer, not an outage.
            let r = store
                .set_grant(SiteId::new(), UserId::new(), SiteRole::Viewer)
                .await;
            assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
        }
        assert_eq!(store.breaker().snapshot().state, BreakerState::Closed);
    }

    #[derive(Clone, Copy)]
    enum Fault {
        /// Never answers (a hung server): `ping` and `get_scan` wait forever.
        Hung,
        /// Every connection busy: `ping` and `get_scan` fail at once with a full pool.
        Saturated,
    }

    /// A store whose `ping` and `get_scan` misbehave; everything else is SQLite.
    struct Faulty(Arc<dyn Store>, Fault);

    impl Faulty {
        async fn fail<T>(&self) -> Result<T> {
            match self.1 {
                Fault::Hung => std::future::pending().await,
                Fault::Saturated => Err(StoreError::Unavailable(
                    "pool timed out while waiting for an open connection".into(),
                )),
            }
        }
    }

    #[async_trait]
    impl Store for Faulty {
        fn backend(&self) -> Backend {
            self.0.backend()
        }
        async fn migrate(&self) -> Result<()> {
            Ok(())
        }
        async fn ping(&self) -> Result<()> {
            self.fail().await
        }
        fn pool_stats(&self) -> PoolStats {
            match self.1 {
                Fault::Hung => self.0.pool_stats(),
                Fault::Saturated => PoolStats {
                    size: 20,
                    idle: 0,
                    waiting: 50,
                    max: 20,
                },
            }
        }
        fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
            self.0.subscribe()
        }
        async fn create_user(&self, u: &NewUser) -> Result<User> {
            self.0.create_user(u).await
        }
        async fn add_api_key(&self, u: UserId, k: &ApiKeyHash) -> Result<()> {
            self.0.add_api_key(u, k).await
        }
        async fn principal_by_key(&self, k: &ApiKeyHash) -> Result<Option<Principal>> {
            self.0.principal_by_key(k).await
        }
        async fn get_user(&self, id: UserId) -> Result<Option<User>> {
            self.0.get_user(id).await
        }
        async fn create_site(&self, s: &Site, o: UserId) -> Result<()> {
            self.0.create_site(s, o).await
        }
        async fn get_site(&self, id: SiteId) -> Result<Option<Site>> {
            self.0.get_site(id).await
        }
        async fn list_sites(
            &self,
            m: Option<UserId>,
            a: Option<Cursor>,
            l: u32,
        ) -> Result<Page<Site>> {
            self.0.list_sites(m, a, l).await
        }
        async fn set_grant(&self, s: SiteId, u: UserId, r: SiteRole) -> Result<()> {
            self.0.set_grant(s, u, r).await
        }
        async fn grant(&self, u: UserId, s: SiteId) -> Result<Option<SiteRole>> {
            self.0.grant(u, s).await
        }
        async fn create_scans(&self, s: &[NewScan], m: u32) -> Result<()> {
            self.0.create_scans(s, m).await
        }
        async fn get_scan(&self, _: ScanId) -> Result<Option<Scan>> {
            self.fail().await
        }
        async fn list_scans(&self, s: SiteId, a: Option<Cursor>, l: u32) -> Result<Page<Scan>> {
            self.0.list_scans(s, a, l).await
        }
        async fn list_findings(
            &self,
            s: ScanId,
            a: Option<Cursor>,
            l: u32,
        ) -> Result<Page<Finding>> {
            self.0.list_findings(s, a, l).await
        }
        async fn queue_depth(&self) -> Result<QueueDepth> {
            self.0.queue_depth().await
        }
        async fn lease_jobs(
            &self,
            w: &str,
            c: &[CheckType],
            m: u32,
            l: Duration,
        ) -> Result<Vec<Lease>> {
            self.0.lease_jobs(w, c, m, l).await
        }
        async fn heartbeat(&self, l: &Lease, d: Duration) -> Result<bool> {
            self.0.heartbeat(l, d).await
        }
        async fn complete_job(&self, l: &Lease, s: &Value, f: &[NewFinding]) -> Result<bool> {
            self.0.complete_job(l, s, f).await
        }
        async fn fail_job(&self, l: &Lease, e: &str, r: Option<EpochMillis>) -> Result<JobFate> {
            self.0.fail_job(l, e, r).await
        }
        async fn release_job(&self, l: &Lease) -> Result<bool> {
            self.0.release_job(l).await
        }
        async fn requeue_expired(&self) -> Result<u64> {
            self.0.requeue_expired().await
        }
        async fn put_baseline(&self, b: &Baseline) -> Result<()> {
            self.0.put_baseline(b).await
        }
        async fn get_baseline(
            &self,
            s: SiteId,
            p: &str,
            v: Viewport,
            f: bool,
        ) -> Result<Option<Baseline>> {
            self.0.get_baseline(s, p, v, f).await
        }
        async fn import(&self, b: &ImportBatch) -> Result<ImportCounts> {
            self.0.import(b).await
        }
    }

    #[tokio::test]
    async fn a_hung_database_times_out_then_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite: Arc<dyn Store> = Arc::new(
            SqliteStore::open(dir.path().join("db"), &crate::SqliteOptions::default())
                .await
                .unwrap(),
        );
        sqlite.migrate().await.unwrap();
        let store = GuardedStore::new(Arc::new(Faulty(sqlite, Fault::Hung)), options()).unwrap();
        for _ in 0..5 {
            let r = store.get_scan(ScanId::new()).await;
            assert!(
                matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("did not answer")),
                "{r:?}"
            );
        }
        assert_eq!(store.breaker().snapshot().state, BreakerState::Open);
        let r = store.ping().await;
        assert!(
            matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("circuit breaker")),
            "{r:?}"
        );
        assert_eq!(
            store.breaker().snapshot().timeouts,
            5,
            "the open breaker did not call"
        );
        // After the reset timeout, probes go through again (and here, time out again).
        tokio::time::sleep(Duration::from_millis(400)).await;
        let r = store.ping().await;
        assert!(
            matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("did not answer")),
            "{r:?}"
        );
        assert_eq!(
            store.breaker().snapshot().state,
            BreakerState::Open,
            "probe failed"
        );
    }

    #[tokio::test]
    async fn a_saturated_pool_is_not_an_outage() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite: Arc<dyn Store> = Arc::new(
            SqliteStore::open(dir.path().join("db"), &crate::SqliteOptions::default())
                .await
                .unwrap(),
        );
        sqlite.migrate().await.unwrap();
        let store =
            GuardedStore::new(Arc::new(Faulty(sqlite, Fault::Saturated)), options()).unwrap();
        for _ in 0..50 {
            let r = store.get_scan(ScanId::new()).await;
            assert!(matches!(&r, Err(StoreError::Unavailable(_))), "{r:?}");
        }
        let snap = store.breaker().snapshot();
        assert_eq!(
            snap.state,
            BreakerState::Closed,
            "overload opened the breaker"
        );
        assert_eq!(snap.failures, 0);
    }
}
