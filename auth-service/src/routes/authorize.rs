//! Browser sign-in: the authorization endpoint (`GET` and `POST /v1/authorize`) and the hosted
//! pages' forms (`POST /v1/signin`, `GET`/`POST /v1/signup`, `POST /v1/consent`). Each parses,
//! calls the services (`authorize`, `login`, `sessions`, `users`) and renders a page
//! ([`crate::pages`]) or answers the client at its redirect URI.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use crate::configuration::RegistrationMode;
use crate::domain::{Email, LoginPassword, Username};
use crate::error::OAuthError;
use crate::pages::{self, Chrome};
use crate::services::authorize::{
    self, AMR_PASSWORD, AuthorizationParams, AuthorizationResponse, Next, ResponseMode,
    ValidRequest,
};
use crate::services::sessions::{self, BROWSER_COOKIE};
use crate::services::users::{self, NewAccount, UserError};
use crate::state::AppState;
use crate::storage::{BrowserSession, StoreError, User};

/// `GET /v1/authorize`: an authorization request in the query.
#[utoipa::path(
    get, path = "/v1/authorize", tag = "openid",
    params(
        ("response_type" = String, Query, description = "`code`", pattern = "^code$"),
        ("client_id" = String, Query, description = "A registered client allowed the authorization_code grant", min_length = 1),
        ("redirect_uri" = String, Query, description = "Exactly one of the client's redirect URIs (loopback IP literals may vary the port)", min_length = 1),
        ("scope" = Option<String>, Query, description = "Space-separated scope tokens (RFC 6749 §3.3); `openid` for an ID token, `offline_access` for a refresh token; values the client may not have are left out", pattern = r"^[\x21\x23-\x5b\x5d-\x7e ]*$"),
        ("state" = Option<String>, Query, description = "Returned untouched (at most 2048 bytes)", max_length = 2048),
        ("nonce" = Option<String>, Query, description = "Put in the ID token (at most 512 bytes)", max_length = 512),
        ("code_challenge" = String, Query, description = "PKCE: BASE64URL(SHA-256(code_verifier)), 43 characters, required for every client", pattern = "^[A-Za-z0-9_-]{43}$"),
        ("code_challenge_method" = String, Query, description = "`S256` (`plain` is refused)", pattern = "^S256$"),
        ("prompt" = Option<String>, Query, description = "Space-separated: `none` (alone), `login`, `consent`, `create`, `select_account`", pattern = "^ *((none|login|consent|create|select_account) *)*$"),
        ("max_age" = Option<i64>, Query, description = "Seconds since the last sign-in after which the user signs in again", minimum = 0),
        ("login_hint" = Option<String>, Query, description = "Prefills the username"),
        ("response_mode" = Option<String>, Query, description = "`query` (default) or `form_post`", pattern = "^(query|form_post)$"),
    ),
    responses((status = 200, description = "A hosted page (sign in, sign up, consent) or, with form_post, the self-submitting response form", content_type = "text/html"),
        (status = 303, description = "The authorization response at the redirect URI: `code`, `state`, `iss`, or `error`, `error_description`, `state`, `iss`"),
        (status = 400, description = "An error page: unknown client, or a redirect URI the client did not register (never redirected to)", content_type = "text/html"))
)]
pub async fn authorize_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match AuthorizationParams::parse(req.query_string()) {
        Ok(params) => proceed(&req, &state, params, None).await,
        Err(e) => pages::error_page(&state.settings.browser.brand, StatusCode::BAD_REQUEST, &e),
    }
}

/// `POST /v1/authorize`: an authorization request as a form (OpenID Connect Core §3.1.2.1).
#[utoipa::path(
    post, path = "/v1/authorize", tag = "openid",
    request_body(content = super::openapi::Object, content_type = "application/x-www-form-urlencoded", description = "The parameters of `GET /v1/authorize`, with the same constraints"),
    responses((status = 200, description = "A hosted page or the form_post response", content_type = "text/html"),
        (status = 303, description = "The authorization response at the redirect URI"),
        (status = 400, description = "An error page (never redirected)", content_type = "text/html"))
)]
pub async fn authorize_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let params = pages::form_text(&req, &body).and_then(AuthorizationParams::parse);
    match params {
        Ok(params) => proceed(&req, &state, params, None).await,
        Err(e) => pages::error_page(&state.settings.browser.brand, StatusCode::BAD_REQUEST, &e),
    }
}

