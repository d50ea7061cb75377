//! The route table: every endpoint of the contract, with compression of bodies of 1 KiB and
//! more (never images). Everything that applies to every request — ids, CORS, rate limits,
//! metrics, logs — is in [`crate::front`].

use crate::error::ApiError;
use crate::routes::{health, openapi, scans, sites, users};
use crate::state::AppState;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use tower::Layer;
use tower_http::CompressionLevel;
use tower_http::compression::predicate::{And, NotForContentType, Predicate, SizeAbove};
use tower_http::compression::{Compression, CompressionLayer};

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "No such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "Method not allowed on this endpoint",
    )
}

/// Hands the matched route template to the front (for metrics labels), which sees only the
/// response.
async fn expose_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut res = next.run(req).await;
    if let Some(route) = route {
        res.extensions_mut().insert(route);
    }
    res
}

/// What compression applies to.
pub(crate) type CompressWhen =
    And<And<And<SizeAbove, NotForContentType>, NotForContentType>, NotForContentType>;

/// The routes, wrapped once (not per route) in compression.
pub fn router(state: AppState) -> Compression<Router, CompressWhen> {
    let min = state.settings().http.compression_min_bytes;
    let compress_when = SizeAbove::new(min)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::SSE);
    let routes = Router::new()
        .route("/api/users", post(users::create))
        .route("/api/sites", post(sites::create).get(sites::list))
        .route("/api/sites/{id}", get(sites::get))
        .route("/api/sites/{id}/members/{userId}", put(sites::set_member))
        .route("/api/sites/{id}/scans", get(sites::scans))
        .route("/api/sites/{id}/cache", delete(sites::drop_cache))
        .route("/api/scan", post(scans::submit))
        .route("/api/scans/{id}", get(scans::get))
        .route("/api/scans/{id}/findings", get(scans::findings))
        .route("/api/scans/{id}/artifacts/{name}", get(scans::artifact))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/health/performance", get(health::performance))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route_layer(from_fn(expose_route))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    CompressionLayer::new()
        .gzip(true)
        .deflate(true)
        .br(true)
        // Brotli's default level costs milliseconds on dynamic JSON.
        .quality(CompressionLevel::Fastest)
        .compress_when(compress_when)
        .layer(routes)
}
