//! `POST /v1/login`: the service's own first-party login (form or JSON).

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use crate::domain::LoginPassword;
use crate::error::OAuthError;
use crate::extract::{Accept, parse_body};
use crate::services::login::{SignedIn, check_password};
use crate::state::AppState;
use crate::tokens::{allowed_scopes, grant_scope};

/// Unknown fields (`grant_type`, `client_secret`, …) are ignored, so OAuth2 password-flow
/// clients such as Swagger UI's Authorize dialog work unchanged.
#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: SecretString,
    scope: Option<String>,
    client_id: Option<String>,
    /// `cookie`: browser mode (the refresh token in an `HttpOnly` cookie); `body` (default).
    token_delivery: Option<String>,
}

/// Unknown user, wrong password and disabled user get the same answer, after the same work
/// ([`crate::services::login`]).
#[utoipa::path(
    post, path = "/v1/login", tag = "tokens",
    request_body(content = super::openapi::LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "OK", body = super::openapi::TokenResponse),
        (status = 400, description = "invalid_grant (bad credentials) or invalid_request", body = super::openapi::OAuthErrorDoc),
        (status = 503, description = "Unavailable; retry", body = super::openapi::OAuthErrorDoc),
        (status = 429, description = "Too many attempts: retry after `Retry-After` seconds", body = super::openapi::OAuthErrorDoc),
        (status = 403, description = "access_denied: browser mode without an allowed Origin or the X-Requested-With header", body = super::openapi::OAuthErrorDoc))
)]
pub async fn login(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let result = attempt(&req, payload, &state).await;
    state.metrics.login(match &result {
        Ok(_) => "success",
        Err(OAuthError::InvalidGrant(_)) => "invalid_credentials",
        Err(
            OAuthError::InvalidRequest(_)
            | OAuthError::InvalidScope(_)
            | OAuthError::UnsupportedMediaType(_)
            | OAuthError::PayloadTooLarge(_),
        ) => "invalid_request",
        Err(OAuthError::TemporarilyUnavailable(_)) => "unavailable",
        Err(OAuthError::SlowDown(_)) => "throttled",
        Err(OAuthError::CrossSite(_)) => "cross_site",
        Err(_) => "error",
    });
    result
}

async fn attempt(
    req: &HttpRequest,
    payload: web::Payload,
    state: &web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let req = req.clone();
    let body: LoginRequest = parse_body(
        &req,
        payload,
        state.settings.server.max_body_bytes,
        Accept::JsonOrForm,
    )
    .await?;
    let cookie = match body.token_delivery.as_deref() {
        None | Some("body") => false,
        Some("cookie") => true,
        Some(_) => {
            return Err(OAuthError::InvalidRequest(
                "token_delivery must be body or cookie".into(),
            ));
        }
    };
    if cookie {
        crate::browser::check_csrf(&req, &state.settings).map_err(OAuthError::CrossSite)?;
    }
    let now = shared::unix_now();
    let password = LoginPassword::parse(&body.password, &state.settings.accounts.password_policy)
        .map_err(|e| OAuthError::InvalidRequest(e.message))?;
    let client = state.throttle.client(&req);
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let SignedIn {
        user,
        stored_hash,
        needs_rehash,
    } = check_password(state, &body.username, password.secret(), &client, &peer).await?;
    if needs_rehash {
        let state = state.clone();
        let secret = password.secret().clone();
        let id = user.id;
        tokio::spawn(async move {
            match state.hasher.hash(&secret).await {
                Ok(new) => {
                    if let Err(e) = state.users.upgrade_hash(id, &stored_hash, &new).await {
                        tracing::warn!(error = %e, "could not upgrade a password hash");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not rehash a password"),
            }
        });
    }
    state
        .throttle
        .login_succeeded(&body.username, &client)
        .await?;
    let allowed = allowed_scopes(&state.settings.tokens.role_scopes, &user.roles);
    let scope =
        grant_scope(&allowed, body.scope.as_deref(), None).map_err(OAuthError::InvalidScope)?;
    let client_id = crate::services::sessions::client_id(state, body.client_id.as_deref());
    let pair = crate::services::sessions::open(
        state,
        &user,
        &client_id,
        scope,
        &super::user_agent(&req),
        now,
    )
    .await?;
    state
        .audit(
            Some(&user.id.to_string()),
            "login_succeeded",
            None,
            json!({"client_id": client_id, "peer": peer}),
        )
        .await;
    Ok(if cookie {
        pair.browser_response()
    } else {
        pair.response()
    })
}
