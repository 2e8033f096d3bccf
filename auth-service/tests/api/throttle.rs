//! Brute-force defence: per client, per account and client, and growing delays per account,
//! shared through the store, with 429 + `Retry-After`, the same answers for existing and unknown
//! accounts, and client addresses that only trusted proxies can name.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, assert_problem};

const WRONG: &str = "not the password at all";

async fn login_from(app: &TestApp, username: &str, password: &str, from: Option<&str>) -> Response {
    let mut req = app
        .client
        .post(app.url("/v1/login"))
        .form(&[("username", username), ("password", password)]);
    if let Some(ip) = from {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await.unwrap()
}

/// Asserts a 429 `slow_down` answer and returns its `Retry-After` (seconds).
async fn assert_slow_down(res: Response) -> u64 {
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    let body = assert_oauth_error(res, StatusCode::TOO_MANY_REQUESTS, "slow_down").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("too many attempts"),
        "{body}"
    );
    retry
}

/// The answer with the parts that differ between two calls (numbers) masked.
async fn shape(res: Response) -> (u16, Vec<String>, Value) {
    let status = res.status().as_u16();
    let mut headers: Vec<String> = res
        .headers()
        .keys()
        .filter(|k| *k != "date")
        .map(|k| k.to_string())
        .collect();
    headers.sort();
    let mut body: Value = res.json().await.unwrap();
    if let Some(d) = body.get_mut("error_description") {
        *d = json!(
            d.as_str()
                .unwrap()
                .replace(|c: char| c.is_ascii_digit(), "#")
        );
    }
    (status, headers, body)
}

