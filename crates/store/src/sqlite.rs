//! The SQLite backend: the zero-setup default, one database file under the data directory.
//!
//! SQLite allows one writer at a time. Instead of letting connections race for the write lock
//! (the classic "database is locked"), every write goes through one connection behind a
//! mutex and starts with `BEGIN IMMEDIATE`: callers queue at the mutex, in order, and the
//! write lock is taken at `BEGIN`, where SQLite's busy handler applies. (A `DEFERRED`
//! transaction that reads first and then writes must upgrade its lock, and SQLite fails such
//! an upgrade at once with `SQLITE_BUSY` instead of waiting, because waiting could deadlock.)
//! The busy timeout then only matters for other processes on the same file, such as an
//! `admin` command next to a running server. Reads use a separate pool; in WAL mode they
//! neither block the writer nor wait for it.
//!
//! The store is single-process by design: events are published in-process after each commit,
//! and the queue needs no `SKIP LOCKED` because the one writer connection serialises leases.
//!
//! Checkpoints (copying the WAL back into the database file) run on a connection of their
//! own, in the background, instead of inside whichever commit crossed SQLite's threshold:
//! there a checkpoint stalled that commit, and every scan waiting on it, for the time it
//! took to write and sync its pages (W2's p99 went from 17 to 27 ms when the threshold was
//! raised to make checkpoints rarer). The writer keeps a high threshold as a backstop.

use crate::pool::{Waiters, pool_options};
use crate::rows::{
    BaselineRow, FindingRow, LeaseRow, PrincipalRow, ScanRow, SiteRow, UserRow, baseline_columns,
    convert, finding_columns, millis, principal_of, scan_columns,
};
use crate::sqlerr::{missing, sqlite as db};
use crate::{
    Backend, Baseline, ImportBatch, ImportCounts, JobFate, Lease, NewUser, PoolStats, QueueDepth,
    Result, Store, StoreError, StoreEvent, User,
};
use async_trait::async_trait;
use sentinel_core::page::MAX_LIMIT;
use sentinel_core::{
    ApiKeyHash, CheckType, Cursor, EpochMillis, Finding, FindingId, NewFinding, NewScan, Page,
    Principal, Scan, ScanId, Site, SiteId, SiteRole, UserId, Viewport, now_millis,
};
use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite, Transaction};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard, broadcast};
use uuid::Uuid;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Rows per multi-row `INSERT`: at most 13 columns × 1000 rows, well under SQLite's limit of
/// 32766 bind parameters, and the chunk size the worker's bulk writes are specified with.
const CHUNK: usize = 1000;

/// Settings of the SQLite backend.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// How long a write waits for another process's write lock (`busy_timeout`).
    pub busy_timeout: Duration,
    /// Connections of the read pool (the service sets one per core, 2 to 4).
    pub read_connections: u32,
    /// How long a caller waits for a connection of either pool before the store reports
    /// [`StoreError::Unavailable`].
    pub acquire_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            read_connections: 2,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// The SQLite store. See the module documentation for its locking discipline.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    reader: SqlitePool,
    waiters: Waiters,
    max: u32,
    events: broadcast::Sender<StoreEvent>,
    _checkpointer: Checkpointer,
}

/// The one write connection (see the module docs), behind a mutex rather than in a pool of
/// one. A pool tests every connection handed back to it with a ping (sqlx's guard against a
/// connection left mid-statement by a cancelled caller): a hand-off to SQLite's worker
/// thread and back after every write transaction, and there is nothing to replace it with —
/// a connection to a local file does not go stale. Here a cancelled transaction is rolled
/// back by sqlx's `Transaction` (its drop queues the `ROLLBACK` ahead of any later command),
/// and the one multi-statement transaction, [`NEW_SCANS`], marks the connection in doubt
/// until it knows the transaction is closed.
#[derive(Debug)]
struct Writer {
    conn: Mutex<WriteConn>,
    acquire_timeout: Duration,
}

/// The write connection and whether a transaction may have been left open on it.
#[derive(Debug)]
struct WriteConn {
    conn: SqliteConnection,
    /// Set while [`NEW_SCANS`] runs: when it fails, or its caller is cancelled, midway, its
    /// transaction may still be open, and it is rolled back before the connection's next use.
    in_doubt: bool,
}

impl WriteConn {
    /// Rolls back whatever a failed or abandoned [`NEW_SCANS`] left open.
    async fn settle(&mut self) {
        if self.in_doubt {
            // "no transaction is active" when it failed at its BEGIN: nothing to undo then.
            let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
            self.in_doubt = false;
        }
    }
}

