//! Sites, their members, their scan listings and cached results.

use crate::dto::{PageOf, ScanView, SiteView};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Ctx, PageParams, json_body, parse_id};
use crate::routes::{body_object, name_field, unknown_fields};
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use sentinel_core::auth::Access;
use sentinel_core::site::parse_http_url;
use sentinel_core::{
    Page, Role, ScanId, Site, SiteId, SiteRole, SiteUrl, UserId, ValidationErrors, now_millis,
};

pub(crate) fn parse_new_site(body: &[u8]) -> Result<(String, SiteUrl), ValidationErrors> {
    let obj = body_object(body)?;
    let mut errors = ValidationErrors::new();
    let name = name_field(&obj, "name", &mut errors);
    let base_url = match obj.get("baseUrl") {
        None => {
            errors.add("baseUrl", "is required");
            None
        }
        Some(serde_json::Value::String(s)) => {
            match parse_http_url(s).and_then(|_| SiteUrl::parse(s)) {
                Ok(u) => Some(u),
                Err(e) => {
                    errors.add("baseUrl", e.to_string());
                    None
                }
            }
        }
        Some(_) => {
            errors.add(
                "baseUrl",
                "must be a string (an absolute http or https URL)",
            );
            None
        }
    };
    unknown_fields(&obj, &["name", "baseUrl"], &mut errors);
    match (name, base_url) {
        (Some(n), Some(u)) if errors.is_empty() => Ok((n, u)),
        _ => Err(errors),
    }
}

/// Registers a site; the caller becomes its owner.
#[utoipa::path(post, path = "/api/sites", tag = "sites", request_body = crate::dto::NewSiteBody,
    security(("bearer" = [])),
    responses((status = 201, body = SiteView), (status = 400, body = crate::dto::ErrorBody),
        (status = 401, body = crate::dto::ErrorBody)))]
pub(crate) async fn create(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Body>,
) -> ApiResult<(StatusCode, Json<SiteView>)> {
    let p = ctx.caller(state, req.headers()).await?;
    let body = json_body(state, req).await?;
    let (name, base_url) = parse_new_site(&body).map_err(ApiError::validation)?;
    let site = Site {
        id: SiteId::new(),
        name,
        base_url,
        created_at: now_millis(),
    };
    state.store().create_site(&site, p.user_id).await?;
    state.access().remember_site(site.clone()).await;
    Ok((StatusCode::CREATED, Json(SiteView::from(&site))))
}

/// The sites the caller holds a grant on (admins: all), by id.
#[utoipa::path(get, path = "/api/sites", tag = "sites", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, description = "1..500, default 50"),
           ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses((status = 200, body = PageOf<SiteView>), (status = 400, body = crate::dto::ErrorBody),
        (status = 401, body = crate::dto::ErrorBody)))]
pub(crate) async fn list(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Body>,
) -> ApiResult<Json<Page<SiteView>>> {
    let p = ctx.caller(state, req.headers()).await?;
    let page = PageParams::from_query(req.uri().query())?;
    let member = (p.role != Role::Admin).then_some(p.user_id);
    let sites = state
        .store()
        .list_sites(member, page.cursor, page.limit)
        .await?;
    Ok(Json(Page {
        items: sites.items.iter().map(SiteView::from).collect(),
        next_cursor: sites.next_cursor,
    }))
}

/// One site.
#[utoipa::path(get, path = "/api/sites/{id}", tag = "sites", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = SiteView), (status = 400, body = crate::dto::ErrorBody),
        (status = 401, body = crate::dto::ErrorBody), (status = 403, body = crate::dto::ErrorBody),
        (status = 404, body = crate::dto::ErrorBody)))]
pub(crate) async fn get(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Body>,
    id: &str,
) -> ApiResult<Json<SiteView>> {
    let p = ctx.caller(state, req.headers()).await?;
    let id: SiteId = parse_id(id, "id")?;
    let site = state.access().authorize(&p, id, Access::Read).await?;
    Ok(Json(SiteView::from(&*site)))
}

/// Sets a user's grant on a site (owners and admins).
#[utoipa::path(put, path = "/api/sites/{id}/members/{userId}", tag = "sites", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("userId" = String, Path, format = Uuid)),
    request_body = crate::dto::GrantBody,
    responses((status = 204, description = "Grant set"), (status = 400, body = crate::dto::ErrorBody),
        (status = 401, body = crate::dto::ErrorBody), (status = 403, body = crate::dto::ErrorBody),
        (status = 404, body = crate::dto::ErrorBody)))]
