//! `GET /v1/revocations`: the revocation feed gateways follow (Server-Sent Events).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::RevocationEvent;
use shared::feed::{self, Snapshot, SseEvent};
use testkit::feed::FeedClient;

use crate::helpers::{PASSWORD, TestApp, Tokens, assert_problem, claims, redis_url};

async fn snapshot(client: &mut FeedClient) -> (SseEvent, Snapshot) {
    let e = client.next_non_heartbeat().await;
    assert_eq!(e.event, feed::SNAPSHOT, "{e:?}");
    let s: Snapshot = serde_json::from_str(&e.data).unwrap();
    assert_eq!(e.id.as_deref(), Some(s.position.as_str()));
    (e, s)
}

async fn revoke_event(client: &mut FeedClient) -> (String, RevocationEvent) {
    let e = client.next_non_heartbeat().await;
    assert_eq!(e.event, feed::REVOKE, "{e:?}");
    (e.id.unwrap(), serde_json::from_str(&e.data).unwrap())
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn logout(app: &TestApp, t: &Tokens) {
    let res = app
        .post_form("/v1/logout", &[], Some(&t.access_token))
        .await;
    assert!(res.status().is_success(), "logout: {}", res.status());
}

#[tokio::test]
async fn the_feed_needs_a_gateway_credential_and_is_listed_in_the_metadata() {
    let app = TestApp::spawn().await;
    let meta: Value = app
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["revocation_feed_endpoint"],
        json!(format!("{}/v1/revocations", crate::helpers::ISSUER))
    );

    let res = app.get("/v1/revocations", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_problem(res, StatusCode::UNAUTHORIZED).await;
    // A user's access token is not a feed credential; nor is a near miss.
    let (_, t) = app.new_user().await;
    for token in [
        t.access_token.as_str(),
        "test-feed-token-0123456789abcdeX",
        "test-feed-token",
    ] {
        let res = FeedClient::connect(&app.address, Some(token), None)
            .await
            .err()
            .expect("refused");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{token}");
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
    }
}

#[tokio::test]
async fn rotated_feed_tokens_are_all_accepted_and_an_unconfigured_feed_is_off() {
    let app = TestApp::builder()
        .env(
            "AUTH_FEED_TOKEN",
            "new-token-0123456789abcdef,old-token-0123456789abcdef",
        )
        .spawn()
        .await;
    for token in ["new-token-0123456789abcdef", "old-token-0123456789abcdef"] {
        let mut c = FeedClient::connect(&app.address, Some(token), None)
            .await
            .map_err(|r| r.status())
            .expect("accepted");
        snapshot(&mut c).await;
    }

    let off = TestApp::builder().env("AUTH_FEED_TOKEN", "").spawn().await;
    let meta: Value = off
        .get("/.well-known/openid-configuration", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(meta.get("revocation_feed_endpoint").is_none());
    assert_problem(
        off.get("/v1/revocations", Some(testkit::FEED_TOKEN)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn snapshot_then_live_events_then_heartbeats() {
    let app = TestApp::spawn().await;
    let (_, before) = app.new_user().await;
    logout(&app, &before).await;

    let mut c = FeedClient::connect(&app.address, None, None)
        .await
        .ok()
        .unwrap();
    let (_, snap) = snapshot(&mut c).await;
    let sid = claims(&before.access_token)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        snap.entries
            .iter()
            .any(|e| matches!(e, RevocationEvent::Sid { value, .. } if *value == sid)),
        "{snap:?}"
    );

    let (_, live) = app.new_user().await;
    logout(&app, &live).await;
    let (id, event) = revoke_event(&mut c).await;
    let live_sid = claims(&live.access_token)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(matches!(&event, RevocationEvent::Sid { value, .. } if *value == live_sid));
    let pos: feed::Position = id.parse().unwrap();
    assert_eq!(
        pos.epoch,
        snap.position.parse::<feed::Position>().unwrap().epoch
    );

    // Quiet: heartbeats every 300 ms (the test setting).
    let hb = c.next_within(Duration::from_secs(3)).await.unwrap();
    assert_eq!(hb.event, feed::HEARTBEAT);
    let beat: feed::Heartbeat = serde_json::from_str(&hb.data).unwrap();
    assert!(beat.time_ms > 0);
}

#[tokio::test]
async fn last_event_id_resumes_with_exactly_the_missed_events() {
    let app = TestApp::spawn().await;
    let mut c = FeedClient::connect(&app.address, None, None)
        .await
        .ok()
        .unwrap();
    snapshot(&mut c).await;
    let (_, a) = app.new_user().await;
    logout(&app, &a).await;
    let (last_id, _) = revoke_event(&mut c).await;
    drop(c);

    let (_, b) = app.new_user().await;
    let (_, d) = app.new_user().await;
    logout(&app, &b).await;
    logout(&app, &d).await;

    let mut c = FeedClient::connect(&app.address, None, Some(&last_id))
        .await
        .ok()
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let (_, e) = revoke_event(&mut c).await;
        got.push(e);
    }
    let sid = |t: &Tokens| claims(&t.access_token)["sid"].as_str().unwrap().to_owned();
    assert!(matches!(&got[0], RevocationEvent::Sid { value, .. } if *value == sid(&b)));
    assert!(matches!(&got[1], RevocationEvent::Sid { value, .. } if *value == sid(&d)));
    // Nothing else (no snapshot, no repeat) until the next heartbeat.
    let next = c.next_within(Duration::from_secs(2)).await.unwrap();
    assert_eq!(next.event, feed::HEARTBEAT, "{next:?}");
}

#[tokio::test]
async fn positions_that_cannot_be_resumed_get_a_reset_and_a_snapshot() {
    let app = TestApp::spawn().await;
    let (_, a) = app.new_user().await;
    logout(&app, &a).await;
    let mut c = FeedClient::connect(&app.address, None, None)
        .await
        .ok()
        .unwrap();
    let (_, snap) = snapshot(&mut c).await;
    drop(c);

    // Garbage, and a position from another epoch.
    for (id, reason) in [("garbage", "invalid"), ("1/1-0", "epoch")] {
        let mut c = FeedClient::connect(&app.address, None, Some(id))
            .await
            .ok()
            .unwrap();
        let e = c.next_non_heartbeat().await;
        assert_eq!(e.event, feed::RESET);
        assert_eq!(
            serde_json::from_str::<Value>(&e.data).unwrap()["reason"],
            reason
        );
        let (_, again) = snapshot(&mut c).await;
        assert_eq!(again.entries.len(), snap.entries.len());
    }

    // Trimmed away: later events are gone from the stream.
    let (_, b) = app.new_user().await;
    logout(&app, &b).await;
    let mut conn = redis().await;
    let stream = format!("{}rev:stream", app.resources.prefix);
    let _: i64 = redis::cmd("XTRIM")
        .arg(&stream)
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut c = FeedClient::connect(&app.address, None, Some(&snap.position))
        .await
        .ok()
        .unwrap();
    let e = c.next_non_heartbeat().await;
    assert_eq!(e.event, feed::RESET);
    assert_eq!(
        serde_json::from_str::<Value>(&e.data).unwrap()["reason"],
        "trimmed"
    );
    let (_, fresh) = snapshot(&mut c).await;
    assert_eq!(fresh.entries.len(), 2, "both sessions: {fresh:?}");
}

#[tokio::test]
async fn a_lost_stream_resets_connected_gateways() {
    let app = TestApp::spawn().await;
    let (_, a) = app.new_user().await;
    logout(&app, &a).await;
    let mut c = FeedClient::connect(&app.address, None, None)
        .await
        .ok()
        .unwrap();
    let (_, before) = snapshot(&mut c).await;
    assert_eq!(before.entries.len(), 1);

    // What Redis losing its data looks like: every revocation key gone.
    let mut conn = redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}rev:*", app.resources.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();

    let e = c.next_non_heartbeat().await;
    assert_eq!(e.event, feed::RESET);
    assert_eq!(
        serde_json::from_str::<Value>(&e.data).unwrap()["reason"],
        "epoch"
    );
    let (_, after) = snapshot(&mut c).await;
    assert_ne!(
        after.position.parse::<feed::Position>().unwrap().epoch,
        before.position.parse::<feed::Position>().unwrap().epoch
    );
    assert!(after.entries.is_empty());
    // And the feed goes on in the new epoch.
    let (_, b) = app.new_user().await;
    logout(&app, &b).await;
    let (id, _) = revoke_event(&mut c).await;
    assert_eq!(
        id.parse::<feed::Position>().unwrap().epoch,
        after.position.parse::<feed::Position>().unwrap().epoch
    );
}

#[tokio::test]
async fn expired_entries_are_not_in_the_snapshot() {
    // Two seconds: a token issued late in a second still lives when its logout comes.
    let app = TestApp::builder()
        .env("AUTH_ACCESS_TOKEN_TTL", "2")
        .env("AUTH_LEEWAY", "0")
        .spawn()
        .await;
    let (_, a) = app.new_user().await;
    logout(&app, &a).await;
    let mut c = FeedClient::connect(&app.address, None, None)
        .await
        .ok()
        .unwrap();
    assert_eq!(snapshot(&mut c).await.1.entries.len(), 1);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let mut c = FeedClient::connect(&app.address, None, None)
        .await
        .ok()
        .unwrap();
    assert!(snapshot(&mut c).await.1.entries.is_empty());
}

/// Every action that revokes emits its event, each of the documented type.
#[tokio::test]
async fn every_revoking_action_emits_its_event() {
    let app = TestApp::builder().with_admin().spawn().await;
    let admin = app.admin_tokens().await;
    let mut c = FeedClient::connect(&app.address, None, None)
        .await
        .ok()
        .unwrap();
    snapshot(&mut c).await;
    let sid = |t: &Tokens| claims(&t.access_token)["sid"].as_str().unwrap().to_owned();
    let sub = |t: &Tokens| claims(&t.access_token)["sub"].as_str().unwrap().to_owned();

    async fn expect(c: &mut FeedClient, what: &str, check: impl Fn(&RevocationEvent) -> bool) {
        let (_, e) = revoke_event(c).await;
        assert!(check(&e), "{what}: got {e:?}");
    }

    // Logout → sid.
    let (_, t) = app.new_user().await;
    logout(&app, &t).await;
    expect(
        &mut c,
        "logout",
        |e| matches!(e, RevocationEvent::Sid { value, .. } if *value == sid(&t)),
    )
    .await;

    // RFC 7009 on an access token → jti; on a refresh token → sid.
    let (name, t) = app.new_user().await;
    app.post_form("/v1/revoke", &[("token", &t.access_token)], None)
        .await;
    let jti = claims(&t.access_token)["jti"].as_str().unwrap().to_owned();
    expect(
        &mut c,
        "revoke access",
        |e| matches!(e, RevocationEvent::Jti { value, .. } if *value == jti),
    )
    .await;
    app.post_form("/v1/revoke", &[("token", &t.refresh_token)], None)
        .await;
    expect(
        &mut c,
        "revoke refresh",
        |e| matches!(e, RevocationEvent::Sid { value, .. } if *value == sid(&t)),
    )
    .await;

    // Refresh-token reuse → sid.
    let t = app.login(&name, PASSWORD).await;
    assert_eq!(app.refresh(&t.refresh_token).await.status(), StatusCode::OK);
    app.refresh(&t.refresh_token).await;
    expect(
        &mut c,
        "reuse",
        |e| matches!(e, RevocationEvent::Sid { value, .. } if *value == sid(&t)),
    )
    .await;

    // Session deletion → sid.
    let t = app.login(&name, PASSWORD).await;
    let other = app.login(&name, PASSWORD).await;
    let res = app
        .client
        .delete(app.url(&format!("/v1/users/me/sessions/{}", sid(&other))))
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    expect(
        &mut c,
        "session deleted",
        |e| matches!(e, RevocationEvent::Sid { value, .. } if *value == sid(&other)),
    )
    .await;

    // Password change → sub with iat_before.
    let res = app
        .post_json(
            "/v1/users/me/password",
            &json!({"current_password": PASSWORD, "new_password": "another long passphrase"}),
            Some(&t.access_token),
        )
        .await;
    assert!(res.status().is_success());
    let user = sub(&t);
    let issued = claims(&t.access_token)["iat"].as_i64().unwrap();
    expect(&mut c, "password change", |e| {
        matches!(e, RevocationEvent::Sub { value, iat_before, .. } if *value == user && *iat_before > issued)
    })
    .await;

    // Admin: role change, disable, end sessions, delete → sub.
    let patch = |body: Value| {
        app.client
            .patch(app.url(&format!("/v1/admin/users/{user}")))
            .bearer_auth(&admin.access_token)
            .json(&body)
            .send()
    };
    assert!(
        patch(json!({"roles": ["user", "support"]}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    expect(
        &mut c,
        "role change",
        |e| matches!(e, RevocationEvent::Sub { value, .. } if *value == user),
    )
    .await;
    assert!(
        patch(json!({"disabled": true}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    expect(
        &mut c,
        "disable",
        |e| matches!(e, RevocationEvent::Sub { value, .. } if *value == user),
    )
    .await;
    let res = app
        .client
        .delete(app.url(&format!("/v1/admin/users/{user}/sessions")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    expect(
        &mut c,
        "admin ended sessions",
        |e| matches!(e, RevocationEvent::Sub { value, .. } if *value == user),
    )
    .await;
    let res = app
        .client
        .delete(app.url(&format!("/v1/admin/users/{user}")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    expect(
        &mut c,
        "user deleted",
        |e| matches!(e, RevocationEvent::Sub { value, .. } if *value == user),
    )
    .await;
}

#[tokio::test]
async fn a_stopping_service_ends_its_feed_streams() {
    // With a minute's shutdown timeout, a stream that held the graceful stop would last a minute.
    let app = TestApp::builder()
        .env("AUTH_SHUTDOWN_TIMEOUT", "60")
        .spawn()
        .await;
    let mut c = FeedClient::connect(&app.address, None, None)
        .await
        .ok()
        .unwrap();
    snapshot(&mut c).await;
    let started = std::time::Instant::now();
    app.stop().await;
    while c.next_within(Duration::from_secs(40)).await.is_some() {}
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the stream ended with the service"
    );
}

/// An immediate rotation revokes the old key on the feed: a `key_revoked` event to connected
/// gateways (resumable like any other, by its id), and an entry in every later snapshot while
/// the key's tokens could live. The API answers with the revoked key ids.
#[tokio::test]
async fn a_compromise_rotation_is_a_key_revoked_event_and_a_snapshot_entry() {
    let app = TestApp::builder().with_admin().spawn().await;
    let admin = app.admin_tokens().await;
    let old_kid = crate::helpers::header(&admin.access_token)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut live = FeedClient::connect(&app.address, Some(testkit::FEED_TOKEN), None)
        .await
        .map_err(|r| r.status())
        .unwrap();
    let (first, _) = snapshot(&mut live).await;
    let res = app
        .post_form(
            "/v1/admin/keys/rotate?immediately=true",
            &[],
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["revoked_kids"], json!([old_kid]));
    let e = live.next_non_heartbeat().await;
    assert_eq!(e.event, feed::KEY_REVOKED, "{e:?}");
    let entry: RevocationEvent = serde_json::from_str(&e.data).unwrap();
    let RevocationEvent::Kid { value, exp } = &entry else {
        panic!("{entry:?}");
    };
    assert_eq!(value, &old_kid);
    // Kept as long as a refresh token the key signed could live (7 days by default).
    let now = shared::unix_now();
    assert!(
        *exp >= now + 7 * 86_400 - 5 && *exp <= now + 7 * 86_400 + 120,
        "{exp}"
    );
    // A new connection's snapshot holds it; one resuming from before gets the event again.
    let mut fresh = FeedClient::connect(&app.address, Some(testkit::FEED_TOKEN), None)
        .await
        .map_err(|r| r.status())
        .unwrap();
    let (_, s) = snapshot(&mut fresh).await;
    assert!(s.entries.contains(&entry), "{s:?}");
    let mut resumed =
        FeedClient::connect(&app.address, Some(testkit::FEED_TOKEN), first.id.as_deref())
            .await
            .map_err(|r| r.status())
            .unwrap();
    let again = resumed.next_non_heartbeat().await;
    assert_eq!(
        (again.event.as_str(), again.id.clone()),
        (feed::KEY_REVOKED, e.id.clone())
    );
}
