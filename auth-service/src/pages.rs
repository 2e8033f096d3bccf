//! The hosted pages' rendering: templates compiled into the binary (askama), a fresh nonce per
//! page, a strict Content-Security-Policy, anti-framing and no caching on every page, the
//! double-submit CSRF token of every form, and the stylesheet served from the binary.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use aws_lc_rs::constant_time::verify_slices_are_equal;

use crate::configuration::Brand;

/// The CSRF cookie: `__Host-`, HttpOnly, `SameSite=Strict`; its value is repeated in every form.
pub const CSRF_COOKIE: &str = "__Host-auth_csrf";

/// The stylesheet of every page.
pub const STYLESHEET: &str = include_str!("../assets/hosted.css");

/// What every page has: its title, this response's nonce, the operator's brand.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The page's heading and title.
    pub title: String,
    /// The CSP nonce of this response.
    pub nonce: String,
    /// Name, logo, colours.
    pub brand: Brand,
}

impl Chrome {
    /// A page titled `title`, with a fresh nonce.
    pub fn new(brand: &Brand, title: &str) -> Chrome {
        Chrome {
            title: title.to_owned(),
            nonce: crate::crypto::random_id().replace('-', ""),
            brand: brand.clone(),
        }
    }
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignInPage {
    /// Chrome.
    pub page: Chrome,
    /// The app the user is signing in to.
    pub app_name: Option<String>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The form's CSRF token.
    pub csrf: String,
    /// The authorization request, carried through.
    pub request: String,
    /// Prefilled username (`login_hint`, or the last attempt's).
    pub username: String,
    /// Link to the sign-up page.
    pub registration_open: bool,
}

/// The sign-up page.
#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignUpPage {
    /// Chrome.
    pub page: Chrome,
    /// The app the user is signing up for.
    pub app_name: Option<String>,
    /// A failure not tied to one field.
    pub error: Option<String>,
    /// The form's CSRF token.
    pub csrf: String,
    /// The authorization request, carried through.
    pub request: String,
    /// As typed.
    pub username: String,
    /// As typed.
    pub email: String,
    /// Field errors.
    pub username_error: Option<String>,
    /// Field errors.
    pub email_error: Option<String>,
    /// Field errors.
    pub password_error: Option<String>,
    /// The policy's minimum length.
    pub min_password: usize,
}

/// The consent page.
#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    /// Chrome.
    pub page: Chrome,
    /// The app asking.
    pub app_name: String,
    /// What it asks for, in words.
    pub scopes: Vec<String>,
    /// Who is signed in.
    pub username: String,
    /// The form's CSRF token.
    pub csrf: String,
    /// The authorization request, carried through.
    pub request: String,
}

/// An error page: nothing to redirect to.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// Chrome.
    pub page: Chrome,
    /// What went wrong.
    pub detail: String,
}

/// A page that says one thing (signed out, …), with an optional link.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// Chrome.
    pub page: Chrome,
    /// The message.
    pub detail: String,
    /// (href, text).
    pub link: Option<(String, String)>,
}

/// "Sign out?": asked when the logout request cannot show that it comes from the user's own app.
#[derive(Template)]
#[template(path = "confirm_signout.html")]
pub struct ConfirmSignOutPage {
    /// Chrome.
    pub page: Chrome,
    /// Who is signed in.
    pub username: String,
    /// The app that asked, when known.
    pub app_name: Option<String>,
    /// The form's CSRF token.
    pub csrf: String,
    /// The logout request, carried through.
    pub request: String,
}

/// A session as the account page lists it.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// Session id.
    pub sid: String,
    /// The app (or "This browser's sign-in").
    pub app: String,
    /// Signed in (UTC).
    pub since: String,
    /// Last used (UTC).
    pub last_used: String,
    /// This browser's own sign-in session.
    pub current: bool,
}

/// A consent as the account page lists it.
#[derive(Debug, Clone)]
pub struct ConsentRow {
    /// The client.
    pub client_id: String,
    /// Its name.
    pub app: String,
    /// What it may do, in words.
    pub scopes: String,
}

/// The account page: the user's sessions and consents.
#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    /// Chrome.
    pub page: Chrome,
    /// Who is signed in.
    pub username: String,
    /// Sessions, most recently used first.
    pub sessions: Vec<SessionRow>,
    /// Consents, by client.
    pub consents: Vec<ConsentRow>,
    /// The forms' CSRF token.
    pub csrf: String,
}

/// A Unix time for people: `YYYY-MM-DD HH:MM UTC`.
pub fn when(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// The form-post response mode's page: a form that submits itself to the client.
#[derive(Template)]
#[template(path = "form_post.html")]
pub struct FormPostPage {
    /// This response's nonce.
    pub nonce: String,
    /// The client's redirect URI.
    pub action: String,
    /// The response parameters.
    pub params: Vec<(&'static str, String)>,
}

/// A words-for-people description of a scope on the consent page.
pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "know who you are".into(),
        "profile" => "see your username".into(),
        "email" => "see your email address".into(),
        "offline_access" => "stay signed in when you are away".into(),
        other => format!("use \u{201c}{other}\u{201d} on your behalf"),
    }
}

/// The origin (or, for a native app's private-use scheme, the scheme) a form may be sent on to.
pub fn form_target(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    match url.scheme() {
        "http" | "https" => Some(url.origin().ascii_serialization()),
        scheme => Some(format!("{scheme}:")),
    }
}