/// Answers the client: a `303` to its redirect URI with the parameters in the query, or the
/// self-submitting form of `response_mode=form_post`.
fn respond(state: &AppState, r: &AuthorizationResponse, cookies: &[String]) -> HttpResponse {
    match r.mode {
        ResponseMode::Query => {
            let mut res = HttpResponse::SeeOther();
            res.insert_header((header::LOCATION, r.location()))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((header::REFERRER_POLICY, "no-referrer"));
            for c in cookies {
                res.append_header((header::SET_COOKIE, c.as_str()));
            }
            res.finish()
        }
        ResponseMode::FormPost => {
            let page = pages::FormPostPage {
                nonce: Chrome::new(&state.settings.browser.brand, "").nonce,
                action: r.redirect_uri.clone(),
                params: r.params.clone(),
            };
            let targets: Vec<String> = pages::form_target(&r.redirect_uri).into_iter().collect();
            pages::render(StatusCode::OK, &page, &page.nonce, &targets, cookies)
        }
    }
}

/// The browser's sign-in session and its user, from the cookie.
async fn current_session(
    req: &HttpRequest,
    state: &AppState,
    now: i64,
) -> Result<Option<(BrowserSession, User)>, StoreError> {
    match pages::cookie(req, BROWSER_COOKIE) {
        Some(c) => sessions::browser_session(state, &c, now).await,
        None => Ok(None),
    }
}

/// Checks a request and does what it needs next. `fresh`: the user has just signed in (the
/// session, and the cookie to set).
async fn proceed(
    req: &HttpRequest,
    state: &AppState,
    params: AuthorizationParams,
    fresh: Option<(BrowserSession, User, String)>,
) -> HttpResponse {
    let valid = match authorize::check(state, params).await {
        Ok(v) => v,
        Err(Ok(page)) => {
            return pages::error_page(
                &state.settings.browser.brand,
                StatusCode::BAD_REQUEST,
                &page.detail,
            );
        }
        Err(Err(response)) => return respond(state, &response, &[]),
    };
    let now = shared::unix_now();
    let just_signed_in = fresh.is_some();
    let (session, cookies) = match fresh {
        Some((s, u, cookie)) => (Some((s, u)), vec![sessions::browser_cookie(&cookie)]),
        None => match current_session(req, state, now).await {
            Ok(s) => (s, vec![]),
            Err(e) => return pages::unavailable(&state.settings.browser.brand, &e),
        },
    };
    let next = authorize::next(
        state,
        &valid,
        session.as_ref().map(|(s, _)| s),
        just_signed_in,
        now,
    )
    .await;
    match next {
        Ok(Next::Respond(r)) => respond(state, &r, &cookies),
        Ok(Next::SignIn) => {
            let open = state.settings.accounts.registration != RegistrationMode::Closed;
            if valid.prompt.create && open {
                signup_page(
                    req,
                    state,
                    &valid,
                    StatusCode::OK,
                    SignUpForm::default(),
                    Fields::default(),
                )
            } else {
                let hint = valid.login_hint.clone().unwrap_or_default();
                signin_page(req, state, Some(&valid), StatusCode::OK, None, hint)
            }
        }
        Ok(Next::Consent) => match session {
            Some((_, user)) => consent_page(req, state, &valid, &user, &cookies),
            None => signin_page(
                req,
                state,
                Some(&valid),
                StatusCode::OK,
                None,
                String::new(),
            ),
        },
        Err(e) => pages::unavailable(&state.settings.browser.brand, &e),
    }
}

fn app_name(valid: &ValidRequest) -> String {
    if valid.client.name.is_empty() {
        valid.client.client_id.clone()
    } else {
        valid.client.name.clone()
    }
}

/// Where this page's forms may lead: this origin, and the client's redirect URI.
fn targets(valid: Option<&ValidRequest>) -> Vec<String> {
    valid
        .and_then(|v| pages::form_target(&v.redirect_uri))
        .into_iter()
        .collect()
}

