//! `POST /v1/token` with `grant_type=refresh_token`: rotation, reuse, lifetimes, re-reading the user.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, Tokens, assert_oauth_error, claims};

#[tokio::test]
async fn refresh_rotates_and_the_new_pair_works() {
    let app = TestApp::spawn().await;
    let (_, first) = app.new_user().await;
    let res = app.refresh(&first.refresh_token).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let second: Tokens = res.json().await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.token_type, "Bearer");
    assert_eq!(second.expires_in, 900);
    assert_eq!(
        claims(&second.access_token)["sid"],
        claims(&first.access_token)["sid"],
        "same session"
    );
    assert_eq!(app.me_status(&second.access_token).await, StatusCode::OK);
    let third: Tokens = app
        .refresh(&second.refresh_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(app.me_status(&third.access_token).await, StatusCode::OK);
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_session() {
    let app = TestApp::spawn().await;
    let (name, first) = app.new_user().await;
    let other_session = app.login(&name, PASSWORD).await;
    let second: Tokens = app
        .refresh(&first.refresh_token)
        .await
        .json()
        .await
        .unwrap();
    // The thief replays the old token.
    assert_oauth_error(
        app.refresh(&first.refresh_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // Every token of that session is dead: the legitimate client's new pair too.
    assert_eq!(
        app.me_status(&second.access_token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.me_status(&first.access_token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_oauth_error(
        app.refresh(&second.refresh_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // Other sessions of the user are untouched.
    assert_eq!(
        app.me_status(&other_session.access_token).await,
        StatusCode::OK
    );
    assert_eq!(
        app.refresh(&other_session.refresh_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn within_the_grace_window_a_retry_is_refused_without_revoking() {
    let app = TestApp::builder()
        .env("AUTH_REFRESH_REUSE_GRACE", "30")
        .spawn()
        .await;
    let (_, first) = app.new_user().await;
    let second: Tokens = app
        .refresh(&first.refresh_token)
        .await
        .json()
        .await
        .unwrap();
    assert_oauth_error(
        app.refresh(&first.refresh_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.me_status(&second.access_token).await,
        StatusCode::OK,
        "session kept"
    );
    assert_eq!(
        app.refresh(&second.refresh_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn refresh_rereads_roles_and_the_disabled_flag() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let (_, user) = app.new_user().await;
    let id = app.user_id(&user.access_token).await;
    let patch = |body: Value| {
        app.client
            .patch(app.url(&format!("/v1/admin/users/{id}")))
            .bearer_auth(&admin.access_token)
            .json(&body)
            .send()
    };
    assert_eq!(
        patch(json!({"roles": ["user", "billing"]}))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let refreshed: Tokens = app.refresh(&user.refresh_token).await.json().await.unwrap();
    assert_eq!(
        claims(&refreshed.access_token)["roles"],
        json!(["billing", "user"])
    );
    assert_eq!(
        app.me_status(&refreshed.access_token).await,
        StatusCode::OK,
        "issued after the change, so not revoked by it"
    );

    assert_eq!(
        patch(json!({"disabled": true})).await.unwrap().status(),
        StatusCode::OK
    );
    assert_oauth_error(
        app.refresh(&refreshed.refresh_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn idle_sessions_expire_with_the_refresh_token() {
    let app = TestApp::builder()
        .env("AUTH_REFRESH_TOKEN_TTL", "2")
        .env("AUTH_LEEWAY", "0")
        .spawn()
        .await;
    let (_, t) = app.new_user().await;
    assert!(t.refresh_expires_in <= 2);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_oauth_error(
        app.refresh(&t.refresh_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn rotation_never_extends_the_absolute_session_limit() {
    let app = TestApp::builder()
        .env("AUTH_REFRESH_TOKEN_TTL", "4")
        .env("AUTH_SESSION_MAX_TTL", "8")
        .env("AUTH_ACCESS_TOKEN_TTL", "60")
        .env("AUTH_LEEWAY", "0")
        .spawn()
        .await;
    let (_, mut t) = app.new_user().await;
    let login_exp = claims(&t.access_token)["iat"].as_i64().unwrap() + 8;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let res = app.refresh(&t.refresh_token).await;
        assert_eq!(res.status(), StatusCode::OK);
        let answered = shared::unix_now();
        t = res.json().await.unwrap();
        // The opaque token's expiry, as the answer states it.
        let refresh_exp = answered + t.refresh_expires_in;
        assert!(
            refresh_exp <= login_exp + 1,
            "refresh exp {refresh_exp} beyond session end {login_exp}"
        );
        assert!(
            claims(&t.access_token)["exp"].as_i64().unwrap() <= login_exp,
            "access token outlives its session"
        );
    }
    // Wait out the session's absolute end (by the clock, so a slow machine cannot cut it short).
    let wait = (login_exp + 1 - shared::unix_now()).max(0) as u64;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_oauth_error(
        app.refresh(&t.refresh_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn refresh_can_narrow_scope_but_not_widen_it() {
    let app = TestApp::spawn().await;
    let name = "scoped";
    app.register(name, PASSWORD).await;
    let res = app
        .post_form(
            "/v1/login",
            &[
                ("username", name),
                ("password", PASSWORD),
                ("scope", "profile"),
            ],
            None,
        )
        .await;
    let t: Tokens = res.json().await.unwrap();
    assert_eq!(t.scope.as_deref(), Some("profile"));
    let res = app
        .post_form(
            "/v1/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &t.refresh_token),
                ("scope", "profile orders:read"),
            ],
            None,
        )
        .await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_scope").await;
    // Refused before spending: the token still works.
    let t2: Tokens = app.refresh(&t.refresh_token).await.json().await.unwrap();
    assert_eq!(t2.scope.as_deref(), Some("profile"));
}

#[tokio::test]
async fn a_refresh_token_is_bound_to_its_client() {
    let app = TestApp::builder()
        .env("AUTH_CLIENT_IDS", "web,mobile")
        .spawn()
        .await;
    app.register("bound", PASSWORD).await;
    let res = app
        .post_form(
            "/v1/login",
            &[
                ("username", "bound"),
                ("password", PASSWORD),
                ("client_id", "web"),
            ],
            None,
        )
        .await;
    let t: Tokens = res.json().await.unwrap();
    let res = app
        .post_form(
            "/v1/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &t.refresh_token),
                ("client_id", "mobile"),
            ],
            None,
        )
        .await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let res = app
        .post_form(
            "/v1/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &t.refresh_token),
                ("client_id", "web"),
            ],
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc6749() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    let res = app
        .post_form("/v1/token", &[("refresh_token", &t.refresh_token)], None)
        .await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    for grant in ["password", "implicit", ""] {
        let res = app
            .post_form(
                "/v1/token",
                &[("grant_type", grant), ("refresh_token", &t.refresh_token)],
                None,
            )
            .await;
        assert_oauth_error(res, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    }
    // Client credentials is a grant now, but a refresh token is no client authentication.
    let res = app
        .post_form(
            "/v1/token",
            &[
                ("grant_type", "client_credentials"),
                ("refresh_token", &t.refresh_token),
            ],
            None,
        )
        .await;
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let res = app
        .post_form("/v1/token", &[("grant_type", "refresh_token")], None)
        .await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    // An access token is never a refresh token.
    assert_oauth_error(
        app.refresh(&t.access_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // A multi-byte character across byte 12 of `typ` (found by the token_raw fuzz target).
    let multibyte_typ = format!(
        "{}.e30.c2ln",
        shared::jws::b64_encode(r#"{"alg":"RS256","typ":"applicationé/rt+jwt","kid":"k"}"#)
    );
    for junk in [
        "x",
        "a.b.c",
        &"A".repeat(10_000),
        "eyJhbGciOiJub25lIn0.e30.",
        &multibyte_typ,
    ] {
        assert_oauth_error(
            app.refresh(junk).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
    // None of that spent the real token.
    assert_eq!(app.refresh(&t.refresh_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refresh_token_is_never_accepted_as_an_access_token() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    let res = app.me(&t.refresh_token).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let www = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        www.starts_with("Bearer ") && www.contains("error=\"invalid_token\""),
        "{www}"
    );
}

/// A signed refresh token issued before refresh tokens became opaque still works after the
/// upgrade: it rotates once, into an opaque one, and is then spent like any other (presented
/// again, it ends the session, the new opaque token with it).
#[tokio::test]
async fn a_signed_refresh_token_of_an_earlier_version_rotates_once_into_an_opaque_one() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    let at = claims(&t.access_token);
    let (sub, client) = (
        at["sub"].as_str().unwrap(),
        at["client_id"].as_str().unwrap(),
    );
    let signed = crate::helpers::legacy_refresh_token(&app, sub, client, "").await;
    assert_eq!(crate::helpers::header(&signed)["typ"], "rt+jwt");

    let res = app.refresh(&signed).await;
    assert_eq!(res.status(), StatusCode::OK);
    let pair: Tokens = res.json().await.unwrap();
    assert!(
        pair.refresh_token
            .starts_with(shared::claims::REFRESH_TOKEN_PREFIX),
        "{}",
        pair.refresh_token
    );
    assert_eq!(claims(&pair.access_token)["sub"], sub);
    assert_eq!(app.me_status(&pair.access_token).await, StatusCode::OK);
    // The opaque one rotates in turn.
    let res = app.refresh(&pair.refresh_token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let newest: Tokens = res.json().await.unwrap();
    // The signed one is spent: presenting it again is reuse, and ends the session.
    assert_oauth_error(
        app.refresh(&signed).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_oauth_error(
        app.refresh(&newest.refresh_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // The user's other session (the login's) is untouched.
    assert_eq!(app.refresh(&t.refresh_token).await.status(), StatusCode::OK);
}

/// A signed refresh token of an earlier version is also revoked (RFC 7009) by what it is.
#[tokio::test]
async fn a_signed_refresh_token_of_an_earlier_version_can_be_revoked() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    let at = claims(&t.access_token);
    let (sub, client) = (
        at["sub"].as_str().unwrap(),
        at["client_id"].as_str().unwrap(),
    );
    let signed = crate::helpers::legacy_refresh_token(&app, sub, client, "").await;
    let res = app
        .post_form("/v1/revoke", &[("token", signed.as_str())], None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_oauth_error(
        app.refresh(&signed).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

/// Opaque tokens that are not ours, in each way one can fail, are `invalid_grant` (and counted
/// as `malformed` when the checksum refuses them, before any lookup).
#[tokio::test]
async fn opaque_refresh_tokens_that_are_not_ours_are_invalid_grants() {
    let app = TestApp::builder()
        .env("AUTH_ADMIN_LISTEN", "127.0.0.1:0")
        .spawn()
        .await;
    let (_, t) = app.new_user().await;
    let rt = &t.refresh_token;
    let body = &rt[shared::claims::REFRESH_TOKEN_PREFIX.len()..];
    let flipped = {
        let mut b = rt.clone().into_bytes();
        let last = b.len() - 1;
        b[last] = if b[last] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let garbage = [
        flipped,
        format!("{rt}A"),
        rt[..rt.len() - 1].to_owned(),
        format!("AGRT_{body}"),
        format!("{}{}", shared::claims::REFRESH_TOKEN_PREFIX, "%".repeat(48)),
        shared::claims::REFRESH_TOKEN_PREFIX.to_owned(),
    ];
    for g in &garbage {
        assert_oauth_error(
            app.refresh(g).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
    let admin = app.admin.clone().expect("admin listener");
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let malformed = metrics
        .lines()
        .find(|l| l.starts_with("auth_refreshes_total{outcome=\"malformed\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    // Five of the six carry the prefix (one is upper-cased, which is no opaque token at all and
    // fails as a JWT would: also malformed).
    assert!(malformed.ends_with(" 6"), "{malformed}");
    // The real token was untouched by all of it.
    assert_eq!(app.refresh(rt).await.status(), StatusCode::OK);
}
