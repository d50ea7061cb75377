//! The one error type of the HTTP edge, and its JSON answer:
//! `{"error": "human readable", "code": "MACHINE_CODE", "details": [...], "requestId": "..."}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sentinel_core::{FieldError, ValidationErrors};
use sentinel_store::StoreError;
use serde::Serialize;

/// An error answer. Handlers and services return it; `IntoResponse` renders it.
#[derive(Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Violated fields (400) or other structured detail.
    pub details: Vec<FieldError>,
    /// Seconds after which a retry makes sense (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    /// 400 listing every violated field.
    #[must_use]
    pub fn validation(errors: ValidationErrors) -> Self {
        let message = format!("Invalid request: {}", errors.summary());
        Self {
            details: errors.0,
            ..Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
        }
    }

    /// 400 about one field.
    pub fn field(field: &str, reason: impl Into<String>) -> Self {
        let mut errors = ValidationErrors::new();
        errors.add(field, reason);
        Self::validation(errors)
    }

    /// 401.
    #[must_use]
    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    /// 403 `Access denied` (the same answer whether or not the resource exists, so that it
    /// tells nothing about other tenants).
    #[must_use]
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", "Access denied")
    }

    /// 404.
    #[must_use]
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }

    /// 503 with a retry hint.
    #[must_use]
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// 500 without internals (they are logged).
    #[must_use]
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "Internal server error",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database unavailable");
                Self::unavailable(
                    "DATABASE_UNAVAILABLE",
                    "Database unavailable, try again later",
                    5,
                )
            }
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Conflict(msg) => Self::new(StatusCode::CONFLICT, "CONFLICT", msg),
            other => {
                tracing::error!(error = %other, "store error");
                Self::internal()
            }
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    error: &'a str,
    code: &'static str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    details: &'a [FieldError],
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

/// An error answer whose body is not written yet: the front writes it once it knows the
/// request id (see [`PendingError::render`]). Carrying the id to the handlers instead (a
/// task-local around the whole request) cost a copy of the request's entire future state on
/// every poll.
#[derive(Clone, Debug)]
pub(crate) struct PendingError(std::sync::Arc<ApiErrorParts>);

#[derive(Debug)]
struct ApiErrorParts {
    message: String,
    code: &'static str,
    details: Vec<FieldError>,
    retry_after: Option<u64>,
}

impl PendingError {
    /// The JSON body, with the request id.
    pub(crate) fn render(&self, request_id: Option<&str>) -> Vec<u8> {
        let p = &self.0;
        let body = Body {
            error: &p.message,
            code: p.code,
            details: &p.details,
            retry_after: p.retry_after,
            request_id,
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":\"error\"}".to_vec())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() && self.status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(status = %self.status, code = self.code, message = %self.message, "request failed");
        }
        let mut res = self.status.into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res.extensions_mut()
            .insert(PendingError(std::sync::Arc::new(ApiErrorParts {
                message: self.message,
                code: self.code,
                details: self.details,
                retry_after: self.retry_after,
            })));
        res
    }
}

/// Result of handlers and services.
pub type ApiResult<T> = Result<T, ApiError>;
