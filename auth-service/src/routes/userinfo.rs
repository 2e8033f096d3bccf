//! `GET` and `POST /v1/userinfo` (OpenID Connect Core §5.3): the signed-in user's claims that
//! the access token's scopes allow: `sub`; `preferred_username` and `updated_at` with
//! `profile`; `email` and `email_verified` with `email`.

use actix_web::{HttpResponse, web};

use crate::error::{ApiError, BearerError};
use crate::extract::Authenticated;
use crate::state::AppState;

/// The claims for the bearer token's user. The token needs the `openid` scope.
#[utoipa::path(
    get, path = "/v1/userinfo", tag = "openid", security(("bearer" = [])),
    responses((status = 200, description = "The user's claims, by the token's scopes", body = super::openapi::Object),
        (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem),
        (status = 403, description = "The token lacks the openid scope", body = super::openapi::Problem))
)]
pub async fn userinfo(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scopes: Vec<&str> = auth.claims.scope.split(' ').collect();
    if !scopes.contains(&"openid") {
        return Err(ApiError::Forbidden(
            "the access token was not granted the openid scope".into(),
        ));
    }
    let user = state
        .users
        .find_by_id(auth.user_id()?)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(ApiError::Unauthorized(BearerError::InvalidToken(
            "the user no longer exists",
        )))?;
    let claims = crate::services::authorize::user_claims(&user, &scopes);
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(claims))
}

/// `POST /v1/userinfo`: the same (the token in the `Authorization` header).
#[utoipa::path(
    post, path = "/v1/userinfo", tag = "openid", security(("bearer" = [])),
    responses((status = 200, description = "The user's claims, by the token's scopes", body = super::openapi::Object),
        (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem),
        (status = 403, description = "The token lacks the openid scope", body = super::openapi::Problem))
)]
pub async fn userinfo_post(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    userinfo(auth, state).await
}
