//! The outermost middleware: every answer gets `X-Request-ID` (the client's, when it is a sane
//! token, else a new one) and `X-Response-Time`, is counted in the metrics by matched route,
//! and — outside production mode — is written to the JSON access log.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

tokio::task_local! {
    static REQUEST_ID: HeaderValue;
}

/// The id of the request being handled (for error bodies), if called inside one.
pub(crate) fn current_request_id() -> Option<String> {
    REQUEST_ID
        .try_with(|v| v.to_str().ok().map(str::to_owned))
        .ok()
        .flatten()
}

static X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");
static X_RESPONSE_TIME: header::HeaderName = header::HeaderName::from_static("x-response-time");

/// A new request id: a random per-process prefix and a counter, so ids are unique across a
/// fleet and cost a counter increment, not a UUID, per request.
fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(rand_u32);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut s = String::with_capacity(24);
    let _ = write!(s, "{prefix:08x}-{n:x}");
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn rand_u32() -> u32 {
    // std's RandomState is seeded from the OS: enough entropy for a process id prefix.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    u32::try_from(h.finish() & 0xffff_ffff).unwrap_or(0)
}

/// A client-supplied id is kept when it is 1–128 visible ASCII characters without spaces;
/// anything else (empty, huge, control characters) is replaced, so logs stay clean.
fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

fn status_label(code: u16) -> &'static str {
    match code {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        503 => "503",
        c if c < 300 => "2xx",
        c if c < 400 => "3xx",
        c if c < 500 => "4xx",
        _ => "5xx",
    }
}

/// See the module docs.
pub(crate) async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = match req.headers().get(&X_REQUEST_ID) {
        Some(v) if acceptable(v) => v.clone(),
        _ => new_request_id(),
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let method = req.method().clone();
    let log = state.settings().request_logs();
    let (uri, ua, peer) = if log {
        let ua = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let peer =
            crate::middleware::client_ip(&req, &state.settings().trusted_proxies).map(|c| c.0);
        (Some(req.uri().clone()), ua, peer)
    } else {
        (None, None, None)
    };

    let limit = Duration::from_secs(state.settings().http.request_timeout_secs);
    let mut res = REQUEST_ID
        .scope(id.clone(), async move {
            match tokio::time::timeout(limit, next.run(req)).await {
                Ok(res) => res,
                Err(_) => {
                    ApiError::unavailable("TIMEOUT", "The request took too long", 1).into_response()
                }
            }
        })
        .await;

    let elapsed = started.elapsed();
    let ms = elapsed.as_secs_f64() * 1000.0;
    let mut rt = String::with_capacity(12);
    let _ = write!(rt, "{ms:.2}ms");
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&rt) {
        headers.insert(X_RESPONSE_TIME.clone(), v);
    }
    headers.insert(X_REQUEST_ID.clone(), id.clone());

    let status = res.status().as_u16();
    let route_label = route.as_deref().unwrap_or("unmatched");
    state
        .metrics()
        .observe_request(method.as_str(), route_label, status_label(status), elapsed);

    if log {
        tracing::info!(
            target: "access",
            method = %method,
            url = %uri.map(|u| u.to_string()).unwrap_or_default(),
            remote_addr = %peer.map(|p| p.to_string()).unwrap_or_default(),
            user_agent = ua.as_deref().unwrap_or(""),
            status,
            duration_ms = ms,
            request_id = id.to_str().unwrap_or(""),
            "request"
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_sane() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert!(acceptable(&a));
        assert!(!acceptable(&HeaderValue::from_static("")));
        assert!(!acceptable(&HeaderValue::from_static("has space")));
        assert!(acceptable(&HeaderValue::from_static("client-id-123")));
        assert!(!acceptable(
            &HeaderValue::from_str(&"x".repeat(129)).unwrap()
        ));
    }
}
