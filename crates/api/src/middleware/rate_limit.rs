//! Rate limiting per client: the API key's user when the key is valid, else the client IP.
//! Networks on the allow-list are not limited. Refusals are 429 with `Retry-After`.
//!
//! Keying by user only for *valid* keys matters: keying by whatever bearer token a request
//! carries would give an attacker a fresh budget per made-up key.

use crate::error::ApiError;
use crate::extract::{Authenticated, bearer_token};
use crate::middleware::client_ip;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// See the module docs.
pub(crate) async fn rate_limit(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(limiter) = state.limiter() else {
        return next.run(req).await;
    };
    let settings = state.settings();
    let ip = client_ip(&req, &settings.trusted_proxies).map(|c| c.0);
    if let Some(ip) = ip
        && settings.rate_limit_allowlist.iter().any(|net| net.contains(&ip))
    {
        return next.run(req).await;
    }
    let mut key = None;
    if let Some(token) = bearer_token(req.headers())
        && let Ok(Some(principal)) = state.access().authenticate(token).await
    {
        key = Some(format!("u:{}", principal.user_id));
        req.extensions_mut().insert(Authenticated(principal));
    }
    let key = key.unwrap_or_else(|| match ip {
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".to_owned(),
    });
    let decision = limiter.check(&key).await;
    let reset_secs =
        decision.reset_after.as_secs() + u64::from(decision.reset_after.subsec_nanos() > 0);
    let mut res = if decision.allowed {
        next.run(req).await
    } else {
        metrics::counter!("http_rate_limited_total").increment(1);
        let mut e = ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("Too many requests: limit is {} per minute", decision.limit),
        );
        e.retry_after = Some(reset_secs.max(1));
        e.into_response()
    };
    let h = res.headers_mut();
    h.insert(LIMIT.clone(), HeaderValue::from(decision.limit));
    h.insert(REMAINING.clone(), HeaderValue::from(decision.remaining));
    h.insert(RESET.clone(), HeaderValue::from(reset_secs));
    res
}
