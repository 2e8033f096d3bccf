//! Revocation at the gateway: a local replica of the list, kept in step by the issuer's feed.

use std::sync::Arc;
use std::time::Duration;

use awc::ws::{CloseCode, Frame};
use futures_util::StreamExt as _;
use serde_json::Value;
use testkit::auth::{Auth, Tokens};
use testkit::stores::Resources;

use crate::helpers::{Stack, Started, config, metric, start_gateway, start_ready_gateway};

async fn status(url: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}/api/x"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls until `url` answers `want` for `token` (10 s at most); the answers seen on the way.
async fn until(url: &str, token: &str, want: u16) -> Vec<u16> {
    let mut seen = Vec::new();
    for _ in 0..200 {
        let s = status(url, token).await;
        seen.push(s);
        if s == want {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered {want}: {seen:?}");
}

async fn logout(auth: &Auth, t: &Tokens) {
    let res = reqwest::Client::new()
        .post(format!("{}/v1/logout", auth.url))
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
}

async fn metrics(admin: &str) -> String {
    reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn readyz(admin: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{admin}/readyz")).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[actix_web::test]
async fn after_logout_the_gateway_rejects_the_same_access_token() {
    let s = Stack::start().await;
    let t = s.auth.user("ana").await;
    let other = s.auth.user("ben").await;
    // Verified and cached: revocation is still checked on every request.
    assert_eq!(status(&s.url, &t.access_token).await, 200);
    assert_eq!(status(&s.url, &t.access_token).await, 200);
    logout(&s.auth, &t).await;
    until(&s.url, &t.access_token, 401).await;
    let res = s.get("/api/x", Some(&t.access_token)).await;
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["detail"], "the token has been revoked");
    assert_eq!(
        status(&s.url, &other.access_token).await,
        200,
        "others pass"
    );
    let m = s.metrics().await;
    assert!(metric(&m, "gateway_revocation_entries") >= 1.0);
    assert!(metric(&m, "gateway_revocation_events_total") >= 1.0);
    assert_eq!(
        metric(
            &m,
            "gateway_token_verification_failures_total{reason=\"revoked\"}"
        ),
        2.0
    );
}

#[actix_web::test]
async fn every_revocation_kind_reaches_the_gateway() {
    let s = Stack::start().await;
    // RFC 7009 on one access token: that token only.
    let t = s.auth.user("cara").await;
    let fresh = s.auth.login("cara").await;
    reqwest::Client::new()
        .post(format!("{}/v1/revoke", s.auth.url))
        .form(&[("token", &t.access_token)])
        .send()
        .await
        .unwrap();
    until(&s.url, &t.access_token, 401).await;
    assert_eq!(status(&s.url, &fresh.access_token).await, 200);
    // Log out everywhere (a `sub` entry): every token issued before.
    let res = reqwest::Client::new()
        .post(format!("{}/v1/logout?everywhere=true", s.auth.url))
        .bearer_auth(&fresh.access_token)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    until(&s.url, &fresh.access_token, 401).await;
    // Tokens issued afterwards pass (iat ≥ iat_before).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = s.auth.login("cara").await;
    assert_eq!(status(&s.url, &later.access_token).await, 200);
}

/// Two auth-service replicas (one issuer, one database and Redis) and two gateways, each
/// following a different replica's feed: a logout through either replica reaches both.
#[actix_web::test]
async fn two_replicas_and_two_gateways_share_one_redis() {
    let resources = Resources::create().await;
    let port_a = testkit::free_port();
    let issuer = format!("http://127.0.0.1:{port_a}");
    let a = Auth::start_on(port_a, Arc::clone(&resources), &[]).await;
    let b = Auth::start_on(
        testkit::free_port(),
        Arc::clone(&resources),
        &[("AUTH_ISSUER", &issuer)],
    )
    .await;
    let echo = testkit::echo::start().await;
    let toml = config(&issuer, &echo.url, "");
    let g1 = start_ready_gateway(&toml, &[]).await;
    let feed_b = format!("{}/v1/revocations", b.url);
    let g2 = start_ready_gateway(&toml, &[("GATEWAY_FEED_URL", &feed_b)]).await;

    for (through, name) in [(&a, "dora"), (&b, "eli")] {
        let t = through.user(name).await;
        for g in [&g1, &g2] {
            assert_eq!(status(&g.url, &t.access_token).await, 200);
        }
        logout(through, &t).await;
        for g in [&g1, &g2] {
            until(&g.url, &t.access_token, 401).await;
        }
    }
}

#[actix_web::test]
async fn a_restarted_gateway_loads_the_list_from_the_snapshot() {
    let s = Stack::start().await;
    let t = s.auth.user("fay").await;
    logout(&s.auth, &t).await;
    until(&s.url, &t.access_token, 401).await;
    // A new gateway (as after a restart) knows the revocation before it serves a request.
    let toml = config(&s.auth.url, &s.echo.url, "");
    let g = start_ready_gateway(&toml, &[]).await;
    assert_eq!(status(&g.url, &t.access_token).await, 401);
    assert!(metric(&metrics(&g.admin).await, "gateway_revocation_entries") >= 1.0);
}

#[actix_web::test]
async fn a_cold_gateway_fails_closed_until_the_first_snapshot() {
    let auth = Auth::start(&[]).await;
    let echo = testkit::echo::start().await;
    // The wrong feed credential: keys load, the list never does.
    let Started { url, admin, .. } = start_gateway(
        &config(&auth.url, &echo.url, ""),
        &[("GATEWAY_FEED_TOKEN", "not-the-feed-token")],
    )
    .await;
    let t = auth.user("gus").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let res = reqwest::Client::new()
        .get(format!("{url}/api/x"))
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "revocations_unavailable");
    let public = reqwest::get(format!("{url}/public/x")).await.unwrap();
    assert_eq!(public.status(), 200, "public routes need no list");
    let (code, ready) = readyz(&admin).await;
    assert_eq!(code, 503);
    assert_eq!(ready["checks"]["keys"], "ok");
    assert_eq!(ready["checks"]["revocations"]["loaded"], false);
}

#[actix_web::test]
async fn with_the_feed_down_valid_tokens_pass_and_the_staleness_shows() {
    let s = Stack::start().await;
    let t = s.auth.user("hal").await;
    let revoked = s.auth.user("ivy").await;
    logout(&s.auth, &revoked).await;
    until(&s.url, &revoked.access_token, 401).await;
    s.auth.stop().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(status(&s.url, &t.access_token).await, 200);
    assert_eq!(
        status(&s.url, &revoked.access_token).await,
        401,
        "what the list held stays enforced"
    );
    let m = s.metrics().await;
    assert!(
        metric(&m, "gateway_revocation_staleness_seconds") >= 2.0,
        "{m}"
    );
    assert_eq!(metric(&m, "gateway_revocation_feed_connected"), 0.0);
    let (code, ready) = readyz(&s.admin).await;
    assert_eq!(code, 200, "readiness does not flap with the feed");
    assert_eq!(ready["checks"]["revocations"]["connected"], false);
    assert!(
        ready["checks"]["revocations"]["staleness_seconds"]
            .as_f64()
            .unwrap()
            >= 2.0
    );
}

#[actix_web::test]
async fn with_max_staleness_the_gateway_fails_closed_once_the_bound_passes() {
    let s = Stack::start_with(&[], "[revocation]\nmax_staleness = 2\n").await;
    let t = s.auth.user("jay").await;
    assert_eq!(status(&s.url, &t.access_token).await, 200);
    s.auth.stop().await;
    let seen = until(&s.url, &t.access_token, 503).await;
    assert!(seen.iter().all(|c| *c == 200 || *c == 503), "{seen:?}");
    let res = s.get("/api/x", Some(&t.access_token)).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "revocations_unavailable");
    assert_eq!(body["detail"], "the revocation list is out of date");
    let public = s.get("/public/x", None).await;
    assert_eq!(public.status(), 200);
}

#[actix_web::test]
async fn the_feed_comes_back_by_itself_after_the_issuer_restarts() {
    let resources = Resources::create().await;
    let port = testkit::free_port();
    let auth = Auth::start_on(port, Arc::clone(&resources), &[]).await;
    let echo = testkit::echo::start().await;
    let g = start_ready_gateway(&config(&auth.url, &echo.url, ""), &[]).await;
    let t = auth.user("kim").await;
    auth.stop().await;
    drop(auth);
    let auth = Auth::start_on(port, Arc::clone(&resources), &[]).await;
    logout(&auth, &t).await;
    until(&g.url, &t.access_token, 401).await;
    assert!(
        metric(
            &metrics(&g.admin).await,
            "gateway_revocation_feed_reconnects_total"
        ) >= 1.0
    );
}

#[actix_web::test]
async fn expired_entries_are_dropped() {
    let s = Stack::start_with(
        &[("AUTH_ACCESS_TOKEN_TTL", "1"), ("AUTH_LEEWAY", "0")],
        "leeway = 0\n[revocation]\nsweep_interval = 1\n",
    )
    .await;
    // A 1-second token can expire before the logout lands on a loaded machine: log in again
    // until one logout is accepted.
    let mut t = s.auth.user("lea").await;
    let mut logged_out = false;
    for _ in 0..10 {
        let res = reqwest::Client::new()
            .post(format!("{}/v1/logout", s.auth.url))
            .bearer_auth(&t.access_token)
            .send()
            .await
            .unwrap();
        if res.status().is_success() {
            logged_out = true;
            break;
        }
        t = s.auth.login("lea").await;
    }
    assert!(logged_out, "no logout within the token's second, ten times");
    let mut entries = 0.0;
    for _ in 0..100 {
        entries = metric(&s.metrics().await, "gateway_revocation_entries");
        if entries == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(entries, 1.0);
    for _ in 0..100 {
        entries = metric(&s.metrics().await, "gateway_revocation_entries");
        if entries == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(entries, 0.0, "dropped once every token it covered expired");
}

#[actix_web::test]
async fn a_websocket_is_closed_when_its_token_is_revoked() {
    let s = Stack::start().await;
    let t = s.auth.user("max").await;
    let (_, mut ws) = awc::Client::new()
        .ws(format!("ws://{}/live/ws", s.addr))
        .bearer_auth(&t.access_token)
        .connect()
        .await
        .unwrap();
    let _ = ws.next().await; // the echo's handshake report
    logout(&s.auth, &t).await;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Frame::Close(reason)))) => break reason,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let reason = closed.unwrap();
    assert_eq!(reason.code, CloseCode::Policy);
    assert_eq!(reason.description.as_deref(), Some("token revoked"));
}

