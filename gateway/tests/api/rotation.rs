//! Signing-key rotation with no failed request: two auth-service replicas, two gateways, traffic
//! throughout two rotations, publish-before-use (no unknown-kid refetch needed), old tokens valid
//! until they expire, and a token of a removed key refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use testkit::auth::Auth;
use testkit::stores::Resources;

use crate::helpers::{config, metric, start_ready_gateway};

fn kid(token: &str) -> String {
    let header: Value =
        serde_json::from_slice(&shared::jws::b64_decode(token.split('.').next().unwrap()).unwrap())
            .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn metrics(admin: &str) -> String {
    reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[actix_web::test]
async fn two_rotations_under_traffic_fail_no_request() {
    let resources = Resources::create().await;
    let port_a = testkit::free_port();
    let issuer = format!("http://127.0.0.1:{port_a}");
    let env: &[(&str, &str)] = &[
        ("AUTH_KEY_RELOAD_INTERVAL", "1"),
        ("AUTH_JWKS_MAX_AGE", "1"),
        ("AUTH_KEY_ROTATION_LEAD", "3"),
        ("AUTH_ACCESS_TOKEN_TTL", "4"),
        ("AUTH_LEEWAY", "0"),
        ("AUTH_ISSUER", &issuer),
    ];
    let a = Auth::start_on(port_a, Arc::clone(&resources), env).await;
    let b = Auth::start_on(testkit::free_port(), Arc::clone(&resources), env).await;
    let echo = testkit::echo::start().await;
    // Gateways refresh the JWKS every second, and may refetch for an unknown kid only once in
    // ten minutes: publish-before-use must carry the rotation, not the unknown-kid path.
    let toml = config(&issuer, &echo.url, "leeway = 0")
        .replace("min_refresh = 1", "min_refresh = 1\nmax_refresh = 1")
        .replace("unknown_kid_cooldown = 2", "unknown_kid_cooldown = 600");
    let g1 = start_ready_gateway(&toml, &[]).await;
    let jwks_b = format!("{}/.well-known/jwks.json", b.url);
    let feed_b = format!("{}/v1/revocations", b.url);
    let g2 = start_ready_gateway(
        &toml,
        &[("GATEWAY_JWKS_URL", &jwks_b), ("GATEWAY_FEED_URL", &feed_b)],
    )
    .await;

    let first = a.user("uma").await;
    let first_kid = kid(&first.access_token);
    // A long-lived token of the first key, to check that removal really ends it.
    let mut claims = a.claims();
    claims["exp"] = serde_json::json!(shared::unix_now() + 600);
    let of_first_key = a.sign("at+jwt", &claims);
    assert_eq!(kid(&of_first_key), first_kid);

    // Traffic: refresh through either replica, call both gateways with the newest token and the
    // one before it (old tokens must keep passing until they expire).
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = Arc::clone(&stop);
        let (ua, ub) = (a.url.clone(), b.url.clone());
        let (u1, u2) = (g1.url.clone(), g2.url.clone());
        let mut refresh = first.refresh_token.clone();
        let mut tokens = vec![first.access_token.clone()];
        actix_web::rt::spawn(async move {
            let http = reqwest::Client::new();
            let (mut calls, mut failures, mut kids) =
                (0u64, Vec::new(), std::collections::BTreeSet::new());
            let mut round = 0usize;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let issuer = if round.is_multiple_of(2) { &ua } else { &ub };
                let res = http
                    .post(format!("{issuer}/v1/token"))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200, "refresh failed");
                let pair: Value = res.json().await.unwrap();
                refresh = pair["refresh_token"].as_str().unwrap().to_owned();
                let access = pair["access_token"].as_str().unwrap().to_owned();
                kids.insert(kid(&access));
                tokens.push(access);
                if tokens.len() > 2 {
                    tokens.remove(0);
                }
                for t in &tokens {
                    for g in [&u1, &u2] {
                        calls += 1;
                        let s = http
                            .get(format!("{g}/api/x"))
                            .bearer_auth(t)
                            .send()
                            .await
                            .unwrap()
                            .status()
                            .as_u16();
                        if s != 200 {
                            failures.push((g.clone(), kid(t), s));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            (calls, failures, kids)
        })
    };

    // Two rotations, through different replicas, each waiting for the key to start signing.
    let rotate = |auth: &Auth| {
        let state = auth.state.clone();
        async move {
            let (kid, _) = state.rotate_keys(false).await.unwrap().unwrap();
            for _ in 0..100 {
                if state.keys.ring().signing().kid() == kid {
                    return kid;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("key {kid} never started signing");
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = rotate(&a).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let third = rotate(&b).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let (calls, failures, kids) = traffic.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed: {failures:?}",
        failures.len()
    );
    assert!(calls > 100, "only {calls} calls");
    for k in [&first_kid, &second, &third] {
        assert!(kids.contains(k), "no token was signed by {k}: {kids:?}");
    }
    for g in [&g1, &g2] {
        assert_eq!(
            metric(
                &metrics(&g.admin).await,
                "gateway_jwks_unknown_kid_refetches_total"
            ),
            0.0,
            "keys arrived before use"
        );
    }

    // The first key is removed once its tokens have expired; its long-lived token then fails.
    for g in [&g1, &g2] {
        let mut last = 0;
        for _ in 0..150 {
            last = reqwest::Client::new()
                .get(format!("{}/api/x", g.url))
                .bearer_auth(&of_first_key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            if last == 401 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(last, 401, "a token of a removed key is refused");
    }
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", a.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !jwks.to_string().contains(&first_kid),
        "the removed key is no longer published"
    );
    // Key ages: the current keys are listed, the removed one is gone.
    let m = metrics(&g1.admin).await;
    assert!(
        m.contains(&format!("gateway_jwks_key_age_seconds{{kid=\"{third}\"}}")),
        "{m}"
    );
    assert!(!m.contains(&format!("kid=\"{first_kid}\"")), "{m}");
}
