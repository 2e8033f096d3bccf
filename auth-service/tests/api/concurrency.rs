//! Concurrent use of one refresh token: exactly one winner, atomically in Redis.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, Tokens};

async fn race(app: &TestApp, refresh_token: &str, n: usize) -> (Vec<Tokens>, Vec<Value>) {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url, rt, barrier) = (
                app.client.clone(),
                app.url("/v1/token"),
                refresh_token.to_owned(),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                client
                    .post(url)
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", rt.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let (mut won, mut lost) = (Vec::new(), Vec::new());
    for t in tasks {
        let res = t.await.unwrap();
        match res.status() {
            StatusCode::OK => won.push(res.json().await.unwrap()),
            StatusCode::BAD_REQUEST => lost.push(res.json().await.unwrap()),
            other => panic!("unexpected status {other}"),
        }
    }
    (won, lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_refreshes_yield_one_pair_and_a_revoked_session() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    let (won, lost) = race(&app, &t.refresh_token, 20).await;
    assert_eq!(won.len(), 1, "exactly one new pair");
    assert_eq!(lost.len(), 19);
    assert!(lost.iter().all(|b| b["error"] == "invalid_grant"));
    // With grace 0 the losers count as reuse: the session is revoked, winner included.
    assert_eq!(
        app.me_status(&won[0].access_token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&won[0].refresh_token).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_grace_window_concurrent_retries_keep_the_session() {
    let app = TestApp::builder()
        .env("AUTH_REFRESH_REUSE_GRACE", "10")
        .spawn()
        .await;
    let (_, t) = app.new_user().await;
    let (won, lost) = race(&app, &t.refresh_token, 20).await;
    assert_eq!(won.len(), 1);
    assert_eq!(lost.len(), 19);
    assert_eq!(app.me_status(&won[0].access_token).await, StatusCode::OK);
    assert_eq!(
        app.refresh(&won[0].refresh_token).await.status(),
        StatusCode::OK
    );
}