/// The same for its signing key: a compromise rotation closes every WebSocket the old key's
/// tokens opened.
#[actix_web::test]
async fn a_websocket_is_closed_when_its_signing_key_is_revoked() {
    let s = Stack::start().await;
    let t = s.auth.user("mia").await;
    let (_, mut ws) = awc::Client::new()
        .ws(format!("ws://{}/live/ws", s.addr))
        .bearer_auth(&t.access_token)
        .connect()
        .await
        .unwrap();
    let _ = ws.next().await; // the echo's handshake report
    s.auth.state.rotate_keys(true).await.unwrap();
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Frame::Close(reason)))) => break reason,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let reason = closed.unwrap();
    assert_eq!(reason.code, CloseCode::Policy);
    assert_eq!(reason.description.as_deref(), Some("token revoked"));
}

/// Redis with AOF (`everysec`) shut down cleanly and started again: no refresh token and no
/// revocation is lost, and the gateway resynchronises by itself (same stream, no reset).
#[actix_web::test]
async fn a_clean_redis_restart_loses_nothing_and_gateways_resync() {
    let mut redis = testkit::redis_server::OwnRedis::start().await;
    let redis_url = redis.url();
    let auth = Auth::start(&[("AUTH_REDIS_URL", &redis_url)]).await;
    let echo = testkit::echo::start().await;
    let g = start_ready_gateway(&config(&auth.url, &echo.url, ""), &[]).await;
    let kept = auth.user("nia").await;
    let revoked = auth.user("oli").await;
    logout(&auth, &revoked).await;
    until(&g.url, &revoked.access_token, 401).await;

    redis.shutdown().await;
    // Meanwhile the gateway verifies locally with what it holds.
    assert_eq!(status(&g.url, &kept.access_token).await, 200);
    assert_eq!(status(&g.url, &revoked.access_token).await, 401);
    redis.restart().await;

    // The refresh token survived (it rotates once the store answers again).
    let client = reqwest::Client::new();
    let mut refreshed = None;
    for _ in 0..100 {
        let res = client
            .post(format!("{}/v1/token", auth.url))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", kept.refresh_token.as_str()),
            ])
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            refreshed = Some(res.json::<Value>().await.unwrap());
            break;
        }
        assert_eq!(res.status(), 503, "only 'unavailable' while reconnecting");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refreshed = refreshed.expect("the refresh token still works after the restart");
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    // The revocation survived in Redis: the auth-service itself still refuses the token.
    let me = client
        .get(format!("{}/v1/users/me", auth.url))
        .bearer_auth(&revoked.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    // The feed resumed on its own: a revocation after the restart reaches the gateway, with no
    // reset (the stream and its epoch survived).
    assert_eq!(status(&g.url, &access).await, 200);
    let res = client
        .post(format!("{}/v1/logout", auth.url))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    until(&g.url, &access, 401).await;
    assert_eq!(status(&g.url, &revoked.access_token).await, 401);
    let m = metrics(&g.admin).await;
    assert_eq!(metric(&m, "gateway_revocation_resets_total"), 0.0, "{m}");
}

