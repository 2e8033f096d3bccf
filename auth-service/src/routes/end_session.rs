//! `GET` and `POST /v1/end-session` (OpenID Connect RP-Initiated Logout 1.0): ends the
//! browser's sign-in session and every session issued through it (their tokens revoked, their
//! apps told by back-channel logout), clears the cookie, then returns to the app's registered
//! `post_logout_redirect_uri` with its `state`, or shows the signed-out page. Without an
//! `id_token_hint` naming this browser's session, the user is asked first (a link alone must not
//! sign anyone out).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::pages::{self, Chrome};
use crate::services::authorize::AuthorizationParams;
use crate::services::logout::{self, Hint};
use crate::services::sessions::{self, BROWSER_COOKIE};
use crate::state::AppState;
use crate::storage::RegisteredClient;

/// `GET /v1/end-session`.
#[utoipa::path(
    get, path = "/v1/end-session", tag = "openid",
    params(
        ("id_token_hint" = Option<String>, Query, description = "An ID token this service issued to the app (it may have expired)", pattern = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"),
        ("client_id" = Option<String>, Query, description = "The app, when no id_token_hint is sent"),
        ("post_logout_redirect_uri" = Option<String>, Query, description = "Exactly one of the app's registered post-logout redirect URIs"),
        ("state" = Option<String>, Query, description = "Returned untouched"),
    ),
    responses((status = 200, description = "The signed-out page, or the confirmation page", content_type = "text/html"),
        (status = 303, description = "Signed out: back to post_logout_redirect_uri with state"),
        (status = 400, description = "An error page: an invalid hint, or an unregistered post_logout_redirect_uri (never redirected to)", content_type = "text/html"))
)]
pub async fn end_session_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match AuthorizationParams::parse(req.query_string()) {
        Ok(params) => end_session(&req, &state, params, false).await,
        Err(e) => pages::error_page(&state.settings.browser.brand, StatusCode::BAD_REQUEST, &e),
    }
}

/// `POST /v1/end-session`: the same parameters as a form, or the confirmation form.
#[utoipa::path(
    post, path = "/v1/end-session", tag = "openid",
    request_body(content = super::openapi::Object, content_type = "application/x-www-form-urlencoded", description = "The parameters of `GET /v1/end-session`, with the same constraints; or the confirmation page's form (`confirm=yes`, `csrf`, and the original request in `request`)"),
    responses((status = 200, description = "The signed-out page, or the confirmation page", content_type = "text/html"),
        (status = 303, description = "Signed out: back to post_logout_redirect_uri with state"),
        (status = 400, description = "An error page (never redirected)", content_type = "text/html"),
        (status = 403, description = "The confirmation form without its CSRF token", content_type = "text/html"))
)]
pub async fn end_session_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t,
        Err(_) => {
            return pages::error_page(
                &state.settings.browser.brand,
                StatusCode::BAD_REQUEST,
                "The form is not valid UTF-8.",
            );
        }
    };
    let params = match AuthorizationParams::parse(text) {
        Ok(p) => p,
        Err(e) => {
            return pages::error_page(&state.settings.browser.brand, StatusCode::BAD_REQUEST, &e);
        }
    };
    // The confirmation form carries the original request, a CSRF token and `confirm`.
    if params.get("confirm") == Some("yes") {
        if !pages::csrf_ok(&req, params.get("csrf")) {
            return pages::error_page(
                &state.settings.browser.brand,
                StatusCode::FORBIDDEN,
                "This form has expired or was not sent from this site. Go back, reload the page and try again.",
            );
        }
        let inner = match AuthorizationParams::parse(params.get("request").unwrap_or_default()) {
            Ok(p) => p,
            Err(e) => {
                return pages::error_page(
                    &state.settings.browser.brand,
                    StatusCode::BAD_REQUEST,
                    &e,
                );
            }
        };
        return end_session(&req, &state, inner, true).await;
    }
    end_session(&req, &state, params, false).await
}

