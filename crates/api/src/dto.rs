//! Wire types of the API (the contract of `DESIGN.md`): what handlers answer, with their
//! OpenAPI schemas. Domain types stay in `sentinel-core`; these are their views.

use sentinel_core::{Finding, Role, Scan, Site, SiteRole, rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A scan.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanView {
    /// Scan id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Site id.
    #[schema(format = Uuid)]
    pub site_id: String,
    /// The scanned URL.
    pub url: String,
    /// `broken-links` or `visual-regression`.
    pub check_type: String,
    /// The normalised options (defaults filled in).
    #[schema(value_type = Object)]
    pub options: Value,
    /// `queued`, `running`, `completed` or `failed`.
    pub status: String,
    /// When it was accepted (RFC 3339).
    pub created_at: String,
    /// When a worker last started it.
    pub started_at: Option<String>,
    /// When it completed or failed.
    pub finished_at: Option<String>,
    /// The check's summary, once completed.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Attempts so far.
    pub attempts: u32,
}

impl From<&Scan> for ScanView {
    fn from(s: &Scan) -> Self {
        Self {
            id: s.id.to_string(),
            site_id: s.site_id.to_string(),
            url: s.url.clone(),
            check_type: s.check_type().as_str().to_owned(),
            options: serde_json::to_value(&s.options).unwrap_or(Value::Null),
            status: s.status.as_str().to_owned(),
            created_at: rfc3339(s.created_at),
            started_at: s.started_at.map(rfc3339),
            finished_at: s.finished_at.map(rfc3339),
            summary: s.summary.clone(),
            error: s.error.clone(),
            attempts: s.attempts,
        }
    }
}

/// A finding.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindingView {
    /// Finding id.
    #[schema(format = Uuid)]
    pub id: String,
    /// `broken-link` or `visual-change`.
    pub kind: String,
    /// `info`, `warning` or `error`.
    pub severity: String,
    /// The URL concerned.
    pub url: String,
    /// One line for people.
    pub message: String,
    /// Check-specific detail.
    #[schema(value_type = Object)]
    pub detail: Value,
    /// When it was recorded.
    pub created_at: String,
}

impl From<Finding> for FindingView {
    fn from(f: Finding) -> Self {
        Self {
            id: f.id.to_string(),
            kind: f.kind.as_str().to_owned(),
            severity: f.severity.as_str().to_owned(),
            url: f.url,
            message: f.message,
            detail: f.detail,
            created_at: rfc3339(f.created_at),
        }
    }
}

/// A page of a listing.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageOf<T: ToSchema> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A site.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteView {
    /// Site id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Display name.
    pub name: String,
    /// Base URL; scans must stay within its origin.
    pub base_url: String,
    /// When it was registered.
    pub created_at: String,
}

impl From<&Site> for SiteView {
    fn from(s: &Site) -> Self {
        Self {
            id: s.id.to_string(),
            name: s.name.clone(),
            base_url: s.base_url.to_string(),
            created_at: rfc3339(s.created_at),
        }
    }
}

/// `POST /api/sites` body.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewSiteBody {
    /// Display name (1–200 characters).
    pub name: String,
    /// Absolute http(s) URL.
    pub base_url: String,
}

/// `POST /api/users` body.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct NewUserBody {
    /// Name (1–200 characters).
    pub name: String,
    /// Global role.
    pub role: Role,
}

/// `POST /api/users` answer: the key is shown this once.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserCreated {
    /// User id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Name.
    pub name: String,
    /// Global role.
    pub role: Role,
    /// The new API key. Store it now: only its hash is kept.
    pub api_key: String,
}

/// `PUT /api/sites/{id}/members/{userId}` body.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct GrantBody {
    /// The grant.
    pub role: SiteRole,
}

/// `POST /api/scan` body (validated field by field; see the `details` of a 400).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanRequestBody {
    /// The page to scan, within the site's origin.
    #[schema(format = "uri")]
    pub url: String,
    /// The site.
    #[schema(format = Uuid)]
    pub site_id: String,
    /// Options: `checkType` (`broken-links` | `visual-regression`, default `broken-links`),
    /// `viewport` (`desktop` | `mobile` | `tablet`), `timeout` (1000–60000 ms, default 30000),
    /// and per check type — broken-links: `maxPages`, `maxDepth`, `respectRobots`,
    /// `useSitemap`, `checkExternal`, `checkFragments`, `concurrency`, `perHostConcurrency`,
    /// `requestsPerSecond`, `include`, `exclude`, `headers`, `cookies`; visual-regression:
    /// `fullPage`, `threshold`, `mask`, `hide`, `waitFor`, `delay`.
    #[schema(value_type = Option<Object>)]
    pub options: Option<Value>,
}

/// `POST /api/scan` answer (202).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanAccepted {
    /// Always true.
    pub success: bool,
    /// The scan (new, or the deduplicated one).
    #[schema(format = Uuid)]
    pub scan_id: String,
    /// Its status.
    pub status: String,
    /// Expected duration in ms.
    pub estimated_duration: u64,
    /// Whether an identical recent scan was returned instead of a new one.
    pub deduplicated: bool,
}

/// An error answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Human-readable message.
    pub error: String,
    /// Machine-readable code.
    pub code: String,
    /// Violated fields.
    pub details: Option<Vec<sentinel_core::FieldError>>,
    /// Seconds to wait before retrying (429, 503).
    pub retry_after: Option<u64>,
    /// The request's id.
    pub request_id: Option<String>,
}

/// `POST /api/sites/{id}/baselines` body.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BaselineBody {
    /// A completed visual-regression scan of this site.
    #[schema(format = Uuid)]
    pub scan_id: String,
}
