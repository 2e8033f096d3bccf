//! `POST /v1/login`: the service's own first-party login (form or JSON).

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::LoginPassword;
use crate::error::OAuthError;
use crate::extract::{Accept, parse_body};
use crate::services::login::{SignIn, sign_in};
use crate::state::AppState;

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
    if !state.settings.browser.password_grant {
        return Err(OAuthError::PasswordGrantOff);
    }
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
    let password = LoginPassword::parse(&body.password, &state.settings.accounts.password_policy)
        .map_err(|e| OAuthError::InvalidRequest(e.message))?;
    let client = state.throttle.client(&req);
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let attempt = SignIn {
        username: &body.username,
        password: password.secret(),
        client: &client,
        peer: &peer,
        scope: body.scope.as_deref(),
        client_id: body.client_id.as_deref(),
        user_agent: &super::user_agent(&req),
    };
    let pair = sign_in(state, attempt).await?;
    Ok(if cookie {
        pair.browser_response()
    } else {
        pair.response()
    })
}
