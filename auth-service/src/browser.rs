//! Browser mode: the refresh token travels in an `HttpOnly; Secure; SameSite=Strict` cookie
//! (scripts on the page cannot read it), the access token in the body (kept in memory); the
//! cookie-carrying endpoints check `Origin` and a custom header against cross-site requests;
//! CORS with credentials for the configured origins only.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::configuration::Settings;
use crate::state::AppState;

/// The refresh-token cookie. `Path=/v1`: the token and logout endpoints both receive it.
pub const REFRESH_COOKIE: &str = "auth_refresh";
/// The custom header a browser request must carry: a cross-site form or link cannot set it, and
/// a cross-origin script cannot without a CORS preflight that only configured origins pass.
pub const CSRF_HEADER: &str = "x-requested-with";

/// `Set-Cookie` for a refresh token valid `max_age` seconds.
pub fn set_cookie(token: &str, max_age: i64) -> String {
    format!(
        "{REFRESH_COOKIE}={token}; Path=/v1; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"
    )
}

/// `Set-Cookie` that removes the refresh-token cookie.
pub fn clear_cookie() -> String {
    format!("{REFRESH_COOKIE}=; Path=/v1; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

/// The refresh token from the cookie, if the request carries one.
pub fn refresh_cookie(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == REFRESH_COOKIE)
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// True when `origin` may call with credentials.
pub fn origin_allowed(settings: &Settings, origin: &str) -> bool {
    settings
        .browser
        .origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin))
}

/// The cross-site request checks of the cookie-carrying requests: an allowed `Origin` and the
/// custom header. `Err` says what is missing (403).
pub fn check_csrf(req: &HttpRequest, settings: &Settings) -> Result<(), &'static str> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or("a browser request must carry an Origin header")?;
    if !origin_allowed(settings, origin) {
        return Err("this origin may not use the refresh-token cookie");
    }
    if req.headers().get(CSRF_HEADER).is_none_or(|v| v.is_empty()) {
        return Err("a browser request must carry an X-Requested-With header");
    }
    Ok(())
}

const ALLOW_METHODS: &str = "GET, POST, PATCH, DELETE";
/// The endpoints an app on any origin may call from a browser without credentials (CORS `*`):
/// a single-page app exchanges its code, refreshes, revokes and reads UserInfo and discovery
/// with its own tokens, never with cookies (OAuth 2.0 for Browser-Based Apps §6.3).
const OPEN_PATHS: [&str; 6] = [
    "/v1/token",
    "/v1/userinfo",
    "/v1/revoke",
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/.well-known/jwks.json",
];
const ALLOW_HEADERS: &str = "authorization, content-type, x-requested-with";
const EXPOSE_HEADERS: &str = "retry-after, www-authenticate, x-request-id";

/// CORS for the configured origins, with credentials. A preflight from an allowed origin is
/// answered here (204); from any other origin it gets 403 and no CORS headers. Answers to
/// allowed origins carry `Access-Control-Allow-Origin` and `-Credentials`.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let allowed = origin.as_deref().is_some_and(|o| {
        req.app_data::<web::Data<AppState>>()
            .is_some_and(|s| origin_allowed(&s.settings, o))
    });
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let open = !allowed && origin.is_some() && OPEN_PATHS.contains(&req.path());
    if open {
        if preflight {
            let (http, _) = req.into_parts();
            let res = HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"))
                .insert_header((
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    "authorization, content-type",
                ))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
                .finish();
            return Ok(ServiceResponse::new(http, res).map_into_boxed_body());
        }
        let mut res = next.call(req).await?.map_into_boxed_body();
        let h = res.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        if let Ok(v) = HeaderValue::from_str(EXPOSE_HEADERS) {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
        return Ok(res);
    }
    if preflight && origin.is_some() {
        let (http, _) = req.into_parts();
        let res = if allowed {
            let mut res = HttpResponse::NoContent();
            res.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"));
            let mut res = res.finish();
            add_allow(&mut res, origin.as_deref().unwrap_or_default());
            res
        } else {
            crate::error::problem(
                StatusCode::FORBIDDEN,
                "this origin may not call the service from a browser",
                Some("origin_not_allowed"),
            )
        };
        return Ok(ServiceResponse::new(http, res).map_into_boxed_body());
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    if allowed {
        add_allow(res.response_mut(), origin.as_deref().unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(EXPOSE_HEADERS) {
            res.headers_mut()
                .insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
    }
    Ok(res)
}

fn add_allow(res: &mut HttpResponse, origin: &str) {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_secure_strict_and_scoped_to_v1() {
        let c = set_cookie("abc", 60);
        for part in [
            "auth_refresh=abc",
            "Path=/v1",
            "Max-Age=60",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
        ] {
            assert!(c.split("; ").any(|p| p == part), "{part} in {c}");
        }
        assert!(clear_cookie().contains("Max-Age=0"));
    }
}
