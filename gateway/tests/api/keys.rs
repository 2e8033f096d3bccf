//! Keys: verification stays local when the auth-service is gone; new keys arrive through the
//! unknown-kid path; a flood of random kids causes one fetch; readiness waits for keys.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Stack, config, metric, start_gateway};

#[actix_web::test]
async fn valid_tokens_keep_passing_when_the_auth_service_is_down() {
    let s = Stack::start().await;
    let t = s.auth.user("ivan").await;
    assert_eq!(s.get("/api/x", Some(&t.access_token)).await.status(), 200);
    s.auth.stop().await;
    for _ in 0..5 {
        assert_eq!(s.get("/api/x", Some(&t.access_token)).await.status(), 200);
    }
    let ready = s
        .client
        .get(format!("{}/readyz", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "last good keys are kept");
}

/// A gateway that does not follow the revocation feed learns of an immediate rotation from the
/// first token of the new key (one unknown-`kid` refetch), and that fetch drops the old key. (A
/// gateway following the feed drops the old key at once and refetches without waiting for a
/// token: `compromise.rs`.)
#[actix_web::test]
async fn a_new_signing_key_is_picked_up_through_the_unknown_kid_path() {
    let s = Stack::start_with(
        &[("AUTH_KEY_RELOAD_INTERVAL", "1")],
        "[revocation]\nenabled = false",
    )
    .await;
    let old = s.auth.user("judy").await;
    assert_eq!(s.get("/api/x", Some(&old.access_token)).await.status(), 200);
    let before = metric(
        &s.metrics().await,
        "gateway_jwks_unknown_kid_refetches_total",
    );
    // An immediate rotation (the compromise response): the gateway has never seen the new key.
    let (new_kid, _) = s.auth.state.rotate_keys(true).await.unwrap().unwrap();
    let fresh = s.auth.login("judy").await;
    let header: serde_json::Value = serde_json::from_slice(
        &shared::jws::b64_decode(fresh.access_token.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], new_kid.as_str());
    assert_eq!(
        s.get("/api/x", Some(&fresh.access_token)).await.status(),
        200
    );
    assert_eq!(
        metric(
            &s.metrics().await,
            "gateway_jwks_unknown_kid_refetches_total"
        ),
        before + 1.0
    );
    assert_eq!(
        s.get("/api/x", Some(&old.access_token)).await.status(),
        401,
        "the old key is no longer published"
    );
    assert_eq!(metric(&s.metrics().await, "gateway_jwks_keys"), 1.0);
}

#[actix_web::test]
async fn a_flood_of_random_kids_causes_one_fetch() {
    let s = Stack::start().await;
    let fetches = |m: &str| {
        metric(m, "gateway_jwks_fetches_total{result=\"ok\"}")
            + metric(m, "gateway_jwks_fetches_total{result=\"error\"}")
    };
    let before = fetches(&s.metrics().await);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let mut h = json!({"alg": "RS256", "typ": "at+jwt", "kid": format!("random-{i}")});
        h["kid"] = json!(format!("random-{i}-{}", uuid::Uuid::new_v4()));
        let token = format!(
            "{}.{}.c2ln",
            shared::jws::b64_encode(h.to_string()),
            shared::jws::b64_encode(s.auth.claims().to_string())
        );
        let (client, url) = (s.client.clone(), format!("{}/api/x", s.url));
        tasks.push(actix_web::rt::spawn(async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    let after = fetches(&s.metrics().await);
    assert!(
        after - before <= 1.0,
        "{} fetches for 200 unknown kids",
        after - before
    );
}

#[actix_web::test]
async fn readiness_and_protected_routes_wait_for_the_first_keys() {
    let port = testkit::free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let echo = testkit::echo::start().await;
    let crate::helpers::Started { url, admin, .. } =
        start_gateway(&config(&issuer, &echo.url, ""), &[]).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{admin}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    let res = client
        .get(format!("{url}/api/x"))
        .bearer_auth("any.token.here")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503, "no keys: fail closed, never open");
    assert_eq!(
        client
            .get(format!("{url}/public/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "public routes need no keys"
    );
    // The issuer appears; the gateway picks its keys up by itself.
    let auth =
        testkit::auth::Auth::start_on(port, testkit::stores::Resources::create().await, &[]).await;
    let mut ready = false;
    for _ in 0..100 {
        if client
            .get(format!("{admin}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the gateway became ready once the issuer answered");
    let t = auth.user("kate").await;
    assert_eq!(
        client
            .get(format!("{url}/api/x"))
            .bearer_auth(&t.access_token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[actix_web::test]
async fn keys_older_than_max_stale_are_no_longer_trusted() {
    let auth = testkit::auth::Auth::start(&[]).await;
    let echo = testkit::echo::start().await;
    let toml = config(&auth.url, &echo.url, "").replace("[jwks]\n", "[jwks]\nmax_stale = 2\n");
    let crate::helpers::Started { url, admin, .. } =
        crate::helpers::start_ready_gateway(&toml, &[]).await;
    let t = auth.user("liam").await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{url}/api/x"))
            .bearer_auth(&t.access_token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    auth.stop().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let res = client
        .get(format!("{url}/api/x"))
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let ready = client.get(format!("{admin}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert!(body["checks"]["key_age_seconds"].as_u64().unwrap() >= 2);
}

/// A metadata endpoint serving whatever document the test wants.
async fn metadata_server(doc: serde_json::Value) -> String {
    let server = actix_web::HttpServer::new(move || {
        let doc = doc.clone();
        actix_web::App::new().default_service(actix_web::web::to(move || {
            let doc = doc.clone();
            async move { actix_web::HttpResponse::Ok().json(doc) }
        }))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    format!("http://127.0.0.1:{port}")
}

async fn readyz(admin: &str) -> (u16, serde_json::Value) {
    let res = reqwest::get(format!("{admin}/readyz")).await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[actix_web::test]
async fn metadata_for_another_issuer_is_refused() {
    let auth = testkit::auth::Auth::start(&[]).await;
    let echo = testkit::echo::start().await;
    let meta = metadata_server(json!({"issuer": "https://someone-else.example", "jwks_uri": format!("{}/.well-known/jwks.json", auth.url),
                                       "revocation_feed_endpoint": format!("{}/v1/revocations", auth.url)})).await;
    let crate::helpers::Started { admin, .. } = start_gateway(
        &config(&auth.url, &echo.url, ""),
        &[("GATEWAY_DISCOVERY_URL", &format!("{meta}/meta"))],
    )
    .await;
    let (status, body) = readyz(&admin).await;
    assert_eq!(status, 503);
    assert!(
        body["checks"]["last_jwks_error"]
            .as_str()
            .unwrap()
            .contains("someone-else"),
        "{body}"
    );
}

#[actix_web::test]
async fn production_refuses_a_jwks_uri_on_another_origin() {
    let auth = testkit::auth::Auth::start(&[]).await;
    let echo = testkit::echo::start().await;
    // Same server, but named `localhost`: another origin than the issuer's `127.0.0.1`.
    let elsewhere = auth.url.replace("127.0.0.1", "localhost");
    let meta = metadata_server(
        json!({"issuer": auth.url, "jwks_uri": format!("{elsewhere}/.well-known/jwks.json"),
               "revocation_feed_endpoint": format!("{}/v1/revocations", auth.url)}),
    )
    .await;
    let env = [
        ("GATEWAY_DISCOVERY_URL", format!("{meta}/meta")),
        ("GATEWAY_PRODUCTION", "true".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let crate::helpers::Started { admin, .. } =
        start_gateway(&config(&auth.url, &echo.url, ""), &env).await;
    let (status, body) = readyz(&admin).await;
    assert_eq!(status, 503);
    assert!(
        body["checks"]["last_jwks_error"]
            .as_str()
            .unwrap()
            .contains("another origin"),
        "{body}"
    );
    // Allowed explicitly, the same metadata is fine.
    let crate::helpers::Started { admin, .. } = start_gateway(
        &config(&auth.url, &echo.url, "allow_cross_origin_jwks = true"),
        &env,
    )
    .await;
    crate::helpers::wait_ready(&admin).await;
    assert_eq!(readyz(&admin).await.0, 200);
}

#[actix_web::test]
async fn keys_are_refreshed_on_the_cache_interval_without_an_unknown_kid() {
    let auth = testkit::auth::Auth::start(&[]).await;
    let echo = testkit::echo::start().await;
    // The JWKS says max-age=300; the bounds cap it at 1 s here.
    let toml = config(&auth.url, &echo.url, "").replace("[jwks]\n", "[jwks]\nmax_refresh = 1\n");
    let crate::helpers::Started { admin, .. } = start_gateway(&toml, &[]).await;
    let client = reqwest::Client::new();
    let m = || async {
        client
            .get(format!("{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(metric(&m().await, "gateway_jwks_keys"), 1.0);
    // A scheduled rotation publishes the next key before it signs.
    auth.state.rotate_keys(false).await.unwrap().unwrap();
    let mut keys = 0.0;
    for _ in 0..40 {
        keys = metric(&m().await, "gateway_jwks_keys");
        if keys == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(keys, 2.0, "the background refresh picked the new key up");
    assert_eq!(
        metric(&m().await, "gateway_jwks_unknown_kid_refetches_total"),
        0.0
    );
}

/// Each signing algorithm through the gateway: an auth-service signing ES256 or EdDSA, a gateway
/// whose `algorithms` allow it verifies the tokens locally (and refuses a changed one), and a
/// gateway left at the default (RS256 only) refuses them as an algorithm it does not accept.
#[actix_web::test]
async fn tokens_of_each_signing_algorithm_pass_where_the_algorithm_is_allowed() {
    for alg in ["ES256", "EdDSA"] {
        let s = Stack::start_with(
            &[("AUTH_SIGNING_ALG", alg)],
            &format!("algorithms = [\"RS256\", \"{alg}\"]"),
        )
        .await;
        let t = s.auth.user("kim").await;
        let header: serde_json::Value = serde_json::from_slice(
            &shared::jws::b64_decode(t.access_token.split('.').next().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], alg);
        let (status, echo) = s.echo_of("/api/x", Some(&t.access_token), &[]).await;
        assert_eq!(status, 200, "{alg}");
        let sub = serde_json::from_slice::<serde_json::Value>(
            &shared::jws::b64_decode(t.access_token.split('.').nth(1).unwrap()).unwrap(),
        )
        .unwrap()["sub"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(echo.to_string().contains(&sub), "{echo}");
        // One changed signature character: refused.
        let mut bad = t.access_token.clone().into_bytes();
        let at = bad.len() - 2;
        bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(s.get("/api/x", Some(&bad)).await.status(), 401, "{alg}");

        // The default allow-list (RS256 only) refuses the algorithm, saying so.
        let strict = start_gateway(&config(&s.auth.url, &s.echo.url, ""), &[]).await;
        crate::helpers::wait_ready(&strict.admin).await;
        let res = s
            .client
            .get(format!("{}/api/x", strict.url))
            .bearer_auth(&t.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{alg}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(
            body.to_string().contains("algorithm is not accepted"),
            "{alg}: {body}"
        );
    }
}
