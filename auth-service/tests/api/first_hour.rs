//! What a newcomer trips on, answered: errors that name the fix (a refresh token sent as an
//! access token, an `Authorization` header without the Bearer scheme, a JSON body without its
//! content type, a 405's code, the challenge of a 403), `HEAD` wherever `GET` works, and token
//! responses that always say what was granted.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_problem};

#[tokio::test]
async fn a_refresh_token_sent_as_an_access_token_is_named() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    let res = app.me(&t.refresh_token).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let p = assert_problem(res, StatusCode::UNAUTHORIZED).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("this is a refresh token"),
        "{p}"
    );
}

#[tokio::test]
async fn an_authorization_header_without_the_bearer_scheme_says_how_to_send_it() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    for (value, says) in [
        (t.access_token.clone(), "has no scheme"),
        (format!("Token {}", t.access_token), "Authorization: Bearer"),
        ("Basic dXNlcjpwYXNz".to_owned(), "Authorization: Bearer"),
    ] {
        let res = app
            .client
            .get(app.url("/v1/users/me"))
            .header("authorization", &value)
            .send()
            .await
            .unwrap();
        assert!(res.headers().contains_key("www-authenticate"), "{value}");
        let p = assert_problem(res, StatusCode::UNAUTHORIZED).await;
        assert!(p["detail"].as_str().unwrap().contains(says), "{value}: {p}");
        assert!(p["code"].is_string(), "{p}");
    }
}

#[tokio::test]
async fn a_json_body_without_its_content_type_is_told_to_add_it() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let body = json!({"username": "newcomer", "password": PASSWORD}).to_string();
    // No Content-Type at all, and curl's default for -d (a form), on JSON-only and
    // JSON-or-form endpoints alike.
    for content_type in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
    ] {
        let mut r = app.client.post(app.url("/v1/users")).body(body.clone());
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        let res = r.send().await.unwrap();
        if content_type == Some("application/x-www-form-urlencoded") {
            // /v1/users reads forms too: the JSON text is not a form with a username.
            assert_eq!(res.status(), StatusCode::BAD_REQUEST);
            continue;
        }
        let p = assert_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("Content-Type: application/json"),
            "{content_type:?}: {p}"
        );
    }
    let (_, t) = app.new_user().await;
    let id = app.user_id(&t.access_token).await;
    let res = app
        .client
        .patch(app.url(&format!("/v1/admin/users/{id}")))
        .bearer_auth(&admin.access_token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"roles":["user","support"]}"#)
        .send()
        .await
        .unwrap();
    let p = assert_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("Content-Type: application/json"),
        "{p}"
    );
}

#[tokio::test]
async fn every_problem_carries_its_code_and_every_bearer_refusal_its_challenge() {
    let app = TestApp::spawn_with_admin().await;
    for (method, path) in [
        (reqwest::Method::DELETE, "/v1/login"),
        (reqwest::Method::PUT, "/v1/users/me"),
        (reqwest::Method::POST, "/healthz"),
    ] {
        let res = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        let p = assert_problem(res, StatusCode::METHOD_NOT_ALLOWED).await;
        assert_eq!(p["code"], "method_not_allowed", "{method} {path}: {p}");
    }
    let res = app.get("/no/such/route", None).await;
    assert_eq!(
        assert_problem(res, StatusCode::NOT_FOUND).await["code"],
        "not_found"
    );

    // A client's own token on a route that acts for a user: 403 with a challenge.
    let admin = app.admin_tokens().await;
    let c: Value = app
        .post_json(
            "/v1/admin/clients",
            &json!({"client_id": "svc"}),
            Some(&admin.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let t: Value = app
        .client
        .post(app.url("/v1/token"))
        .basic_auth("svc", c["client_secret"].as_str())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = app.me(t["access_token"].as_str().unwrap()).await;
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert_eq!(
        assert_problem(res, StatusCode::FORBIDDEN).await["code"],
        "user_token_required"
    );
}

#[tokio::test]
async fn head_works_wherever_get_does() {
    let app = TestApp::spawn().await;
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs/",
        "/docs/swagger-ui.css",
    ] {
        let get = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(get.status(), StatusCode::OK, "GET {path}");
        let length = get.bytes().await.unwrap().len();
        let head = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
        if let Some(cl) = head.headers().get("content-length") {
            assert_eq!(cl.to_str().unwrap(), length.to_string(), "HEAD {path}");
        }
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} has a body"
        );
    }
}

#[tokio::test]
async fn token_responses_always_say_what_was_granted() {
    let app = TestApp::builder()
        .env("AUTH_ROLE_SCOPES", r#"{"user":["profile"]}"#)
        .spawn()
        .await;
    let (name, t) = app.new_user().await;
    assert_eq!(t.scope.as_deref(), Some("profile"));
    for (asked, granted) in [
        ("profile orders:read", "profile"),
        ("orders:read", ""),
        ("", "profile"),
    ] {
        let res = app
            .post_form(
                "/v1/login",
                &[
                    ("username", &name),
                    ("password", PASSWORD),
                    ("scope", asked),
                ],
                None,
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["scope"], granted, "asked {asked:?}: {v}");
    }
    // A narrower refresh says so too; an empty grant is "" rather than absent.
    let empty: Value = app
        .post_form(
            "/v1/login",
            &[
                ("username", &name),
                ("password", PASSWORD),
                ("scope", "orders:read"),
            ],
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let res = app.refresh(empty["refresh_token"].as_str().unwrap()).await;
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["scope"], "", "{v}");
}

#[tokio::test]
async fn docs_without_its_slash_redirects_to_swagger_ui() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(res.headers()["location"], "/docs/");
}
