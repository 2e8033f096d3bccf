//! Registration and the caller's own account: profile, password, sessions.

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::UserView;
use crate::configuration::RegistrationMode;
use crate::domain::{Email, Username};
use crate::error::{ApiError, BearerError};
use crate::extract::{Accept, Authenticated, parse_body};
use crate::services::users::{self, NewAccount, UserError};
use crate::state::AppState;

/// Only these fields are read: an `id`, `roles` or `is_admin` sent along is ignored.
#[derive(Deserialize)]
struct RegisterRequest {
    username: String,
    password: SecretString,
    email: Option<String>,
}

/// `POST /v1/users`.
#[utoipa::path(
    post, path = "/v1/users", tag = "users",
    request_body(content = super::openapi::RegistrationDoc, content_type = "application/json"),
    responses((status = 201, description = "Created", body = super::openapi::UserDoc),
        (status = 400, description = "Bad request", body = super::openapi::Problem), (status = 403, description = "Registration is closed", body = super::openapi::Problem),
        (status = 409, description = "Username taken", body = super::openapi::Problem), (status = 422, description = "Invalid values", body = super::openapi::Problem),
        (status = 429, description = "Too many attempts: retry after `Retry-After` seconds", body = super::openapi::Problem))
)]
pub async fn register(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.settings.accounts.registration == RegistrationMode::Closed {
        // Before the body is read or the throttle counts: a closed door says so at once.
        return Err(UserError::RegistrationClosed.into());
    }
    let body: RegisterRequest = parse_body(
        &req,
        payload,
        state.settings.server.max_body_bytes,
        Accept::JsonOrForm,
    )
    .await?;
    let client = state.throttle.client(&req);
    state
        .throttle
        .before_register(&body.username, &client)
        .await?;
    let account = NewAccount {
        username: Username::parse(&body.username)?,
        email: body
            .email
            .as_deref()
            .filter(|e| !e.is_empty())
            .map(Email::parse)
            .transpose()?,
        password: &body.password,
        roles: None,
        admin: false,
    };
    let user = users::register(&state, account).await?;
    Ok(HttpResponse::Created().json(UserView::from(user)))
}

/// `GET /v1/users/me`.
#[utoipa::path(
    get, path = "/v1/users/me", tag = "users", security(("bearer" = []), ("password" = [])),
    responses((status = 200, description = "OK", body = super::openapi::UserDoc), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem))
)]
pub async fn me(auth: Authenticated, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let user = state
        .users
        .find_by_id(auth.user_id()?)
        .await?
        .ok_or(ApiError::Unauthorized(BearerError::InvalidToken(
            "the user no longer exists",
        )))?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(UserView::from(user)))
}

#[derive(Deserialize)]
struct PasswordChange {
    current_password: SecretString,
    new_password: SecretString,
}

/// `POST /v1/users/me/password`: needs the current password; ends every session (revoking every
/// token issued so far) and returns a fresh pair for a new session.
#[utoipa::path(
    post, path = "/v1/users/me/password", tag = "users", security(("bearer" = []), ("password" = [])),
    request_body(content = super::openapi::PasswordChange, content_type = "application/json"),
    responses((status = 200, description = "Every session ended; a fresh pair", body = super::openapi::TokenResponse),
        (status = 400, description = "Bad request", body = super::openapi::Problem), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem), (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 422, description = "Invalid values", body = super::openapi::Problem))
)]
pub async fn change_password(
    req: HttpRequest,
    auth: Authenticated,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: PasswordChange = parse_body(
        &req,
        payload,
        state.settings.server.max_body_bytes,
        Accept::JsonOrForm,
    )
    .await?;
    let id = auth.user_id()?;
    let pair = users::change_password(
        &state,
        id,
        &body.current_password,
        &body.new_password,
        &auth.claims.client_id,
        &super::user_agent(&req),
    )
    .await
    .map_err(|e| match e {
        UserError::NotFound => {
            ApiError::Unauthorized(BearerError::InvalidToken("the user no longer exists"))
        }
        other => other.into(),
    })?;
    Ok(pair.response())
}

/// `GET /v1/users/me/sessions`.
#[utoipa::path(
    get, path = "/v1/users/me/sessions", tag = "users", security(("bearer" = []), ("password" = [])),
    responses((status = 200, description = "OK", body = super::openapi::Sessions), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem))
)]
pub async fn my_sessions(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sessions = state
        .sessions
        .list(&auth.claims.sub, shared::unix_now())
        .await?;
    let list: Vec<_> = sessions
        .into_iter()
        .map(|s| {
            let current = s.sid == auth.sid;
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["current"] = json!(current);
            v
        })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({"sessions": list})))
}

/// `DELETE /v1/users/me/sessions/{sid}`: only the caller's own sessions.
#[utoipa::path(
    delete, path = "/v1/users/me/sessions/{sid}", tag = "users", security(("bearer" = []), ("password" = [])),
    params(("sid" = String, Path, description = "Session id")),
    responses((status = 204, description = "Ended"), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem), (status = 404, description = "Not found", body = super::openapi::Problem))
)]
pub async fn end_my_session(
    auth: Authenticated,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sid = path.into_inner();
    if !crate::services::sessions::end_own(&state, &auth.claims.sub, &sid).await? {
        return Err(ApiError::NotFound("no such session".into()));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/users/me/consents`: the third-party apps the caller allowed, and what each may do.
#[utoipa::path(
    get, path = "/v1/users/me/consents", tag = "users", security(("bearer" = []), ("password" = [])),
    responses((status = 200, description = "OK", body = super::openapi::Consents), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem))
)]
pub async fn my_consents(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let consents = state.consents.list_consents(&auth.claims.sub).await?;
    let mut list = Vec::with_capacity(consents.len());
    for c in consents {
        let name = crate::services::account::client_name(&state, &c.client_id).await;
        list.push(json!({"client_id": c.client_id, "name": name, "scopes": c.scopes, "granted_at": c.granted_at}));
    }
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({"consents": list})))
}

/// `DELETE /v1/users/me/consents/{client_id}`: withdraws a consent; that app's sessions end
/// with it, and its next sign-in asks again.
#[utoipa::path(
    delete, path = "/v1/users/me/consents/{client_id}", tag = "users", security(("bearer" = []), ("password" = [])),
    params(("client_id" = String, Path, description = "The app")),
    responses((status = 204, description = "Withdrawn"), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem), (status = 404, description = "No such consent", body = super::openapi::Problem))
)]
pub async fn withdraw_my_consent(
    auth: Authenticated,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let client_id = path.into_inner();
    if client_id.len() > crate::services::clients::MAX_ID_LEN
        || !crate::services::account::withdraw_consent(&state, &auth.claims.sub, &client_id).await?
    {
        return Err(ApiError::NotFound("no such consent".into()));
    }
    Ok(HttpResponse::NoContent().finish())
}
