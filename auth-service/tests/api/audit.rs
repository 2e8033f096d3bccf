//! The audit trail: logins, reuse detections and admin changes, per user through the admin API.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp};

#[tokio::test]
async fn a_users_recent_audit_events_are_listed_newest_first() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let admin_id = app.user_id(&admin.access_token).await;
    let (name, _) = app.new_user().await;
    assert_eq!(
        app.login_response(&name, "a wrong password here")
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    let t = app.login(&name, PASSWORD).await;
    let id = app.user_id(&t.access_token).await;
    assert_eq!(app.refresh(&t.refresh_token).await.status(), StatusCode::OK);
    assert_eq!(
        app.refresh(&t.refresh_token).await.status(),
        StatusCode::BAD_REQUEST
    );
    let res = app
        .client
        .patch(app.url(&format!("/v1/admin/users/{id}")))
        .bearer_auth(&admin.access_token)
        .json(&json!({"roles": ["user", "support"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let audit: Value = app
        .get(
            &format!("/v1/admin/users/{id}/audit"),
            Some(&admin.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    // new_user() logged in once before the failure.
    assert_eq!(
        kinds,
        [
            "roles_changed",
            "refresh_reuse",
            "login_succeeded",
            "login_failed",
            "login_succeeded"
        ]
    );
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events[0]["actor"], admin_id.as_str());
    assert_eq!(events[0]["detail"]["roles"], json!(["support", "user"]));
    assert_eq!(events[3]["detail"]["reason"], "bad_password");
    assert!(events[0]["at_ms"].as_i64().unwrap() >= events[4]["at_ms"].as_i64().unwrap());
    let limited: Value = app
        .get(
            &format!("/v1/admin/users/{id}/audit?limit=2"),
            Some(&admin.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(limited["events"].as_array().unwrap().len(), 2);
    // Admins only.
    let own = app.login(&name, PASSWORD).await;
    assert_eq!(
        app.get(
            &format!("/v1/admin/users/{id}/audit"),
            Some(&own.access_token)
        )
        .await
        .status(),
        StatusCode::FORBIDDEN
    );
}
