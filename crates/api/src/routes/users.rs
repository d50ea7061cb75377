//! `POST /api/users`.

use crate::dto::{NewUserBody, UserCreated};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Ctx, json_body};
use crate::routes::body_object;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use sentinel_core::{ApiKey, Role, UserId, ValidationErrors, now_millis};
use sentinel_store::NewUser;

pub(crate) fn parse_new_user(body: &[u8]) -> Result<(String, Role), ValidationErrors> {
    let obj = body_object(body)?;
    let mut errors = ValidationErrors::new();
    let name = crate::routes::name_field(&obj, "name", &mut errors);
    let role = match obj.get("role").and_then(|v| v.as_str()) {
        Some(r) => r
            .parse::<Role>()
            .map_err(|()| errors.add("role", "must be one of: admin, member"))
            .ok(),
        None => {
            errors.add("role", "is required (admin or member)");
            None
        }
    };
    crate::routes::unknown_fields(&obj, &["name", "role"], &mut errors);
    match (name, role) {
        (Some(n), Some(r)) if errors.is_empty() => Ok((n, r)),
        _ => Err(errors),
    }
}

/// Creates a user with a new API key (admins only). The key is shown once.
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = NewUserBody,
    security(("bearer" = [])),
    responses(
        (status = 201, body = UserCreated),
        (status = 400, body = crate::dto::ErrorBody), (status = 401, body = crate::dto::ErrorBody),
        (status = 403, body = crate::dto::ErrorBody)))]
pub(crate) async fn create(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Body>,
) -> ApiResult<(StatusCode, Json<UserCreated>)> {
    let p = ctx.caller(state, req.headers()).await?;
    if p.role != Role::Admin {
        return Err(ApiError::forbidden());
    }
    let body = json_body(state, req).await?;
    let (name, role) = parse_new_user(&body).map_err(ApiError::validation)?;
    let key = ApiKey::generate();
    let user = state
        .store()
        .create_user(&NewUser {
            id: UserId::new(),
            name,
            role,
            key_hash: key.hash(),
            created_at: now_millis(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserCreated {
            id: user.id.to_string(),
            name: user.name,
            role: user.role,
            api_key: key.expose().to_owned(),
        }),
    ))
}
