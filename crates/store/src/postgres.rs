//! The PostgreSQL backend, for many API and worker processes sharing one database.
//!
//! The hot paths are single statements (one round trip, atomic without `BEGIN`/`COMMIT`):
//! `create_scans` inserts every scan and its job from arrays (`UNNEST`) and notifies in the
//! same statement; `lease_jobs` picks with `FOR UPDATE SKIP LOCKED`, leases and marks the
//! scans running in one statement. Writes about a leased job are fenced by its lease token.
//!
//! Wake-ups: `NOTIFY sentinel_jobs` when scans are created or jobs return to the queue due
//! now, `NOTIFY sentinel_scans, '<scan id>'` when a scan finishes; notifications are sent
//! by the committing transaction, so a listener never hears of uncommitted work. A
//! background task holds one `LISTEN` connection and relays what it hears into
//! [`Store::subscribe`]; it reconnects when the connection drops, and then also publishes a
//! `JobsAvailable`, since anything sent meanwhile was lost. Notifications stay hints:
//! consumers poll as well. Requires PostgreSQL 13 or later (`gen_random_uuid()`).

use crate::pool::{Waiters, pool_options};
use crate::rows::{
    BaselineRow, FindingRow, LeaseRow, PrincipalRow, ScanRow, SiteRow, UserRow, baseline_columns,
    convert, finding_columns, millis, principal_of, scan_columns,
};
use crate::sqlerr::{missing, pg as db};
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
use sqlx::postgres::{PgConnectOptions, PgListener, PgNotification, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Connection, FromRow, Postgres, Row};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Channel of "jobs may be ready" notifications (empty payload).
const JOBS_CHANNEL: &str = "sentinel_jobs";
/// Channel of "scan finished" notifications (payload: the scan id).
const SCANS_CHANNEL: &str = "sentinel_scans";

/// Rows per bulk `INSERT` (findings, imports). Arrays have no bind-parameter limit, but
/// bounded statements keep memory and lock times bounded too.
const CHUNK: usize = 1000;

/// TLS to a server on this machine protects nothing (the bytes never leave the kernel) and
/// costs both sides CPU on every round trip: with `sslmode=prefer`, the default of libpq and
/// sqlx, a point query ran at 8,823 per second against 9,810 without TLS (pgbench, one
/// connection, on the development machine). Unless the URL (or
/// `PGSSLMODE`) names a mode, a loopback or Unix-socket server is reached without TLS; any
/// other host keeps `prefer`.
fn plain_on_loopback(url: &str, connect: PgConnectOptions) -> PgConnectOptions {
    let named = std::env::var_os("PGSSLMODE").is_some()
        || url::Url::parse(url).is_ok_and(|u| u.query_pairs().any(|(k, _)| k == "sslmode"));
    let host = connect.get_host();
    let local = connect.get_socket().is_some()
        || host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if local && !named {
        connect.ssl_mode(sqlx::postgres::PgSslMode::Disable)
    } else {
        connect
    }
}

/// Settings of the PostgreSQL backend.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Pool size.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long connecting, or waiting for a pooled connection, may take before the store
    /// reports [`StoreError::Unavailable`].
    pub connect_timeout: Duration,
    /// The server cancels any statement running longer (`statement_timeout`).
    pub statement_timeout: Duration,
    /// `application_name` of the pooled connections (the listener's gets `-listener`
    /// appended), as `pg_stat_activity` shows it.
    pub application_name: String,
    /// Whether to relay other processes' notifications into [`Store::subscribe`].
    pub listen: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 20,
            min_connections: 5,
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(30),
            application_name: "qa-sentinel".to_owned(),
            listen: true,
        }
    }
}

/// The PostgreSQL store.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    waiters: Waiters,
    max: u32,
    events: broadcast::Sender<StoreEvent>,
    _listener: Option<ListenerTask>,
}

/// Stops the relay task with the store.
#[derive(Debug)]
struct ListenerTask(JoinHandle<()>);

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) and, with [`PgOptions::listen`], starts listening
    /// before it returns, so no notification sent after `connect` is missed. Fails with
    /// [`StoreError::Unavailable`] when the server cannot be reached within the connect
    /// timeout. Call [`Store::migrate`] before use.
    pub async fn connect(url: &str, options: &PgOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
        let connect = plain_on_loopback(url, connect)
            .application_name(&options.application_name)
            .options([(
                "statement_timeout",
                format!("{}ms", options.statement_timeout.as_millis()),
            )]);
        let pool = pool_options::<Postgres>()
            .max_connections(options.max_connections)
            .min_connections(options.min_connections.min(options.max_connections))
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(db)?;
        let (events, _) = broadcast::channel(1024);
        let listener = if options.listen {
            let name = format!("{}-listener", options.application_name);
            // A pool of one, used by `PgListener` to reconnect; connections never expire,
            // as LISTEN registrations live and die with their connection.
            let listen_pool = PgPoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .acquire_timeout(options.connect_timeout)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_lazy_with(connect.application_name(&name));
            let mut listener = PgListener::connect_with(&listen_pool).await.map_err(db)?;
            listener
                .listen_all([JOBS_CHANNEL, SCANS_CHANNEL])
                .await
                .map_err(db)?;
            let relay = tokio::spawn(relay(listener, events.clone()));
            Some(ListenerTask(relay))
        } else {
            None
        };
        Ok(Self {
            pool,
            waiters: Waiters::default(),
            max: options.max_connections,
            events,
            _listener: listener,
        })
    }

    async fn conn(&self) -> Result<PoolConnection<Postgres>> {
        self.waiters.acquire(&self.pool).await.map_err(db)
    }

    fn publish(&self, event: StoreEvent) {
        // No receiver is not an error: events are hints for whoever listens.
        let _ = self.events.send(event);
    }
}

