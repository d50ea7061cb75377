//! A [`Store`] that measures itself: every call's duration goes to the
//! `db_query_duration_seconds{op,outcome}` histogram (the guide's "db query duration"),
//! whatever the backend. A decorator keeps the metrics out of the SQL code.

use crate::{
    Backend, Baseline, ImportBatch, ImportCounts, JobFate, Lease, NewUser, PoolStats, QueueDepth,
    Result, Store, StoreEvent, User,
};
use async_trait::async_trait;
use sentinel_core::{
    ApiKeyHash, CheckType, Cursor, EpochMillis, Finding, NewFinding, NewScan, Page, Principal,
    Scan, ScanId, Site, SiteId, SiteRole, UserId, Viewport,
};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// See the module docs.
pub struct InstrumentedStore {
    inner: Arc<dyn Store>,
}

impl std::fmt::Debug for InstrumentedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedStore")
            .field("backend", &self.inner.backend())
            .finish()
    }
}

impl InstrumentedStore {
    /// Measures `inner`.
    #[must_use]
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner }
    }
}

async fn timed<T>(op: &'static str, call: impl Future<Output = Result<T>>) -> Result<T> {
    let started = Instant::now();
    let result = call.await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::histogram!("db_query_duration_seconds", "op" => op, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    result
}

#[async_trait]
impl Store for InstrumentedStore {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }

    async fn migrate(&self) -> Result<()> {
        timed("migrate", self.inner.migrate()).await
    }

    async fn ping(&self) -> Result<()> {
        timed("ping", self.inner.ping()).await
    }

    fn pool_stats(&self) -> PoolStats {
        self.inner.pool_stats()
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.subscribe()
    }

    async fn create_user(&self, user: &NewUser) -> Result<User> {
        timed("create_user", self.inner.create_user(user)).await
    }

    async fn add_api_key(&self, user: UserId, key: &ApiKeyHash) -> Result<()> {
        timed("add_api_key", self.inner.add_api_key(user, key)).await
    }

    async fn principal_by_key(&self, key: &ApiKeyHash) -> Result<Option<Principal>> {
        timed("principal_by_key", self.inner.principal_by_key(key)).await
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        timed("get_user", self.inner.get_user(id)).await
    }

    async fn create_site(&self, site: &Site, owner: UserId) -> Result<()> {
        timed("create_site", self.inner.create_site(site, owner)).await
    }

    async fn get_site(&self, id: SiteId) -> Result<Option<Site>> {
        timed("get_site", self.inner.get_site(id)).await
    }

    async fn list_sites(
        &self,
        member: Option<UserId>,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Site>> {
        timed("list_sites", self.inner.list_sites(member, after, limit)).await
    }

    async fn set_grant(&self, site: SiteId, user: UserId, role: SiteRole) -> Result<()> {
        timed("set_grant", self.inner.set_grant(site, user, role)).await
    }

    async fn grant(&self, user: UserId, site: SiteId) -> Result<Option<SiteRole>> {
        timed("grant", self.inner.grant(user, site)).await
    }

    async fn create_scans(&self, scans: &[NewScan], max_attempts: u32) -> Result<()> {
        timed("create_scans", self.inner.create_scans(scans, max_attempts)).await
    }

    async fn get_scan(&self, id: ScanId) -> Result<Option<Scan>> {
        timed("get_scan", self.inner.get_scan(id)).await
    }

    async fn list_scans(
        &self,
        site: SiteId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Scan>> {
        timed("list_scans", self.inner.list_scans(site, after, limit)).await
    }

    async fn list_findings(
        &self,
        scan: ScanId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Finding>> {
        timed(
            "list_findings",
            self.inner.list_findings(scan, after, limit),
        )
        .await
    }

    async fn queue_depth(&self) -> Result<QueueDepth> {
        timed("queue_depth", self.inner.queue_depth()).await
    }

    async fn lease_jobs(
        &self,
        worker: &str,
        check_types: &[CheckType],
        max: u32,
        lease_for: Duration,
    ) -> Result<Vec<Lease>> {
        timed(
            "lease_jobs",
            self.inner.lease_jobs(worker, check_types, max, lease_for),
        )
        .await
    }

    async fn heartbeat(&self, lease: &Lease, lease_for: Duration) -> Result<bool> {
        timed("heartbeat", self.inner.heartbeat(lease, lease_for)).await
    }

    async fn complete_job(
        &self,
        lease: &Lease,
        summary: &Value,
        findings: &[NewFinding],
    ) -> Result<bool> {
        timed(
            "complete_job",
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
        timed("fail_job", self.inner.fail_job(lease, error, retry_at)).await
    }

    async fn release_job(&self, lease: &Lease) -> Result<bool> {
        timed("release_job", self.inner.release_job(lease)).await
    }

    async fn requeue_expired(&self) -> Result<u64> {
        timed("requeue_expired", self.inner.requeue_expired()).await
    }

    async fn put_baseline(&self, baseline: &Baseline) -> Result<()> {
        timed("put_baseline", self.inner.put_baseline(baseline)).await
    }

    async fn get_baseline(
        &self,
        site: SiteId,
        page_url: &str,
        viewport: Viewport,
        full_page: bool,
    ) -> Result<Option<Baseline>> {
        timed(
            "get_baseline",
            self.inner.get_baseline(site, page_url, viewport, full_page),
        )
        .await
    }

    async fn import(&self, batch: &ImportBatch) -> Result<ImportCounts> {
        timed("import", self.inner.import(batch)).await
    }
}
