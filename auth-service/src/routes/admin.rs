//! The admin API: users (list, read, change roles, disable, delete), their sessions, and the
//! signing keys (list, rotate).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::UserView;
use crate::domain::Role;
use crate::error::ApiError;
use crate::extract::{Accept, Admin, parse_body};
use crate::services::keys;
use crate::services::users::{self, Actor, UserChange};
use crate::state::AppState;
use crate::storage::UserCursor;

fn user_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound("no such user".into()))
}

fn encode_cursor(at: OffsetDateTime, id: Uuid) -> String {
    shared::jws::b64_encode(format!("{}:{id}", at.unix_timestamp_nanos()))
}

fn decode_cursor(raw: &str) -> Result<UserCursor, ApiError> {
    let bad = || ApiError::BadRequest("cursor is not one this service issued".into());
    let text = shared::jws::b64_decode(raw)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let (nanos, id) = text.split_once(':').ok_or_else(bad)?;
    let at = nanos
        .parse::<i128>()
        .ok()
        .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n).ok())
        .ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /v1/admin/users?limit=&cursor=`: keyset pagination in creation order.
#[utoipa::path(
    get, path = "/v1/admin/users", tag = "admin", security(("bearer" = []), ("password" = [])),
    params(("limit" = Option<i64>, Query, description = "1–200, default 50", minimum = 1, maximum = 200), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "OK", body = super::openapi::UserPage), (status = 400, description = "Bad request", body = super::openapi::Problem), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem), (status = 403, description = "Not allowed", body = super::openapi::Problem))
)]
pub async fn list_users(
    req: HttpRequest,
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 200".into(),
        ));
    }
    let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let users = state.users.list(cursor, limit + 1).await?;
    let more = users.len() as i64 > limit;
    let page: Vec<_> = users.into_iter().take(limit as usize).collect();
    let next = if more {
        page.last().map(|u| encode_cursor(u.created_at, u.id))
    } else {
        None
    };
    let views: Vec<UserView> = page.into_iter().map(UserView::from).collect();
    Ok(HttpResponse::Ok().json(json!({"users": views, "next_cursor": next})))
}

/// `GET /v1/admin/users/{id}`.
#[utoipa::path(
    get, path = "/v1/admin/users/{id}", tag = "admin", security(("bearer" = []), ("password" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "OK", body = super::openapi::UserDoc), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem), (status = 403, description = "Not allowed", body = super::openapi::Problem), (status = 404, description = "Not found", body = super::openapi::Problem))
)]
pub async fn get_user(
    _admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user = users::get(&state, user_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

#[derive(Deserialize)]
struct UserUpdate {
    #[serde(default, deserialize_with = "crate::extract::present")]
    roles: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::extract::present")]
    disabled: Option<bool>,
}

/// `PATCH /v1/admin/users/{id}` with `roles` and/or `disabled`. A role change revokes the user's
/// access tokens (their next refresh carries the new roles); disabling ends every session.
#[utoipa::path(
    patch, path = "/v1/admin/users/{id}", tag = "admin", security(("bearer" = []), ("password" = [])),
    params(("id" = String, Path, description = "User id")),
    request_body(content = super::openapi::UserUpdate, content_type = "application/json"),
    responses((status = 200, description = "OK", body = super::openapi::UserDoc), (status = 400, description = "Bad request", body = super::openapi::Problem), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem),
        (status = 403, description = "Not allowed", body = super::openapi::Problem), (status = 404, description = "Not found", body = super::openapi::Problem), (status = 409, description = "Conflict", body = super::openapi::Problem),
        (status = 422, description = "Invalid values", body = super::openapi::Problem))
)]
pub async fn update_user(
    req: HttpRequest,
    admin: Admin,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path)?;
    let body: UserUpdate = parse_body(
        &req,
        payload,
        state.settings.server.max_body_bytes,
        Accept::Json,
    )
    .await?;
    let change = UserChange {
        roles: body.roles.as_deref().map(Role::parse_list).transpose()?,
        disabled: body.disabled,
    };
    let user = users::change(&state, id, change, Actor::Account(&admin.0.claims.sub)).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// `DELETE /v1/admin/users/{id}`: ends the user's sessions, revokes their tokens, deletes them.
#[utoipa::path(
    delete, path = "/v1/admin/users/{id}", tag = "admin", security(("bearer" = []), ("password" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 204, description = "Deleted"), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem), (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 404, description = "Not found", body = super::openapi::Problem), (status = 409, description = "Conflict", body = super::openapi::Problem))
)]
pub async fn delete_user(
    admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path)?;
    users::delete(&state, id, Actor::Account(&admin.0.claims.sub)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/admin/users/{id}/sessions`.