/// Relays notifications until the store is dropped (which aborts this task).
async fn relay(mut listener: PgListener, events: broadcast::Sender<StoreEvent>) {
    const MAX_BACKOFF: Duration = Duration::from_secs(5);
    let mut backoff = Duration::from_millis(100);
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => {
                backoff = Duration::from_millis(100);
                if let Some(event) = event_of(&n) {
                    let _ = events.send(event);
                }
            }
            Ok(None) => {
                // Reconnected (and re-subscribed) after losing the connection: whatever was
                // notified in between is lost, so wake the consumers to poll.
                tracing::warn!("store listener connection lost; reconnected");
                let _ = events.send(StoreEvent::JobsAvailable);
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "store listener failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn event_of(n: &PgNotification) -> Option<StoreEvent> {
    match n.channel() {
        JOBS_CHANNEL => Some(StoreEvent::JobsAvailable),
        SCANS_CHANNEL => match Uuid::try_parse(n.payload()) {
            Ok(id) => Some(StoreEvent::ScanFinished(ScanId(id))),
            Err(_) => {
                tracing::warn!(
                    payload = n.payload(),
                    "ignoring a malformed scan notification"
                );
                None
            }
        },
        _ => None,
    }
}

// ---- the queue's statements ---------------------------------------------------------------
//
// They are prepared once per connection and, after a few runs, PostgreSQL may switch to a
// generic plan that cannot see the bound values (how many rows a LIMIT or a CTE yields). Rows
// handed from one CTE to the next are therefore matched with `= ANY(ARRAY(SELECT …))` or
// `EXISTS`, which any plan resolves through the primary key, never by scanning (and hashing)
// the whole `jobs` or `scans` table. The unit test `generic_plans_use_indexes` checks this.

/// Inserts scans and their jobs from arrays and notifies, in one statement. Scans whose site
/// does not exist are left out by the insert, and then fail the whole statement (migration
/// 0003: one index scan for the batch's sites instead of a foreign-key trigger per row).
const CREATE_SCANS: &str = "\
WITH s AS (
    INSERT INTO scans (id, site_id, url, check_type, options, status, created_at, created_by)
    SELECT id, site_id, url, check_type, options, 'queued', created_at, created_by
    FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int8[],
                $7::uuid[]) AS n(id, site_id, url, check_type, options, created_at, created_by)
    WHERE site_id = ANY(ARRAY(SELECT id FROM sites WHERE id = ANY($2::uuid[])))
    RETURNING id, check_type
), j AS (
    INSERT INTO jobs (scan_id, check_type, state, max_attempts, run_at)
    SELECT id, check_type, 'queued', $8, $9 FROM s
), c AS (
    SELECT cardinality($1::uuid[]) - count(*) AS missing FROM s
)
SELECT pg_notify('sentinel_jobs', ''),
    CASE WHEN missing > 0 THEN sentinel_missing_site(missing) END
FROM c";

/// Picks, leases and starts due jobs. `state = 'queued'` is spelled out (not bound) so that
/// the partial index `jobs_due` applies.
const LEASE: &str = "\
WITH leased AS (
    UPDATE jobs SET state = 'running', attempts = attempts + 1,
        lease_token = gen_random_uuid(), leased_by = $4, lease_until = $5
    WHERE scan_id = ANY(ARRAY(
        SELECT scan_id FROM jobs
        WHERE state = 'queued' AND run_at <= $1 AND check_type = ANY($2::text[])
        ORDER BY run_at, scan_id
        LIMIT $3
        FOR UPDATE SKIP LOCKED))
    RETURNING scan_id, lease_token, attempts, max_attempts, lease_until, run_at
)
UPDATE scans s SET status = 'running', started_at = $1, attempts = l.attempts
FROM leased l
WHERE s.id = l.scan_id AND s.id = ANY(ARRAY(SELECT scan_id FROM leased))
RETURNING s.id, s.site_id, s.url, s.options, s.status, s.created_at, s.started_at,
    s.finished_at, s.summary, s.error, s.attempts, s.created_by,
    l.lease_token, l.max_attempts, l.lease_until, l.run_at";

