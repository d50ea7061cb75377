//! `/openapi.json`, generated from the handlers' annotations.

use crate::dto;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("qas_…")
                    .build(),
            ),
        );
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "qa-sentinel", description = "Website quality checks: broken links and visual regressions."),
    paths(
        super::users::create,
        super::sites::create, super::sites::list, super::sites::get, super::sites::set_member,
        super::sites::scans, super::sites::drop_cache, super::sites::approve_baseline,
        super::scans::submit, super::scans::get, super::scans::findings, super::scans::artifact,
        super::health::live, super::health::ready, super::health::performance, super::health::metrics,
        openapi_json,
    ),
    components(schemas(dto::ScanView, dto::FindingView, dto::SiteView, dto::NewSiteBody, dto::NewUserBody,
        dto::UserCreated, dto::GrantBody, dto::BaselineBody, dto::ScanRequestBody, dto::ScanAccepted, dto::ErrorBody)),
    modifiers(&BearerAuth),
)]
pub(crate) struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3.1")))]
pub(crate) fn openapi_json() -> Response {
    // Generated once: the document is the same for the life of the process.
    static DOC: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let body = DOC.get_or_init(|| serde_json::to_vec(&ApiDoc::openapi()).unwrap_or_default());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.as_slice(),
    )
        .into_response()
}