#[utoipa::path(
    get, path = "/v1/admin/users/{id}/sessions", tag = "admin", security(("bearer" = []), ("password" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "OK", body = super::openapi::Sessions), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem), (status = 403, description = "Not allowed", body = super::openapi::Problem), (status = 404, description = "Not found", body = super::openapi::Problem))
)]
pub async fn user_sessions(
    _admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sessions = users::sessions(&state, user_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(json!({"sessions": sessions})))
}

/// `DELETE /v1/admin/users/{id}/sessions`: logs the user out everywhere.
#[utoipa::path(
    delete, path = "/v1/admin/users/{id}/sessions", tag = "admin", security(("bearer" = []), ("password" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "OK", body = super::openapi::Object), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem), (status = 403, description = "Not allowed", body = super::openapi::Problem), (status = 404, description = "Not found", body = super::openapi::Problem))
)]
pub async fn end_user_sessions(
    admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path)?;
    let ended = users::end_sessions(&state, id, Actor::Account(&admin.0.claims.sub)).await?;
    Ok(HttpResponse::Ok().json(json!({"sessions_ended": ended})))
}

/// `GET /v1/admin/keys`: the signing keys with their states and times (no key material).
#[utoipa::path(
    get, path = "/v1/admin/keys", tag = "admin", security(("bearer" = []), ("password" = [])),
    responses((status = 200, description = "OK", body = super::openapi::Object), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem), (status = 403, description = "Not allowed", body = super::openapi::Problem))
)]
pub async fn list_keys(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let keys: Vec<_> = keys::list(&state)
        .await?
        .into_iter()
        .map(
            |k| json!({"kid": k.kid, "state": k.state, "published": k.published, "times": k.times}),
        )
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({"keys": keys})))
}

#[derive(Deserialize)]
struct RotateQuery {
    immediately: Option<bool>,
}

/// `POST /v1/admin/keys/rotate[?immediately=true]`: publishes a new key now, signing after the
/// lead time; 409 when a rotation is already pending. `immediately`: the compromise response
/// (a new key signs at once; every older key is withdrawn and revoked everywhere, listed in
/// `revoked_kids`), never refused.
#[utoipa::path(
    post, path = "/v1/admin/keys/rotate", tag = "admin", security(("bearer" = []), ("password" = [])),
    params(("immediately" = Option<bool>, Query, description = "Compromise response: a new key signs at once, and every older key is withdrawn from the JWKS and revoked at every gateway within a second (their tokens, refresh tokens included, are refused)")),
    responses((status = 202, description = "Accepted", body = super::openapi::Object), (status = 400, description = "Bad request", body = super::openapi::Problem), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem),
        (status = 403, description = "Not allowed", body = super::openapi::Problem), (status = 409, description = "A rotation is pending", body = super::openapi::Problem))
)]
pub async fn rotate_keys(
    req: HttpRequest,
    admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: RotateQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let actor = Actor::Account(&admin.0.claims.sub);
    if q.immediately.unwrap_or(false) {
        let now = shared::unix_now();
        let (kid, revoked) = keys::replace_compromised(&state, actor).await?;
        return Ok(HttpResponse::Accepted()
            .json(json!({"kid": kid, "activates_at": now, "revoked_kids": revoked})));
    }
    match keys::rotate(&state, actor).await? {
        Some(r) => Ok(
            HttpResponse::Accepted().json(json!({"kid": r.kid, "activates_at": r.activates_at}))
        ),
        None => Err(ApiError::Conflict {
            code: "rotation_pending",
            detail: "a new key is already published and waiting to sign".into(),
        }),
    }
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
}

/// `GET /v1/admin/users/{id}/audit[?limit=]`: the user's recent audit events, newest first.
#[utoipa::path(
    get, path = "/v1/admin/users/{id}/audit", tag = "admin", security(("bearer" = []), ("password" = [])),
    params(("id" = String, Path, description = "User id"), ("limit" = Option<usize>, Query, description = "1–100, default 50", minimum = 1, maximum = 100)),
    responses((status = 200, description = "OK", body = super::openapi::Object), (status = 400, description = "Bad request", body = super::openapi::Problem), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem), (status = 403, description = "Not allowed", body = super::openapi::Problem), (status = 404, description = "Not found", body = super::openapi::Problem))
)]
pub async fn user_audit(
    req: HttpRequest,
    _admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: AuditQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 100".into(),
        ));
    }
    let id = user_id(&path)?;
    // This process's events are written off the request path: let them land first.
    state.audit_writer.flush().await;
    let events = state.audit_store.recent(&id.to_string(), limit).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({"events": events})))
}
