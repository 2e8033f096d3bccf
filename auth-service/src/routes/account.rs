//! The account page (`GET /v1/account`) and its forms: end one of the user's sessions, withdraw
//! a consent. Without a browser session it shows the sign-in page, which comes back here.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::pages::{self, Chrome};
use crate::services::account;
use crate::services::sessions::{self, BROWSER_CLIENT, BROWSER_COOKIE};
use crate::state::AppState;
use crate::storage::{BrowserSession, StoreError, User};

async fn signed_in(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<(BrowserSession, User)>, StoreError> {
    match pages::cookie(req, BROWSER_COOKIE) {
        Some(c) => sessions::browser_session(state, &c, shared::unix_now()).await,
        None => Ok(None),
    }
}

fn sign_in_page(req: &HttpRequest, state: &AppState) -> HttpResponse {
    let (csrf, set) = pages::csrf_token(req);
    let page = pages::SignInPage {
        page: Chrome::new(&state.settings.browser.brand, "Sign in"),
        app_name: None,
        error: None,
        csrf,
        request: String::new(),
        username: String::new(),
        registration_open: false,
    };
    let cookies: Vec<String> = set.into_iter().collect();
    pages::render(StatusCode::OK, &page, &page.page.nonce, &[], &cookies)
}

/// `GET /v1/account`: the user's sessions and consents.
pub async fn account(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (session, user) = match signed_in(&req, &state).await {
        Ok(Some(s)) => s,
        Ok(None) => return sign_in_page(&req, &state),
        Err(e) => return pages::unavailable(&state.settings.browser.brand, &e),
    };
    let overview = match account::overview(&state, &session.sub).await {
        Ok(o) => o,
        Err(e) => return pages::unavailable(&state.settings.browser.brand, &e),
    };
    let mut rows = Vec::new();
    for s in &overview.sessions {
        let app = if s.client_id == BROWSER_CLIENT {
            format!("Sign-in ({})", short_agent(&s.user_agent))
        } else {
            account::client_name(&state, &s.client_id)
                .await
                .unwrap_or_else(|| s.client_id.clone())
        };
        rows.push(pages::SessionRow {
            sid: s.sid.clone(),
            app,
            since: pages::when(s.created_at),
            last_used: pages::when(s.last_used_at),
            current: s.sid == session.sid,
        });
    }
    let mut consents = Vec::new();
    for c in &overview.consents {
        consents.push(pages::ConsentRow {
            client_id: c.client_id.clone(),
            app: account::client_name(&state, &c.client_id)
                .await
                .unwrap_or_else(|| c.client_id.clone()),
            scopes: c
                .scopes
                .iter()
                .map(|s| pages::describe_scope(s))
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    let (csrf, set) = pages::csrf_token(&req);
    let page = pages::AccountPage {
        page: Chrome::new(&state.settings.browser.brand, "Your account"),
        username: user.username,
        sessions: rows,
        consents,
        csrf,
    };
    let cookies: Vec<String> = set.into_iter().collect();
    pages::render(StatusCode::OK, &page, &page.page.nonce, &[], &cookies)
}

/// The browser's name from a `User-Agent`, roughly (for the session list).
fn short_agent(ua: &str) -> String {
    for name in ["Edg/", "Firefox/", "Chrome/", "Safari/"] {
        if let Some(i) = ua.find(name) {
            let end = ua[i..].find(' ').map_or(ua.len(), |e| i + e);
            return ua[i..end].replace('/', " ");
        }
    }
    if ua.is_empty() {
        "unknown browser".into()
    } else {
        ua.chars().take(40).collect()
    }
}

fn back_to_account(cookies: &[String]) -> HttpResponse {
    let mut res = HttpResponse::SeeOther();
    res.insert_header((header::LOCATION, "/v1/account"))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    for c in cookies {
        res.append_header((header::SET_COOKIE, c.as_str()));
    }
    res.finish()
}

/// An account form (CSRF checked) and the browser session it acts in; `Err`: the page to answer
/// with (the sign-in page when the browser has no session).
async fn checked_form<T: pages::HostedForm>(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
) -> Result<(T, BrowserSession), Box<HttpResponse>> {
    let form = pages::read_form(req, body, &state.settings.browser.brand)?;
    match signed_in(req, state).await {
        Ok(Some((session, _))) => Ok((form, session)),
        Ok(None) => Err(Box::new(sign_in_page(req, state))),
        Err(e) => Err(Box::new(pages::unavailable(
            &state.settings.browser.brand,
            &e,
        ))),
    }
}

#[derive(Deserialize)]
struct EndForm {
    csrf: Option<String>,
    sid: Option<String>,
}

/// `POST /v1/account/sessions/end`: ends one of the user's sessions (ending this browser's own
/// sign-in signs it out everywhere it signed in).
pub async fn end_session(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (form, session): (EndForm, _) = match checked_form(&req, &body, &state).await {
        Ok(f) => f,
        Err(page) => return *page,
    };
    let sid = form.sid.clone().unwrap_or_default();
    if let Err(e) = sessions::end_own(&state, &session.sub, &sid).await {
        return pages::unavailable(&state.settings.browser.brand, &e);
    }
    let cookies = if sid == session.sid {
        vec![sessions::clear_browser_cookie()]
    } else {
        vec![]
    };
    back_to_account(&cookies)
}

#[derive(Deserialize)]
struct WithdrawForm {
    csrf: Option<String>,
    client_id: Option<String>,
}

/// `POST /v1/account/consents/revoke`: withdraws a consent (the app's sessions end with it).
pub async fn withdraw_consent(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (form, session): (WithdrawForm, _) = match checked_form(&req, &body, &state).await {
        Ok(f) => f,
        Err(page) => return *page,
    };
    let client_id = form.client_id.clone().unwrap_or_default();
    if let Err(e) = account::withdraw_consent(&state, &session.sub, &client_id).await {
        return pages::unavailable(&state.settings.browser.brand, &e);
    }
    back_to_account(&[])
}

impl pages::HostedForm for EndForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

impl pages::HostedForm for WithdrawForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}
