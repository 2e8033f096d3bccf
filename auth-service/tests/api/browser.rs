//! Browser mode: the refresh token in an `HttpOnly` cookie, cross-site checks on every request
//! that carries it, and CORS with credentials for configured origins only.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::helpers::{ISSUER, PASSWORD, TestApp, assert_oauth_error, assert_problem};

const APP: &str = "https://app.example.com";

async fn app() -> TestApp {
    TestApp::builder()
        .env("AUTH_CORS_ORIGINS", APP)
        .spawn()
        .await
}

/// The refresh-token cookie a response set: (value, attributes).
fn set_cookie(headers: &HeaderMap) -> Option<(String, String)> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("auth_refresh="))
        .map(|v| {
            let (pair, attrs) = v.split_once("; ").unwrap();
            (pair["auth_refresh=".len()..].to_owned(), attrs.to_owned())
        })
}

async fn browser_login(app: &TestApp, user: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/v1/login"))
        .json(&json!({"username": user, "password": PASSWORD, "token_delivery": "cookie"}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn browser_post(
    app: &TestApp,
    path: &str,
    cookie: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(path))
        .header("cookie", format!("auth_refresh={cookie}"))
        .form(&[("grant_type", "refresh_token")]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

const SAME_SITE: [(&str, &str); 2] = [("origin", ISSUER), ("x-requested-with", "fetch")];

/// Requests a cross-site page could make: no Origin, a foreign or opaque one, or no custom header.
const CROSS_SITE: [&[(&str, &str)]; 4] = [
    &[("x-requested-with", "fetch")],
    &[
        ("origin", "https://evil.example"),
        ("x-requested-with", "fetch"),
    ],
    &[("origin", ISSUER)],
    &[("origin", "null"), ("x-requested-with", "fetch")],
];

#[tokio::test]
async fn a_cookie_login_keeps_the_refresh_token_out_of_the_body() {
    let app = app().await;
    app.register("bella", PASSWORD).await;
    let res = browser_login(&app, "bella", &SAME_SITE).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (cookie, attrs) = set_cookie(res.headers()).expect("a refresh-token cookie");
    for attr in ["Path=/v1", "HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(attrs.split("; ").any(|a| a == attr), "{attr} in {attrs}");
    }
    let body: Value = res.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body["access_token"].is_string() && body["refresh_expires_in"].is_number());
    // The cookie holds the opaque refresh token (53 bytes; a signed one took about 600).
    assert!(
        cookie.starts_with(shared::claims::REFRESH_TOKEN_PREFIX) && cookie.len() == 53,
        "{cookie}"
    );
    assert_eq!(
        app.me_status(body["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );
    // Without the flag, logins are as before: both tokens in the body, no cookie.
    let res = app.login_response("bella", PASSWORD).await;
    assert!(set_cookie(res.headers()).is_none());
}

#[tokio::test]
async fn cross_site_requests_cannot_use_the_cookie() {
    let app = app().await;
    app.register("carl", PASSWORD).await;
    for headers in CROSS_SITE {
        let res = browser_login(&app, "carl", headers).await;
        assert!(set_cookie(res.headers()).is_none(), "{headers:?}");
        assert_oauth_error(res, StatusCode::FORBIDDEN, "access_denied").await;
    }
    let res = browser_login(&app, "carl", &SAME_SITE).await;
    let (cookie, _) = set_cookie(res.headers()).unwrap();
    // Refresh and logout with the cookie but without the checks: refused, and nothing spent.
    for headers in CROSS_SITE {
        let res = browser_post(&app, "/v1/token", &cookie, headers).await;
        assert_oauth_error(res, StatusCode::FORBIDDEN, "access_denied").await;
        let res = browser_post(&app, "/v1/logout", &cookie, headers).await;
        assert_eq!(
            assert_problem(res, StatusCode::FORBIDDEN).await["code"],
            "cross_site"
        );
    }
    let res = browser_post(&app, "/v1/token", &cookie, &SAME_SITE).await;
    assert_eq!(res.status(), StatusCode::OK, "the cookie was not spent");
}

#[tokio::test]
async fn the_cookie_refreshes_rotates_and_a_reused_one_ends_the_session() {
    let app = app().await;
    app.register("dora", PASSWORD).await;
    let res = browser_login(&app, "dora", &SAME_SITE).await;
    let (first, _) = set_cookie(res.headers()).unwrap();
    let res = browser_post(&app, "/v1/token", &first, &SAME_SITE).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (second, _) = set_cookie(res.headers()).expect("a rotated cookie");
    assert_ne!(first, second);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("refresh_token").is_none());
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.me_status(&access).await, StatusCode::OK);
    // The spent cookie again: reuse; the session ends, and the answer clears the cookie.
    let res = browser_post(&app, "/v1/token", &first, &SAME_SITE).await;
    let (cleared, attrs) = set_cookie(res.headers()).expect("the cookie is cleared");
    assert!(cleared.is_empty() && attrs.contains("Max-Age=0"), "{attrs}");
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(app.me_status(&access).await, StatusCode::UNAUTHORIZED);
    let res = browser_post(&app, "/v1/token", &second, &SAME_SITE).await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn logout_with_the_cookie_ends_the_session_and_clears_it() {
    let app = app().await;
    app.register("emil", PASSWORD).await;
    let res = browser_login(&app, "emil", &SAME_SITE).await;
    let (cookie, _) = set_cookie(res.headers()).unwrap();
    let body: Value = res.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    // A page whose access token has expired logs out with the cookie alone.
    let res = browser_post(&app, "/v1/logout", &cookie, &SAME_SITE).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (cleared, attrs) = set_cookie(res.headers()).unwrap();
    assert!(cleared.is_empty() && attrs.contains("Max-Age=0"));
    assert_eq!(app.me_status(&access).await, StatusCode::UNAUTHORIZED);
    let res = browser_post(&app, "/v1/token", &cookie, &SAME_SITE).await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // Logging out again with the dead cookie: nothing to end, the cookie is cleared all the same.
    let res = browser_post(&app, "/v1/logout", &cookie, &SAME_SITE).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // With a bearer token and the cookie, the bearer decides and the cookie is cleared.
    let res = browser_login(&app, "emil", &SAME_SITE).await;
    let (cookie, _) = set_cookie(res.headers()).unwrap();
    let body: Value = res.json().await.unwrap();
    let res = app
        .client
        .post(app.url("/v1/logout"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .header("cookie", format!("auth_refresh={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(set_cookie(res.headers()).unwrap().0.is_empty());
    let res = browser_post(&app, "/v1/token", &cookie, &SAME_SITE).await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // No bearer token and no cookie: 401 as before.
    let res = app.client.post(app.url("/v1/logout")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cors_answers_configured_origins_only_with_credentials() {
    let app = app().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, x-requested-with",
            )
            .send()
    };
    let res = preflight(APP).await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    assert_eq!(h["access-control-allow-credentials"], "true");
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("x-requested-with") && allowed.contains("content-type"));
    assert!(h["vary"].to_str().unwrap().contains("Origin"));
    let res = preflight("https://evil.example").await.unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));
    assert_eq!(
        assert_problem(res, StatusCode::FORBIDDEN).await["code"],
        "origin_not_allowed"
    );
    // Actual requests: the allowed origin is named, others get no CORS headers.
    app.register("fay", PASSWORD).await;
    let res = browser_login(
        &app,
        "fay",
        &[("origin", APP), ("x-requested-with", "fetch")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["access-control-allow-origin"], APP);
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let res = app
        .client
        .get(app.url("/v1/users/me"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));
    // The OAuth endpoints a single-page app calls with its own tokens answer any origin, never
    // with credentials: a cookie cannot ride on them from there.
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
    ] {
        let res = app
            .client
            .get(app.url(path))
            .header("origin", "https://spa.example")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["access-control-allow-origin"], "*");
        assert!(
            !res.headers()
                .contains_key("access-control-allow-credentials")
        );
    }
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/token"))
        .header("origin", "https://spa.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    assert!(
        !res.headers()
            .contains_key("access-control-allow-credentials")
    );
    // The refresh cookie from such an origin is still refused.
    let res = app
        .client
        .post(app.url("/v1/token"))
        .header("origin", "https://spa.example")
        .header("x-requested-with", "fetch")
        .header("cookie", "auth_refresh=x")
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}
