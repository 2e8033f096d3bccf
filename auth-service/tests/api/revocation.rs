//! `POST /v1/revoke` (RFC 7009) and `POST /v1/logout`.

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, TestApp, Tokens, assert_oauth_error};

#[tokio::test]
async fn revoking_an_access_token_rejects_it_and_nothing_else() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    let res = app
        .post_form("/v1/revoke", &[("token", &t.access_token)], None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.me_status(&t.access_token).await,
        StatusCode::UNAUTHORIZED
    );
    // The session lives on: refreshing gives a working token.
    let fresh: Tokens = app.refresh(&t.refresh_token).await.json().await.unwrap();
    assert_eq!(app.me_status(&fresh.access_token).await, StatusCode::OK);
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_session() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    let res = app
        .post_form(
            "/v1/revoke",
            &[
                ("token", &t.refresh_token),
                ("token_type_hint", "refresh_token"),
            ],
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_oauth_error(
        app.refresh(&t.refresh_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.me_status(&t.access_token).await,
        StatusCode::UNAUTHORIZED,
        "access tokens of the session too"
    );
}

#[tokio::test]
async fn unknown_and_invalid_tokens_get_200() {
    let app = TestApp::spawn().await;
    for token in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        let res = app.post_form("/v1/revoke", &[("token", token)], None).await;
        assert_eq!(res.status(), StatusCode::OK, "{token}");
    }
    let res = app
        .post_form("/v1/revoke", &[("token_type_hint", "access_token")], None)
        .await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn nobody_can_revoke_another_users_token() {
    let app = TestApp::spawn().await;
    let (_, victim) = app.new_user().await;
    let (_, attacker) = app.new_user().await;
    for token in [&victim.access_token, &victim.refresh_token] {
        let res = app
            .post_form(
                "/v1/revoke",
                &[("token", token)],
                Some(&attacker.access_token),
            )
            .await;
        assert_oauth_error(res, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    }
    let res = app
        .post_form(
            "/v1/revoke",
            &[
                ("token", &victim.access_token),
                ("client_id", "someone-else"),
            ],
            None,
        )
        .await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    assert_eq!(app.me_status(&victim.access_token).await, StatusCode::OK);
    assert_eq!(
        app.refresh(&victim.refresh_token).await.status(),
        StatusCode::OK
    );
    // A bad bearer credential on the revoke endpoint is a 401 with a challenge.
    let res = app
        .post_form("/v1/revoke", &[("token", "x")], Some("not-a-token"))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = TestApp::spawn().await;
    let (name, t) = app.new_user().await;
    let other = app.login(&name, PASSWORD).await;
    let res = app
        .post_form("/v1/logout", &[], Some(&t.access_token))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me_status(&t.access_token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_oauth_error(
        app.refresh(&t.refresh_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.me_status(&other.access_token).await,
        StatusCode::OK,
        "other sessions stay"
    );
    // Logging out again with the dead token is a 401, not a 500.
    assert_eq!(
        app.post_form("/v1/logout", &[], Some(&t.access_token))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_everywhere_revokes_every_session_and_new_logins_work_at_once() {
    let app = TestApp::spawn().await;
    let (name, a) = app.new_user().await;
    let b = app.login(&name, PASSWORD).await;
    let res = app
        .post_form("/v1/logout?everywhere=true", &[], Some(&a.access_token))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for t in [&a, &b] {
        assert_eq!(
            app.me_status(&t.access_token).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(&t.refresh_token).await.status(),
            StatusCode::BAD_REQUEST
        );
    }
    // In the same second: a new login's tokens are not covered by the revocation.
    let fresh = app.login(&name, PASSWORD).await;
    assert_eq!(app.me_status(&fresh.access_token).await, StatusCode::OK);
}

#[tokio::test]
async fn logout_needs_a_bearer_token() {
    let app = TestApp::spawn().await;
    let res = app.post_form("/v1/logout", &[], None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"auth\"",
        "no error code without credentials (RFC 6750 §3.1)"
    );
}