#[tokio::test]
async fn guesses_at_one_account_from_one_address_get_429_and_unknown_accounts_answer_the_same() {
    let app = TestApp::builder()
        .env("AUTH_THROTTLE_PER_ACCOUNT_CLIENT", "3/60s")
        .spawn()
        .await;
    app.register("alice", PASSWORD).await;
    let mut existing = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..3 {
        existing.push(shape(login_from(&app, "alice", WRONG, None).await).await);
        unknown.push(shape(login_from(&app, "nobody", WRONG, None).await).await);
    }
    // The fourth attempt is refused before the password is looked at: even the right one.
    existing.push(shape(login_from(&app, "alice", PASSWORD, None).await).await);
    unknown.push(shape(login_from(&app, "nobody", PASSWORD, None).await).await);
    assert_eq!(
        existing, unknown,
        "existing and unknown accounts get the same answers"
    );
    assert_eq!(existing[3].0, 429);
    assert!(existing[3].1.contains(&"retry-after".to_owned()));
    assert_eq!(existing[3].2["error"], "slow_down");
    assert_slow_down(login_from(&app, "alice", PASSWORD, None).await).await;
    assert_eq!(existing[0].0, 400);
    assert_eq!(existing[0].2["error"], "invalid_grant");

    // Another account from the same address is not affected by alice's counter.
    app.register("bob", PASSWORD).await;
    assert_eq!(
        login_from(&app, "bob", PASSWORD, None).await.status(),
        StatusCode::OK
    );
    let metrics = app.state.render_metrics().await;
    assert!(
        metrics.contains(r#"auth_throttled_total{endpoint="login",limit="account_client"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"auth_logins_total{outcome="throttled"} 3"#));
}

#[tokio::test]
async fn a_success_forgets_the_addresss_failed_attempts() {
    let app = TestApp::builder()
        .env("AUTH_THROTTLE_PER_ACCOUNT_CLIENT", "3/60s")
        .spawn()
        .await;
    app.register("carol", PASSWORD).await;
    for _ in 0..2 {
        assert_eq!(
            login_from(&app, "carol", WRONG, None).await.status(),
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        login_from(&app, "carol", PASSWORD, None).await.status(),
        StatusCode::OK
    );
    for _ in 0..3 {
        assert_eq!(
            login_from(&app, "carol", WRONG, None).await.status(),
            StatusCode::BAD_REQUEST,
            "a fresh count after the success"
        );
    }
    assert_slow_down(login_from(&app, "carol", WRONG, None).await).await;
}

#[tokio::test]
async fn one_address_spraying_many_accounts_is_stopped_per_client() {
    let app = TestApp::builder()
        .env("AUTH_THROTTLE_PER_CLIENT", "5/60s")
        .env("AUTH_TRUSTED_PROXIES", "127.0.0.1")
        .spawn()
        .await;
    for i in 0..5 {
        let res = login_from(&app, &format!("user{i}"), WRONG, Some("198.51.100.1")).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    assert_slow_down(login_from(&app, "user9", WRONG, Some("198.51.100.1")).await).await;
    // Another client (vouched for by the trusted proxy) is counted on its own.
    assert_eq!(
        login_from(&app, "user9", WRONG, Some("198.51.100.2"))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    // IPv6 clients are counted per /64: rotating the interface id does not help.
    for i in 0..5 {
        let ip = format!("2001:db8:0:1::{i:x}");
        let res = login_from(&app, &format!("v6user{i}"), WRONG, Some(&ip)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    assert_slow_down(login_from(&app, "v6user9", WRONG, Some("2001:db8:0:1::ffff")).await).await;
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_resets_nothing() {
    // No trusted proxies: the socket's address is the client, whatever the header says.
    let app = TestApp::builder()
        .env("AUTH_THROTTLE_PER_ACCOUNT_CLIENT", "2/60s")
        .spawn()
        .await;
    app.register("dave", PASSWORD).await;
    for ip in ["1.1.1.1", "2.2.2.2"] {
        assert_eq!(
            login_from(&app, "dave", WRONG, Some(ip)).await.status(),
            StatusCode::BAD_REQUEST
        );
    }
    assert_slow_down(login_from(&app, "dave", WRONG, Some("3.3.3.3")).await).await;
    // Trusted proxies only vouch for the entry they appended: a client's own prefix is ignored.
    let app = TestApp::builder()
        .env("AUTH_THROTTLE_PER_ACCOUNT_CLIENT", "2/60s")
        .env("AUTH_TRUSTED_PROXIES", "127.0.0.1")
        .spawn()
        .await;
    app.register("dave", PASSWORD).await;
    for spoof in ["1.1.1.1", "2.2.2.2"] {
        let chain = format!("{spoof}, 203.0.113.5");
        assert_eq!(
            login_from(&app, "dave", WRONG, Some(&chain)).await.status(),
            StatusCode::BAD_REQUEST
        );
    }
    assert_slow_down(login_from(&app, "dave", WRONG, Some("3.3.3.3, 203.0.113.5")).await).await;
}

#[tokio::test]
async fn many_addresses_meet_growing_delays_but_never_lock_the_owner_out() {
    let app = TestApp::builder()
        .env("AUTH_TRUSTED_PROXIES", "127.0.0.1")
        .env("AUTH_THROTTLE_ACCOUNT_FREE_FAILURES", "3")
        .env("AUTH_THROTTLE_ACCOUNT_MAX_DELAY", "4")
        .spawn()
        .await;
    app.register("erin", PASSWORD).await;
    // The owner has logged in from home before: that address is known to the account.
    let home = "198.51.100.10";
    assert_eq!(
        login_from(&app, "erin", PASSWORD, Some(home))
            .await
            .status(),
        StatusCode::OK
    );
    // A botnet: every guess from another address, so no per-address limit is reached.
    let mut bot = 0u32;
    let mut next_bot = || {
        bot += 1;
        format!("203.0.113.{bot}")
    };
    for _ in 0..3 {
        let res = login_from(&app, "erin", WRONG, Some(&next_bot())).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    // Three failures were free; now each guess must wait, and the waits grow.
    let first = assert_slow_down(login_from(&app, "erin", WRONG, Some(&next_bot())).await).await;
    assert_eq!(first, 1, "the first delay is one second");
    // The owner, from the known address, is not held back.
    assert_eq!(
        login_from(&app, "erin", PASSWORD, Some(home))
            .await
            .status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // One guess gets through the opening; it fails, and the next wait doubles.
    assert_eq!(
        login_from(&app, "erin", WRONG, Some(&next_bot()))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    let second = assert_slow_down(login_from(&app, "erin", WRONG, Some(&next_bot())).await).await;
    assert_eq!(second, 2, "doubled");
    // A new address of the owner's waits like anyone else, but only for the bounded delay,
    // and the right password works once it is through.
    let wait = assert_slow_down(login_from(&app, "erin", PASSWORD, Some("192.0.2.77")).await).await;
    assert!(wait <= 4, "bounded by the maximum delay: {wait}");
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    assert_eq!(
        login_from(&app, "erin", PASSWORD, Some("192.0.2.77"))
            .await
            .status(),
        StatusCode::OK
    );
    // An unknown account under the same attack answers exactly alike.
    for _ in 0..3 {
        let res = login_from(&app, "ghost", WRONG, Some(&next_bot())).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        assert_slow_down(login_from(&app, "ghost", WRONG, Some(&next_bot())).await).await,
        1
    );
    let metrics = app.state.render_metrics().await;
    assert!(
        metrics.contains(r#"auth_throttled_total{endpoint="login",limit="account"} 4"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn replicas_share_the_counters() {
    let a = TestApp::builder()
        .env("AUTH_THROTTLE_PER_ACCOUNT_CLIENT", "4/60s")
        .spawn()
        .await;
    let b = TestApp::builder()
        .env("AUTH_THROTTLE_PER_ACCOUNT_CLIENT", "4/60s")
        .sharing(&a)
        .spawn()
        .await;
    a.register("fay", PASSWORD).await;
    for app in [&a, &b, &a, &b] {
        assert_eq!(
            login_from(app, "fay", WRONG, None).await.status(),
            StatusCode::BAD_REQUEST
        );
    }
    assert_slow_down(login_from(&b, "fay", WRONG, None).await).await;
    assert_slow_down(login_from(&a, "fay", WRONG, None).await).await;
}

#[tokio::test]
async fn failed_refreshes_and_revocations_are_throttled_per_client() {
    let app = TestApp::builder()
        .env("AUTH_THROTTLE_TOKEN_FAILURES", "3/60s")
        .spawn()
        .await;
    let (_, tokens) = app.new_user().await;
    for i in 0..3 {
        let res = app.refresh(&format!("garbage{i}")).await;
        assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    // Even a valid refresh token waits: the client has been guessing.
    assert_slow_down(app.refresh(&tokens.refresh_token).await).await;
    // Revocation answers 200 to unknown tokens (RFC 7009), but still counts them.
    for _ in 0..3 {
        let res = app
            .post_form("/v1/revoke", &[("token", "not-a-token")], None)
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_slow_down(
        app.post_form("/v1/revoke", &[("token", "not-a-token")], None)
            .await,
    )
    .await;
}

#[tokio::test]
async fn registration_is_throttled_per_client_with_a_problem_body() {
    let app = TestApp::builder()
        .env("AUTH_THROTTLE_PER_CLIENT", "3/60s")
        .spawn()
        .await;
    for i in 0..3 {
        assert_eq!(
            app.register(&format!("new{i}"), PASSWORD).await.status(),
            StatusCode::CREATED
        );
    }
    let res = app.register("new9", PASSWORD).await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let body = assert_problem(res, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["code"], "too_many_requests", "{body}");
    // Nothing was half-written: the refused username is still free.
    assert!(
        app.state
            .users
            .find_by_username("new9")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.state
            .users
            .find_by_username("new2")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn the_embedded_store_throttles_the_same_way() {
    let dir = std::env::temp_dir().join(format!("auth-throttle-{}", uuid::Uuid::new_v4().simple()));
    let app = TestApp::builder()
        .env("AUTH_DATABASE_URL", "")
        .env("AUTH_REDIS_URL", "")
        .env("AUTH_DATA_DIR", dir.to_str().unwrap())
        .env("AUTH_THROTTLE_PER_ACCOUNT_CLIENT", "2/60s")
        .env("AUTH_THROTTLE_ACCOUNT_FREE_FAILURES", "3")
        .env("AUTH_TRUSTED_PROXIES", "127.0.0.1")
        .spawn()
        .await;
    app.register("gil", PASSWORD).await;
    for _ in 0..2 {
        assert_eq!(
            login_from(&app, "gil", WRONG, Some("198.51.100.3"))
                .await
                .status(),
            StatusCode::BAD_REQUEST
        );
    }
    assert_slow_down(login_from(&app, "gil", WRONG, Some("198.51.100.3")).await).await;
    // One more failure from elsewhere reaches the account's free failures: delays begin.
    assert_eq!(
        login_from(&app, "gil", WRONG, Some("198.51.100.4"))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_slow_down(login_from(&app, "gil", WRONG, Some("198.51.100.5")).await).await;
    app.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
