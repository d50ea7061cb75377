//! The route table and the middleware stack.
//!
//! Order (outermost first), and why:
//! 1. `observe` — request id, response time, metrics, access log: it must see every answer,
//!    including CORS preflights and rejections by the layers below.
//! 2. CORS — outside the rate limiter, so that a 429 reaches a browser with its CORS headers
//!    (otherwise the page sees an opaque network error instead of "slow down").
//! 3. compression — bodies of 1 KiB and more, never images.
//! 4. rate limit — per client, after which handlers run.

use crate::error::ApiError;
use crate::middleware::{observe, rate_limit};
use crate::routes::{health, openapi, scans, sites, users};
use crate::state::AppState;
use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post, put};
use std::time::Duration;
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::cors::{AllowOrigin, CorsLayer};

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

fn cors(state: &AppState) -> CorsLayer {
    let origins: Vec<HeaderValue> = state
        .settings()
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        // Exact, byte-for-byte origin matches only (the guide's `origin.includes(domain)`
        // let `https://yourdomain.com.attacker.io` through).
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-response-time"),
            header::RETRY_AFTER,
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
        ])
        .max_age(Duration::from_secs(600))
}

/// The application: every route of the contract with its middleware.
pub fn router(state: AppState) -> Router {
    let min = state.settings().http.compression_min_bytes;
    let compress_when = SizeAbove::new(min)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::SSE);
    Router::new()
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
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), rate_limit))
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .deflate(true)
                .br(true)
                // Brotli's default level costs milliseconds on dynamic JSON.
                .quality(CompressionLevel::Fastest)
                .compress_when(compress_when),
        )
        .layer(cors(&state))
        .layer(from_fn_with_state(state.clone(), observe))
        .with_state(state)
}
