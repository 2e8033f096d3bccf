//! The caller's own account: `/v1/users/me`, password change, session list and deletion.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, Tokens, assert_problem};

#[tokio::test]
async fn me_returns_the_caller() {
    let app = TestApp::spawn().await;
    let (name, t) = app.new_user().await;
    let res = app.me(&t.access_token).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["username"], name.as_str());
    assert_eq!(body["roles"], json!(["user"]));
}

#[tokio::test]
async fn password_change_revokes_every_session_and_returns_a_fresh_pair() {
    let app = TestApp::spawn().await;
    let (name, a) = app.new_user().await;
    let b = app.login(&name, PASSWORD).await;
    let new_pw = "an entirely new passphrase";
    let res = app
        .post_json(
            "/v1/users/me/password",
            &json!({"current_password": PASSWORD, "new_password": new_pw}),
            Some(&a.access_token),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let fresh: Tokens = res.json().await.unwrap();
    assert_eq!(
        app.me_status(&fresh.access_token).await,
        StatusCode::OK,
        "fresh pair works in the same second"
    );
    assert_eq!(
        app.refresh(&fresh.refresh_token).await.status(),
        StatusCode::OK
    );
    for old in [&a, &b] {
        assert_eq!(
            app.me_status(&old.access_token).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(&old.refresh_token).await.status(),
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        app.login_response(&name, PASSWORD).await.status(),
        StatusCode::BAD_REQUEST
    );
    app.login(&name, new_pw).await;
}

#[tokio::test]
async fn password_change_needs_the_current_password_and_a_valid_new_one() {
    let app = TestApp::spawn().await;
    let (name, t) = app.new_user().await;
    let res = app
        .post_json("/v1/users/me/password", &json!({"current_password": "not my password!!", "new_password": "a brand new passphrase"}), Some(&t.access_token))
        .await;
    assert_eq!(
        assert_problem(res, StatusCode::FORBIDDEN).await["code"],
        "invalid_current_password"
    );
    let res = app
        .post_json(
            "/v1/users/me/password",
            &json!({"current_password": PASSWORD, "new_password": "short"}),
            Some(&t.access_token),
        )
        .await;
    assert_eq!(
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "password_too_short"
    );
    let res = app
        .post_json(
            "/v1/users/me/password",
            &json!({"new_password": "a brand new passphrase"}),
            Some(&t.access_token),
        )
        .await;
    assert_problem(res, StatusCode::BAD_REQUEST).await;
    // Nothing changed.
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::OK);
    app.login(&name, PASSWORD).await;
}

#[tokio::test]
async fn sessions_are_listed_and_deletable_by_their_owner_only() {
    let app = TestApp::spawn().await;
    let (name, a) = app.new_user().await;
    let res = app
        .client
        .post(app.url("/v1/login"))
        .header("user-agent", "phone-app/1.0")
        .form(&[("username", name.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let b: Tokens = res.json().await.unwrap();
    let res = app
        .get("/v1/users/me/sessions", Some(&a.access_token))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let list: Value = res.json().await.unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let a_sid = crate::helpers::claims(&a.access_token)["sid"].clone();
    let b_sid = crate::helpers::claims(&b.access_token)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["sid"], a_sid);
    let phone = sessions
        .iter()
        .find(|s| s["sid"] == b_sid.as_str())
        .unwrap();
    assert_eq!(phone["user_agent"], "phone-app/1.0");
    assert_eq!(phone["client_id"], "app");
    assert!(phone["expires_at"].as_i64().unwrap() > phone["created_at"].as_i64().unwrap());

    // Another user cannot end it.
    let (_, stranger) = app.new_user().await;
    let res = app
        .client
        .delete(app.url(&format!("/v1/users/me/sessions/{b_sid}")))
        .bearer_auth(&stranger.access_token)
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::NOT_FOUND).await;
    assert_eq!(app.me_status(&b.access_token).await, StatusCode::OK);

    let res = app
        .client
        .delete(app.url(&format!("/v1/users/me/sessions/{b_sid}")))
        .bearer_auth(&a.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me_status(&b.access_token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&b.refresh_token).await.status(),
        StatusCode::BAD_REQUEST
    );
    let list: Value = app
        .get("/v1/users/me/sessions", Some(&a.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
}
