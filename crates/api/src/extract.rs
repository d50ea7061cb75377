//! Request inputs: the authenticated caller, JSON bodies with a size limit, ids in paths and
//! pagination parameters — each rejecting with an [`ApiError`] that names the field.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use bytes::Bytes;
use sentinel_core::page::{DEFAULT_LIMIT, MAX_LIMIT};
use sentinel_core::{Cursor, Principal};
use std::str::FromStr;
use std::sync::Arc;

/// The bearer token of a request, if it has a well-formed `Authorization: Bearer …`.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 256)
        .then_some(token)
}

/// What the front learned about a request before dispatching it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ctx {
    /// The TCP peer (absent for in-process calls).
    pub peer: Option<std::net::SocketAddr>,
    /// The principal, when the rate limiter already resolved the key.
    pub principal: Option<Arc<Principal>>,
}

impl Ctx {
    /// The authenticated caller; 401 when the key is missing, malformed or unknown.
    pub(crate) async fn caller(
        &self,
        state: &AppState,
        headers: &HeaderMap,
    ) -> ApiResult<Arc<Principal>> {
        if let Some(p) = &self.principal {
            return Ok(p.clone());
        }
        if headers.get(header::AUTHORIZATION).is_none() {
            return Err(ApiError::unauthorized(
                "Missing API key (Authorization: Bearer <key>)",
            ));
        }
        let token = bearer_token(headers).ok_or_else(|| {
            ApiError::unauthorized("Malformed Authorization header (expected Bearer <key>)")
        })?;
        state
            .access()
            .authenticate(token)
            .await?
            .ok_or_else(|| ApiError::unauthorized("Invalid API key"))
    }
}

/// Reads a JSON request body: checks the content type (415) and the size limit (413), so that
/// handlers can parse into their own types and report every violated field.
pub(crate) async fn json_body(state: &AppState, req: Request<Body>) -> ApiResult<Bytes> {
    let limit = state.settings().http.body_limit_bytes;
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    let is_json = mime.eq_ignore_ascii_case("application/json")
        || (mime.starts_with("application/") && mime.ends_with("+json"));
    if !is_json {
        return Err(ApiError {
            details: vec![sentinel_core::FieldError {
                field: "Content-Type".into(),
                reason: "must be application/json".into(),
            }],
            ..ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "Request body must be JSON (Content-Type: application/json)",
            )
        });
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > limit) {
        if n <= limit.saturating_mul(LINGER_FACTOR) {
            discard(req.into_body(), n, LINGER_TIME).await;
        }
        return Err(too_large(limit));
    }
    // A client that trickles its body must not hold a request (and its connection) forever.
    let deadline = std::time::Duration::from_secs(state.settings().http.body_timeout_secs);
    match tokio::time::timeout(deadline, axum::body::to_bytes(req.into_body(), limit)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) if is_length_limit(&e) => Err(too_large(limit)),
        Ok(Err(e)) => Err(ApiError::field("body", format!("could not be read: {e}"))),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "BODY_TIMEOUT",
            format!(
                "The request body did not arrive within {} s",
                deadline.as_secs()
            ),
        )),
    }
}

/// Refused bodies up to this multiple of the limit are read and thrown away first.
const LINGER_FACTOR: usize = 4;
/// The longest a refused body is read for.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Lingering close, as nginx does it: a client still sending a refused body when the 413
/// goes out and the connection closes gets a reset, often before it has read the answer.
/// Reading (and dropping) a refused body of moderate size first lets it read the 413; larger
/// bodies, or slower ones, are cut off as before.
async fn discard(mut body: Body, max: usize, deadline: std::time::Duration) {
    use http_body_util::BodyExt;
    let _ = tokio::time::timeout(deadline, async move {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen >= max {
                break;
            }
        }
    })
    .await;
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

fn too_large(limit: usize) -> ApiError {
    ApiError {
        details: vec![sentinel_core::FieldError {
            field: "body".into(),
            reason: format!("must be at most {limit} bytes"),
        }],
        ..ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "Request body too large",
        )
    }
}

/// Parses a path segment into an id, or 400 naming the parameter.
pub(crate) fn parse_id<T: FromStr>(raw: &str, field: &str) -> Result<T, ApiError> {
    if raw.len() != 36 {
        return Err(ApiError::field(field, "must be a UUID"));
    }
    raw.parse::<T>()
        .map_err(|_| ApiError::field(field, "must be a UUID"))
}

/// `?limit=&cursor=` of a listing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageParams {
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

impl PageParams {
    /// From `?limit=&cursor=`; 400 naming the parameter.
    pub(crate) fn from_query(query: Option<&str>) -> ApiResult<Self> {
        let mut errors = sentinel_core::ValidationErrors::new();
        let mut limit = DEFAULT_LIMIT;
        let mut cursor = None;
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "limit" => match v.parse::<u32>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                    _ => errors.add(
                        "limit",
                        format!("must be an integer between 1 and {MAX_LIMIT}"),
                    ),
                },
                "cursor" => match Cursor::decode(&v) {
                    Some(c) => cursor = Some(c),
                    None => errors.add("cursor", "is not a cursor returned by this listing"),
                },
                _ => {}
            }
        }
        errors
            .into_result(|| Self { limit, cursor })
            .map_err(ApiError::validation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert_eq!(bearer_token(&h), None);
    }
}