impl Deref for WriteConn {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

/// How often the checkpointer looks at the log.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The background checkpointer (see the module docs): a `PASSIVE` checkpoint every
/// [`CHECKPOINT_EVERY`] on its own connection. `PASSIVE` never waits for the writer or the
/// readers; it copies what it can, and the next round takes the rest. Stopped on drop.
#[derive(Debug)]
struct Checkpointer(tokio::task::JoinHandle<()>);

impl Checkpointer {
    async fn start(base: SqliteConnectOptions) -> Result<Self> {
        // Checkpoints read the log, not the page cache: a small cache suffices.
        let mut conn = base
            .pragma("cache_size", "-64")
            .connect()
            .await
            .map_err(db)?;
        Ok(Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(CHECKPOINT_EVERY).await;
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&mut conn)
                    .await
                {
                    tracing::warn!(error = %e, "background WAL checkpoint failed");
                }
            }
        })))
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`. Call
    /// [`Store::migrate`] before use.
    pub async fn open(path: impl AsRef<Path>, options: &SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let base = SqliteConnectOptions::new()
            .filename(&path)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true)
            // An accepted scan must survive a power loss, not only a crash of the process:
            // in WAL mode FULL syncs the log on every commit, NORMAL would sync only at
            // checkpoints and could lose the last commits (the 202s already answered).
            .synchronous(SqliteSynchronous::Full)
            // A multi-row INSERT keeps a statement journal (to undo a half-applied statement);
            // on disk that was a temp file written page by page under every batch of new
            // scans (12 % of the writer's time in W2). In memory it is a few copied pages.
            .pragma("temp_store", "MEMORY");
        let writer = base
            .clone()
            .create_if_missing(true)
            // WAL is a property of the file: setting it once, on the writer, is
            // enough, and the readers then never take a lock that blocks it.
            .journal_mode(SqliteJournalMode::Wal)
            // A backstop only: the checkpointer task below keeps the log short.
            .pragma("wal_autocheckpoint", "20000")
            // 1 MB instead of SQLite's 2 MB: new scans append to the tables and to
            // most indexes (time-ordered ids), so the writer's working set is the
            // right edge of each B-tree plus what the site index needs; a miss is a
            // read from the OS page cache. Heaptrack put the writer's cache at 1.6 MB
            // of the SQLite server's peak heap after W2.
            .pragma("cache_size", "-1024")
            .connect()
            .await
            .map_err(db)?;
        let reader = pool_options::<Sqlite>()
            .max_connections(options.read_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // `query_only` makes an accidental write on a read connection an error instead of
            // a second writer competing for the lock.
            .connect_with(
                base.clone()
                    .pragma("query_only", "ON")
                    // A reader's page cache is emptied whenever the writer committed since its
                    // last read (WAL mode), so under writes it never stays warm: 2 MB each
                    // (SQLite's default) only held whatever the last long read touched.
                    .pragma("cache_size", "-512"),
            )
            .await
            .map_err(db)?;
        let checkpointer = Checkpointer::start(base.clone()).await?;
        let (events, _) = broadcast::channel(1024);
        Ok(Self {
            path,
            writer: Writer {
                conn: Mutex::new(WriteConn {
                    conn: writer,
                    in_doubt: false,
                }),
                acquire_timeout: options.acquire_timeout,
            },
            reader,
            _checkpointer: checkpointer,
            waiters: Waiters::default(),
            max: 1 + options.read_connections.max(1),
            events,
        })
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read(&self) -> Result<PoolConnection<Sqlite>> {
        self.waiters.acquire(&self.reader).await.map_err(db)
    }

    /// The write connection, once every earlier writer is done with it.
    async fn write(&self) -> Result<MutexGuard<'_, WriteConn>> {
        let mut conn = self
            .waiters
            .wait(tokio::time::timeout(
                self.writer.acquire_timeout,
                self.writer.conn.lock(),
            ))
            .await
            .map_err(|_| {
                StoreError::Unavailable("timed out waiting for the database writer".into())
            })?;
        conn.settle().await;
        Ok(conn)
    }

    fn publish(&self, event: StoreEvent) {
        // No receiver is not an error: events are hints for whoever listens.
        let _ = self.events.send(event);
    }
}

/// Starts a write transaction that holds the write lock from its first statement.
async fn begin(conn: &mut SqliteConnection) -> Result<Transaction<'_, Sqlite>> {
    conn.begin_with("BEGIN IMMEDIATE").await.map_err(db)
}

/// New scans as `[[id, site, url, check type, options, created at, created by], ...]`, ids
/// in hex (`unhex` turns them back into the 16-byte BLOBs the tables hold).
fn scan_rows_json(scans: &[NewScan]) -> Result<String> {
    let rows: Vec<_> = scans
        .iter()
        .map(|s| {
            (
                s.id.0.simple(),
                s.site_id.0.simple(),
                s.url.as_str(),
                s.options.check_type.as_str(),
                s.options.canonical_json(),
                s.created_at,
                s.created_by.map(|u| u.0.simple()),
            )
        })
        .collect();
    serde_json::to_string(&rows)
        .map_err(|e| StoreError::Database(format!("encoding new scans: {e}")))
}

/// A batch of new scans and their jobs as one command to the connection's worker thread:
/// the transaction, both `INSERT`s and the commit. sqlx runs each statement of a
/// multi-statement query in turn; the parameters are numbered, so both `INSERT`s read the
/// same rows (`?1`). Separate `begin`/`execute`/`commit` calls cost a hand-off to the worker
/// thread and back each, four per batch.
const NEW_SCANS: &str = "\
BEGIN IMMEDIATE;
INSERT INTO scans (id, site_id, url, check_type, options, status, created_at, created_by)
SELECT unhex(value ->> 0), unhex(value ->> 1), value ->> 2, value ->> 3, value ->> 4, 'queued',
       value ->> 5, unhex(value ->> 6)
FROM jsonb_each(?1);
INSERT INTO jobs (scan_id, check_type, state, max_attempts, run_at)
SELECT unhex(value ->> 0), value ->> 3, 'queued', ?2, ?3 FROM jsonb_each(?1);
COMMIT";

fn page_limit(limit: u32) -> u32 {
    limit.clamp(1, MAX_LIMIT)
}

/// Keyset start for ascending listings: every v7 (indeed every non-nil) id sorts after it.
fn after_id(after: Option<Cursor>) -> Uuid {
    after.map_or(Uuid::nil(), |c| c.0)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.write().await?;
        MIGRATOR
            .run_direct(None, &mut **conn, false)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.read().await?;
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        let writer_idle = usize::from(self.writer.conn.try_lock().is_ok());
        let idle = writer_idle + self.reader.num_idle();
        PoolStats {
            size: 1 + self.reader.size(),
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
            waiting: self.waiters.get(),
            max: self.max,
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    // ---- users and API keys -------------------------------------------------------------

    async fn create_user(&self, user: &NewUser) -> Result<User> {
        let mut conn = self.write().await?;
        let mut tx = begin(&mut conn).await?;
        sqlx::query("INSERT INTO users (id, name, role, created_at) VALUES (?, ?, ?, ?)")
            .bind(user.id.0)
            .bind(&user.name)
            .bind(user.role.as_str())
            .bind(user.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("INSERT INTO api_keys (digest, user_id, created_at) VALUES (?, ?, ?)")
            .bind(&user.key_hash.0[..])
            .bind(user.id.0)
            .bind(user.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(User {
            id: user.id,
            name: user.name.clone(),
            role: user.role,
            created_at: user.created_at,
        })
    }

    async fn add_api_key(&self, user: UserId, key: &ApiKeyHash) -> Result<()> {
        let mut conn = self.write().await?;
        let mut tx = begin(&mut conn).await?;
        sqlx::query("INSERT INTO api_keys (digest, user_id, created_at) VALUES (?, ?, ?)")
            .bind(&key.0[..])
            .bind(user.0)
            .bind(now_millis())
            .execute(&mut *tx)
            .await
            .map_err(db)
            .map_err(missing("user"))?;
        tx.commit().await.map_err(db)
    }

    async fn principal_by_key(&self, key: &ApiKeyHash) -> Result<Option<Principal>> {
        let mut conn = self.read().await?;
        let row: Option<PrincipalRow> = sqlx::query_as(
            "SELECT k.digest, u.id, u.name, u.role FROM api_keys k \
             JOIN users u ON u.id = k.user_id \
             WHERE k.digest = ? AND k.revoked_at IS NULL",
        )
        .bind(&key.0[..])
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        principal_of(row, key)
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        let mut conn = self.read().await?;
        let row: Option<UserRow> =
            sqlx::query_as("SELECT id, name, role, created_at FROM users WHERE id = ?")
                .bind(id.0)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
        row.map(User::try_from).transpose()
    }

    // ---- sites and grants -----------------------------------------------------------------

    async fn create_site(&self, site: &Site, owner: UserId) -> Result<()> {
        let mut conn = self.write().await?;
        let mut tx = begin(&mut conn).await?;
        sqlx::query("INSERT INTO sites (id, name, base_url, created_at) VALUES (?, ?, ?, ?)")
            .bind(site.id.0)
            .bind(&site.name)
            .bind(site.base_url.as_str())
            .bind(site.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("INSERT INTO grants (user_id, site_id, role) VALUES (?, ?, 'owner')")
            .bind(owner.0)
            .bind(site.id.0)
            .execute(&mut *tx)
            .await
            .map_err(db)
            .map_err(missing("user"))?;
        tx.commit().await.map_err(db)
    }

    async fn get_site(&self, id: SiteId) -> Result<Option<Site>> {
        let mut conn = self.read().await?;
        let row: Option<SiteRow> =
            sqlx::query_as("SELECT id, name, base_url, created_at FROM sites WHERE id = ?")
                .bind(id.0)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
        row.map(Site::try_from).transpose()
    }

    async fn list_sites(
        &self,
        member: Option<UserId>,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Site>> {
        let limit = page_limit(limit);
        let mut conn = self.read().await?;
        let rows: Vec<SiteRow> = match member {
            None => {
                sqlx::query_as(
                    "SELECT id, name, base_url, created_at FROM sites \
                     WHERE id > ? ORDER BY id LIMIT ?",
                )
                .bind(after_id(after))
                .bind(i64::from(limit) + 1)
                .fetch_all(&mut *conn)
                .await
            }
            Some(user) => {
                sqlx::query_as(
                    "SELECT s.id, s.name, s.base_url, s.created_at FROM grants g \
                     JOIN sites s ON s.id = g.site_id \
                     WHERE g.user_id = ? AND g.site_id > ? ORDER BY g.site_id LIMIT ?",
                )
                .bind(user.0)
                .bind(after_id(after))
                .bind(i64::from(limit) + 1)
                .fetch_all(&mut *conn)
                .await
            }
        }
        .map_err(db)?;
        Ok(Page::from_overfetch(convert(rows)?, limit, |s: &Site| {
            s.id.0
        }))
    }

    async fn set_grant(&self, site: SiteId, user: UserId, role: SiteRole) -> Result<()> {
        let mut conn = self.write().await?;
        let mut tx = begin(&mut conn).await?;
        sqlx::query(
            "INSERT INTO grants (user_id, site_id, role) VALUES (?, ?, ?) \
             ON CONFLICT (user_id, site_id) DO UPDATE SET role = excluded.role",
        )
        .bind(user.0)
        .bind(site.0)
        .bind(role.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)
        .map_err(missing("user or site"))?;
        tx.commit().await.map_err(db)
    }

    async fn grant(&self, user: UserId, site: SiteId) -> Result<Option<SiteRole>> {
        let mut conn = self.read().await?;
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM grants WHERE user_id = ? AND site_id = ?")
                .bind(user.0)
                .bind(site.0)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
        role.map(|r| {
            r.parse()
                .map_err(|()| StoreError::Corrupt(format!("unknown grant role {r:?}")))
        })
        .transpose()
    }

    // ---- scans, findings, queue -----------------------------------------------------------

    /// All scans and their job rows in one `BEGIN IMMEDIATE` transaction ([`NEW_SCANS`]):
    /// one command to the writer's thread and one fsync of the WAL whatever the batch size.
    /// After `Ok` every scan is durable (`synchronous=FULL`).
    ///
    /// The rows travel as one JSON array bound to a single parameter and are spread by
    /// `jsonb_each`: one statement text for every batch size, prepared once. (`jsonb_each`
    /// rather than `json_each`: it hands each row to `->>` as JSONB, so a row is not parsed
    /// from text again for every column it gives.) Multi-row
    /// `VALUES` lists had a text per batch length (up to 128 shapes of the two statements),
    /// which churned the connection's 100-entry statement cache, re-preparing statements
    /// and holding megabytes of them.
    async fn create_scans(&self, scans: &[NewScan], max_attempts: u32) -> Result<()> {
        if scans.is_empty() {
            return Ok(());
        }
        // New jobs are due at once, by the store's clock (not the caller's `created_at`).
        let now = now_millis();
        let rows = scan_rows_json(scans)?;
        let mut conn = self.write().await?;
        // Until the command has answered, its transaction may be open (see `WriteConn`).
        conn.in_doubt = true;
        let done = sqlx::query(NEW_SCANS)
            .bind(&rows)
            .bind(i64::from(max_attempts))
            .bind(now)
            .execute(&mut **conn)
            .await;
        if let Err(e) = done {
            // The command stopped at the failing statement, after its BEGIN if that passed.
            conn.settle().await;
            return Err(db(e)).map_err(missing("site or user"));
        }
        conn.in_doubt = false;
        drop(conn);
        self.publish(StoreEvent::JobsAvailable);
        Ok(())
    }

    async fn get_scan(&self, id: ScanId) -> Result<Option<Scan>> {
        let mut conn = self.read().await?;
        let row: Option<ScanRow> = sqlx::query_as(concat!(
            "SELECT ",
            scan_columns!(),
            " FROM scans WHERE id = ?"
        ))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        row.map(Scan::try_from).transpose()
    }

    /// Newest first by `(created_at, id)`; the cursor is the id of the last scan of the
    /// previous page, whose creation time is looked up (imported scans need not have v7 ids).
    async fn list_scans(
        &self,
        site: SiteId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Scan>> {
        let limit = page_limit(limit);
        let mut conn = self.read().await?;
        let rows: Vec<ScanRow> = match after {
            None => {
                sqlx::query_as(concat!(
                    "SELECT ",
                    scan_columns!(),
                    " FROM scans WHERE site_id = ? \
                     ORDER BY created_at DESC, id DESC LIMIT ?"
                ))
                .bind(site.0)
                .bind(i64::from(limit) + 1)
                .fetch_all(&mut *conn)
                .await
            }
            Some(cursor) => {
                sqlx::query_as(concat!(
                    "SELECT ",
                    scan_columns!(),
                    " FROM scans WHERE site_id = ? \
                     AND (created_at, id) < (SELECT created_at, id FROM scans WHERE id = ?) \
                     ORDER BY created_at DESC, id DESC LIMIT ?"
                ))
                .bind(site.0)
                .bind(cursor.0)
                .bind(i64::from(limit) + 1)
                .fetch_all(&mut *conn)
                .await
            }
        }
        .map_err(db)?;
        Ok(Page::from_overfetch(convert(rows)?, limit, |s: &Scan| {
            s.id.0
        }))
    }

    async fn list_findings(
        &self,
        scan: ScanId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Finding>> {
        let limit = page_limit(limit);
        let mut conn = self.read().await?;
        let rows: Vec<FindingRow> = sqlx::query_as(concat!(
            "SELECT ",
            finding_columns!(),
            " FROM findings WHERE scan_id = ? AND id > ? ORDER BY id LIMIT ?"
        ))
        .bind(scan.0)
        .bind(after_id(after))
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        Ok(Page::from_overfetch(
            convert(rows)?,
            limit,
            |f: &Finding| f.id.0,
        ))
    }

    async fn queue_depth(&self) -> Result<QueueDepth> {
        let mut conn = self.read().await?;
        let (queued, running): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM jobs WHERE state = 'queued'), \
                    (SELECT count(*) FROM jobs WHERE state = 'running')",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
        Ok(QueueDepth {
            queued: u64::try_from(queued).unwrap_or(0),
            running: u64::try_from(running).unwrap_or(0),
        })
    }

    /// Picks due queued jobs of the given types (oldest `run_at` first) and leases each with a
    /// fresh random token, all in one `BEGIN IMMEDIATE` transaction: the single writer
    /// connection serialises concurrent callers, so no job is leased twice.
    async fn lease_jobs(
        &self,
        worker: &str,
        check_types: &[CheckType],
        max: u32,
        lease_for: Duration,
    ) -> Result<Vec<Lease>> {
        if max == 0 || check_types.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_millis();
        let until = now.saturating_add(millis(lease_for));
        let mut conn = self.write().await?;
        let mut tx = begin(&mut conn).await?;
        // `state = 'queued'` is spelled out (not bound) so that the partial index applies.
        let mut pick = QueryBuilder::<Sqlite>::new(
            "SELECT scan_id FROM jobs WHERE state = 'queued' AND run_at <= ",
        );
        pick.push_bind(now).push(" AND check_type IN (");
        let mut types = pick.separated(", ");
        for t in check_types {
            types.push_bind(t.as_str());
        }
        pick.push(") ORDER BY run_at, scan_id LIMIT ")
            .push_bind(i64::from(max));
        let ids: Vec<Uuid> = pick
            .build_query_scalar()
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let mut leases = Vec::with_capacity(ids.len());
        for id in ids {
            let token = Uuid::new_v4();
            let (attempts, max_attempts): (i64, i64) = sqlx::query_as(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_token = ?, \
                 leased_by = ?, lease_until = ? WHERE scan_id = ? \
                 RETURNING attempts, max_attempts",
            )
            .bind(token)
            .bind(worker)
            .bind(until)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            let row: LeaseRow = sqlx::query_as(concat!(
                "UPDATE scans SET status = 'running', started_at = ?, attempts = ? \
                 WHERE id = ? RETURNING ",
                scan_columns!(),
                ", ? AS lease_token, ? AS max_attempts, ? AS lease_until"
            ))
            .bind(now)
            .bind(attempts)
            .bind(id)
            .bind(token)
            .bind(max_attempts)
            .bind(until)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            leases.push(row.into_lease(worker)?);
        }
        tx.commit().await.map_err(db)?;
        Ok(leases)
    }

    async fn heartbeat(&self, lease: &Lease, lease_for: Duration) -> Result<bool> {
        let until = now_millis().saturating_add(millis(lease_for));
        let mut conn = self.write().await?;
        let mut tx = begin(&mut conn).await?;
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = ? \
             WHERE scan_id = ? AND lease_token = ? AND state = 'running'",
        )
        .bind(until)
        .bind(lease.scan.id.0)
        .bind(lease.token)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// Fenced by the lease token: the job row is deleted first, and only if that deleted it
    /// are the scan and its findings (multi-row `INSERT`s of 1000) written, in the same
    /// transaction.
    async fn complete_job(
        &self,
        lease: &Lease,
        summary: &Value,
        findings: &[NewFinding],
    ) -> Result<bool> {
        let now = now_millis();
        let scan = lease.scan.id;
        let mut conn = self.write().await?;
        let mut tx = begin(&mut conn).await?;
        let fenced = sqlx::query(
            "DELETE FROM jobs WHERE scan_id = ? AND lease_token = ? AND state = 'running'",
        )
        .bind(scan.0)
        .bind(lease.token)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if fenced.rows_affected() == 0 {
            // Dropping the transaction rolls it back; nothing was written.
            return Ok(false);
        }
        sqlx::query(
            "UPDATE scans SET status = 'completed', finished_at = ?, summary = ?, error = NULL \
             WHERE id = ?",
        )
        .bind(now)
        .bind(Json(summary))
        .bind(scan.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        for chunk in findings.chunks(CHUNK) {
            let mut insert = QueryBuilder::<Sqlite>::new(concat!(
                "INSERT INTO findings (",
                finding_columns!(),
                ") "
            ));
            insert.push_values(chunk, |mut row, f| {
                row.push_bind(scan.0)
                    .push_bind(FindingId::new().0)
                    .push_bind(f.kind.as_str())
                    .push_bind(f.severity.as_str())
                    .push_bind(f.url.clone())
                    .push_bind(f.message.clone())
                    .push_bind(Json(f.detail.clone()))
                    .push_bind(now);
            });
            insert.build().execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        self.publish(StoreEvent::ScanFinished(scan));
        Ok(true)
    }

    /// A retry is granted only while attempts remain: on the last attempt the scan fails
    /// whatever `retry_at` says, so a worker bug cannot retry a job forever.
    async fn fail_job(
        &self,
        lease: &Lease,
        error: &str,
        retry_at: Option<EpochMillis>,
    ) -> Result<JobFate> {
        let now = now_millis();
        let scan = lease.scan.id;
        let mut conn = self.write().await?;
        let mut tx = begin(&mut conn).await?;
        let job: Option<(i64, i64)> = sqlx::query_as(
            "SELECT attempts, max_attempts FROM jobs \
             WHERE scan_id = ? AND lease_token = ? AND state = 'running'",
        )
        .bind(scan.0)
        .bind(lease.token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some((attempts, max_attempts)) = job else {
            return Ok(JobFate::LeaseLost);
        };
        let fate = match retry_at {
            Some(at) if attempts < max_attempts => {
                sqlx::query(
                    "UPDATE jobs SET state = 'queued', run_at = ?, lease_token = NULL, \
                     leased_by = NULL, lease_until = NULL, last_error = ? WHERE scan_id = ?",
                )
                .bind(at)
                .bind(error)
                .bind(scan.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                sqlx::query("UPDATE scans SET status = 'queued' WHERE id = ?")
                    .bind(scan.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                JobFate::Retrying
            }
            _ => {
                sqlx::query("DELETE FROM jobs WHERE scan_id = ?")
                    .bind(scan.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                sqlx::query(
                    "UPDATE scans SET status = 'failed', finished_at = ?, error = ? WHERE id = ?",
                )
                .bind(now)
                .bind(error)
                .bind(scan.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                JobFate::Failed
            }
        };
        tx.commit().await.map_err(db)?;
        match (fate, retry_at) {
            (JobFate::Retrying, Some(at)) if at <= now => self.publish(StoreEvent::JobsAvailable),
            (JobFate::Failed, _) => self.publish(StoreEvent::ScanFinished(scan)),
            _ => {}
        }
        Ok(fate)
    }

    async fn release_job(&self, lease: &Lease) -> Result<bool> {
        let now = now_millis();
        let scan = lease.scan.id;
        let mut conn = self.write().await?;
        let mut tx = begin(&mut conn).await?;
        let attempts: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'queued', run_at = ?, attempts = max(attempts - 1, 0), \
             lease_token = NULL, leased_by = NULL, lease_until = NULL \
             WHERE scan_id = ? AND lease_token = ? AND state = 'running' RETURNING attempts",
        )
        .bind(now)
        .bind(scan.0)
        .bind(lease.token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(attempts) = attempts else {
            return Ok(false);
        };
        sqlx::query("UPDATE scans SET status = 'queued', attempts = ? WHERE id = ?")
            .bind(attempts)
            .bind(scan.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.publish(StoreEvent::JobsAvailable);
        Ok(true)
    }

    /// Expired leases with attempts left go back to the queue, due now, keeping their
    /// attempt count; the others fail their scan with "worker lost: lease expired after N
    /// attempts". One transaction; the old lease token is cleared, which fences out the
    /// worker that held it.
    async fn requeue_expired(&self) -> Result<u64> {
        let now = now_millis();
        let mut conn = self.write().await?;
        let mut tx = begin(&mut conn).await?;
        let failed: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE scans SET status = 'failed', finished_at = ?1, \
             error = 'worker lost: lease expired after ' || j.attempts || ' attempts' \
             FROM jobs j WHERE j.scan_id = scans.id AND j.state = 'running' \
             AND j.lease_until < ?1 AND j.attempts >= j.max_attempts RETURNING scans.id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "DELETE FROM jobs WHERE state = 'running' AND lease_until < ? \
             AND attempts >= max_attempts",
        )
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "UPDATE scans SET status = 'queued' FROM jobs j WHERE j.scan_id = scans.id \
             AND j.state = 'running' AND j.lease_until < ?",
        )
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let requeued = sqlx::query(
            "UPDATE jobs SET state = 'queued', run_at = ?1, lease_token = NULL, \
             leased_by = NULL, lease_until = NULL, last_error = 'worker lost: lease expired' \
             WHERE state = 'running' AND lease_until < ?1",
        )
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        tx.commit().await.map_err(db)?;
        if requeued > 0 {
            self.publish(StoreEvent::JobsAvailable);
        }
        for id in &failed {
            self.publish(StoreEvent::ScanFinished(ScanId(*id)));
        }
        Ok(requeued + to_u64(failed.len()))
    }

    // ---- visual baselines -----------------------------------------------------------------

    async fn put_baseline(&self, b: &Baseline) -> Result<()> {
        let mut conn = self.write().await?;
        let mut tx = begin(&mut conn).await?;
        sqlx::query(concat!(
            "INSERT INTO baselines (",
            baseline_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (site_id, page_url, viewport, full_page) DO UPDATE SET \
             artifact_key = excluded.artifact_key, width = excluded.width, \
             height = excluded.height, scan_id = excluded.scan_id, \
             approved_by = excluded.approved_by, updated_at = excluded.updated_at"
        ))
        .bind(b.site_id.0)
        .bind(&b.page_url)
        .bind(b.viewport.as_str())
        .bind(b.full_page)
        .bind(&b.artifact_key)
        .bind(i64::from(b.width))
        .bind(i64::from(b.height))
        .bind(b.scan_id.0)
        .bind(b.approved_by.map(|u| u.0))
        .bind(b.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db)
        .map_err(missing("site, scan or user"))?;
        tx.commit().await.map_err(db)
    }

    async fn get_baseline(
        &self,
        site: SiteId,
        page_url: &str,
        viewport: Viewport,
        full_page: bool,
    ) -> Result<Option<Baseline>> {
        let mut conn = self.read().await?;
        let row: Option<BaselineRow> = sqlx::query_as(concat!(
            "SELECT ",
            baseline_columns!(),
            " FROM baselines WHERE site_id = ? AND page_url = ? AND viewport = ? \
             AND full_page = ?"
        ))
        .bind(site.0)
        .bind(page_url)
        .bind(viewport.as_str())
        .bind(full_page)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        row.map(Baseline::try_from).transpose()
    }

    // ---- bulk import ----------------------------------------------------------------------

    /// One `BEGIN IMMEDIATE` transaction of multi-row `INSERT … ON CONFLICT DO NOTHING`
    /// statements of 1000 rows each; the counts are the rows actually inserted.
    async fn import(&self, batch: &ImportBatch) -> Result<ImportCounts> {
        let mut counts = ImportCounts::default();
        let mut conn = self.write().await?;
        let mut tx = begin(&mut conn).await?;
        for chunk in batch.users.chunks(CHUNK) {
            let mut users =
                QueryBuilder::<Sqlite>::new("INSERT INTO users (id, name, role, created_at) ");
            users.push_values(chunk, |mut row, u| {
                row.push_bind(u.id.0)
                    .push_bind(u.name.clone())
                    .push_bind(u.role.as_str())
                    .push_bind(u.created_at);
            });
            users.push(" ON CONFLICT DO NOTHING");
            counts.users += users
                .build()
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            let mut keys =
                QueryBuilder::<Sqlite>::new("INSERT INTO api_keys (digest, user_id, created_at) ");
            keys.push_values(chunk, |mut row, u| {
                row.push_bind(u.key_hash.0.to_vec())
                    .push_bind(u.id.0)
                    .push_bind(u.created_at);
            });
            keys.push(" ON CONFLICT DO NOTHING");
            keys.build().execute(&mut *tx).await.map_err(db)?;
        }
        for chunk in batch.sites.chunks(CHUNK) {
            let mut sites =
                QueryBuilder::<Sqlite>::new("INSERT INTO sites (id, name, base_url, created_at) ");
            sites.push_values(chunk, |mut row, s| {
                row.push_bind(s.id.0)
                    .push_bind(s.name.clone())
                    .push_bind(s.base_url.as_str().to_owned())
                    .push_bind(s.created_at);
            });
            sites.push(" ON CONFLICT DO NOTHING");
            counts.sites += sites
                .build()
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
        }
        for chunk in batch.grants.chunks(CHUNK) {
            let mut grants =
                QueryBuilder::<Sqlite>::new("INSERT INTO grants (user_id, site_id, role) ");
            grants.push_values(chunk, |mut row, (site, user, role)| {
                row.push_bind(user.0)
                    .push_bind(site.0)
                    .push_bind(role.as_str());
            });
            grants.push(" ON CONFLICT DO NOTHING");
            counts.grants += grants
                .build()
                .execute(&mut *tx)
                .await
                .map_err(db)
                .map_err(missing("user or site"))?
                .rows_affected();
        }
        for chunk in batch.scans.chunks(CHUNK) {
            let mut scans = QueryBuilder::<Sqlite>::new(concat!(
                "INSERT INTO scans (",
                scan_columns!(),
                ", check_type) "
            ));
            scans.push_values(chunk, |mut row, s| {
                row.push_bind(s.id.0)
                    .push_bind(s.site_id.0)
                    .push_bind(s.url.clone())
                    .push_bind(s.options.canonical_json())
                    .push_bind(s.status.as_str())
                    .push_bind(s.created_at)
                    .push_bind(s.started_at)
                    .push_bind(s.finished_at)
                    .push_bind(s.summary.clone().map(Json))
                    .push_bind(s.error.clone())
                    .push_bind(i64::from(s.attempts))
                    .push_bind(s.created_by.map(|u| u.0))
                    .push_bind(s.options.check_type.as_str());
            });
            scans.push(" ON CONFLICT DO NOTHING");
            counts.scans += scans
                .build()
                .execute(&mut *tx)
                .await
                .map_err(db)
                .map_err(missing("site or user"))?
                .rows_affected();
        }
        tx.commit().await.map_err(db)?;
        Ok(counts)
    }
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migrated store in a fresh directory (kept alive by the returned guard).
    async fn migrated() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db"), &SqliteOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        (dir, store)
    }

    /// The value of a numeric pragma on `conn` (`query`: `PRAGMA name`).
    async fn pragma(conn: &mut sqlx::SqliteConnection, query: &'static str) -> i64 {
        sqlx::query_scalar(query).fetch_one(conn).await.unwrap()
    }

    #[tokio::test]
    async fn pragmas_are_applied_to_both_pools() {
        let (_dir, store) = migrated().await;
        let mut w = store.write().await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut **w)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let sync = pragma(&mut w, "PRAGMA synchronous").await;
        assert_eq!(sync, 2, "synchronous=FULL");
        let fk = pragma(&mut w, "PRAGMA foreign_keys").await;
        assert_eq!(fk, 1);
        let busy = pragma(&mut w, "PRAGMA busy_timeout").await;
        assert!(busy >= 5000);
        let temp = pragma(&mut w, "PRAGMA temp_store").await;
        assert_eq!(temp, 2, "temp_store=MEMORY");
        let backstop = pragma(&mut w, "PRAGMA wal_autocheckpoint").await;
        assert_eq!(backstop, 20_000);
        let cache = pragma(&mut w, "PRAGMA cache_size").await;
        assert_eq!(cache, -1024, "the writer keeps 1 MB of pages");
        drop(w);
        let mut r = store.read().await.unwrap();
        let cache = pragma(&mut r, "PRAGMA cache_size").await;
        assert_eq!(cache, -512, "readers keep a small page cache");
        let err = sqlx::query("DELETE FROM users")
            .execute(&mut *r)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
    }

    /// Commits far below the writer's own threshold still reach the database file: the
    /// background checkpointer copied them.
    #[tokio::test]
    async fn the_log_is_checkpointed_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path, &SqliteOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        {
            let mut w = store.write().await.unwrap();
            sqlx::query("CREATE TABLE filler (b BLOB)")
                .execute(&mut **w)
                .await
                .unwrap();
            // About 250 pages of log: a hundredth of the writer's threshold.
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
                 INSERT INTO filler SELECT randomblob(1000) FROM n",
            )
            .execute(&mut **w)
            .await
            .unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let len = std::fs::metadata(&path).unwrap().len();
            if len >= before + 900_000 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "database file still {len} bytes (was {before}): nothing was checkpointed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn lease_query_uses_the_partial_index() {
        let (_dir, store) = migrated().await;
        let mut r = store.read().await.unwrap();
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "EXPLAIN QUERY PLAN SELECT scan_id FROM jobs WHERE state = 'queued' \
             AND run_at <= 1 AND check_type IN ('broken-links') ORDER BY run_at, scan_id LIMIT 5",
        )
        .fetch_all(&mut *r)
        .await
        .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|p| p.3).collect();
        assert!(
            plan.iter().any(|p| p.contains("jobs_due")),
            "plan: {plan:?}"
        );
        assert!(
            !plan.iter().any(|p| p.contains("TEMP B-TREE")),
            "plan: {plan:?}"
        );
    }

    /// The API's listings walk an index in order (no sort, no table scan), however deep the
    /// client pages.
    #[tokio::test]
    async fn listings_walk_their_indexes() {
        let (_dir, store) = migrated().await;
        let mut r = store.read().await.unwrap();
        for (sql, index) in [
            (
                "SELECT id FROM scans WHERE site_id = x'00' \
                 AND (created_at, id) < (SELECT created_at, id FROM scans WHERE id = x'01') \
                 ORDER BY created_at DESC, id DESC LIMIT 5",
                "scans_site_created",
            ),
            (
                "SELECT id FROM scans WHERE site_id = x'00' \
                 ORDER BY created_at DESC, id DESC LIMIT 5",
                "scans_site_created",
            ),
            (
                "SELECT id FROM findings WHERE scan_id = x'00' AND id > x'01' ORDER BY id LIMIT 5",
                "sqlite_autoindex_findings_1",
            ),
            (
                "SELECT s.id FROM grants g JOIN sites s ON s.id = g.site_id \
                 WHERE g.user_id = x'00' AND g.site_id > x'01' ORDER BY g.site_id LIMIT 5",
                "PRIMARY KEY",
            ),
            (
                "SELECT u.id FROM api_keys k JOIN users u ON u.id = k.user_id \
                 WHERE k.digest = x'00' AND k.revoked_at IS NULL",
                "sqlite_autoindex_api_keys_1",
            ),
        ] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .fetch_all(&mut *r)
                    .await
                    .unwrap();
            let plan: Vec<String> = plan.into_iter().map(|p| p.3).collect();
            assert!(plan.iter().any(|p| p.contains(index)), "{sql}: {plan:?}");
            assert!(
                !plan.iter().any(|p| p.contains("TEMP B-TREE")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|p| p.starts_with("SCAN") && !p.contains("INDEX")),
                "{sql}: {plan:?}"
            );
        }
    }

    /// A batch of new scans abandoned midway (its caller cancelled while the worker ran it)
    /// can leave its transaction open on the write connection; the next writer rolls it back
    /// first instead of failing at its own `BEGIN`, and nothing of the batch stays.
    #[tokio::test]
    async fn a_transaction_left_in_doubt_is_rolled_back_before_the_next_write() {
        let (_dir, store) = migrated().await;
        {
            let mut w = store.write().await.unwrap();
            // What an interrupted `NEW_SCANS` leaves: BEGIN and a write ran, COMMIT did not.
            sqlx::query(
                "BEGIN IMMEDIATE; \
                 INSERT INTO users (id, name, role, created_at) VALUES (x'01', 'x', 'member', 0)",
            )
            .execute(&mut **w)
            .await
            .unwrap();
            w.in_doubt = true;
        }
        let user = NewUser {
            id: UserId::new(),
            name: "after".into(),
            role: sentinel_core::Role::Member,
            key_hash: ApiKeyHash([7; 32]),
            created_at: now_millis(),
        };
        store.create_user(&user).await.unwrap();
        let mut r = store.read().await.unwrap();
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM users")
            .fetch_all(&mut *r)
            .await
            .unwrap();
        assert_eq!(names, ["after"]);
    }

    #[tokio::test]
    async fn pool_stats_count_waiting_callers() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(
            SqliteStore::open(dir.path().join("t.db"), &SqliteOptions::default())
                .await
                .unwrap(),
        );
        let held = store.write().await.unwrap();
        assert_eq!(store.pool_stats().waiting, 0);
        let waiter = tokio::spawn({
            let store = std::sync::Arc::clone(&store);
            async move { store.write().await.map(drop) }
        });
        while store.pool_stats().waiting == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(store.pool_stats().waiting, 1);
        drop(held);
        waiter.await.unwrap().unwrap();
        assert_eq!(store.pool_stats().waiting, 0);
        assert_eq!(
            store.pool_stats().max,
            1 + SqliteOptions::default().read_connections
        );
    }
}
