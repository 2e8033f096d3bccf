//! `POST /v1/login`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ISSUER, PASSWORD, TestApp, assert_oauth_error, claims, header};

#[tokio::test]
async fn login_returns_an_rfc6749_token_response() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let res = app.login_response("alice", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "orders:read profile");
    let at = body["access_token"].as_str().unwrap();
    let rt = body["refresh_token"].as_str().unwrap();

    let h = header(at);
    assert_eq!(h["alg"], "RS256");
    assert_eq!(h["typ"], "at+jwt");
    assert!(h["kid"].is_string());
    let c = claims(at);
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["aud"], "api");
    assert_eq!(c["client_id"], "app");
    assert_eq!(c["roles"], json!(["user"]));
    assert_eq!(c["exp"].as_i64().unwrap() - c["nbf"].as_i64().unwrap(), 900);
    uuid::Uuid::parse_str(c["sub"].as_str().unwrap()).unwrap();
    for k in ["jti", "sid", "iat"] {
        assert!(!c[k].is_null(), "{k}");
    }
    // The refresh token is opaque: 256 random bits and a checksum, nothing to decode.
    assert!(rt.starts_with(shared::claims::REFRESH_TOKEN_PREFIX), "{rt}");
    assert_eq!(rt.len(), 53);
    assert!(!rt.contains('.'));
    assert_eq!(app.me_status(at).await, StatusCode::OK);
}

#[tokio::test]
async fn json_login_and_oauth_password_flow_fields_work() {
    let app = TestApp::spawn().await;
    app.register("bob", PASSWORD).await;
    let res = app
        .post_json(
            "/v1/login",
            &json!({"username": "bob", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // What Swagger UI's Authorize dialog sends: grant_type, scope, client_id, client_secret.
    let res = app
        .post_form(
            "/v1/login",
            &[
                ("grant_type", "password"),
                ("username", "bob"),
                ("password", PASSWORD),
                ("scope", "profile admin:all"),
                ("client_id", "unknown-client"),
                ("client_secret", ""),
            ],
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["scope"], "profile",
        "requested scopes are narrowed to what roles allow"
    );
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["client_id"],
        "app",
        "unknown client ids fall back to the default"
    );
}

#[tokio::test]
async fn configured_client_ids_are_carried_into_tokens() {
    let app = TestApp::builder()
        .env("AUTH_CLIENT_IDS", "web,mobile")
        .spawn()
        .await;
    app.register("cid", PASSWORD).await;
    let res = app
        .post_form(
            "/v1/login",
            &[
                ("username", "cid"),
                ("password", PASSWORD),
                ("client_id", "mobile"),
            ],
            None,
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["client_id"],
        "mobile"
    );
    // The session keeps its client: the refresh token's next pair carries it too.
    let res = app.refresh(body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["client_id"],
        "mobile"
    );
}

#[tokio::test]
async fn unknown_user_wrong_password_and_disabled_user_look_the_same() {
    let app = TestApp::spawn_with_admin().await;
    app.register("carol", PASSWORD).await;
    app.register("dave", PASSWORD).await;
    let admin = app.admin_tokens().await;
    let dave = app
        .state
        .users
        .find_by_username("dave")
        .await
        .unwrap()
        .unwrap()
        .0;
    let res = app
        .client
        .patch(app.url(&format!("/v1/admin/users/{}", dave.id)))
        .bearer_auth(&admin.access_token)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let mut bodies = Vec::new();
    for (user, pw) in [
        ("nobody", PASSWORD),
        ("carol", "wrong password for carol"),
        ("dave", PASSWORD),
        ("x", PASSWORD),
    ] {
        let before = app.state.hasher.verifications();
        let res = app.login_response(user, pw).await;
        // Every path, including an unknown or syntactically impossible username, runs one
        // Argon2 verification (against a dummy hash), so timing does not reveal which it was.
        assert_eq!(app.state.hasher.verifications(), before + 1, "{user}");
        bodies.push(assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

#[tokio::test]
async fn bad_login_requests_are_4xx_with_oauth_bodies() {
    let app = TestApp::spawn().await;
    let res = app.post_form("/v1/login", &[("username", "x")], None).await;
    let body = assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{body}"
    );
    let long = "a".repeat(1025);
    let res = app
        .post_form("/v1/login", &[("username", "x"), ("password", &long)], None)
        .await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    let res = app
        .client
        .post(app.url("/v1/login"))
        .header("content-type", "text/plain")
        .body("username=x")
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request").await;
    let res = app.client.post(app.url("/v1/login")).send().await.unwrap();
    assert_oauth_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request").await;
    let big = "a".repeat(64 * 1024);
    let res = app
        .post_form("/v1/login", &[("username", "x"), ("password", &big)], None)
        .await;
    assert_oauth_error(res, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request").await;
    let res = app
        .client
        .post(app.url("/v1/login"))
        .header("content-type", "application/json")
        .body("{\"username\":")
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    // Repeated parameters are refused (RFC 6749 §3.1).
    let res = app
        .client
        .post(app.url("/v1/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=a&username=b&password=correct+horse+battery+staple")
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn outdated_hash_parameters_are_upgraded_at_login() {
    let app = TestApp::builder()
        .env("AUTH_ARGON2_MEMORY_KIB", "47104")
        .env("AUTH_ARGON2_ITERATIONS", "1")
        .spawn()
        .await;
    app.register("old", PASSWORD).await;
    let (_, before) = app
        .state
        .users
        .find_by_username("old")
        .await
        .unwrap()
        .unwrap();
    assert!(before.contains("m=47104,t=1"), "{before}");
    app.stop().await;
    let app2 = TestApp::builder().sharing(&app).spawn().await;
    app2.login("old", PASSWORD).await;
    let mut after = before.clone();
    for _ in 0..50 {
        after = app2
            .state
            .users
            .find_by_username("old")
            .await
            .unwrap()
            .unwrap()
            .1;
        if after != before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(after.contains("m=19456,t=2,p=1"), "{after}");
    app2.login("old", PASSWORD).await;
}