/// Deletes the job if the lease is current, completes its scan and notifies; returns how many
/// scans it completed (0: the lease was lost).
const COMPLETE: &str = "\
WITH done AS (
    DELETE FROM jobs WHERE scan_id = $1 AND lease_token = $2 AND state = 'running'
    RETURNING scan_id
), upd AS (
    UPDATE scans SET status = 'completed', finished_at = $3, summary = $4, error = NULL
    WHERE id = $1 AND EXISTS (SELECT 1 FROM done)
    RETURNING id
)
SELECT count(*) FROM (SELECT pg_notify('sentinel_scans', id::text) FROM upd) n";

/// One chunk of a scan's findings.
const INSERT_FINDINGS: &str = "\
INSERT INTO findings (scan_id, id, kind, severity, url, message, detail, created_at)
SELECT $1, id, kind, severity, url, message, detail, $8
FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
    AS f(id, kind, severity, url, message, detail)";

/// Returns a leased job to the queue, uncounted, if the lease is current; returns how many.
const RELEASE: &str = "\
WITH r AS (
    UPDATE jobs SET state = 'queued', run_at = $1, attempts = greatest(attempts - 1, 0),
        lease_token = NULL, leased_by = NULL, lease_until = NULL
    WHERE scan_id = $2 AND lease_token = $3 AND state = 'running'
    RETURNING attempts
), u AS (
    UPDATE scans SET status = 'queued', attempts = (SELECT attempts FROM r)
    WHERE id = $2 AND EXISTS (SELECT 1 FROM r)
    RETURNING id
)
SELECT count(*) FROM (SELECT pg_notify('sentinel_jobs', '') FROM u) n";

/// Requeues or fails the jobs whose lease expired; returns how many went back, the ids of the
/// failed scans, and (ignored) the notification counts.
const REQUEUE: &str = "\
WITH expired AS (
    SELECT scan_id, attempts, max_attempts FROM jobs
    WHERE state = 'running' AND lease_until < $1
    FOR UPDATE SKIP LOCKED
), dead AS (
    DELETE FROM jobs
    WHERE scan_id = ANY(ARRAY(SELECT scan_id FROM expired WHERE attempts >= max_attempts))
    RETURNING scan_id, attempts
), again AS (
    UPDATE jobs SET state = 'queued', run_at = $1, lease_token = NULL, leased_by = NULL,
        lease_until = NULL, last_error = 'worker lost: lease expired'
    WHERE scan_id = ANY(ARRAY(SELECT scan_id FROM expired WHERE attempts < max_attempts))
    RETURNING scan_id
), failed AS (
    UPDATE scans s SET status = 'failed', finished_at = $1,
        error = 'worker lost: lease expired after ' || d.attempts || ' attempts'
    FROM dead d
    WHERE s.id = d.scan_id AND s.id = ANY(ARRAY(SELECT scan_id FROM dead))
    RETURNING s.id
), back AS (
    UPDATE scans SET status = 'queued'
    WHERE id = ANY(ARRAY(SELECT scan_id FROM again))
    RETURNING id
)
SELECT (SELECT count(*) FROM back),
    ARRAY(SELECT id FROM failed),
    (SELECT count(*) FROM (SELECT pg_notify('sentinel_scans', id::text) FROM failed) n),
    (SELECT count(*) FROM (SELECT pg_notify('sentinel_jobs', '') FROM back LIMIT 1) n)";

// ---- the API's reads -------------------------------------------------------------------------

/// The principal behind a key digest (every authenticated request).
const PRINCIPAL_BY_KEY: &str = "\
SELECT k.digest, u.id, u.name, u.role FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.digest = $1 AND k.revoked_at IS NULL";

/// A page of the sites a member holds a grant on (keyset on the grants' primary key).
const LIST_MEMBER_SITES: &str = "\
SELECT s.id, s.name, s.base_url, s.created_at FROM grants g JOIN sites s ON s.id = g.site_id
WHERE g.user_id = $1 AND g.site_id > $2 ORDER BY g.site_id LIMIT $3";

/// The first page of a site's scans, newest first.
const LIST_SCANS: &str = concat!(
    "SELECT ",
    scan_columns!(),
    " FROM scans WHERE site_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
);

/// A later page of a site's scans: those before the cursor's `(created_at, id)`.
const LIST_SCANS_AFTER: &str = concat!(
    "SELECT ",
    scan_columns!(),
    " FROM scans WHERE site_id = $1 \
     AND (created_at, id) < (SELECT created_at, id FROM scans WHERE id = $2) \
     ORDER BY created_at DESC, id DESC LIMIT $3"
);

/// A page of a scan's findings in recording order.
const LIST_FINDINGS: &str = concat!(
    "SELECT ",
    finding_columns!(),
    " FROM findings WHERE scan_id = $1 AND id > $2 ORDER BY id LIMIT $3"
);

fn page_limit(limit: u32) -> u32 {
    limit.clamp(1, MAX_LIMIT)
}