/// Redis lost its revocation data (a new stream epoch): the gateway gets `reset`, loads a new
/// snapshot and merges it, still enforcing what it held.
#[actix_web::test]
async fn after_a_reset_the_gateway_keeps_what_it_held() {
    let s = Stack::start().await;
    let t = s.auth.user("pia").await;
    logout(&s.auth, &t).await;
    until(&s.url, &t.access_token, 401).await;
    let client = redis::Client::open(testkit::stores::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}rev:*", s.auth.resources.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut resets = 0.0;
    for _ in 0..100 {
        resets = metric(&s.metrics().await, "gateway_revocation_resets_total");
        if resets >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(resets, 1.0);
    assert_eq!(status(&s.url, &t.access_token).await, 401, "not forgotten");
    // And the feed goes on in the new epoch.
    let u = s.auth.user("quin").await;
    logout(&s.auth, &u).await;
    until(&s.url, &u.access_token, 401).await;
}

/// The embedded auth-service (SQLite, no PostgreSQL or Redis) feeds gateways the same way.
#[actix_web::test]
async fn an_embedded_auth_service_feeds_the_gateway_too() {
    let dir = std::env::temp_dir().join(format!("gw-embedded-{}", uuid::Uuid::new_v4().simple()));
    let auth = Auth::start(&[
        ("AUTH_DATABASE_URL", ""),
        ("AUTH_REDIS_URL", ""),
        ("AUTH_DATA_DIR", dir.to_str().unwrap()),
    ])
    .await;
    assert!(auth.state.embedded());
    let echo = testkit::echo::start().await;
    let g = start_ready_gateway(&config(&auth.url, &echo.url, ""), &[]).await;
    let t = auth.user("rue").await;
    assert_eq!(status(&g.url, &t.access_token).await, 200);
    logout(&auth, &t).await;
    until(&g.url, &t.access_token, 401).await;
    auth.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every answer of `url` for `token` over `span`, one request every 100 ms.
async fn answers_over(url: &str, token: &str, span: Duration) -> Vec<u16> {
    let end = tokio::time::Instant::now() + span;
    let mut seen = Vec::new();
    while tokio::time::Instant::now() < end {
        seen.push(status(url, token).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

/// Redis down for longer than `max_staleness`: the feed tells its gateways that nothing can be
/// acknowledged without them (`outage`, within `AUTH_FEED_OUTAGE_GRACE`), so a gateway that fails
/// closed keeps serving valid tokens, and still refuses what it holds as revoked. A gateway that
/// takes no grace (`max_outage_grace = 0`) fails closed as before. Once Redis is back, the grace
/// ends at the first heartbeat and revocations flow again.
#[actix_web::test]
async fn through_a_store_outage_a_fail_closed_gateway_keeps_serving_under_the_feeds_grace() {
    let mut redis = testkit::redis_server::OwnRedis::start().await;
    let redis_url = redis.url();
    let auth = Auth::start(&[("AUTH_REDIS_URL", &redis_url)]).await;
    let echo = testkit::echo::start().await;
    let graced = start_ready_gateway(
        &config(&auth.url, &echo.url, "[revocation]\nmax_staleness = 1\n"),
        &[],
    )
    .await;
    let strict = start_ready_gateway(
        &config(
            &auth.url,
            &echo.url,
            "[revocation]\nmax_staleness = 1\nmax_outage_grace = 0\n",
        ),
        &[],
    )
    .await;
    let kept = auth.user("pia").await;
    let revoked = auth.user("quin").await;
    logout(&auth, &revoked).await;
    for g in [&graced, &strict] {
        until(&g.url, &revoked.access_token, 401).await;
        assert_eq!(status(&g.url, &kept.access_token).await, 200);
    }

    redis.shutdown().await;
    // The strict gateway goes stale and fails closed.
    until(&strict.url, &kept.access_token, 503).await;
    // The graced one, three times its staleness bound later, still serves, never a 503.
    let seen = answers_over(&graced.url, &kept.access_token, Duration::from_secs(3)).await;
    assert!(seen.iter().all(|s| *s == 200), "{seen:?}");
    assert_eq!(status(&graced.url, &revoked.access_token).await, 401);
    let m = metrics(&graced.admin).await;
    assert!(metric(&m, "gateway_revocation_outages_total") >= 1.0, "{m}");
    assert!(
        metric(&m, "gateway_revocation_outage_grace_seconds") > 20.0,
        "{m}"
    );
    assert!(
        metric(&m, "gateway_revocation_staleness_seconds") > 1.0,
        "{m}"
    );
    let (_, ready) = readyz(&graced.admin).await;
    assert!(
        ready["checks"]["revocations"]["outage_grace_seconds"]
            .as_f64()
            .is_some_and(|g| g > 20.0),
        "{ready}"
    );
    // A logout now cannot be recorded: 503, and the token stays valid (nothing acknowledged).
    let res = reqwest::Client::new()
        .post(format!("{}/v1/logout", auth.url))
        .bearer_auth(&kept.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);

    redis.restart().await;
    // The strict gateway comes back by itself; the grace ends at the first heartbeat.
    until(&strict.url, &kept.access_token, 200).await;
    for _ in 0..100 {
        let m = metrics(&graced.admin).await;
        if metric(&m, "gateway_revocation_outage_grace_seconds") == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = metrics(&graced.admin).await;
    assert_eq!(
        metric(&m, "gateway_revocation_outage_grace_seconds"),
        0.0,
        "{m}"
    );
    // And revocations flow again.
    let mut res = None;
    for _ in 0..50 {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/logout", auth.url))
            .bearer_auth(&kept.access_token)
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            res = Some(r);
            break;
        }
        assert_eq!(r.status(), 503);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(res.is_some(), "the logout succeeds once Redis is back");
    for g in [&graced, &strict] {
        until(&g.url, &kept.access_token, 401).await;
    }
}

/// One replica (A) cut off from a Redis that the other (B) still reaches: A's gateway keeps its
/// list on A's grace, so B must not acknowledge a revocation that gateway cannot learn. B
/// records it but answers 503 (with `Retry-After`) while A's window is open; once it has closed,
/// B acknowledges, and from that moment A's gateway, its grace over, refuses the token (503,
/// failing closed) until A reads Redis again and it learns the revocation (401). Before the cut,
/// with A healthy, B acknowledges a logout at once and A's gateway refuses the token.
#[actix_web::test]
async fn a_replica_cut_off_from_redis_holds_back_the_others_acknowledgements_for_its_gateways() {
    let resources = Resources::create().await;
    let to_redis = testkit::relay::Relay::start(vec![
        testkit::stores::redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned(),
    ])
    .await;
    let redis_via_relay = format!("redis://{}", to_redis.addr);
    // Long enough that the first acknowledgement's wait (3 s) ends before A's window does.
    let grace = [("AUTH_FEED_OUTAGE_GRACE", "8")];
    let port_a = testkit::free_port();
    let a = Auth::start_on(
        port_a,
        Arc::clone(&resources),
        &[grace[0], ("AUTH_REDIS_URL", &redis_via_relay)],
    )
    .await;
    let b = Auth::start_on(
        testkit::free_port(),
        Arc::clone(&resources),
        &[grace[0], ("AUTH_ISSUER", &a.url)],
    )
    .await;
    let echo = testkit::echo::start().await;
    let g = start_ready_gateway(
        &config(&a.url, &echo.url, "[revocation]\nmax_staleness = 1\n"),
        &[],
    )
    .await;

    // Healthy: B's acknowledgement waits for A's reader, a few milliseconds.
    let first = b.user("ria").await;
    assert_eq!(status(&g.url, &first.access_token).await, 200);
    logout(&b, &first).await;
    until(&g.url, &first.access_token, 401).await;

    let t = b.user("sol").await;
    let other = b.user("tam").await;
    assert_eq!(status(&g.url, &t.access_token).await, 200);
    to_redis.cut();
    // A's gateway outlives its staleness bound on A's grace.
    let seen = answers_over(&g.url, &other.access_token, Duration::from_millis(2500)).await;
    assert!(seen.iter().all(|s| *s == 200), "{seen:?}");

    // An admin disables the user through B. Disabling is idempotent: each attempt records the
    // revocation again and waits for its acknowledgement.
    let client = reqwest::Client::new();
    let me: Value = client
        .get(format!("{}/v1/users/me", b.url))
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = me["id"].as_str().unwrap().to_owned();
    let admin = b.admin().await;
    let disable = || {
        client
            .patch(format!("{}/v1/admin/users/{id}", b.url))
            .bearer_auth(&admin.access_token)
            .json(&serde_json::json!({"disabled": true}))
            .send()
    };
    let res = disable().await.unwrap();
    assert_eq!(
        res.status(),
        503,
        "not acknowledged while A vouches for its gateway"
    );
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        status(&g.url, &t.access_token).await,
        200,
        "not acknowledged, and A's gateway has not learnt it"
    );

    // Once A's window has closed, B acknowledges.
    let mut acked = false;
    for _ in 0..40 {
        let r = disable().await.unwrap();
        if r.status().is_success() {
            acked = true;
            break;
        }
        assert_eq!(r.status(), 503);
    }
    assert!(acked, "acknowledged once A's window has closed");
    // From the acknowledgement on, A's gateway never lets the token through.
    let seen = answers_over(&g.url, &t.access_token, Duration::from_millis(1500)).await;
    assert!(seen.iter().all(|s| *s == 503 || *s == 401), "{seen:?}");

    to_redis.restore();
    until(&g.url, &t.access_token, 401).await;
    until(&g.url, &other.access_token, 200).await;
}
