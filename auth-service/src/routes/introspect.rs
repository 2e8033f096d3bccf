//! `POST /v1/introspect` (RFC 7662): for services that cannot verify tokens locally. The caller
//! authenticates as a registered client; the answer says whether an access token is active
//! (signed by us, unexpired, not revoked) and, if so, its claims.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use crate::error::OAuthError;
use crate::extract::{Accept, parse_body};
use crate::state::AppState;
use crate::throttle::Action;

#[derive(Deserialize)]
struct IntrospectRequest {
    token: Option<String>,
    #[serde(rename = "token_type_hint")]
    _token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
}

/// Answers `{"active": true, …claims}` for an active access token, `{"active": false}` for
/// anything else: expired, revoked, not ours, malformed, or a refresh token (refresh tokens are
/// the auth-service's own business). The caller authenticates as a registered client (HTTP Basic,
/// or `client_id` and `client_secret` in the body).
#[utoipa::path(
    post, path = "/v1/introspect", tag = "tokens", security(("basic" = [])),
    request_body(content = super::openapi::IntrospectForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "OK (`active` false for any token that is not an active access token)", body = super::openapi::Introspection),
        (status = 400, description = "Bad request", body = super::openapi::OAuthErrorDoc),
        (status = 401, description = "invalid_client: client authentication failed (`WWW-Authenticate: Basic`)", body = super::openapi::OAuthErrorDoc),
        (status = 429, description = "Too many attempts: retry after `Retry-After` seconds", body = super::openapi::OAuthErrorDoc),
        (status = 503, description = "Unavailable; retry", body = super::openapi::OAuthErrorDoc))
)]
pub async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let caller = state.throttle.client(&req);
    state
        .throttle
        .before_token(Action::ClientAuth, &caller)
        .await?;
    let result = answer(&req, payload, &state).await;
    if matches!(result, Err(OAuthError::BadClientAuth(_))) {
        state
            .throttle
            .token_failed(Action::ClientAuth, &caller)
            .await?;
    }
    let body = result?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body))
}

async fn answer(
    req: &HttpRequest,
    payload: web::Payload,
    state: &web::Data<AppState>,
) -> Result<serde_json::Value, OAuthError> {
    let body: IntrospectRequest = parse_body(
        req,
        payload,
        state.settings.server.max_body_bytes,
        Accept::JsonOrForm,
    )
    .await?;
    let creds =
        super::presented_client(req, body.client_id.as_deref(), body.client_secret.as_ref())?
            .ok_or(OAuthError::BadClientAuth(super::CLIENT_AUTH_REQUIRED))?;
    crate::services::clients::authenticate(state, &creds).await?;
    let token = body
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest("token is required".into()))?;
    let inactive = json!({ "active": false });
    let Ok(claims) = crate::services::tokens::verify_access(state, token).await else {
        return Ok(inactive);
    };
    if state.revocations.is_revoked(&claims).await? {
        return Ok(inactive);
    }
    let mut out = serde_json::to_value(&claims).unwrap_or_default();
    out["active"] = json!(true);
    out["token_type"] = json!("Bearer");
    out["principal"] = json!(claims.principal().as_str());
    Ok(out)
}
