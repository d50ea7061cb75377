//! Rows that exist only at the store's interface (the domain types live in `sentinel-core`).

use sentinel_core::{
    ApiKeyHash, EpochMillis, Role, Scan, ScanId, Site, SiteId, SiteRole, UserId, Viewport,
};
use uuid::Uuid;

/// A user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Its name.
    pub name: String,
    /// Its global role.
    pub role: Role,
    /// When it was created.
    pub created_at: EpochMillis,
}

/// A user to create, with its first API key's digest.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// Its id.
    pub id: UserId,
    /// Its name.
    pub name: String,
    /// Its global role.
    pub role: Role,
    /// Digest of its first API key.
    pub key_hash: ApiKeyHash,
    /// When.
    pub created_at: EpochMillis,
}

/// Connection-pool gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Open and idle.
    pub idle: u32,
    /// Callers waiting for a connection.
    pub waiting: u32,
    /// The configured maximum.
    pub max: u32,
}

/// Queue gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Jobs waiting (due now or later).
    pub queued: u64,
    /// Jobs leased by a worker.
    pub running: u64,
}

/// A leased job: the scan to run and the token that fences every write about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The scan (status `running`).
    pub scan: Scan,
    /// Unique per lease: writes with a stale token affect nothing.
    pub token: Uuid,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// The worker holding it.
    pub worker: String,
    /// When the lease runs out unless heartbeated.
    pub leased_until: EpochMillis,
}

/// What [`crate::Store::fail_job`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobFate {
    /// Back in the queue, due at the given time.
    Retrying,
    /// The scan is now `failed`.
    Failed,
    /// The lease was lost; nothing was written.
    LeaseLost,
}

/// The approved baseline image of one page at one viewport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baseline {
    /// The site.
    pub site_id: SiteId,
    /// The page.
    pub page_url: String,
    /// The viewport.
    pub viewport: Viewport,
    /// Whether it is a full-page capture.
    pub full_page: bool,
    /// Where the image is in the artifact store.
    pub artifact_key: String,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// The scan whose capture it is.
    pub scan_id: ScanId,
    /// Who approved it (none: created automatically by a first run).
    pub approved_by: Option<UserId>,
    /// When it was set.
    pub updated_at: EpochMillis,
}

/// Rows for [`crate::Store::import`].
#[derive(Clone, Debug, Default)]
pub struct ImportBatch {
    /// Users with their key digests.
    pub users: Vec<NewUser>,
    /// Sites (no owner grant is implied: grants are listed explicitly).
    pub sites: Vec<Site>,
    /// Grants.
    pub grants: Vec<(SiteId, UserId, SiteRole)>,
    /// Scans with their final state (no job is queued for them).
    pub scans: Vec<Scan>,
}

/// How many rows [`crate::Store::import`] inserted (rows already present are not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportCounts {
    /// Users.
    pub users: u64,
    /// Sites.
    pub sites: u64,
    /// Grants.
    pub grants: u64,
    /// Scans.
    pub scans: u64,
}