fn signin_page(
    req: &HttpRequest,
    state: &AppState,
    valid: Option<&ValidRequest>,
    status: StatusCode,
    error: Option<String>,
    username: String,
) -> HttpResponse {
    let (csrf, set) = pages::csrf_token(req);
    let page = pages::SignInPage {
        page: Chrome::new(&state.settings.browser.brand, "Sign in"),
        app_name: valid.map(app_name),
        error,
        csrf,
        request: valid.map(|v| v.params.encode()).unwrap_or_default(),
        username,
        registration_open: state.settings.accounts.registration != RegistrationMode::Closed,
    };
    let cookies: Vec<String> = set.into_iter().collect();
    pages::render(status, &page, &page.page.nonce, &targets(valid), &cookies)
}

/// A sign-up form as sent.
#[derive(Debug, Default, Deserialize)]
struct SignUpForm {
    csrf: Option<String>,
    request: Option<String>,
    username: Option<String>,
    email: Option<String>,
    password: Option<SecretString>,
}

/// Errors tied to the sign-up form's fields.
#[derive(Debug, Default)]
struct Fields {
    form: Option<String>,
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

fn signup_page(
    req: &HttpRequest,
    state: &AppState,
    valid: &ValidRequest,
    status: StatusCode,
    form: SignUpForm,
    errors: Fields,
) -> HttpResponse {
    signup_page_for(req, state, Some(valid), status, form, errors)
}

fn signup_page_for(
    req: &HttpRequest,
    state: &AppState,
    valid: Option<&ValidRequest>,
    status: StatusCode,
    form: SignUpForm,
    errors: Fields,
) -> HttpResponse {
    let (csrf, set) = pages::csrf_token(req);
    let page = pages::SignUpPage {
        page: Chrome::new(&state.settings.browser.brand, "Create an account"),
        app_name: valid.map(app_name),
        error: errors.form,
        csrf,
        request: valid.map(|v| v.params.encode()).unwrap_or_default(),
        username: form.username.unwrap_or_default(),
        email: form.email.unwrap_or_default(),
        username_error: errors.username,
        email_error: errors.email,
        password_error: errors.password,
        min_password: state.settings.accounts.password_policy.min_chars,
    };
    let cookies: Vec<String> = set.into_iter().collect();
    pages::render(status, &page, &page.page.nonce, &targets(valid), &cookies)
}

fn consent_page(
    req: &HttpRequest,
    state: &AppState,
    valid: &ValidRequest,
    user: &User,
    cookies: &[String],
) -> HttpResponse {
    let (csrf, set) = pages::csrf_token(req);
    let page = pages::ConsentPage {
        page: Chrome::new(&state.settings.browser.brand, "Allow access?"),
        app_name: app_name(valid),
        scopes: valid
            .scopes
            .iter()
            .map(|s| pages::describe_scope(s))
            .collect(),
        username: user.username.clone(),
        csrf,
        request: valid.params.encode(),
    };
    let mut all: Vec<String> = cookies.to_vec();
    all.extend(set);
    pages::render(
        StatusCode::OK,
        &page,
        &page.page.nonce,
        &targets(Some(valid)),
        &all,
    )
}

/// The request a form carries: `None` when it carries none (a sign-in for the account page).
async fn carried_request(
    state: &AppState,
    raw: Option<&str>,
) -> Result<Option<ValidRequest>, HttpResponse> {
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        return Ok(None);
    }
    let params = AuthorizationParams::parse(raw).map_err(|e| {
        pages::error_page(&state.settings.browser.brand, StatusCode::BAD_REQUEST, &e)
    })?;
    match authorize::check(state, params).await {
        Ok(v) => Ok(Some(v)),
        Err(Ok(page)) => Err(pages::error_page(
            &state.settings.browser.brand,
            StatusCode::BAD_REQUEST,
            &page.detail,
        )),
        Err(Err(response)) => Err(respond(state, &response, &[])),
    }
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    csrf: Option<String>,
    request: Option<String>,
    username: Option<String>,
    password: Option<SecretString>,
}

