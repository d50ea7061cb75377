//! Persistence for qa-sentinel.
//!
//! [`Store`] is the one interface the API and the worker runtime use for everything durable:
//! users and their API keys, sites and grants, scans, findings, baseline metadata, and the
//! scan queue (a job row written in the same transaction as its scan, leased by workers,
//! heartbeated, retried with backoff, and returned to the queue when its lease expires).
//!
//! Two backends implement it and pass one conformance suite (`tests/conformance.rs`):
//! SQLite (the zero-setup default, a file under the data directory) and PostgreSQL (for
//! many API and worker processes). [`artifacts`] stores screenshots and diff images.

pub mod artifacts;
mod model;

pub use model::*;

use async_trait::async_trait;
use sentinel_core::{
    ApiKeyHash, CheckType, Cursor, EpochMillis, Finding, NewFinding, NewScan, Page, Principal,
    Scan, ScanId, Site, SiteId, SiteRole, UserId, Viewport,
};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::broadcast;

/// Errors of the store. `Unavailable` is the one that callers map to 503: the database
/// cannot be reached (connect/pool timeout, connection lost); everything else is a bug or
/// a conflict in the data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A referenced row does not exist (a grant for an unknown user, …).
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// A uniqueness rule was violated (a key hash that already exists, …).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A row could not be decoded into a domain value.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(String),
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which backend a store is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// The distributed backend.
    Postgres,
}

impl Backend {
    /// A short name for logs, metrics and health answers.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Something durable happened. Events are wake-up hints, never the source of truth: they
/// may be lost (a dropped listener connection), so every consumer also polls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    /// New (or retried) jobs may be ready to lease.
    JobsAvailable,
    /// A scan reached `completed` or `failed`.
    ScanFinished(ScanId),
}

/// The persistence interface. Every method is one transaction (or one statement).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Checks that the database answers (`SELECT 1`).
    async fn ping(&self) -> Result<()>;

    /// Connection-pool gauges.
    fn pool_stats(&self) -> PoolStats;

    /// Wake-up hints: new jobs, finished scans (from this process, and on PostgreSQL from
    /// every process through LISTEN/NOTIFY).
    fn subscribe(&self) -> broadcast::Receiver<StoreEvent>;

    // ---- users and API keys -------------------------------------------------------------

    /// Creates a user with one API key (given as its digest). `Conflict` if the digest exists.
    async fn create_user(&self, user: &NewUser) -> Result<User>;

    /// Adds another API key to an existing user.
    async fn add_api_key(&self, user: UserId, key: &ApiKeyHash) -> Result<()>;

    /// The user an API key belongs to, if the key is known (and not revoked).
    async fn principal_by_key(&self, key: &ApiKeyHash) -> Result<Option<Principal>>;

    /// A user by id.
    async fn get_user(&self, id: UserId) -> Result<Option<User>>;

    // ---- sites and grants -----------------------------------------------------------------

    /// Registers a site and makes `owner` its owner, in one transaction.
    async fn create_site(&self, site: &Site, owner: UserId) -> Result<()>;

    /// A site by id.
    async fn get_site(&self, id: SiteId) -> Result<Option<Site>>;

    /// Sites visible to `member` (those it holds any grant on), or every site when `member`
    /// is `None` (an admin). Ordered by id ascending; `after` is exclusive.
    async fn list_sites(
        &self,
        member: Option<UserId>,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Site>>;

    /// Sets (inserts or replaces) a user's grant on a site. `NotFound` if either is unknown.
    async fn set_grant(&self, site: SiteId, user: UserId, role: SiteRole) -> Result<()>;

    /// The grant a user holds on a site, if any.
    async fn grant(&self, user: UserId, site: SiteId) -> Result<Option<SiteRole>>;

    // ---- scans, findings, queue -----------------------------------------------------------

    /// Inserts scans (status `queued`) and their queue jobs, all in one transaction: after
    /// this returns `Ok`, every scan is durable and will be run. Used with many scans at
    /// once by the API's group commit.
    async fn create_scans(&self, scans: &[NewScan], max_attempts: u32) -> Result<()>;

    /// A scan by id.
    async fn get_scan(&self, id: ScanId) -> Result<Option<Scan>>;

    /// A site's scans, newest first; `after` is exclusive.
    async fn list_scans(
        &self,
        site: SiteId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Scan>>;

    /// A scan's findings in the order they were recorded; `after` is exclusive.
    async fn list_findings(
        &self,
        scan: ScanId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Finding>>;

    /// How many jobs wait and run.
    async fn queue_depth(&self) -> Result<QueueDepth>;

    /// Leases up to `max` due jobs of the given check types for `worker` (oldest first),
    /// marking their scans `running` and counting an attempt. On PostgreSQL concurrent
    /// workers never lease the same job (`FOR UPDATE SKIP LOCKED`).
    async fn lease_jobs(
        &self,
        worker: &str,
        check_types: &[CheckType],
        max: u32,
        lease_for: Duration,
    ) -> Result<Vec<Lease>>;

    /// Extends a lease. `Ok(false)`: the lease was lost (expired and taken over); the
    /// worker must stop and write nothing more.
    async fn heartbeat(&self, lease: &Lease, lease_for: Duration) -> Result<bool>;

    /// Finishes a job: stores the findings (in chunks of 1000) and the summary, marks the
    /// scan `completed` and removes the job, in one transaction fenced by the lease token.
    /// `Ok(false)`: the lease was lost and nothing was written.
    async fn complete_job(
        &self,
        lease: &Lease,
        summary: &Value,
        findings: &[NewFinding],
    ) -> Result<bool>;

    /// Records a failed attempt. With `retry_at`, the job returns to the queue, due then;
    /// without, the scan becomes `failed` with `error` as its reason and the job is removed.
    async fn fail_job(
        &self,
        lease: &Lease,
        error: &str,
        retry_at: Option<EpochMillis>,
    ) -> Result<JobFate>;

    /// Returns a leased job to the queue without counting the attempt (graceful shutdown).
    async fn release_job(&self, lease: &Lease) -> Result<bool>;

    /// Returns jobs whose lease expired (a killed or stalled worker) to the queue, or fails
    /// their scans when they have no attempts left. Returns how many jobs it touched.
    async fn requeue_expired(&self) -> Result<u64>;

    // ---- visual baselines -----------------------------------------------------------------

    /// Inserts or replaces the approved baseline of one page/viewport.
    async fn put_baseline(&self, baseline: &Baseline) -> Result<()>;

    /// The approved baseline of one page/viewport.
    async fn get_baseline(
        &self,
        site: SiteId,
        page_url: &str,
        viewport: Viewport,
        full_page: bool,
    ) -> Result<Option<Baseline>>;

    // ---- bulk import ----------------------------------------------------------------------

    /// Loads users, sites, grants and finished scans in one transaction (the load harness's
    /// seed files); existing rows with the same ids are left as they are.
    async fn import(&self, batch: &ImportBatch) -> Result<ImportCounts>;
}