pub(crate) async fn set_member(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Body>,
    id: &str,
    user: &str,
) -> ApiResult<StatusCode> {
    let p = ctx.caller(state, req.headers()).await?;
    let body = json_body(state, req).await?;
    let mut errors = ValidationErrors::new();
    let site_id = parse_id::<SiteId>(id, "id")
        .map_err(|_| errors.add("id", "must be a UUID"))
        .ok();
    let user_id = parse_id::<UserId>(user, "userId")
        .map_err(|_| errors.add("userId", "must be a UUID"))
        .ok();
    let role = match body_object(&body) {
        Ok(obj) => {
            unknown_fields(&obj, &["role"], &mut errors);
            match obj
                .get("role")
                .and_then(|v| v.as_str())
                .map(str::parse::<SiteRole>)
            {
                Some(Ok(r)) => Some(r),
                _ => {
                    errors.add("role", "must be one of: owner, editor, viewer");
                    None
                }
            }
        }
        Err(e) => {
            errors.0.extend(e.0);
            None
        }
    };
    let (Some(site_id), Some(user_id), Some(role)) = (site_id, user_id, role) else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    state
        .access()
        .authorize(&p, site_id, Access::Manage)
        .await?;
    if state.store().get_user(user_id).await?.is_none() {
        return Err(ApiError::not_found("User"));
    }
    state.store().set_grant(site_id, user_id, role).await?;
    state.access().invalidate_grant(user_id, site_id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A site's scans, newest first.
#[utoipa::path(get, path = "/api/sites/{id}/scans", tag = "scans", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid),
           ("limit" = Option<u32>, Query, description = "1..500, default 50"),
           ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses((status = 200, body = PageOf<ScanView>), (status = 400, body = crate::dto::ErrorBody),
        (status = 401, body = crate::dto::ErrorBody), (status = 403, body = crate::dto::ErrorBody),
        (status = 404, body = crate::dto::ErrorBody)))]
pub(crate) async fn scans(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Body>,
    id: &str,
) -> ApiResult<Json<Page<ScanView>>> {
    let p = ctx.caller(state, req.headers()).await?;
    let page = PageParams::from_query(req.uri().query())?;
    let id: SiteId = parse_id(id, "id")?;
    Ok(Json(state.scans().list(&p, id, page).await?))
}

/// Drops the site's cached scan results: the next identical request starts a new scan.
#[utoipa::path(delete, path = "/api/sites/{id}/cache", tag = "sites", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 204, description = "Dropped"), (status = 400, body = crate::dto::ErrorBody),
        (status = 401, body = crate::dto::ErrorBody), (status = 403, body = crate::dto::ErrorBody),
        (status = 404, body = crate::dto::ErrorBody)))]
pub(crate) async fn drop_cache(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Body>,
    id: &str,
) -> ApiResult<StatusCode> {
    let p = ctx.caller(state, req.headers()).await?;
    let id: SiteId = parse_id(id, "id")?;
    state.access().check(&p, id, Access::Write).await?;
    state.scans().invalidate_site(id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Approves a completed visual-regression scan's capture as the baseline of its page (at its
/// viewport and capture mode); the next scan of that page compares against it.
#[utoipa::path(post, path = "/api/sites/{id}/baselines", tag = "sites", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    request_body = crate::dto::BaselineBody,
    responses((status = 204, description = "Approved"), (status = 400, body = crate::dto::ErrorBody),
        (status = 401, body = crate::dto::ErrorBody), (status = 403, body = crate::dto::ErrorBody),
        (status = 404, body = crate::dto::ErrorBody)))]
pub(crate) async fn approve_baseline(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Body>,
    id: &str,
) -> ApiResult<StatusCode> {
    let p = ctx.caller(state, req.headers()).await?;
    let site_id: SiteId = parse_id(id, "id")?;
    let body = json_body(state, req).await?;
    let obj = body_object(&body).map_err(ApiError::validation)?;
    let mut errors = ValidationErrors::new();
    unknown_fields(&obj, &["scanId"], &mut errors);
    let scan_id = match obj
        .get("scanId")
        .and_then(|v| v.as_str())
        .map(|s| parse_id::<ScanId>(s, "scanId"))
    {
        Some(Ok(id)) => Some(id),
        _ => {
            errors.add(
                "scanId",
                "is required (the UUID of a completed visual-regression scan)",
            );
            None
        }
    };
    let Some(scan_id) = scan_id.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    crate::services::baselines::approve(
        state.store(),
        state.artifacts(),
        state.access(),
        state.scans(),
        &p,
        site_id,
        scan_id,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