/// `POST /v1/signin`: the sign-in form. The same password check, throttling and single answer
/// to every failure as `POST /v1/login`.
pub async fn sign_in(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let form: SignInForm = match pages::read_form(&req, &body, &state.settings.browser.brand) {
        Ok(f) => f,
        Err(page) => return *page,
    };
    let valid = match carried_request(&state, form.request.as_deref()).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let username = form.username.unwrap_or_default();
    let retry = |status, message: &str| {
        signin_page(
            &req,
            &state,
            valid.as_ref(),
            status,
            Some(message.to_owned()),
            username.clone(),
        )
    };
    let password = form.password.unwrap_or_else(|| SecretString::from(""));
    let Ok(password) = LoginPassword::parse(&password, &state.settings.accounts.password_policy)
    else {
        return retry(StatusCode::UNAUTHORIZED, "Invalid username or password.");
    };
    if username.is_empty() {
        return retry(StatusCode::UNAUTHORIZED, "Invalid username or password.");
    }
    let client = state.throttle.client(&req);
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let user = match crate::services::login::authenticate(
        &state,
        &username,
        password.secret(),
        &client,
        &peer,
    )
    .await
    {
        Ok(u) => u,
        Err(OAuthError::InvalidGrant(_)) => {
            state.metrics.login("invalid_credentials");
            return retry(StatusCode::UNAUTHORIZED, "Invalid username or password.");
        }
        Err(OAuthError::SlowDown(t)) => {
            state.metrics.login("throttled");
            let wait = t.retry_after_secs();
            let mut res = retry(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many attempts. Wait {wait} seconds, then try again."),
            );
            if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return res;
        }
        Err(e) => {
            state.metrics.login("unavailable");
            tracing::warn!(error = %e, "hosted sign-in failed");
            return pages::error_page(
                &state.settings.browser.brand,
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is briefly unavailable. Try again in a few seconds.",
            );
        }
    };
    state.metrics.login("success");
    signed_in(&req, &state, valid, user, "login_succeeded").await
}

/// After a successful sign-in or sign-up: the browser session opened (or renewed) with a new
/// cookie, then the authorization request goes on (or, without one, the account page).
async fn signed_in(
    req: &HttpRequest,
    state: &AppState,
    valid: Option<ValidRequest>,
    user: User,
    event: &str,
) -> HttpResponse {
    let now = shared::unix_now();
    let current = match current_session(req, state, now).await {
        Ok(c) => c.map(|(s, _)| s),
        Err(e) => return pages::unavailable(&state.settings.browser.brand, &e),
    };
    let ua = super::user_agent(req);
    let (session, cookie) =
        match sessions::sign_in_browser(state, &user, AMR_PASSWORD, &ua, current.as_ref(), now)
            .await
        {
            Ok(s) => s,
            Err(e) => return pages::unavailable(&state.settings.browser.brand, &e),
        };
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    state.audit_writer.event(
        Some(&user.id.to_string()),
        event,
        None,
        json!({"via": "hosted", "sid": session.sid, "peer": peer,
               "client_id": valid.as_ref().map(|v| v.client.client_id.clone())}),
    );
    match valid {
        Some(v) => proceed(req, state, v.params.clone(), Some((session, user, cookie))).await,
        None => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/v1/account"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::SET_COOKIE, sessions::browser_cookie(&cookie)))
            .finish(),
    }
}

/// `GET /v1/signup`: the sign-up page, when registration is open.
pub async fn sign_up_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if state.settings.accounts.registration == RegistrationMode::Closed {
        return pages::error_page(
            &state.settings.browser.brand,
            StatusCode::NOT_FOUND,
            "Sign-up is closed on this service.",
        );
    }
    let valid = match carried_request(&state, Some(req.query_string())).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    signup_page_for(
        &req,
        &state,
        valid.as_ref(),
        StatusCode::OK,
        SignUpForm::default(),
        Fields::default(),
    )
}

