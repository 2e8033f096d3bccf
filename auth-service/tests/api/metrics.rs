//! `/metrics` on AUTH_ADMIN_LISTEN: parsed by the Prometheus client's own parser, and every
//! counter moves when its action happens.

use std::collections::HashMap;

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, TestApp};

/// The metrics as the reference parser reads them: "name{k=v,...}" → value.
pub async fn scrape(admin: &str) -> HashMap<String, f64> {
    let res = reqwest::get(format!("{admin}/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    let out = testkit::interop::pipe("prom_parse.py", text.as_bytes()).await;
    assert!(
        out.status.success(),
        "the Prometheus parser rejected our metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    let a = after
        .get(key)
        .copied()
        .unwrap_or_else(|| panic!("no {key} in {after:?}"));
    a - before.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_when_their_actions_happen() {
    let app = TestApp::builder()
        .env("AUTH_ADMIN_LISTEN", "127.0.0.1:0")
        .spawn()
        .await;
    let admin = app.admin.clone().expect("admin listener");
    // Not on the public listener.
    assert_eq!(
        app.get("/metrics", None).await.status(),
        StatusCode::NOT_FOUND
    );
    let (name, _) = app.new_user().await;
    let before = scrape(&admin).await;

    let t = app.login(&name, PASSWORD).await;
    assert_eq!(
        app.login_response(&name, "not the password at all")
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.refresh(&t.refresh_token).await.status(), StatusCode::OK);
    assert_eq!(
        app.refresh(&t.refresh_token).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.me_status("garbage").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.me_status(&t.access_token).await,
        StatusCode::UNAUTHORIZED,
        "revoked by the reuse"
    );

    let after = scrape(&admin).await;
    let d = |k: &str| delta(&before, &after, k);
    assert_eq!(d("auth_logins_total{outcome=success}"), 1.0);
    assert_eq!(d("auth_logins_total{outcome=invalid_credentials}"), 1.0);
    assert_eq!(d("auth_refreshes_total{outcome=rotated}"), 1.0);
    assert_eq!(d("auth_refreshes_total{outcome=reuse_detected}"), 1.0);
    assert_eq!(
        d("auth_tokens_issued_total{type=access}"),
        2.0,
        "login + refresh"
    );
    assert_eq!(d("auth_tokens_issued_total{type=refresh}"), 2.0);
    assert_eq!(
        d("auth_token_verification_failures_total{reason=malformed}"),
        1.0
    );
    assert_eq!(
        d("auth_token_verification_failures_total{reason=revoked}"),
        1.0
    );
    assert_eq!(d("auth_argon2_verifications_total{}"), 2.0);
    assert_eq!(d("auth_http_requests_total{code=2xx,route=/v1/login}"), 1.0);
    assert_eq!(d("auth_http_requests_total{code=4xx,route=/v1/login}"), 1.0);
    assert_eq!(
        d("auth_http_requests_total{code=4xx,route=/v1/users/me}"),
        2.0
    );
    assert_eq!(
        d("auth_http_request_duration_seconds_count{route=/v1/token}"),
        2.0
    );
    assert_eq!(after["auth_argon2_queue_depth{}"], 0.0);
    assert!(
        after
            .keys()
            .any(|k| k.starts_with("auth_signing_key_age_seconds{kid=")
                && k.ends_with("state=current}")),
        "{after:?}"
    );
    // The admin listener answers health checks too.
    assert_eq!(
        reqwest::get(format!("{admin}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
}
