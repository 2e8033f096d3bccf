//! Registered clients: the admin API, client credentials (HTTP Basic and form), secret rotation
//! with an overlap, revocation by disabling or deleting, and introspection (RFC 7662).

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ISSUER, TestApp, Tokens, assert_oauth_error, assert_problem, claims};

/// A registered client, as the admin API answered.
struct Registered {
    id: String,
    secret: String,
}

async fn register(app: &TestApp, admin: &Tokens, body: Value) -> Registered {
    let res = app
        .post_json("/v1/admin/clients", &body, Some(&admin.access_token))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let id = body["client_id"].as_str().unwrap().to_owned();
    assert_eq!(res.headers()["location"], format!("/v1/admin/clients/{id}"));
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["client_id"], id);
    Registered {
        id,
        secret: v["client_secret"].as_str().unwrap().to_owned(),
    }
}

/// RFC 6749 §2.3.1: form-urlencode the id and secret, join with `:`, base64.
fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| serde_urlencoded::to_string([("v", s)]).unwrap()[2..].to_owned();
    let raw = format!("{}:{}", enc(id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

async fn token_basic(
    app: &TestApp,
    id: &str,
    secret: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    app.client
        .post(app.url("/v1/token"))
        .header("authorization", basic(id, secret))
        .form(&form)
        .send()
        .await
        .unwrap()
}

async fn client_token(app: &TestApp, c: &Registered) -> String {
    let res = token_basic(app, &c.id, &c.secret, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

async fn introspect(app: &TestApp, c: &Registered, token: &str) -> Value {
    let res = app
        .client
        .post(app.url("/v1/introspect"))
        .header("authorization", basic(&c.id, &c.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.json().await.unwrap()
}

#[tokio::test]
async fn a_client_gets_its_own_token_with_basic_or_form_authentication() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let c = register(
        &app,
        &admin,
        json!({"client_id": "billing", "name": "Billing", "scopes": ["orders:read", "orders:write"], "audiences": ["api", "reports"]}),
    )
    .await;
    assert_eq!(c.secret.len(), 43, "256 random bits, base64url");

    // HTTP Basic, everything the client may have by default.
    let res = token_basic(&app, &c.id, &c.secret, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "orders:read orders:write");
    assert!(v.get("refresh_token").is_none(), "no refresh token: {v}");
    assert!(v["expires_in"].as_i64().unwrap() > 0);
    let t = claims(v["access_token"].as_str().unwrap());
    assert_eq!(t["sub"], "billing");
    assert_eq!(t["client_id"], "billing");
    assert_eq!(t["iss"], ISSUER);
    assert_eq!(t["aud"], json!(["api", "reports"]));
    assert!(
        t.get("sid").is_none(),
        "a client's token has no session: {t}"
    );
    assert_eq!(t["roles"], json!([]));

    // Form authentication, a narrower scope and one audience.
    let res = app
        .post_form(
            "/v1/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &c.id),
                ("client_secret", &c.secret),
                ("scope", "orders:read"),
                ("audience", "api"),
            ],
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["scope"], "orders:read");
    let token = v["access_token"].as_str().unwrap();
    let t = claims(token);
    assert_eq!(t["aud"], "api");
    assert_eq!(t["scope"], "orders:read");

    // A client's token is not a user's: the user endpoints refuse it.
    let body = assert_problem(app.me(token).await, StatusCode::FORBIDDEN).await;
    assert_eq!(body["code"], "user_token_required");
}

#[tokio::test]
async fn bad_client_credentials_get_rfc_6749_errors() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let c = register(
        &app,
        &admin,
        json!({"client_id": "svc-a", "scopes": ["orders:read"]}),
    )
    .await;

    for res in [
        token_basic(&app, &c.id, "wrong-secret", &[]).await,
        token_basic(&app, "nobody", &c.secret, &[]).await,
        token_basic(&app, &"x".repeat(500), &c.secret, &[]).await,
    ] {
        let www = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(www.starts_with("Basic "), "{www}");
        assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    // Form authentication with a wrong secret, and no authentication at all.
    let res = app
        .post_form(
            "/v1/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &c.id),
                ("client_secret", "nope"),
            ],
            None,
        )
        .await;
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let res = app
        .post_form("/v1/token", &[("grant_type", "client_credentials")], None)
        .await;
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // Malformed Basic credentials, and another scheme.
    for value in ["Basic !!!", "Basic", "Bearer abc"] {
        let res = app
            .client
            .post(app.url("/v1/token"))
            .header("authorization", value)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    // Two methods at once (RFC 6749 §2.3: only one), or two different client ids: the client is
    // not authenticated, so `invalid_client` with the Basic challenge.
    let res = token_basic(&app, &c.id, &c.secret, &[("client_secret", &c.secret)]).await;
    assert!(res.headers().contains_key("www-authenticate"));
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let res = token_basic(&app, &c.id, &c.secret, &[("client_id", "someone-else")]).await;
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // Parameters without a value count as omitted (RFC 6749 §3.1): Basic alone, accepted.
    let res = token_basic(
        &app,
        &c.id,
        &c.secret,
        &[("client_secret", ""), ("client_id", "")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    // A scope or audience the client may not have.
    let res = token_basic(
        &app,
        &c.id,
        &c.secret,
        &[("scope", "orders:read users:write")],
    )
    .await;
    let body = assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_scope").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("users:write")
    );
    let res = token_basic(&app, &c.id, &c.secret, &[("audience", "elsewhere")]).await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_target").await;
    // Unknown grant types.
    let res = app
        .post_form("/v1/token", &[("grant_type", "password")], None)
        .await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    // The right credentials still work after all of this.
    assert_eq!(
        token_basic(&app, &c.id, &c.secret, &[]).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_admin_api_registers_lists_and_validates_clients() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let c = register(&app, &admin, json!({"client_id": "reports"})).await;
    // Defaults: no scopes, the configured audience.
    let res = app
        .get("/v1/admin/clients/reports", Some(&admin.access_token))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["scopes"], json!([]));
    assert_eq!(v["audiences"].as_array().unwrap().len(), 1);
    assert!(v.get("client_secret").is_none() && v.get("secret_hash").is_none());
    let t = claims(&client_token(&app, &c).await);
    assert!(t.get("scope").is_none(), "{t}");

    let res = app
        .get("/v1/admin/clients", Some(&admin.access_token))
        .await;
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["clients"][0]["client_id"], "reports");
    assert!(!list.to_string().contains(&c.secret));

    // Taken ids, invalid ids and values, and non-admins.
    let res = app
        .post_json(
            "/v1/admin/clients",
            &json!({"client_id": "reports"}),
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(
        assert_problem(res, StatusCode::CONFLICT).await["code"],
        "client_id_taken"
    );
    for body in [
        json!({"client_id": "Bad Id"}),
        json!({"client_id": uuid::Uuid::new_v4().to_string()}),
        json!({"client_id": "ok-id", "scopes": ["a b"]}),
        json!({"client_id": "ok-id", "audiences": ["\""]}),
    ] {
        let res = app
            .post_json("/v1/admin/clients", &body, Some(&admin.access_token))
            .await;
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let res = app
        .post_json(
            "/v1/admin/clients",
            &json!({"scopes": []}),
            Some(&admin.access_token),
        )
        .await;
    assert_problem(res, StatusCode::BAD_REQUEST).await;
    let (_, user) = app.new_user().await;
    let res = app
        .post_json(
            "/v1/admin/clients",
            &json!({"client_id": "mine"}),
            Some(&user.access_token),
        )
        .await;
    assert_problem(res, StatusCode::FORBIDDEN).await;
    let res = app
        .get("/v1/admin/clients/nobody", Some(&admin.access_token))
        .await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
    // A client's own token is no admin.
    let token = client_token(&app, &c).await;
    let res = app.get("/v1/admin/clients", Some(&token)).await;
    assert_problem(res, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn a_rotated_secret_overlaps_with_the_old_one_only_as_long_as_asked() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let c = register(&app, &admin, json!({"client_id": "rotating"})).await;
    let rotate = |ttl: Value| {
        let app = &app;
        let admin = &admin;
        async move {
            let res = app
                .post_json(
                    "/v1/admin/clients/rotating/secret",
                    &json!({"previous_secret_ttl": ttl}),
                    Some(&admin.access_token),
                )
                .await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()["cache-control"], "no-store");
            let v: Value = res.json().await.unwrap();
            v["client_secret"].as_str().unwrap().to_owned()
        }
    };
    // With an overlap both secrets work: the client's replicas move over without a failure.
    let second = rotate(json!(3600)).await;
    assert_ne!(second, c.secret);
    assert_eq!(
        token_basic(&app, &c.id, &c.secret, &[]).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        token_basic(&app, &c.id, &second, &[]).await.status(),
        StatusCode::OK
    );
    // Without one, only the newest works; the one before is gone too.
    let third = rotate(json!(0)).await;
    for old in [&c.secret, &second] {
        let res = token_basic(&app, &c.id, old, &[]).await;
        assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    assert_eq!(
        token_basic(&app, &c.id, &third, &[]).await.status(),
        StatusCode::OK
    );
    // Out-of-range overlaps are refused, and nothing changes.
    let res = app
        .post_json(
            "/v1/admin/clients/rotating/secret",
            &json!({"previous_secret_ttl": -1}),
            Some(&admin.access_token),
        )
        .await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        token_basic(&app, &c.id, &third, &[]).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn introspection_tells_active_tokens_from_expired_revoked_and_garbage() {
    let app = TestApp::builder()
        .with_admin()
        .env("AUTH_ACCESS_TOKEN_TTL", "2")
        .env("AUTH_LEEWAY", "0")
        .spawn()
        .await;
    let admin = app.admin_tokens().await;
    let rs = register(
        &app,
        &admin,
        json!({"client_id": "resource-server", "scopes": ["orders:read"]}),
    )
    .await;

    // A user's token: active with its claims.
    let (_, user) = app.new_user().await;
    let v = introspect(&app, &rs, &user.access_token).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["principal"], "user");
    assert_eq!(v["token_type"], "Bearer");
    let c = claims(&user.access_token);
    for k in ["sub", "client_id", "sid", "jti", "exp", "iat", "iss", "aud"] {
        assert_eq!(v[k], c[k], "{k}");
    }
    // A client's own token.
    let own = client_token(&app, &rs).await;
    let v = introspect(&app, &rs, &own).await;
    assert_eq!(
        (v["active"].clone(), v["principal"].clone()),
        (json!(true), json!("client"))
    );
    assert_eq!(v["sub"], "resource-server");
    assert_eq!(v["scope"], "orders:read");

    // Revoked (logout), a refresh token, garbage: inactive, and nothing more said.
    let res = app
        .client
        .post(app.url("/v1/logout"))
        .bearer_auth(&user.access_token)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    for token in [
        user.access_token.as_str(),
        user.refresh_token.as_str(),
        "garbage",
        "a.b.c",
    ] {
        assert_eq!(introspect(&app, &rs, token).await, json!({"active": false}));
    }
    // Expired.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(introspect(&app, &rs, &own).await, json!({"active": false}));

    // Only registered clients may ask; the token is required.
    let res = app
        .post_form("/v1/introspect", &[("token", "x")], None)
        .await;
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let res = app
        .post_form(
            "/v1/introspect",
            &[
                ("token", "x"),
                ("client_id", &rs.id),
                ("client_secret", "wrong"),
            ],
            None,
        )
        .await;
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let res = app
        .post_form(
            "/v1/introspect",
            &[("client_id", &rs.id), ("client_secret", &rs.secret)],
            None,
        )
        .await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn disabling_narrowing_or_deleting_a_client_revokes_its_tokens() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let rs = register(&app, &admin, json!({"client_id": "introspector"})).await;
    let c = register(
        &app,
        &admin,
        json!({"client_id": "worker", "scopes": ["a", "b"]}),
    )
    .await;
    let patch = |body: Value| {
        let app = &app;
        let admin = &admin;
        async move {
            app.client
                .patch(app.url("/v1/admin/clients/worker"))
                .bearer_auth(&admin.access_token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };

    // A rename revokes nothing.
    let before = client_token(&app, &c).await;
    let res = patch(json!({"name": "Worker"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(introspect(&app, &rs, &before).await["active"], true);

    // Narrowed scopes: the old token dies; a new one carries the new scopes.
    let res = patch(json!({"scopes": ["a"]})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(introspect(&app, &rs, &before).await["active"], false);
    let after = client_token(&app, &c).await;
    let v = introspect(&app, &rs, &after).await;
    assert_eq!(
        (v["active"].clone(), v["scope"].clone()),
        (json!(true), json!("a"))
    );

    // Disabled: its tokens die and it cannot authenticate; enabled again, it can.
    let res = patch(json!({"disabled": true})).await;
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["disabled"], true);
    assert_eq!(introspect(&app, &rs, &after).await["active"], false);
    let res = token_basic(&app, &c.id, &c.secret, &[]).await;
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    patch(json!({"disabled": false})).await;
    let again = client_token(&app, &c).await;
    assert_eq!(introspect(&app, &rs, &again).await["active"], true);
    // Nothing to change, and bad values.
    assert_problem(patch(json!({})).await, StatusCode::BAD_REQUEST).await;
    assert_problem(
        patch(json!({"scopes": ["a b"]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    // Deleted: gone, its tokens revoked.
    let res = app
        .client
        .delete(app.url("/v1/admin/clients/worker"))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(introspect(&app, &rs, &again).await["active"], false);
    let res = token_basic(&app, &c.id, &c.secret, &[]).await;
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let res = app
        .client
        .delete(app.url("/v1/admin/clients/worker"))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::NOT_FOUND).await;
    // Registered again under the same id, the new client's tokens are not covered by the old
    // revocation.
    let reborn = register(&app, &admin, json!({"client_id": "worker"})).await;
    let fresh = client_token(&app, &reborn).await;
    assert_eq!(introspect(&app, &rs, &fresh).await["active"], true);
}

#[tokio::test]
async fn failed_client_authentication_is_throttled_per_address() {
    let app = TestApp::builder()
        .with_admin()
        .env("AUTH_THROTTLE_TOKEN_FAILURES", "3/60s")
        .spawn()
        .await;
    let admin = app.admin_tokens().await;
    let c = register(&app, &admin, json!({"client_id": "guessed"})).await;
    for i in 0..3 {
        let res = token_basic(&app, &c.id, &format!("guess-{i}"), &[]).await;
        assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    // Even the right secret waits now, at the token endpoint and at introspection alike; a
    // refresh (another counter) is not held back.
    let res = token_basic(&app, &c.id, &c.secret, &[]).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_oauth_error(res, StatusCode::TOO_MANY_REQUESTS, "slow_down").await;
    let res = app
        .client
        .post(app.url("/v1/introspect"))
        .header("authorization", basic(&c.id, &c.secret))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, StatusCode::TOO_MANY_REQUESTS, "slow_down").await;
    let (_, user) = app.new_user().await;
    assert_eq!(
        app.refresh(&user.refresh_token).await.status(),
        StatusCode::OK
    );
}

/// Apps that sign users in: a public client has no secret and cannot use client credentials;
/// redirect URIs must be absolute, canonical, without fragment or userinfo; the rules hold for
/// registration and for changes alike.
#[tokio::test]
async fn sign_in_clients_register_with_checked_redirect_uris_and_grants() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let res = app
        .post_json(
            "/v1/admin/clients",
            &json!({"client_id": "spa", "type": "public", "first_party": true,
                    "redirect_uris": ["http://localhost:5173/callback", "http://127.0.0.1/cb"],
                    "post_logout_redirect_uris": ["http://localhost:5173/"]}),
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    assert!(v.get("client_secret").is_none(), "a public client: {v}");
    assert_eq!(v["type"], "public");
    assert_eq!(v["first_party"], true);
    assert_eq!(
        v["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        v["redirect_uris"],
        json!(["http://127.0.0.1/cb", "http://localhost:5173/callback"])
    );
    assert_eq!(
        v["scopes"],
        json!(["email", "offline_access", "openid", "profile"])
    );

    // A public client cannot authenticate, rotate a secret or use client credentials.
    let res = token_basic(&app, "spa", "", &[]).await;
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let res = app
        .post_json(
            "/v1/admin/clients/spa/secret",
            &json!({}),
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(
        assert_problem(res, StatusCode::CONFLICT).await["code"],
        "public_client"
    );

    // A confidential client that signs users in gets a secret and the code grant.
    let web = register(
        &app,
        &admin,
        json!({"client_id": "web", "redirect_uris": ["https://app.example.com/cb"],
               "backchannel_logout_uri": "https://app.example.com/bcl"}),
    )
    .await;
    assert_eq!(web.secret.len(), 43);
    let v: Value = app
        .get("/v1/admin/clients/web", Some(&admin.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["type"], "confidential");
    assert_eq!(v["first_party"], false);
    assert_eq!(v["backchannel_logout_uri"], "https://app.example.com/bcl");
    // It may not use client credentials unless it was given that grant.
    let res = token_basic(&app, &web.id, &web.secret, &[]).await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    // A client registered as before: client credentials only.
    let svc = register(&app, &admin, json!({"client_id": "svc"})).await;
    let v: Value = app
        .get("/v1/admin/clients/svc", Some(&admin.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["grant_types"], json!(["client_credentials"]));
    assert_eq!(v["redirect_uris"], json!([]));
    client_token(&app, &svc).await;

    for (body, code) in [
        (
            json!({"client_id": "a1", "type": "public"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_id": "a1", "type": "public", "grant_types": ["client_credentials", "authorization_code"], "redirect_uris": ["https://a.example/cb"]}),
            "invalid_grant_types",
        ),
        (
            json!({"client_id": "a1", "grant_types": ["authorization_code"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_id": "a1", "grant_types": ["password"], "redirect_uris": ["https://a.example/cb"]}),
            "invalid_grant_types",
        ),
        (
            json!({"client_id": "a1", "grant_types": ["client_credentials"], "redirect_uris": ["https://a.example/cb"]}),
            "invalid_grant_types",
        ),
        (
            json!({"client_id": "a1", "grant_types": ["client_credentials", "refresh_token"]}),
            "invalid_grant_types",
        ),
        (
            json!({"client_id": "a1", "redirect_uris": ["/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_id": "a1", "redirect_uris": ["https://a.example/cb#x"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_id": "a1", "redirect_uris": ["https://u:p@a.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_id": "a1", "redirect_uris": ["https://A.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_id": "a1", "redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_id": "a1", "redirect_uris": ["https://a.example/cb"], "backchannel_logout_uri": "com.example.app:/bcl"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_id": "a1", "post_logout_redirect_uris": ["https://a.example/"]}),
            "invalid_grant_types",
        ),
    ] {
        let res = app
            .post_json("/v1/admin/clients", &body, Some(&admin.access_token))
            .await;
        let p = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["code"], code, "{body}: {p}");
    }
    assert_eq!(
        app.get("/v1/admin/clients/a1", Some(&admin.access_token))
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "nothing half-registered"
    );

    // Changes: the same checks; the type is fixed; narrowing revokes the client's tokens.
    let patch = |body: Value| {
        let app = &app;
        let token = admin.access_token.clone();
        async move {
            app.client
                .patch(app.url("/v1/admin/clients/spa"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let res = patch(json!({"type": "confidential"})).await;
    assert_eq!(
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "type_fixed"
    );
    let res = patch(json!({"redirect_uris": ["https://a.example/cb#x"]})).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    let res = patch(json!({"redirect_uris": []})).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    let before: Value = app
        .get("/v1/admin/clients/spa", Some(&admin.access_token))
        .await
        .json()
        .await
        .unwrap();
    let res =
        patch(json!({"first_party": false, "redirect_uris": ["http://localhost:5173/callback"]}))
            .await;
    assert_eq!(res.status(), StatusCode::OK);
    let after: Value = res.json().await.unwrap();
    assert_eq!(after["first_party"], false);
    assert_eq!(
        after["redirect_uris"],
        json!(["http://localhost:5173/callback"])
    );
    assert!(
        after["tokens_not_before"].as_i64() > before["tokens_not_before"].as_i64(),
        "a removed redirect URI revokes: {after}"
    );
}

/// `AUTH_BOOTSTRAP_CLIENTS_FILE`: public clients registered at start, `{issuer}` filled in;
/// brought to the file's settings at the next start; a confidential or misspelt entry stops
/// the start with its reason.
#[tokio::test]
async fn public_clients_are_provisioned_from_a_file_at_every_start() {
    let dir = std::env::temp_dir().join(format!("clients-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("clients.json");
    let write = |body: Value| std::fs::write(&file, body.to_string()).unwrap();
    write(
        json!([{"client_id": "demo", "type": "public", "first_party": true,
                  "redirect_uris": ["{issuer}/app/"], "post_logout_redirect_uris": ["{issuer}/app/"]}]),
    );
    let path = file.to_str().unwrap().to_owned();
    let app = TestApp::builder()
        .with_admin()
        .env("AUTH_BOOTSTRAP_CLIENTS_FILE", &path)
        .spawn()
        .await;
    let admin = app.admin_tokens().await;
    let v: Value = app
        .get("/v1/admin/clients/demo", Some(&admin.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["type"], "public");
    assert_eq!(v["redirect_uris"], json!([format!("{ISSUER}/app/")]));
    assert_eq!(v["first_party"], true);

    // Changed, then started again (another replica on the same stores): the client follows.
    write(
        json!([{"client_id": "demo", "type": "public", "first_party": false,
                  "redirect_uris": ["{issuer}/app/", "{issuer}/other/"]}]),
    );
    let again = TestApp::builder()
        .sharing(&app)
        .env("AUTH_BOOTSTRAP_CLIENTS_FILE", &path)
        .spawn()
        .await;
    let v: Value = again
        .get("/v1/admin/clients/demo", Some(&admin.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["first_party"], false);
    assert_eq!(
        v["redirect_uris"],
        json!([format!("{ISSUER}/app/"), format!("{ISSUER}/other/")])
    );

    for (body, reason) in [
        (
            json!([{"client_id": "svc", "redirect_uris": ["{issuer}/cb"]}]),
            "public",
        ),
        (
            json!([{"client_id": "x1", "type": "public", "redirect_uri": ["{issuer}/cb"]}]),
            "unknown field",
        ),
        (
            json!([{"client_id": "x2", "type": "public", "redirect_uris": ["/cb"]}]),
            "absolute URI",
        ),
        (json!({"client_id": "x3"}), "JSON list"),
    ] {
        write(body.clone());
        let e = TestApp::builder()
            .sharing(&app)
            .env("AUTH_BOOTSTRAP_CLIENTS_FILE", &path)
            .try_spawn()
            .await
            .err()
            .unwrap_or_else(|| panic!("{body} was accepted"));
        assert!(format!("{e:#}").contains(reason), "{body}: {e:#}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