async fn end_session(
    req: &HttpRequest,
    state: &AppState,
    params: AuthorizationParams,
    confirmed: bool,
) -> HttpResponse {
    // Everything about where to return is checked before anything is ended.
    let hint: Option<Hint> = match params.get("id_token_hint") {
        None => None,
        Some(t) => match logout::verify_hint(state, t) {
            Some(h) => Some(h),
            None => {
                return pages::error_page(
                    &state.settings.browser.brand,
                    StatusCode::BAD_REQUEST,
                    "The sign-out request carries an ID token this service did not issue.",
                );
            }
        },
    };
    let client_id = match (
        hint.as_ref().map(|h| h.client_id.as_str()),
        params.get("client_id"),
    ) {
        (Some(a), Some(b)) if a != b => {
            return pages::error_page(
                &state.settings.browser.brand,
                StatusCode::BAD_REQUEST,
                "The sign-out request names two different applications.",
            );
        }
        (Some(a), _) => Some(a.to_owned()),
        (None, b) => b.map(str::to_owned),
    };
    let client: Option<RegisteredClient> = match &client_id {
        Some(id) if id.len() <= crate::services::clients::MAX_ID_LEN => {
            match state.clients.find_client(id).await {
                Ok(found) => found.map(|(c, _)| c),
                Err(e) => return pages::unavailable(&state.settings.browser.brand, &e),
            }
        }
        _ => None,
    };
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => match &client {
            Some(c)
                if c.profile
                    .post_logout_redirect_uris
                    .iter()
                    .any(|r| crate::domain::redirect_uri::matches(r, uri)) =>
            {
                Some(uri.to_owned())
            }
            _ => {
                return pages::error_page(
                    &state.settings.browser.brand,
                    StatusCode::BAD_REQUEST,
                    "The address the application asked to return to after signing out is not one it registered.",
                );
            }
        },
    };
    let now = shared::unix_now();
    let current = match pages::cookie(req, BROWSER_COOKIE) {
        Some(c) => match sessions::browser_session(state, &c, now).await {
            Ok(s) => s,
            Err(e) => return pages::unavailable(&state.settings.browser.brand, &e),
        },
        None => None,
    };
    let mut cookies = vec![sessions::clear_browser_cookie()];
    if let Some((session, user)) = &current {
        let from_its_app = hint.as_ref().is_some_and(|h| {
            h.sub == session.sub && h.sid.as_deref() == Some(session.sid.as_str())
        });
        if !from_its_app && !confirmed {
            let (csrf, set) = pages::csrf_token(req);
            let page = pages::ConfirmSignOutPage {
                page: Chrome::new(&state.settings.browser.brand, "Sign out?"),
                username: user.username.clone(),
                app_name: client.as_ref().map(|c| {
                    if c.name.is_empty() {
                        c.client_id.clone()
                    } else {
                        c.name.clone()
                    }
                }),
                csrf,
                request: params.encode(),
            };
            let targets: Vec<String> = redirect
                .as_deref()
                .and_then(pages::form_target)
                .into_iter()
                .collect();
            let set: Vec<String> = set.into_iter().collect();
            return pages::render(StatusCode::OK, &page, &page.page.nonce, &targets, &set);
        }
        if let Err(e) = sessions::end_browser(state, session, now).await {
            return pages::unavailable(&state.settings.browser.brand, &e);
        }
        state.audit_writer.event(
            Some(&session.sub),
            "signed_out",
            None,
            json!({"sid": session.sid, "client_id": client_id}),
        );
    } else if hint.is_some() && !confirmed {
        // No session in this browser: the hint's session may live elsewhere (a cookie lost);
        // it is ended too, since its own app asks.
        if let Some(Hint {
            sub,
            sid: Some(sid),
            ..
        }) = &hint
        {
            let _ = sessions::end_own(state, sub, sid).await;
        }
    }
    match redirect {
        Some(uri) => {
            let mut location = uri;
            if let Some(s) = params.get("state") {
                let q = serde_urlencoded::to_string([("state", s)]).unwrap_or_default();
                location.push(if location.contains('?') { '&' } else { '?' });
                location.push_str(&q);
            }
            let mut res = HttpResponse::SeeOther();
            res.insert_header((header::LOCATION, location))
                .insert_header((header::CACHE_CONTROL, "no-store"));
            for c in &cookies {
                res.append_header((header::SET_COOKIE, c.as_str()));
            }
            res.finish()
        }
        None => {
            let page = pages::MessagePage {
                page: Chrome::new(&state.settings.browser.brand, "Signed out"),
                detail: "You are signed out.".into(),
                link: None,
            };
            let nonce = page.page.nonce.clone();
            pages::render(
                StatusCode::OK,
                &page,
                &nonce,
                &[],
                &std::mem::take(&mut cookies),
            )
        }
    }
}
