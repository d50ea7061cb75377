//! Row shapes shared by both backends and their conversion into domain values.
//!
//! Both schemas use the same column names and compatible types (UUIDs, BIGINT epoch
//! milliseconds, TEXT enums, JSON), so one `FromRow` per shape decodes on SQLite and on
//! PostgreSQL. A value that does not parse (an unknown enum, invalid options JSON) is
//! reported as [`StoreError::Corrupt`] rather than guessed at.

use crate::{Baseline, Lease, Result, StoreError, User};
use sentinel_core::{
    ApiKeyHash, EpochMillis, Finding, FindingId, Principal, Scan, ScanId, ScanOptions, Site,
    SiteId, SiteUrl, UserId,
};
use serde_json::Value;
use sqlx::types::Json;
use std::str::FromStr;
use uuid::Uuid;

/// The scan columns, in [`ScanRow`]'s order, for `SELECT` and `RETURNING` lists.
macro_rules! scan_columns {
    () => {
        "id, site_id, url, options, status, created_at, started_at, finished_at, summary, \
         error, attempts, created_by"
    };
}
pub(crate) use scan_columns;

/// The finding columns, in [`FindingRow`]'s order.
macro_rules! finding_columns {
    () => {
        "scan_id, id, kind, severity, url, message, detail, created_at"
    };
}
pub(crate) use finding_columns;

/// The baseline columns, in [`BaselineRow`]'s order.
macro_rules! baseline_columns {
    () => {
        "site_id, page_url, viewport, full_page, artifact_key, width, height, scan_id, \
         approved_by, updated_at"
    };
}
pub(crate) use baseline_columns;

fn parse<T: FromStr>(what: &str, s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown {what} {s:?}")))
}

fn to_u32(what: &str, n: i64) -> Result<u32> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("{what} out of range: {n}")))
}

/// Converts a count or size for a BIGINT column (saturating: no such value reaches 2^63).
pub(crate) fn to_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Milliseconds of a lease duration, saturating.
pub(crate) fn millis(d: std::time::Duration) -> i64 {
    to_i64(d.as_millis())
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    name: String,
    role: String,
    created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self> {
        Ok(Self {
            id: UserId(r.id),
            name: r.name,
            role: parse("role", &r.role)?,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PrincipalRow {
    pub(crate) digest: Vec<u8>,
    id: Uuid,
    name: String,
    role: String,
}

impl TryFrom<PrincipalRow> for Principal {
    type Error = StoreError;
    fn try_from(r: PrincipalRow) -> Result<Self> {
        Ok(Self {
            user_id: UserId(r.id),
            name: r.name,
            role: parse("role", &r.role)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SiteRow {
    id: Uuid,
    name: String,
    base_url: String,
    created_at: i64,
}

impl TryFrom<SiteRow> for Site {
    type Error = StoreError;
    fn try_from(r: SiteRow) -> Result<Self> {
        let base_url = SiteUrl::parse(&r.base_url)
            .map_err(|e| StoreError::Corrupt(format!("site base URL {:?} {e}", r.base_url)))?;
        Ok(Self {
            id: SiteId(r.id),
            name: r.name,
            base_url,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ScanRow {
    id: Uuid,
    site_id: Uuid,
    url: String,
    options: String,
    status: String,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    summary: Option<Json<Value>>,
    error: Option<String>,
    attempts: i64,
    created_by: Option<Uuid>,
}

impl TryFrom<ScanRow> for Scan {
    type Error = StoreError;
    fn try_from(r: ScanRow) -> Result<Self> {
        let options: ScanOptions = serde_json::from_str(&r.options)
            .map_err(|e| StoreError::Corrupt(format!("options of scan {}: {e}", r.id)))?;
        Ok(Self {
            id: ScanId(r.id),
            site_id: SiteId(r.site_id),
            url: r.url,
            options,
            status: parse("scan status", &r.status)?,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            summary: r.summary.map(|j| j.0),
            error: r.error,
            attempts: to_u32("attempts", r.attempts)?,
            created_by: r.created_by.map(UserId),
        })
    }
}

/// A leased scan with its lease columns (the lease statements return both).
#[derive(sqlx::FromRow)]
pub(crate) struct LeaseRow {
    #[sqlx(flatten)]
    scan: ScanRow,
    lease_token: Uuid,
    max_attempts: i64,
    lease_until: i64,
}

impl LeaseRow {
    pub(crate) fn into_lease(self, worker: &str) -> Result<Lease> {
        let scan = Scan::try_from(self.scan)?;
        Ok(Lease {
            attempt: scan.attempts,
            scan,
            token: self.lease_token,
            max_attempts: to_u32("max_attempts", self.max_attempts)?,
            worker: worker.to_owned(),
            leased_until: self.lease_until,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct FindingRow {
    scan_id: Uuid,
    id: Uuid,
    kind: String,
    severity: String,
    url: String,
    message: String,
    detail: Json<Value>,
    created_at: i64,
}

impl TryFrom<FindingRow> for Finding {
    type Error = StoreError;
    fn try_from(r: FindingRow) -> Result<Self> {
        Ok(Self {
            id: FindingId(r.id),
            scan_id: ScanId(r.scan_id),
            kind: parse("finding kind", &r.kind)?,
            severity: parse("severity", &r.severity)?,
            url: r.url,
            message: r.message,
            detail: r.detail.0,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct BaselineRow {
    site_id: Uuid,
    page_url: String,
    viewport: String,
    full_page: bool,
    artifact_key: String,
    width: i64,
    height: i64,
    scan_id: Uuid,
    approved_by: Option<Uuid>,
    updated_at: EpochMillis,
}

impl TryFrom<BaselineRow> for Baseline {
    type Error = StoreError;
    fn try_from(r: BaselineRow) -> Result<Self> {
        Ok(Self {
            site_id: SiteId(r.site_id),
            page_url: r.page_url,
            viewport: parse("viewport", &r.viewport)?,
            full_page: r.full_page,
            artifact_key: r.artifact_key,
            width: to_u32("width", r.width)?,
            height: to_u32("height", r.height)?,
            scan_id: ScanId(r.scan_id),
            approved_by: r.approved_by.map(UserId),
            updated_at: r.updated_at,
        })
    }
}

/// The principal of a key row, after comparing the stored digest with the presented one in
/// constant time (the lookup itself is by digest).
pub(crate) fn principal_of(
    row: Option<PrincipalRow>,
    key: &ApiKeyHash,
) -> Result<Option<Principal>> {
    let Some(row) = row else {
        return Ok(None);
    };
    let stored: [u8; 32] = row
        .digest
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::Corrupt("API key digest is not 32 bytes".into()))?;
    if ApiKeyHash(stored) != *key {
        return Ok(None);
    }
    Principal::try_from(row).map(Some)
}

/// Converts rows, stopping at the first that does not decode.
pub(crate) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