/// Keyset start for ascending listings: every v7 (indeed every non-nil) id sorts after it.
fn after_id(after: Option<Cursor>) -> Uuid {
    after.map_or(Uuid::nil(), |c| c.0)
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            waiting: self.waiters.get(),
            max: self.max,
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    // ---- users and API keys -------------------------------------------------------------

    async fn create_user(&self, user: &NewUser) -> Result<User> {
        let mut conn = self.conn().await?;
        sqlx::query(
            "WITH u AS (INSERT INTO users (id, name, role, created_at) \
                        VALUES ($1, $2, $3, $4) RETURNING id) \
             INSERT INTO api_keys (digest, user_id, created_at) SELECT $5, id, $4 FROM u",
        )
        .bind(user.id.0)
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(user.created_at)
        .bind(&user.key_hash.0[..])
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        Ok(User {
            id: user.id,
            name: user.name.clone(),
            role: user.role,
            created_at: user.created_at,
        })
    }

    async fn add_api_key(&self, user: UserId, key: &ApiKeyHash) -> Result<()> {
        let mut conn = self.conn().await?;
        sqlx::query("INSERT INTO api_keys (digest, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(&key.0[..])
            .bind(user.0)
            .bind(now_millis())
            .execute(&mut *conn)
            .await
            .map_err(db)
            .map_err(missing("user"))?;
        Ok(())
    }

    async fn principal_by_key(&self, key: &ApiKeyHash) -> Result<Option<Principal>> {
        let mut conn = self.conn().await?;
        let row: Option<PrincipalRow> = sqlx::query_as(PRINCIPAL_BY_KEY)
            .bind(&key.0[..])
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
        principal_of(row, key)
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        let mut conn = self.conn().await?;
        let row: Option<UserRow> =
            sqlx::query_as("SELECT id, name, role, created_at FROM users WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
        row.map(User::try_from).transpose()
    }

    // ---- sites and grants -----------------------------------------------------------------

    async fn create_site(&self, site: &Site, owner: UserId) -> Result<()> {
        let mut conn = self.conn().await?;
        sqlx::query(
            "WITH s AS (INSERT INTO sites (id, name, base_url, created_at) \
                        VALUES ($1, $2, $3, $4) RETURNING id) \
             INSERT INTO grants (user_id, site_id, role) SELECT $5, id, 'owner' FROM s",
        )
        .bind(site.id.0)
        .bind(&site.name)
        .bind(site.base_url.as_str())
        .bind(site.created_at)
        .bind(owner.0)
        .execute(&mut *conn)
        .await
        .map_err(db)
        .map_err(missing("user"))?;
        Ok(())
    }

    async fn get_site(&self, id: SiteId) -> Result<Option<Site>> {
        let mut conn = self.conn().await?;
        let row: Option<SiteRow> =
            sqlx::query_as("SELECT id, name, base_url, created_at FROM sites WHERE id = $1")
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
        let mut conn = self.conn().await?;
        let rows: Vec<SiteRow> = match member {
            None => {
                sqlx::query_as(
                    "SELECT id, name, base_url, created_at FROM sites \
                     WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after_id(after))
                .bind(i64::from(limit) + 1)
                .fetch_all(&mut *conn)
                .await
            }
            Some(user) => {
                sqlx::query_as(LIST_MEMBER_SITES)
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
        let mut conn = self.conn().await?;
        sqlx::query(
            "INSERT INTO grants (user_id, site_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, site_id) DO UPDATE SET role = excluded.role",
        )
        .bind(user.0)
        .bind(site.0)
        .bind(role.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db)
        .map_err(missing("user or site"))?;
        Ok(())
    }

    async fn grant(&self, user: UserId, site: SiteId) -> Result<Option<SiteRole>> {
        let mut conn = self.conn().await?;
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM grants WHERE user_id = $1 AND site_id = $2")
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

    /// One statement, hence one round trip and one implicit transaction, whatever the batch
    /// size: the scans are inserted from arrays (`UNNEST`), their jobs from the inserted
    /// rows, and the `NOTIFY` goes out with the commit. After `Ok` every scan is durable.
    async fn create_scans(&self, scans: &[NewScan], max_attempts: u32) -> Result<()> {
        if scans.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        sqlx::query(CREATE_SCANS)
            .bind(scans.iter().map(|s| s.id.0).collect::<Vec<_>>())
            .bind(scans.iter().map(|s| s.site_id.0).collect::<Vec<_>>())
            .bind(scans.iter().map(|s| s.url.as_str()).collect::<Vec<_>>())
            .bind(
                scans
                    .iter()
                    .map(|s| s.options.check_type.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                scans
                    .iter()
                    .map(|s| s.options.canonical_json())
                    .collect::<Vec<_>>(),
            )
            .bind(scans.iter().map(|s| s.created_at).collect::<Vec<_>>())
            .bind(
                scans
                    .iter()
                    .map(|s| s.created_by.map(|u| u.0))
                    .collect::<Vec<_>>(),
            )
            .bind(i64::from(max_attempts))
            // New jobs are due at once, by the store's clock (not the caller's `created_at`).
            .bind(now_millis())
            .execute(&mut *conn)
            .await
            .map_err(db)
            .map_err(missing("site or user"))?;
        self.publish(StoreEvent::JobsAvailable);
        Ok(())
    }

    async fn get_scan(&self, id: ScanId) -> Result<Option<Scan>> {
        let mut conn = self.conn().await?;
        let row: Option<ScanRow> = sqlx::query_as(concat!(
            "SELECT ",
            scan_columns!(),
            " FROM scans WHERE id = $1"
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
        let mut conn = self.conn().await?;
        let rows: Vec<ScanRow> = match after {
            None => {
                sqlx::query_as(LIST_SCANS)
                    .bind(site.0)
                    .bind(i64::from(limit) + 1)
                    .fetch_all(&mut *conn)
                    .await
            }
            Some(cursor) => {
                sqlx::query_as(LIST_SCANS_AFTER)
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
        let mut conn = self.conn().await?;
        let rows: Vec<FindingRow> = sqlx::query_as(LIST_FINDINGS)
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
        let mut conn = self.conn().await?;
        let (queued, running): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'queued'), \
                    count(*) FILTER (WHERE state = 'running') FROM jobs",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
        Ok(QueueDepth {
            queued: u64::try_from(queued).unwrap_or(0),
            running: u64::try_from(running).unwrap_or(0),
        })
    }

    /// One statement: due queued jobs of the given types, oldest `run_at` first, are locked
    /// with `FOR UPDATE SKIP LOCKED` (concurrent workers skip each other's picks instead of
    /// waiting or double-leasing), leased with a fresh `gen_random_uuid()` token, and their
    /// scans marked running. The statement commits at once; the work runs outside any
    /// transaction.
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
        let types: Vec<&str> = check_types.iter().map(|t| t.as_str()).collect();
        let mut conn = self.conn().await?;
        // `state = 'queued'` is spelled out (not bound) so that the partial index applies.
        let rows: Vec<PgRow> = sqlx::query(LEASE)
            .bind(now)
            .bind(types)
            .bind(i64::from(max))
            .bind(worker)
            .bind(until)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        let mut leases = Vec::with_capacity(rows.len());
        for row in rows {
            let run_at: i64 = row.try_get("run_at").map_err(db)?;
            let lease = LeaseRow::from_row(&row).map_err(db)?.into_lease(worker)?;
            leases.push((run_at, lease));
        }
        // RETURNING has no order; hand them out oldest first, as they were picked.
        leases.sort_by_key(|(run_at, l)| (*run_at, l.scan.id));
        Ok(leases.into_iter().map(|(_, l)| l).collect())
    }

    async fn heartbeat(&self, lease: &Lease, lease_for: Duration) -> Result<bool> {
        let until = now_millis().saturating_add(millis(lease_for));
        let mut conn = self.conn().await?;
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $1 \
             WHERE scan_id = $2 AND lease_token = $3 AND state = 'running'",
        )
        .bind(until)
        .bind(lease.scan.id.0)
        .bind(lease.token)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// Fenced by the lease token: deleting the job, completing the scan and notifying are one
    /// statement that does nothing when the token is stale. Findings follow in `UNNEST`
    /// chunks of 1000 in the same transaction (without findings there is no `BEGIN` at all).
    async fn complete_job(
        &self,
        lease: &Lease,
        summary: &Value,
        findings: &[NewFinding],
    ) -> Result<bool> {
        let now = now_millis();
        let scan = lease.scan.id;
        let complete = sqlx::query_scalar::<_, i64>(COMPLETE)
            .bind(scan.0)
            .bind(lease.token)
            .bind(now)
            .bind(Json(summary));
        let mut conn = self.conn().await?;
        if findings.is_empty() {
            if complete.fetch_one(&mut *conn).await.map_err(db)? == 0 {
                return Ok(false);
            }
        } else {
            let mut tx = conn.begin().await.map_err(db)?;
            if complete.fetch_one(&mut *tx).await.map_err(db)? == 0 {
                // The lease was lost; dropping the transaction rolls it back.
                return Ok(false);
            }
            for chunk in findings.chunks(CHUNK) {
                sqlx::query(INSERT_FINDINGS)
                    .bind(scan.0)
                    .bind(chunk.iter().map(|_| FindingId::new().0).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|f| f.kind.as_str()).collect::<Vec<_>>())
                    .bind(
                        chunk
                            .iter()
                            .map(|f| f.severity.as_str())
                            .collect::<Vec<_>>(),
                    )
                    .bind(chunk.iter().map(|f| f.url.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|f| f.message.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|f| Json(&f.detail)).collect::<Vec<_>>())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            tx.commit().await.map_err(db)?;
        }
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
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(db)?;
        let job: Option<(i64, i64)> = sqlx::query_as(
            "SELECT attempts, max_attempts FROM jobs \
             WHERE scan_id = $1 AND lease_token = $2 AND state = 'running' FOR UPDATE",
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
                    "WITH j AS ( \
                        UPDATE jobs SET state = 'queued', run_at = $2, lease_token = NULL, \
                            leased_by = NULL, lease_until = NULL, last_error = $3 \
                        WHERE scan_id = $1 \
                     ) \
                     UPDATE scans SET status = 'queued' WHERE id = $1",
                )
                .bind(scan.0)
                .bind(at)
                .bind(error)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                // Only a job due now is worth a wake-up; later ones are found by polling.
                if at <= now {
                    sqlx::query("SELECT pg_notify('sentinel_jobs', '')")
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                JobFate::Retrying
            }
            _ => {
                sqlx::query(
                    "WITH j AS (DELETE FROM jobs WHERE scan_id = $1) \
                     UPDATE scans SET status = 'failed', finished_at = $2, error = $3 \
                     WHERE id = $1",
                )
                .bind(scan.0)
                .bind(now)
                .bind(error)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                sqlx::query("SELECT pg_notify('sentinel_scans', $1)")
                    .bind(scan.to_string())
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
        let mut conn = self.conn().await?;
        let released: i64 = sqlx::query_scalar(RELEASE)
            .bind(now_millis())
            .bind(lease.scan.id.0)
            .bind(lease.token)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        if released == 0 {
            return Ok(false);
        }
        self.publish(StoreEvent::JobsAvailable);
        Ok(true)
    }

    /// One statement. Expired leases are locked first (`FOR UPDATE SKIP LOCKED`, so two
    /// reapers never handle one job and a heartbeat racing the reaper either lands first and
    /// keeps its lease or finds its token cleared); those with attempts left go back to the
    /// queue due now, the others fail their scan with "worker lost: lease expired after N
    /// attempts".
    async fn requeue_expired(&self) -> Result<u64> {
        let mut conn = self.conn().await?;
        let (requeued, failed, _, _): (i64, Vec<Uuid>, i64, i64) = sqlx::query_as(REQUEUE)
            .bind(now_millis())
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        if requeued > 0 {
            self.publish(StoreEvent::JobsAvailable);
        }
        for id in &failed {
            self.publish(StoreEvent::ScanFinished(ScanId(*id)));
        }
        let failed = i64::try_from(failed.len()).unwrap_or(i64::MAX);
        Ok(u64::try_from(requeued.saturating_add(failed)).unwrap_or(0))
    }

    // ---- visual baselines -----------------------------------------------------------------

    async fn put_baseline(&self, b: &Baseline) -> Result<()> {
        let mut conn = self.conn().await?;
        sqlx::query(concat!(
            "INSERT INTO baselines (",
            baseline_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
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
        .execute(&mut *conn)
        .await
        .map_err(db)
        .map_err(missing("site, scan or user"))?;
        Ok(())
    }

    async fn get_baseline(
        &self,
        site: SiteId,
        page_url: &str,
        viewport: Viewport,
        full_page: bool,
    ) -> Result<Option<Baseline>> {
        let mut conn = self.conn().await?;
        let row: Option<BaselineRow> = sqlx::query_as(concat!(
            "SELECT ",
            baseline_columns!(),
            " FROM baselines WHERE site_id = $1 AND page_url = $2 AND viewport = $3 \
             AND full_page = $4"
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

    /// One transaction of `INSERT … SELECT FROM UNNEST(…) ON CONFLICT DO NOTHING` statements
    /// of 1000 rows each; the counts are the rows actually inserted.
    async fn import(&self, batch: &ImportBatch) -> Result<ImportCounts> {
        let mut counts = ImportCounts::default();
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(db)?;
        for chunk in batch.users.chunks(CHUNK) {
            counts.users += sqlx::query(
                "INSERT INTO users (id, name, role, created_at) \
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int8[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(chunk.iter().map(|u| u.id.0).collect::<Vec<_>>())
            .bind(chunk.iter().map(|u| u.name.as_str()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|u| u.role.as_str()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|u| u.created_at).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            sqlx::query(
                "INSERT INTO api_keys (digest, user_id, created_at) \
                 SELECT * FROM UNNEST($1::bytea[], $2::uuid[], $3::int8[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(
                chunk
                    .iter()
                    .map(|u| u.key_hash.0.to_vec())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|u| u.id.0).collect::<Vec<_>>())
            .bind(chunk.iter().map(|u| u.created_at).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        for chunk in batch.sites.chunks(CHUNK) {
            counts.sites += sqlx::query(
                "INSERT INTO sites (id, name, base_url, created_at) \
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int8[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(chunk.iter().map(|s| s.id.0).collect::<Vec<_>>())
            .bind(chunk.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|s| s.base_url.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|s| s.created_at).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        }
        for chunk in batch.grants.chunks(CHUNK) {
            counts.grants += sqlx::query(
                "INSERT INTO grants (user_id, site_id, role) \
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(chunk.iter().map(|g| g.1.0).collect::<Vec<_>>())
            .bind(chunk.iter().map(|g| g.0.0).collect::<Vec<_>>())
            .bind(chunk.iter().map(|g| g.2.as_str()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .map_err(db)
            .map_err(missing("user or site"))?
            .rows_affected();
        }
        for chunk in batch.scans.chunks(CHUNK) {
            // No foreign key checks a scan's site on PostgreSQL (migration 0003).
            let missing_sites: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM UNNEST($1::uuid[]) AS n(site_id) \
                 WHERE NOT EXISTS (SELECT 1 FROM sites WHERE id = n.site_id)",
            )
            .bind(chunk.iter().map(|s| s.site_id.0).collect::<Vec<_>>())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            if missing_sites > 0 {
                return Err(StoreError::NotFound("site or user"));
            }
            counts.scans += sqlx::query(concat!(
                "INSERT INTO scans (",
                scan_columns!(),
                ", check_type) \
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], \
                    $5::text[], $6::int8[], $7::int8[], $8::int8[], $9::jsonb[], $10::text[], \
                    $11::int8[], $12::uuid[], $13::text[]) \
                 ON CONFLICT DO NOTHING"
            ))
            .bind(chunk.iter().map(|s| s.id.0).collect::<Vec<_>>())
            .bind(chunk.iter().map(|s| s.site_id.0).collect::<Vec<_>>())
            .bind(chunk.iter().map(|s| s.url.as_str()).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|s| s.options.canonical_json())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|s| s.status.as_str()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|s| s.created_at).collect::<Vec<_>>())
            .bind(chunk.iter().map(|s| s.started_at).collect::<Vec<_>>())
            .bind(chunk.iter().map(|s| s.finished_at).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|s| s.summary.as_ref().map(Json))
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|s| s.error.as_deref()).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|s| i64::from(s.attempts))
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|s| s.created_by.map(|u| u.0))
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|s| s.options.check_type.as_str())
                    .collect::<Vec<_>>(),
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers_are_reached_without_tls_unless_a_mode_is_named() {
        if std::env::var_os("PGSSLMODE").is_some() {
            return;
        }
        for (url, expected) in [
            ("postgres://u@127.0.0.1:5432/db", "Disable"),
            ("postgres://u@localhost/db", "Disable"),
            ("postgres://u@[::1]:5432/db", "Disable"),
            ("postgres://u@db.example.com/db", "Prefer"),
            ("postgres://u@10.0.0.5/db", "Prefer"),
            ("postgres://u@127.0.0.1/db?sslmode=require", "Require"),
        ] {
            let options = plain_on_loopback(url, PgConnectOptions::from_str(url).unwrap());
            // PgSslMode has no PartialEq; its Debug form is the variant's name.
            assert_eq!(format!("{:?}", options.get_ssl_mode()), expected, "{url}");
        }
    }

    fn test_url() -> String {
        std::env::var("SENTINEL_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    /// The pool's connections carry the configured session settings.
    #[tokio::test]
    async fn connections_carry_timeouts_and_name() {
        let options = PgOptions {
            max_connections: 3,
            min_connections: 1,
            statement_timeout: Duration::from_millis(1500),
            application_name: "qa-sentinel-unit".to_owned(),
            listen: false,
            ..PgOptions::default()
        };
        let store = PgStore::connect(&test_url(), &options).await.unwrap();
        let mut conn = store.conn().await.unwrap();
        let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(timeout, "1500ms");
        let name: String = sqlx::query_scalar("SHOW application_name")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(name, "qa-sentinel-unit");
        // The server enforces it: a statement running longer is cancelled, and reported as
        // unavailable (the database did not answer in time).
        let slow = sqlx::query("SELECT pg_sleep(3)").execute(&mut *conn).await;
        assert!(matches!(slow.map_err(db), Err(StoreError::Unavailable(_))));
        drop(conn);
        let stats = store.pool_stats();
        assert_eq!((stats.max, stats.waiting), (3, 0));
        assert!(stats.size >= 1);
    }

    #[test]
    fn defaults_follow_the_design() {
        let o = PgOptions::default();
        assert_eq!((o.max_connections, o.min_connections), (20, 5));
        assert_eq!(o.connect_timeout, Duration::from_secs(2));
        assert_eq!(o.statement_timeout, Duration::from_secs(30));
        assert_eq!(o.application_name, "qa-sentinel");
    }

    /// A temporary database for a unit test, dropped afterwards (also when the test fails).
    struct TempDb {
        admin: String,
        name: String,
    }

    impl TempDb {
        async fn create() -> (Self, String) {
            let admin = test_url();
            let name = format!("sentinel_unit_{}", Uuid::new_v4().simple());
            let mut conn = <sqlx::PgConnection as Connection>::connect(&admin)
                .await
                .expect("PostgreSQL at SENTINEL_TEST_DATABASE_URL");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE \"{name}\" TEMPLATE template0"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
            let url = PgConnectOptions::from_str(&admin).unwrap().database(&name);
            let url = format!(
                "postgres://{}@{}:{}/{name}",
                url.get_username(),
                url.get_host(),
                url.get_port()
            );
            (Self { admin, name }, url)
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let (admin, name) = (self.admin.clone(), self.name.clone());
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let mut conn = <sqlx::PgConnection as Connection>::connect(&admin).await?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await
                })
            })
            .join();
        }
    }

    /// Prepared statements may run with generic plans, blind to the bound values: even then
    /// the queue's statements and the API's listings must go through indexes, never scan the
    /// `scans`, `jobs` or `findings` tables (which grow without bound, or churn).
    #[tokio::test]
    async fn generic_plans_use_indexes() {
        let (_db, url) = TempDb::create().await;
        let options = PgOptions {
            listen: false,
            min_connections: 0,
            ..PgOptions::default()
        };
        let store = PgStore::connect(&url, &options).await.unwrap();
        store.migrate().await.unwrap();
        let mut conn = store.conn().await.unwrap();
        // Tables large enough that an index beats reading them whole (with 200 sites, a
        // sequential scan of `sites` is the cheaper plan for a new scan's site check).
        sqlx::raw_sql(
            "INSERT INTO users VALUES ('00000000-0000-0000-0000-000000000001', 'u', 'member', 0);
             INSERT INTO sites SELECT ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid,
                 's', 'https://a.test/', 0 FROM generate_series(1, 5000) g;
             INSERT INTO grants SELECT '00000000-0000-0000-0000-000000000001', id, 'viewer'
                 FROM sites;
             INSERT INTO users SELECT gen_random_uuid(), 'bulk', 'member', 0
                 FROM generate_series(1, 5000);
             INSERT INTO api_keys SELECT sha256(convert_to(id::text, 'UTF8')), id, 0 FROM users;
             INSERT INTO grants SELECT u.id, s.id, 'viewer' FROM users u, sites s
                 WHERE u.name = 'bulk' AND s.id < '00000000-0000-0000-0000-000000000006';
             INSERT INTO scans (id, site_id, url, check_type, options, status, created_at)
                 SELECT gen_random_uuid(),
                     ('00000000-0000-0000-0000-' || lpad((g % 200 + 1)::text, 12, '0'))::uuid,
                     'https://a.test/', 'broken-links', '{}', 'completed', g
                 FROM generate_series(1, 60000) g;
             INSERT INTO jobs (scan_id, check_type, state, max_attempts, run_at, lease_until,
                               attempts)
                 SELECT id, check_type,
                     CASE WHEN created_at % 10 = 0 THEN 'running' ELSE 'queued' END,
                     3, created_at, created_at, 1
                 FROM scans WHERE created_at > 40000;
             INSERT INTO findings SELECT id, gen_random_uuid(), 'broken-link', 'error', 'u', 'm',
                 '{}', 0 FROM scans, generate_series(1, 3) WHERE created_at <= 20000;
             ANALYZE;
             SET plan_cache_mode = force_generic_plan;",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        let scan = "'00000000-0000-0000-0000-000000000009'";
        let site = "'00000000-0000-0000-0000-000000000002'";
        for (name, sql, args) in [
            (
                "lease",
                LEASE,
                "9000000000000, '{broken-links}', 10, 'w', 1".to_owned(),
            ),
            (
                "create scans",
                CREATE_SCANS,
                format!(
                    "ARRAY[{scan}]::uuid[], ARRAY[{site}]::uuid[], ARRAY['u'], \
                     ARRAY['broken-links'], ARRAY['{{}}'], ARRAY[1::int8], ARRAY[NULL::uuid], 3, 1"
                ),
            ),
            ("complete", COMPLETE, format!("{scan}, {scan}, 1, '{{}}'")),
            ("release", RELEASE, format!("1, {scan}, {scan}")),
            ("requeue", REQUEUE, "50000".to_owned()),
            ("principal", PRINCIPAL_BY_KEY, "'\\x00'".to_owned()),
            (
                "member sites",
                LIST_MEMBER_SITES,
                format!("{scan}, {site}, 51"),
            ),
            ("scans", LIST_SCANS, format!("{site}, 51")),
            (
                "scans after",
                LIST_SCANS_AFTER,
                format!("{site}, {scan}, 51"),
            ),
            ("findings", LIST_FINDINGS, format!("{scan}, {scan}, 51")),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE p AS {sql}")))
                .execute(&mut *conn)
                .await
                .unwrap();
            let plan: Vec<String> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN EXECUTE p({args})")))
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
            sqlx::raw_sql("DEALLOCATE p")
                .execute(&mut *conn)
                .await
                .unwrap();
            let plan = plan.join("\n");
            for table in ["scans", "jobs", "findings", "grants", "api_keys", "sites"] {
                assert!(
                    !plan.contains(&format!("Seq Scan on {table}")),
                    "{name} scans {table}:\n{plan}"
                );
            }
            assert!(!plan.contains("Sort"), "{name} sorts:\n{plan}");
        }
    }
}
