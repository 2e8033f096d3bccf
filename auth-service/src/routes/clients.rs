//! The admin API for registered clients: register (the secret is shown once), list, read,
//! change, rotate the secret with an overlap, delete. Disabling, narrowing or deleting a client
//! revokes its tokens.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{Accept, Admin, parse_body};
use crate::services::clients::{self, ClientRegistration, Patch};
use crate::state::AppState;
use crate::storage::RegisteredClient;

/// A client and its new secret (a public client has none), `Cache-Control: no-store`.
fn with_secret(
    status: actix_web::http::StatusCode,
    client: &RegisteredClient,
    secret: Option<&SecretString>,
) -> HttpResponse {
    let mut body = serde_json::to_value(client).unwrap_or_default();
    if let Some(secret) = secret {
        body["client_secret"] = json!(secret.expose_secret());
    }
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// `POST /v1/admin/clients`: registers a client; the answer holds its secret, shown this once.
#[utoipa::path(
    post, path = "/v1/admin/clients", tag = "admin", security(("bearer" = []), ("password" = [])),
    request_body(content = super::openapi::ClientRegistrationDoc, content_type = "application/json"),
    responses((status = 201, description = "Registered; `client_secret` is shown this once", body = super::openapi::ClientWithSecret),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 409, description = "The client id is taken", body = super::openapi::Problem),
        (status = 422, description = "Invalid values", body = super::openapi::Problem))
)]
pub async fn create(
    req: HttpRequest,
    admin: Admin,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: ClientRegistration = parse_body(
        &req,
        payload,
        state.settings.server.max_body_bytes,
        Accept::Json,
    )
    .await?;
    let (client, secret) = clients::register(&state, body, &admin.0.claims.sub).await?;
    let mut res = with_secret(
        actix_web::http::StatusCode::CREATED,
        &client,
        secret.as_ref(),
    );
    if let Ok(v) = header::HeaderValue::from_str(&format!("/v1/admin/clients/{}", client.client_id))
    {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// `GET /v1/admin/clients`: every client, by id (secrets are never shown again).
#[utoipa::path(
    get, path = "/v1/admin/clients", tag = "admin", security(("bearer" = []), ("password" = [])),
    responses((status = 200, description = "OK", body = super::openapi::ClientList),
        (status = 403, description = "Not allowed", body = super::openapi::Problem))
)]
pub async fn list(_admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let clients = state.clients.list_clients().await?;
    Ok(HttpResponse::Ok().json(json!({ "clients": clients })))
}

/// `GET /v1/admin/clients/{id}`.
#[utoipa::path(
    get, path = "/v1/admin/clients/{id}", tag = "admin", security(("bearer" = []), ("password" = [])),
    params(("id" = String, Path, description = "Client id")),
    responses((status = 200, description = "OK", body = super::openapi::ClientDoc),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 404, description = "Not found", body = super::openapi::Problem))
)]
pub async fn get(
    _admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(clients::get(&state, &path).await?))
}

/// `PATCH /v1/admin/clients/{id}`: name, scopes, audiences, disabled. Disabling, or changing the
/// scopes or audiences, revokes the client's tokens.
#[utoipa::path(
    patch, path = "/v1/admin/clients/{id}", tag = "admin", security(("bearer" = []), ("password" = [])),
    params(("id" = String, Path, description = "Client id")),
    request_body(content = super::openapi::ClientUpdateDoc, content_type = "application/json"),
    responses((status = 200, description = "OK", body = super::openapi::ClientDoc),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 404, description = "Not found", body = super::openapi::Problem),
        (status = 422, description = "Invalid values", body = super::openapi::Problem))
)]
pub async fn update(
    req: HttpRequest,
    admin: Admin,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: Patch = parse_body(
        &req,
        payload,
        state.settings.server.max_body_bytes,
        Accept::Json,
    )
    .await?;
    let client = clients::update(&state, &path, body, &admin.0.claims.sub).await?;
    Ok(HttpResponse::Ok().json(client))
}

#[derive(Deserialize, Default)]
struct Rotation {
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    previous_secret_ttl: Option<i64>,
}

/// `POST /v1/admin/clients/{id}/secret`: a new secret (shown this once); the previous one keeps
/// working for `previous_secret_ttl` seconds (default 0: it stops at once), so that the client's
/// replicas can move over without a failed request.
#[utoipa::path(
    post, path = "/v1/admin/clients/{id}/secret", tag = "admin", security(("bearer" = []), ("password" = [])),
    params(("id" = String, Path, description = "Client id")),
    request_body(content = super::openapi::SecretRotation, content_type = "application/json"),
    responses((status = 200, description = "Rotated; `client_secret` is shown this once", body = super::openapi::ClientWithSecret),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 404, description = "Not found", body = super::openapi::Problem),
        (status = 422, description = "Invalid values", body = super::openapi::Problem))
)]
pub async fn rotate_secret(
    req: HttpRequest,
    admin: Admin,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: Rotation = if req.headers().contains_key(header::CONTENT_TYPE) {
        parse_body(
            &req,
            payload,
            state.settings.server.max_body_bytes,
            Accept::Json,
        )
        .await?
    } else {
        Rotation::default()
    };
    let (client, secret) = clients::rotate_secret(
        &state,
        &path,
        body.previous_secret_ttl.unwrap_or(0),
        &admin.0.claims.sub,
    )
    .await?;
    Ok(with_secret(
        actix_web::http::StatusCode::OK,
        &client,
        Some(&secret),
    ))
}

/// `DELETE /v1/admin/clients/{id}`: the client can no longer authenticate, and its tokens are
/// revoked.
#[utoipa::path(
    delete, path = "/v1/admin/clients/{id}", tag = "admin", security(("bearer" = []), ("password" = [])),
    params(("id" = String, Path, description = "Client id")),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 404, description = "Not found", body = super::openapi::Problem))
)]
pub async fn delete(
    admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    clients::delete(&state, &path, &admin.0.claims.sub).await?;
    Ok(HttpResponse::NoContent().finish())
}
