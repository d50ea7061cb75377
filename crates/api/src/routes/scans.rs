//! `POST /api/scan` and scan reads.

use crate::dto::{FindingView, PageOf, ScanAccepted, ScanView};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Ctx, PageParams, json_body, parse_id};
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sentinel_core::{Page, ScanId};

fn wants_wait(query: Option<&str>) -> Result<bool, ApiError> {
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == "wait" {
            return match v.as_ref() {
                "true" | "1" => Ok(true),
                "false" | "0" | "" => Ok(false),
                _ => Err(ApiError::field("wait", "must be true or false")),
            };
        }
    }
    Ok(false)
}

/// Starts a scan (or returns the identical recent one). With `?wait=true`, waits up to
/// `options.timeout` for its result.
#[utoipa::path(post, path = "/api/scan", tag = "scans", security(("bearer" = [])),
    request_body = crate::dto::ScanRequestBody,
    params(("wait" = Option<bool>, Query, description = "wait for the result up to options.timeout")),
    responses(
        (status = 202, body = ScanAccepted, description = "Accepted (new or deduplicated)"),
        (status = 200, body = ScanView, description = "With ?wait=true: the finished scan"),
        (status = 400, body = crate::dto::ErrorBody, description = "Invalid body: every violated field in details"),
        (status = 401, body = crate::dto::ErrorBody), (status = 403, body = crate::dto::ErrorBody),
        (status = 404, body = crate::dto::ErrorBody),
        (status = 408, body = crate::dto::ErrorBody, description = "Scan timeout (with ?wait=true)"),
        (status = 413, body = crate::dto::ErrorBody), (status = 429, body = crate::dto::ErrorBody),
        (status = 503, body = crate::dto::ErrorBody, description = "Service busy, try again later")))]
pub(crate) async fn submit(state: &AppState, ctx: &Ctx, req: Request<Body>) -> ApiResult<Response> {
    let p = ctx.caller(state, req.headers()).await?;
    let wait = wants_wait(req.uri().query())?;
    let body = json_body(state, req).await?;
    let parsed = state.scans().parse(&body).map_err(ApiError::validation)?;
    let s = state.scans().submit(&p, &body, parsed, wait).await?;
    match s.finished {
        Some(Some(scan)) => Ok((StatusCode::OK, Json(ScanView::from(&scan))).into_response()),
        Some(None) => {
            let mut e = ApiError::new(StatusCode::REQUEST_TIMEOUT, "SCAN_TIMEOUT", "Scan timeout");
            e.details.push(sentinel_core::FieldError {
                field: "scanId".into(),
                reason: format!(
                    "{} is still running; poll GET /api/scans/{}",
                    s.scan_id, s.scan_id
                ),
            });
            Err(e)
        }
        None => Ok((
            StatusCode::ACCEPTED,
            Json(ScanAccepted {
                success: true,
                scan_id: s.scan_id.to_string(),
                status: s.status.as_str().to_owned(),
                estimated_duration: s.estimated_duration_ms,
                deduplicated: s.deduplicated,
            }),
        )
            .into_response()),
    }
}

/// One scan.
#[utoipa::path(get, path = "/api/scans/{id}", tag = "scans", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = ScanView), (status = 400, body = crate::dto::ErrorBody),
        (status = 401, body = crate::dto::ErrorBody), (status = 403, body = crate::dto::ErrorBody),
        (status = 404, body = crate::dto::ErrorBody)))]
pub(crate) async fn get(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Body>,
    id: &str,
) -> ApiResult<Response> {
    let p = ctx.caller(state, req.headers()).await?;
    let id: ScanId = parse_id(id, "id")?;
    let body = state.scans().get(&p, id).await?;
    // The cached, already-rendered JSON goes out as is.
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// A scan's findings, in the order they were recorded.
#[utoipa::path(get, path = "/api/scans/{id}/findings", tag = "scans", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid),
           ("limit" = Option<u32>, Query, description = "1..500, default 50"),
           ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses((status = 200, body = PageOf<FindingView>), (status = 400, body = crate::dto::ErrorBody),
        (status = 401, body = crate::dto::ErrorBody), (status = 403, body = crate::dto::ErrorBody),
        (status = 404, body = crate::dto::ErrorBody)))]
pub(crate) async fn findings(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Body>,
    id: &str,
) -> ApiResult<Json<Page<FindingView>>> {
    let p = ctx.caller(state, req.headers()).await?;
    let page = PageParams::from_query(req.uri().query())?;
    let id: ScanId = parse_id(id, "id")?;
    Ok(Json(state.scans().findings(&p, id, page).await?))
}

/// An artifact of a scan (screenshot, baseline, diff image), with the scan's permissions.
#[utoipa::path(get, path = "/api/scans/{id}/artifacts/{name}", tag = "scans", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("name" = String, Path, description = "e.g. current.png, baseline.png, diff.png")),
    responses((status = 200, description = "The file", content_type = "image/png"),
        (status = 400, body = crate::dto::ErrorBody), (status = 401, body = crate::dto::ErrorBody),
        (status = 403, body = crate::dto::ErrorBody), (status = 404, body = crate::dto::ErrorBody)))]
pub(crate) async fn artifact(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Body>,
    id: &str,
    name: &str,
) -> ApiResult<Response> {
    let p = ctx.caller(state, req.headers()).await?;
    let id: ScanId = parse_id(id, "id")?;
    let valid = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !valid {
        return Err(ApiError::field(
            "name",
            "must be a file name like current.png",
        ));
    }
    state
        .scans()
        .authorize_scan(&p, id, sentinel_core::auth::Access::Read)
        .await?;
    let key = sentinel_store::artifacts::scan_artifact_key(id, name);
    let bytes = match state.artifacts().get(&key).await {
        Ok(b) => b,
        Err(sentinel_store::artifacts::ArtifactError::NotFound(_)) => {
            return Err(ApiError::not_found("Artifact"));
        }
        Err(e) => {
            tracing::error!(error = %e, key, "artifact read failed");
            return Err(ApiError::internal());
        }
    };
    let content_type = match name.rsplit('.').next() {
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            ),
        ],
        bytes,
    )
        .into_response())
}