/// A rendered page with its security headers: a CSP allowing only this response's nonce for
/// the inline script and style, same-origin stylesheets and images (and https images for a
/// logo), forms sent to this origin and `form_targets` (where a form's redirect may lead);
/// `frame-ancestors 'none'`, `X-Frame-Options: DENY`, no caching, no referrer.
pub fn render(
    status: StatusCode,
    page: &impl Template,
    nonce: &str,
    form_targets: &[String],
    cookies: &[String],
) -> HttpResponse {
    let html = match page.render() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "a hosted page failed to render");
            return HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("The page could not be shown.");
        }
    };
    let targets = form_targets.join(" ");
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; img-src 'self' https: data:; form-action 'self' {targets}; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut res = HttpResponse::build(status);
    res.content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            res.append_header((header::SET_COOKIE, v));
        }
    }
    res.body(html)
}

/// A cookie's value from the request.
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// The CSRF token for the forms of a page: the browser's CSRF cookie when it has a well-formed
/// one, else a new one (with its `Set-Cookie`).
pub fn csrf_token(req: &HttpRequest) -> (String, Option<String>) {
    if let Some(v) = cookie(req, CSRF_COOKIE).filter(|v| well_formed_token(v)) {
        return (v, None);
    }
    let token = crate::services::authorize::random_secret().unwrap_or_default();
    let set = format!("{CSRF_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict");
    (token, Some(set))
}

fn well_formed_token(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// True when a form's `csrf` field repeats the browser's CSRF cookie (compared in constant
/// time). A cross-site form can send the cookie but cannot read it to repeat it.
pub fn csrf_ok(req: &HttpRequest, field: Option<&str>) -> bool {
    match (cookie(req, CSRF_COOKIE), field) {
        (Some(c), Some(f)) if well_formed_token(&c) => {
            verify_slices_are_equal(c.as_bytes(), f.as_bytes()).is_ok()
        }
        _ => false,
    }
}

/// The error page: nothing to redirect to, said plainly.
pub fn error_page(brand: &Brand, status: StatusCode, detail: &str) -> HttpResponse {
    let title = if status.is_server_error() {
        "Something went wrong"
    } else {
        "This request cannot go on"
    };
    let page = ErrorPage {
        page: Chrome::new(brand, title),
        detail: detail.to_owned(),
    };
    render(status, &page, &page.page.nonce, &[], &[])
}

/// A store out of reach: 503, try again shortly.
pub fn unavailable(brand: &Brand, e: &dyn std::fmt::Display) -> HttpResponse {
    tracing::warn!(error = %e, "a hosted page could not reach a store");
    let mut res = error_page(
        brand,
        StatusCode::SERVICE_UNAVAILABLE,
        "The service is briefly unavailable. Try again in a few seconds.",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}

/// A hosted form's fields, with its CSRF token.
pub trait HostedForm: serde::de::DeserializeOwned {
    /// The form's `csrf` field.
    fn csrf(&self) -> Option<&str>;
}

/// Reads a hosted form: a form body (`application/x-www-form-urlencoded`) that parses, whose
/// `csrf` field repeats the browser's CSRF cookie. `Err`: the page to answer with (400 for a
/// malformed form; 403 for a missing or wrong token, with nothing done).
pub fn read_form<T: HostedForm>(
    req: &HttpRequest,
    body: &[u8],
    brand: &Brand,
) -> Result<T, Box<HttpResponse>> {
    let form: T = form_text(req, body)
        .and_then(|t| serde_urlencoded::from_str(t).map_err(|_| "The form is malformed.".into()))
        .map_err(|e| Box::new(error_page(brand, StatusCode::BAD_REQUEST, &e)))?;
    if !csrf_ok(req, form.csrf()) {
        return Err(Box::new(error_page(
            brand,
            StatusCode::FORBIDDEN,
            "This form has expired or was not sent from this site. Go back, reload the page and try again.",
        )));
    }
    Ok(form)
}

/// A form body's text, if it is one.
pub fn form_text<'a>(req: &HttpRequest, body: &'a [u8]) -> Result<&'a str, String> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form {
        return Err("This address takes a form (application/x-www-form-urlencoded).".into());
    }
    std::str::from_utf8(body).map_err(|_| "The form is not valid UTF-8.".to_owned())
}

/// `GET /v1/assets/hosted.css`.
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(STYLESHEET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_targets_are_origins_or_native_schemes() {
        assert_eq!(
            form_target("https://app.example.com:8443/cb?x=1").as_deref(),
            Some("https://app.example.com:8443")
        );
        assert_eq!(
            form_target("com.example.app:/cb").as_deref(),
            Some("com.example.app:")
        );
    }

    #[test]
    fn pages_escape_what_they_show() {
        let brand = Brand {
            product_name: "Acme <b>".into(),
            logo_url: None,
            primary_color: "#123456".into(),
            background_color: "#ffffff".into(),
        };
        let page = ErrorPage {
            page: Chrome::new(&brand, "Error"),
            detail: "<script>alert(1)</script>".into(),
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>alert(1)"), "{html}");
        assert!(html.contains("&#60;script&#62;"), "{html}");
        assert!(html.contains("Acme &#60;b&#62;"), "{html}");
    }
}
