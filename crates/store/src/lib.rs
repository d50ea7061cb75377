//! Persistence for qa-sentinel.
//!
//! [`Store`] is the one interface the API and the worker runtime use for everything durable:
//! users and their API keys, sites and grants, scans, findings, baseline metadata, and the
//! scan queue (a job row written in the same transaction as its scan, leased by workers,
//! heartbeated, retried with backoff, and returned to the queue when its lease expires).
//!
//! Two backends implement it and pass one conformance suite (`tests/conformance.rs`):
//! [`SqliteStore`] (the zero-setup default, a file under the data directory) and [`PgStore`]
//! (for many API and worker processes). [`open`] picks one from the configured database
//! URL; [`Store::migrate`] brings its schema up to date. [`artifacts`] stores screenshots
//! and diff images.
//!
//! Conventions both backends share: ids are UUIDs (v7 ids sort by creation), every
//! timestamp is epoch milliseconds from the application's clock (so the queue compares
//! times the same way on both), and every write about a leased job is fenced by its lease
//! token: a worker that lost its lease can no longer change anything.

pub mod artifacts;
pub mod guarded;
pub mod instrumented;
mod model;
mod pool;
mod postgres;
mod rows;
mod sqlerr;
mod sqlite;

pub use model::*;
pub use postgres::{PgOptions, PgStore};
pub use sqlite::{SqliteOptions, SqliteStore};

use async_trait::async_trait;
use sentinel_core::{
    ApiKeyHash, CheckType, Cursor, EpochMillis, Finding, NewFinding, NewScan, Page, Principal,
    Scan, ScanId, Site, SiteId, SiteRole, UserId, Viewport,
};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
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
    /// The store is misconfigured (an unsupported database URL, an unusable data directory).
    #[error("store configuration: {0}")]
    Config(String),
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

    /// Applies the embedded schema migrations that have not run yet (idempotent; on
    /// PostgreSQL serialised across processes by an advisory lock).
    async fn migrate(&self) -> Result<()>;

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

/// The file name of the SQLite database inside the data directory.
pub const SQLITE_FILE: &str = "qa-sentinel.db";

/// Opens the store the configuration names, with default pool settings: no URL → SQLite at
/// `data_dir/qa-sentinel.db` (the directory is created); `postgres://` or `postgresql://` →
/// PostgreSQL; `sqlite:` → SQLite at that path. Does not migrate: call [`Store::migrate`].
pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>> {
    open_with(
        database_url,
        data_dir,
        &SqliteOptions::default(),
        &PgOptions::default(),
    )
    .await
}

/// [`open`] with explicit backend settings.
pub async fn open_with(
    database_url: Option<&str>,
    data_dir: &Path,
    sqlite: &SqliteOptions,
    postgres: &PgOptions,
) -> Result<Arc<dyn Store>> {
    let Some(url) = database_url else {
        tokio::fs::create_dir_all(data_dir).await.map_err(|e| {
            StoreError::Config(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let store = SqliteStore::open(data_dir.join(SQLITE_FILE), sqlite).await?;
        return Ok(Arc::new(store));
    };
    match url.split_once(':').map(|(scheme, _)| scheme) {
        Some("postgres" | "postgresql") => Ok(Arc::new(PgStore::connect(url, postgres).await?)),
        Some("sqlite") => {
            let path = sqlite_path(url)?;
            Ok(Arc::new(SqliteStore::open(path, sqlite).await?))
        }
        // Only the scheme is echoed: the rest of a URL may hold a password.
        Some(scheme) => Err(StoreError::Config(format!(
            "unsupported database URL scheme {scheme:?}: use postgres://, postgresql:// or sqlite:"
        ))),
        None => Err(StoreError::Config(
            "the database URL has no scheme: use postgres://, postgresql:// or sqlite:".into(),
        )),
    }
}

/// The file of a `sqlite:` URL (`sqlite:data/x.db`, `sqlite://data/x.db`,
/// `sqlite:///abs/x.db`; query parameters are ignored: the store sets its own pragmas).
fn sqlite_path(url: &str) -> Result<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:").unwrap_or(url);
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split_once('?').map_or(rest, |(p, _)| p);
    if path.is_empty() || path == ":memory:" {
        // The writer and the read pool would each see a different, empty in-memory database.
        return Err(StoreError::Config(
            "a sqlite: URL must name a database file (in-memory databases are not supported)"
                .into(),
        ));
    }
    Ok(std::path::PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_files() {
        let p = |u: &str| sqlite_path(u).map(|p| p.to_string_lossy().into_owned());
        assert_eq!(p("sqlite:data/x.db").unwrap(), "data/x.db");
        assert_eq!(p("sqlite://data/x.db?mode=rwc").unwrap(), "data/x.db");
        assert_eq!(p("sqlite:///abs/x.db").unwrap(), "/abs/x.db");
        assert!(matches!(p("sqlite::memory:"), Err(StoreError::Config(_))));
        assert!(matches!(p("sqlite:"), Err(StoreError::Config(_))));
    }

    #[tokio::test]
    async fn open_picks_the_backend_by_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        let store = open(None, &data).await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        assert!(data.join(SQLITE_FILE).exists());

        let url = format!("sqlite:{}", dir.path().join("other.db").display());
        let store = open(Some(&url), &data).await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        assert!(dir.path().join("other.db").exists());

        let Err(err) = open(Some("mysql://root:hunter2@db/x"), &data).await else {
            panic!("mysql accepted");
        };
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Config(_)), "{msg}");
        assert!(
            msg.contains("\"mysql\"") && !msg.contains("hunter2"),
            "{msg}"
        );
        assert!(matches!(
            open(Some("no-scheme"), &data).await,
            Err(StoreError::Config(_))
        ));
    }
}
