//! The admin API.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, Tokens, assert_problem, claims};

async fn patch(app: &TestApp, admin: &Tokens, id: &str, body: Value) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/v1/admin/users/{id}")))
        .bearer_auth(&admin.access_token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn bootstrap_admin_is_created_once_into_an_empty_table() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    assert_eq!(
        claims(&admin.access_token)["roles"],
        json!(["admin", "user"])
    );
    // Restart with another bootstrap name: not created (the table is not empty).
    app.stop().await;
    let app2 = TestApp::builder()
        .sharing(&app)
        .env("AUTH_BOOTSTRAP_ADMIN_USERNAME", "root2")
        .env("AUTH_BOOTSTRAP_ADMIN_PASSWORD", PASSWORD)
        .spawn()
        .await;
    assert_eq!(
        app2.login_response("root2", PASSWORD).await.status(),
        StatusCode::BAD_REQUEST
    );
    // Even an emptied table does not get it back: it is created once.
    let (client, conn) = tokio_postgres::connect(
        &crate::helpers::url_for_db(&app.resources.db),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    client.batch_execute("DELETE FROM users").await.unwrap();
    app2.stop().await;
    let app3 = TestApp::builder().sharing(&app).with_admin().spawn().await;
    assert_eq!(
        app3.login_response("root", PASSWORD).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_weak_bootstrap_password_stops_the_service_with_a_reason() {
    let err = TestApp::builder()
        .env("AUTH_BOOTSTRAP_ADMIN_USERNAME", "root")
        .env("AUTH_BOOTSTRAP_ADMIN_PASSWORD", "short")
        .try_spawn()
        .await
        .err()
        .expect("refused");
    assert!(
        format!("{err:#}").contains("AUTH_BOOTSTRAP_ADMIN_PASSWORD"),
        "{err:#}"
    );
}

#[tokio::test]
async fn admin_endpoints_need_a_token_with_the_admin_role() {
    let app = TestApp::spawn().await;
    let (_, user) = app.new_user().await;
    let res = app.get("/v1/admin/users", None).await;
    assert_problem(res, StatusCode::UNAUTHORIZED).await;
    let res = app.get("/v1/admin/users", Some(&user.access_token)).await;
    let www = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(www.contains("error=\"insufficient_scope\""), "{www}");
    assert_eq!(
        assert_problem(res, StatusCode::FORBIDDEN).await["code"],
        "insufficient_scope"
    );
}

#[tokio::test]
async fn users_are_listed_with_keyset_pagination() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    for i in 0..5 {
        app.register(&format!("member{i}"), PASSWORD).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/users?limit=2&cursor={c}"),
            None => "/v1/admin/users?limit=2".into(),
        };
        let page: Value = app
            .get(&path, Some(&admin.access_token))
            .await
            .json()
            .await
            .unwrap();
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        seen.extend(
            users
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 6);
    assert_eq!(seen[0], "root", "creation order");
    assert_problem(
        app.get("/v1/admin/users?cursor=bogus", Some(&admin.access_token))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        app.get("/v1/admin/users?limit=0", Some(&admin.access_token))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        app.get("/v1/admin/users?limit=abc", Some(&admin.access_token))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn changing_roles_revokes_access_tokens_but_keeps_sessions() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let (_, user) = app.new_user().await;
    let id = app.user_id(&user.access_token).await;
    let res = patch(&app, &admin, &id, json!({"roles": ["user", "support"]})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["roles"],
        json!(["support", "user"])
    );
    assert_eq!(
        app.me_status(&user.access_token).await,
        StatusCode::UNAUTHORIZED,
        "old roles must not linger"
    );
    let fresh: Tokens = app.refresh(&user.refresh_token).await.json().await.unwrap();
    assert_eq!(
        claims(&fresh.access_token)["roles"],
        json!(["support", "user"])
    );
    assert_eq!(app.me_status(&fresh.access_token).await, StatusCode::OK);
    let res = patch(&app, &admin, &id, json!({"roles": ["Not A Role"]})).await;
    assert_eq!(
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "invalid_role"
    );
    assert_problem(
        patch(&app, &admin, &id, json!({})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn disabling_ends_every_session_and_blocks_login_until_enabled() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let (name, user) = app.new_user().await;
    let id = app.user_id(&user.access_token).await;
    assert_eq!(
        patch(&app, &admin, &id, json!({"disabled": true}))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.me_status(&user.access_token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&user.refresh_token).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.login_response(&name, PASSWORD).await.status(),
        StatusCode::BAD_REQUEST
    );
    let sessions: Value = app
        .get(
            &format!("/v1/admin/users/{id}/sessions"),
            Some(&admin.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["sessions"], json!([]));
    assert_eq!(
        patch(&app, &admin, &id, json!({"disabled": false}))
            .await
            .status(),
        StatusCode::OK
    );
    let t = app.login(&name, PASSWORD).await;
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::OK);
}

#[tokio::test]
async fn admins_cannot_lock_themselves_out() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let id = app.user_id(&admin.access_token).await;
    for body in [json!({"disabled": true}), json!({"roles": ["user"]})] {
        assert_eq!(
            assert_problem(patch(&app, &admin, &id, body).await, StatusCode::CONFLICT).await["code"],
            "self_lockout"
        );
    }
    let res = app
        .client
        .delete(app.url(&format!("/v1/admin/users/{id}")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn deleting_a_user_revokes_their_tokens() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let (name, user) = app.new_user().await;
    let id = app.user_id(&user.access_token).await;
    let res = app
        .client
        .delete(app.url(&format!("/v1/admin/users/{id}")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me_status(&user.access_token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&user.refresh_token).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.login_response(&name, PASSWORD).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_problem(
        app.get(&format!("/v1/admin/users/{id}"), Some(&admin.access_token))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let res = app
        .client
        .delete(app.url(&format!("/v1/admin/users/{id}")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::NOT_FOUND).await;
    assert_problem(
        app.get("/v1/admin/users/not-a-uuid", Some(&admin.access_token))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn admin_can_log_a_user_out_everywhere() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let (name, a) = app.new_user().await;
    let b = app.login(&name, PASSWORD).await;
    let id = app.user_id(&a.access_token).await;
    let res = app
        .client
        .delete(app.url(&format!("/v1/admin/users/{id}/sessions")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["sessions_ended"], 2);
    for t in [&a, &b] {
        assert_eq!(
            app.me_status(&t.access_token).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let fresh = app.login(&name, PASSWORD).await;
    assert_eq!(app.me_status(&fresh.access_token).await, StatusCode::OK);
}