/// `POST /v1/signup`: the sign-up form: the API's password policy, username and email rules
/// and throttling; then the user is signed in.
pub async fn sign_up(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    if state.settings.accounts.registration == RegistrationMode::Closed {
        return pages::error_page(
            &state.settings.browser.brand,
            StatusCode::NOT_FOUND,
            "Sign-up is closed on this service.",
        );
    }
    let form: SignUpForm = match pages::read_form(&req, &body, &state.settings.browser.brand) {
        Ok(f) => f,
        Err(page) => return *page,
    };
    let valid = match carried_request(&state, form.request.as_deref()).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let again = |form: SignUpForm, errors: Fields, status| {
        signup_page_for(&req, &state, valid.as_ref(), status, form, errors)
    };
    let raw_username = form.username.clone().unwrap_or_default();
    let client = state.throttle.client(&req);
    match state.throttle.before_register(&raw_username, &client).await {
        Ok(()) => {}
        Err(crate::throttle::Refusal::Throttled(t)) => {
            let wait = t.retry_after_secs();
            let errors = Fields {
                form: Some(format!(
                    "Too many attempts. Wait {wait} seconds, then try again."
                )),
                ..Fields::default()
            };
            return again(form, errors, StatusCode::TOO_MANY_REQUESTS);
        }
        Err(crate::throttle::Refusal::Store(e)) => {
            return pages::unavailable(&state.settings.browser.brand, &e);
        }
    }
    let username = match Username::parse(&raw_username) {
        Ok(u) => u,
        Err(e) => {
            let errors = Fields {
                username: Some(e.message),
                ..Fields::default()
            };
            return again(form, errors, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let email = match form
        .email
        .as_deref()
        .filter(|e| !e.is_empty())
        .map(Email::parse)
    {
        None => None,
        Some(Ok(e)) => Some(e),
        Some(Err(e)) => {
            let errors = Fields {
                email: Some(e.message),
                ..Fields::default()
            };
            return again(form, errors, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let password = form
        .password
        .clone()
        .unwrap_or_else(|| SecretString::from(""));
    let account = NewAccount {
        username,
        email,
        password: &password,
        roles: None,
        admin: false,
    };
    match users::register(&state, account).await {
        Ok(user) => signed_in(&req, &state, valid, user, "registered").await,
        Err(UserError::UsernameTaken) => {
            let errors = Fields {
                username: Some("That username is taken.".into()),
                ..Fields::default()
            };
            again(form, errors, StatusCode::CONFLICT)
        }
        Err(UserError::Invalid(e)) => {
            let mut errors = Fields::default();
            let message = Some(e.message.clone());
            if e.code.contains("password") {
                errors.password = message;
            } else if e.code.contains("email") {
                errors.email = message;
            } else if e.code.contains("username") {
                errors.username = message;
            } else {
                errors.form = message;
            }
            again(form, errors, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(UserError::RegistrationClosed) => pages::error_page(
            &state.settings.browser.brand,
            StatusCode::NOT_FOUND,
            "Sign-up is closed on this service.",
        ),
        Err(e) => {
            tracing::warn!(error = %e, "hosted sign-up failed");
            pages::error_page(
                &state.settings.browser.brand,
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is briefly unavailable. Try again in a few seconds.",
            )
        }
    }
}

#[derive(Debug, Deserialize)]
struct ConsentForm {
    csrf: Option<String>,
    request: Option<String>,
    decision: Option<String>,
}

/// `POST /v1/consent`: allow (remembered for the client and these scopes) or deny
/// (`access_denied` to the client).
pub async fn consent(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let form: ConsentForm = match pages::read_form(&req, &body, &state.settings.browser.brand) {
        Ok(f) => f,
        Err(page) => return *page,
    };
    let valid = match carried_request(&state, form.request.as_deref()).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return pages::error_page(
                &state.settings.browser.brand,
                StatusCode::BAD_REQUEST,
                "The form carries no request.",
            );
        }
        Err(res) => return res,
    };
    let now = shared::unix_now();
    let (session, user) = match current_session(&req, &state, now).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return signin_page(
                &req,
                &state,
                Some(&valid),
                StatusCode::OK,
                None,
                String::new(),
            );
        }
        Err(e) => return pages::unavailable(&state.settings.browser.brand, &e),
    };
    match form.decision.as_deref() {
        Some("allow") => {
            if let Err(e) = state
                .consents
                .grant_consent(&session.sub, &valid.client.client_id, &valid.scopes, now)
                .await
            {
                return pages::unavailable(&state.settings.browser.brand, &e);
            }
            state.audit_writer.event(
                Some(&user.id.to_string()),
                "consent_granted",
                None,
                json!({"client_id": valid.client.client_id, "scopes": valid.scopes}),
            );
            match authorize::issue_code(&state, &valid, &session, now).await {
                Ok(r) => respond(&state, &r, &[]),
                Err(e) => pages::unavailable(&state.settings.browser.brand, &e),
            }
        }
        Some("deny") => {
            let r = valid.error(&state, "access_denied", "the user denied the request");
            respond(&state, &r, &[])
        }
        _ => pages::error_page(
            &state.settings.browser.brand,
            StatusCode::BAD_REQUEST,
            "Choose Allow or Deny.",
        ),
    }
}

impl pages::HostedForm for SignInForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

impl pages::HostedForm for SignUpForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

impl pages::HostedForm for ConsentForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}
