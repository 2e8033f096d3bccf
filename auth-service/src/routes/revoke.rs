//! `POST /v1/revoke` (RFC 7009) and `POST /v1/logout`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::error::{ApiError, OAuthError};
use crate::extract::{Accept, Authenticated, bearer_token, parse_body};
use crate::state::AppState;
use crate::throttle::Action;

#[derive(Deserialize)]
struct RevokeRequest {
    token: Option<String>,
    token_type_hint: Option<String>,
    client_id: Option<String>,
}

/// Revokes an access token (its `jti`) or a refresh token (its whole session). Unknown, expired
/// or foreign-issuer tokens get 200 (RFC 7009 §2.2). Only the token's own user and client can
/// revoke it: with a bearer credential or a `client_id` that names someone else, the request is
/// refused.
#[utoipa::path(
    post, path = "/v1/revoke", tag = "tokens",
    request_body(content = super::openapi::RevokeForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Revoked (or unknown: RFC 7009)"), (status = 400, description = "Bad request", body = super::openapi::OAuthErrorDoc),
        (status = 429, description = "Too many attempts: retry after `Retry-After` seconds", body = super::openapi::OAuthErrorDoc))
)]
pub async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let client = state.throttle.client(&req);
    state.throttle.before_token(Action::Revoke, &client).await?;
    let result = attempt(&req, payload, &state).await;
    if matches!(result, Ok(false) | Err(OAuthError::InvalidClient(_))) {
        state.throttle.token_failed(Action::Revoke, &client).await?;
    }
    result.map(|_| ok())
}

/// Whether the token was one of ours (`false`: unknown, answered 200 all the same).
async fn attempt(
    req: &HttpRequest,
    payload: web::Payload,
    state: &web::Data<AppState>,
) -> Result<bool, OAuthError> {
    let caller = match bearer_token(req) {
        Ok(None) => None,
        Ok(Some(t)) => Some(
            crate::services::tokens::authenticate(state, &t)
                .await
                .map_err(|_| OAuthError::InvalidClient("the bearer credential is invalid"))?,
        ),
        Err(_) => {
            return Err(OAuthError::InvalidClient(
                "the bearer credential is invalid",
            ));
        }
    };
    let body: RevokeRequest = parse_body(
        req,
        payload,
        state.settings.server.max_body_bytes,
        Accept::JsonOrForm,
    )
    .await?;
    let token = body
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest("token is required".into()))?;
    crate::services::sessions::revoke_token(
        state,
        token,
        body.token_type_hint.as_deref(),
        caller.as_ref().map(|c| c.sub.as_str()),
        body.client_id.as_deref(),
    )
    .await
}

fn ok() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .finish()
}

#[derive(Deserialize)]
struct LogoutQuery {
    everywhere: Option<bool>,
}

/// Ends the caller's session (its refresh token stops working and every access token of the
/// session is revoked); with `?everywhere=true`, every session of the user.
#[utoipa::path(
    post, path = "/v1/logout", tag = "tokens", security(("bearer" = []), ("password" = [])),
    params(("everywhere" = Option<bool>, Query, description = "End every session of the user")),
    responses((status = 204, description = "Logged out (a refresh-token cookie is cleared)"),
        (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem),
        (status = 403, description = "A browser request without an allowed Origin or the X-Requested-With header", body = super::openapi::Problem))
)]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: LogoutQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let cookie = crate::browser::refresh_cookie(&req);
    let mut res = HttpResponse::NoContent();
    if cookie.is_some() {
        res.insert_header((
            actix_web::http::header::SET_COOKIE,
            crate::browser::clear_cookie(),
        ));
    }
    // The bearer token when the request has one (it must then be valid); else a browser's
    // refresh-token cookie, under the cross-site checks.
    let (sub, sid) = match cookie {
        Some(cookie)
            if !req
                .headers()
                .contains_key(actix_web::http::header::AUTHORIZATION) =>
        {
            crate::browser::check_csrf(&req, &state.settings).map_err(|d| ApiError::Refused {
                code: "cross_site",
                detail: d.to_owned(),
            })?;
            match crate::services::sessions::refresh_token_owner(&state, &cookie).await? {
                Some((sub, sid, _)) => (sub, sid),
                // Nothing left to end: the cookie is removed all the same.
                None => return Ok(res.finish()),
            }
        }
        _ => {
            let auth = <Authenticated as actix_web::FromRequest>::from_request(
                &req,
                &mut actix_web::dev::Payload::None,
            )
            .await?;
            (auth.claims.sub, auth.sid)
        }
    };
    if q.everywhere.unwrap_or(false) {
        let user_id = sub.parse().map_err(|_| {
            ApiError::Unauthorized(crate::error::BearerError::InvalidToken(
                "token subject is not a user id",
            ))
        })?;
        crate::services::sessions::logout_everywhere(&state, user_id).await?;
    } else {
        crate::services::sessions::logout(&state, &sub, &sid).await?;
    }
    Ok(res.finish())
}
