//! `POST /v1/token`: `grant_type=authorization_code` (RFC 6749 §4.1.3 with PKCE) for apps that
//! sign users in, `grant_type=refresh_token` (RFC 6749 §6) with rotation and reuse detection,
//! and `grant_type=client_credentials` (RFC 6749 §4.4) for registered clients.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use crate::error::OAuthError;
use crate::extract::{Accept, parse_body};
use crate::state::AppState;
use crate::throttle::Action;

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    audience: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
}

/// `refresh_token`: rotates the refresh token: the presented one is spent and a new pair issued,
/// re-reading the user's roles and disabled flag; a spent token presented again revokes the
/// whole session. `client_credentials`: a registered client gets an access token for itself.
#[utoipa::path(
    post, path = "/v1/token", tag = "tokens", security((), ("basic" = [])),
    request_body(content = super::openapi::TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "OK", body = super::openapi::TokenResponse), (status = 400, description = "Bad request", body = super::openapi::OAuthErrorDoc),
        (status = 401, description = "invalid_client: client authentication failed (`WWW-Authenticate: Basic`)", body = super::openapi::OAuthErrorDoc),
        (status = 503, description = "Unavailable; retry", body = super::openapi::OAuthErrorDoc),
        (status = 429, description = "Too many attempts: retry after `Retry-After` seconds", body = super::openapi::OAuthErrorDoc),
        (status = 403, description = "access_denied: the cookie without an allowed Origin or the X-Requested-With header", body = super::openapi::OAuthErrorDoc))
)]
pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let client = state.throttle.client(&req);
    let body: TokenRequest = parse_body(
        &req,
        payload,
        state.settings.server.max_body_bytes,
        Accept::JsonOrForm,
    )
    .await?;
    match body.grant_type.as_deref() {
        None => Err(OAuthError::InvalidRequest("grant_type is required".into())),
        Some("refresh_token") => {
            state
                .throttle
                .before_token(Action::Refresh, &client)
                .await?;
            // Browser mode: the refresh token comes from the cookie (and only when the body has
            // none).
            let mut browser = false;
            let result = refresh(&req, body, &state, &mut browser).await;
            if matches!(
                result,
                Err(OAuthError::InvalidGrant(_) | OAuthError::BadClientAuth(_))
            ) {
                state
                    .throttle
                    .token_failed(Action::Refresh, &client)
                    .await?;
            }
            match result {
                // A cookie that no longer works is removed, so the page stops sending it.
                Err(e @ OAuthError::InvalidGrant(_)) if browser => {
                    let mut res = actix_web::ResponseError::error_response(&e);
                    if let Ok(v) = HeaderValue::from_str(&crate::browser::clear_cookie()) {
                        res.headers_mut().append(header::SET_COOKIE, v);
                    }
                    Ok(res)
                }
                other => other,
            }
        }
        Some("authorization_code") => {
            client_auth_throttled(&state, &client, authorization_code(&req, body, &state)).await
        }
        Some("client_credentials") => {
            client_auth_throttled(&state, &client, client_credentials(&req, body, &state)).await
        }
        Some(_) => Err(OAuthError::UnsupportedGrantType),
    }
}

/// A grant that authenticates a client, under the brute-force defence: held back while the
/// caller has failed too often, and a failed client authentication counted.
async fn client_auth_throttled(
    state: &AppState,
    caller: &str,
    grant: impl std::future::Future<Output = Result<HttpResponse, OAuthError>>,
) -> Result<HttpResponse, OAuthError> {
    state
        .throttle
        .before_token(Action::ClientAuth, caller)
        .await?;
    let result = grant.await;
    if matches!(result, Err(OAuthError::BadClientAuth(_))) {
        state
            .throttle
            .token_failed(Action::ClientAuth, caller)
            .await?;
    }
    result
}

/// Client credentials: authenticates the client and issues its token
/// ([`crate::services::clients::issue_token`]).
async fn client_credentials(
    req: &HttpRequest,
    body: TokenRequest,
    state: &web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let creds =
        super::presented_client(req, body.client_id.as_deref(), body.client_secret.as_ref())?
            .ok_or(OAuthError::BadClientAuth(super::CLIENT_AUTH_REQUIRED))?;
    let client = crate::services::clients::authenticate(state, &creds).await?;
    let issued = crate::services::clients::issue_token(
        state,
        &client,
        body.scope.as_deref(),
        body.audience.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(ClientTokenResponse {
            access_token: &issued.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            scope: &issued.scope,
        }))
}

/// The authorization code grant (RFC 6749 §4.1.3, PKCE RFC 7636 §4.5): the client (a
/// confidential one authenticated, a public one named) exchanges its code
/// ([`crate::services::authorize::exchange`]).
async fn authorization_code(
    req: &HttpRequest,
    body: TokenRequest,
    state: &web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let creds =
        super::presented_client(req, body.client_id.as_deref(), body.client_secret.as_ref())?;
    let client =
        crate::services::authorize::exchanging_client(state, creds, body.client_id.as_deref())
            .await?;
    if !client.profile.allows("authorization_code") {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not use the authorization_code grant",
        ));
    }
    let code = body
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest("code is required".into()))?;
    let tokens = crate::services::authorize::exchange(
        state,
        &client,
        code,
        body.redirect_uri.as_deref(),
        body.code_verifier.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(tokens))
}

/// RFC 6749 §5.1 for client credentials: no refresh token (§4.4.3).
#[derive(serde::Serialize)]
struct ClientTokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    /// Always: what was granted, `""` for nothing (RFC 6749 §5.1).
    scope: &'a str,
}

async fn refresh(
    req: &HttpRequest,
    body: TokenRequest,
    state: &web::Data<AppState>,
    browser: &mut bool,
) -> Result<HttpResponse, OAuthError> {
    let cookie;
    let token = match body.refresh_token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => {
            cookie = crate::browser::refresh_cookie(req)
                .ok_or_else(|| OAuthError::InvalidRequest("refresh_token is required".into()))?;
            crate::browser::check_csrf(req, &state.settings).map_err(OAuthError::CrossSite)?;
            *browser = true;
            cookie.as_str()
        }
    };
    let creds =
        super::presented_client(req, body.client_id.as_deref(), body.client_secret.as_ref())?;
    let pair = crate::services::sessions::refresh(
        state,
        token,
        body.scope.as_deref(),
        body.client_id.as_deref(),
        creds,
    )
    .await?;
    Ok(if *browser {
        pair.browser_response()
    } else {
        pair.response()
    })
}
