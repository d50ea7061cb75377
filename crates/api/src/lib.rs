//! qa-sentinel's HTTP API.
//!
//! [`App`] is the application (the front around every endpoint of the contract) over an
//! [`AppState`]; [`server::serve`] runs it on a listener with TLS, HTTP/2, deadlines
//! and graceful shutdown. Handlers are thin: they extract and validate input, call the
//! services in `services` (access control with caches, scans with deduplication and group
//! commit), and shape the answer; every failure is an [`ApiError`] rendered as
//! `{"error", "code", "details", "requestId"}`.

pub mod dto;
mod error;
mod extract;
mod front;
mod metrics;
mod middleware;
mod router;
mod routes;
pub mod server;
mod services;
mod state;

pub use error::{ApiError, ApiResult};
pub use front::App;
pub use state::{AppDeps, AppState, DependencyHealth, HealthCheck};

/// The OpenAPI document of the API.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    routes::openapi::ApiDoc::openapi()
}
