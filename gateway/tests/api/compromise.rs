//! A compromised signing key dies everywhere within a second: two auth-service replicas, two
//! gateways and a downstream service verifying with `shared`'s `Authenticator`, all following
//! the revocation feed. After an immediate rotation, tokens of the old key (a user's, and one
//! forged with the stolen key for any subject and a far `exp`) are refused by every one of them,
//! tokens of the new key pass, and neither a gateway started afterwards nor a stale copy of the
//! JWKS in front of it brings the old key back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::{
    AuthError, Authenticator, KeyCache, KeyCacheConfig, ReplicaConfig, ReplicaFollower,
    RevocationReplica, Validation,
};
use testkit::auth::Auth;
use testkit::stores::Resources;

use crate::helpers::{config, metric, start_ready_gateway};

fn kid(token: &str) -> String {
    let header: Value =
        serde_json::from_slice(&shared::jws::b64_decode(token.split('.').next().unwrap()).unwrap())
            .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn status(url: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Serves one fixed JWKS document at `/jwks.json` (a cache in front of the issuer that kept an
/// old copy).
async fn stale_jwks(body: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let server = actix_web::HttpServer::new(move || {
        let body = body.clone();
        actix_web::App::new().route(
            "/jwks.json",
            actix_web::web::get().to(move || {
                let body = body.clone();
                async move {
                    actix_web::HttpResponse::Ok()
                        .insert_header(("cache-control", "public, max-age=1"))
                        .content_type("application/json")
                        .body(body)
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    url
}

#[actix_web::test]
async fn an_immediate_rotation_refuses_the_old_key_everywhere_within_a_second() {
    let resources = Resources::create().await;
    let port_a = testkit::free_port();
    let issuer = format!("http://127.0.0.1:{port_a}");
    // The default key reload interval (60 s) and JWKS cache age (300 s): neither carries the
    // revocation, the feed does.
    let env: &[(&str, &str)] = &[("AUTH_ISSUER", &issuer)];
    let a = Auth::start_on(port_a, Arc::clone(&resources), env).await;
    let b = Auth::start_on(testkit::free_port(), Arc::clone(&resources), env).await;
    let echo = testkit::echo::start().await;
    let toml = config(&issuer, &echo.url, "");
    let g1 = start_ready_gateway(&toml, &[]).await;
    let (jwks_b, feed_b) = (
        format!("{}/.well-known/jwks.json", b.url),
        format!("{}/v1/revocations", b.url),
    );
    let g2 = start_ready_gateway(
        &toml,
        &[
            ("GATEWAY_JWKS_URL", jwks_b.as_str()),
            ("GATEWAY_FEED_URL", feed_b.as_str()),
        ],
    )
    .await;
    // A downstream service: shared's Authenticator with a revocation replica of its own.
    let keys = Arc::new(KeyCache::new(KeyCacheConfig::new(&issuer)));
    keys.fetch().await.unwrap();
    let replica = Arc::new(RevocationReplica::new(ReplicaConfig::default()));
    let _follower = ReplicaFollower::new(
        Arc::clone(&replica),
        Arc::clone(&keys),
        testkit::FEED_TOKEN.into(),
    )
    .spawn();
    let downstream = Authenticator::new(
        Arc::clone(&keys),
        Validation::new(issuer.clone(), vec!["api".into()]),
    )
    .with_revocations(Arc::clone(&replica));
    for _ in 0..100 {
        if replica.loaded() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        replica.loaded(),
        "the downstream replica loads its snapshot"
    );

    let user = a.user("olga").await;
    let old_kid = kid(&user.access_token);
    let old_jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", a.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // What a thief with the key mints: any subject, any roles, a far expiry.
    let mut claims = a.claims();
    claims["sub"] = json!("00000000-0000-4000-8000-0000000000ff");
    claims["roles"] = json!(["admin"]);
    claims["exp"] = json!(shared::unix_now() + 30 * 86_400);
    let forged = a.sign("at+jwt", &claims);
    let admin = a.admin().await;
    let api = |g: &str| format!("{g}/api/x");
    let me = |auth: &Auth| format!("{}/v1/users/me", auth.url);
    // Before: both pass everywhere (and sit in the gateways' caches of verified tokens).
    for t in [&user.access_token, &forged] {
        for g in [&g1.url, &g2.url] {
            assert_eq!(status(&api(g), t).await, 200);
        }
        assert!(downstream.verify_token(t).await.is_ok());
    }
    for auth in [&a, &b] {
        assert_eq!(status(&me(auth), &user.access_token).await, 200);
    }

    // The compromise response, through replica A's admin API.
    let res = reqwest::Client::new()
        .post(format!("{}/v1/admin/keys/rotate?immediately=true", a.url))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let rotated = Instant::now();
    let body: Value = res.json().await.unwrap();
    let new_kid = body["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(body["revoked_kids"], json!([old_kid]));

    // Every verifier refuses both tokens; polled until then, for at most a second.
    let mut last = Vec::new();
    let mut refused_after = None;
    while rotated.elapsed() < Duration::from_secs(1) {
        last.clear();
        for t in [&user.access_token, &forged] {
            for g in [&g1.url, &g2.url] {
                last.push(("gateway", status(&api(g), t).await));
            }
            let d = downstream.verify_token(t).await;
            last.push((
                "downstream",
                if d == Err(AuthError::Revoked) { 401 } else { 0 },
            ));
        }
        for auth in [&a, &b] {
            last.push(("replica", status(&me(auth), &user.access_token).await));
            last.push(("replica", status(&me(auth), &forged).await));
        }
        if last.iter().all(|(_, s)| *s == 401) {
            refused_after = Some(rotated.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused_after =
        refused_after.unwrap_or_else(|| panic!("not refused everywhere within 1 s: {last:?}"));
    eprintln!("the old key was refused everywhere {refused_after:?} after the rotation answered");

    // The new key signs, and its tokens pass everywhere.
    let fresh = b.login("olga").await;
    assert_eq!(kid(&fresh.access_token), new_kid);
    for g in [&g1.url, &g2.url] {
        assert_eq!(status(&api(g), &fresh.access_token).await, 200);
    }
    for auth in [&a, &b] {
        assert_eq!(status(&me(auth), &fresh.access_token).await, 200);
    }
    assert!(downstream.verify_token(&fresh.access_token).await.is_ok());
    // The user's session survives: its refresh token is opaque (no key signed it, none can
    // forge one) and rotates into a pair of the new key, which every gateway accepts.
    let res = reqwest::Client::new()
        .post(format!("{}/v1/token", b.url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", user.refresh_token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let pair: Value = res.json().await.unwrap();
    let renewed = pair["access_token"].as_str().unwrap();
    assert_eq!(kid(renewed), new_kid);
    for g in [&g1.url, &g2.url] {
        assert_eq!(status(&api(g), renewed).await, 200);
    }
    // Neither replica publishes it.
    for auth in [&a, &b] {
        let jwks = reqwest::get(format!("{}/.well-known/jwks.json", auth.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !jwks.contains(&old_kid) && jwks.contains(&new_kid),
            "{jwks}"
        );
    }

    // A gateway started now (a restart), behind a stale cache still serving the old key beside
    // the new one: the snapshot's key revocation keeps the old key out.
    let new_jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", a.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut stale = old_jwks.clone();
    stale["keys"]
        .as_array_mut()
        .unwrap()
        .extend(new_jwks["keys"].as_array().unwrap().iter().cloned());
    let stale_url = stale_jwks(stale.to_string()).await;
    let g3 = start_ready_gateway(&toml, &[("GATEWAY_JWKS_URL", stale_url.as_str())]).await;
    assert_eq!(status(&api(&g3.url), &user.access_token).await, 401);
    assert_eq!(status(&api(&g3.url), &forged).await, 401);
    assert_eq!(status(&api(&g3.url), &fresh.access_token).await, 200);
    // Nor does a later fetch of the stale copy bring it back to a running gateway or verifier.
    for g in [&g1, &g2, &g3] {
        let m = reqwest::get(format!("{}/metrics", g.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(metric(&m, "gateway_jwks_revoked_keys"), 1.0, "{m}");
        assert!(
            metric(
                &m,
                "gateway_token_verification_failures_total{reason=\"revoked_key\"}"
            ) >= 1.0
        );
    }
    let stale_keys = Arc::new(KeyCache::new({
        let mut c = KeyCacheConfig::new(&issuer);
        c.jwks_url = Some(stale_url.clone());
        c
    }));
    stale_keys.revoke_key(&old_kid, shared::unix_now() + 60);
    stale_keys.fetch().await.unwrap();
    assert!(stale_keys.current().unwrap().keys.get(&old_kid).is_none());
    assert!(stale_keys.current().unwrap().keys.get(&new_kid).is_some());
}
