//! Per-route rate limits: 429 with `Retry-After` and a problem body, counted per client address
//! (which only trusted proxies can name) or per verified user; refused requests never reach the
//! upstream.

use crate::helpers::{Stack, assert_problem, metric};

async fn get_from(
    s: &Stack,
    path: &str,
    token: Option<&str>,
    from: Option<&str>,
) -> reqwest::Response {
    let mut r = s.client.get(format!("{}{path}", s.url));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(ip) = from {
        r = r.header("x-forwarded-for", ip);
    }
    r.send().await.unwrap()
}

async fn assert_limited(res: reqwest::Response) {
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body = assert_problem(res, 429).await;
    assert_eq!(body["code"], "rate_limited", "{body}");
}

#[actix_web::test]
async fn a_route_limit_answers_429_and_a_spoofed_address_resets_nothing() {
    let s = Stack::start().await;
    for _ in 0..3 {
        assert_eq!(get_from(&s, "/rate/x", None, None).await.status(), 200);
    }
    let hits = s.echo.hits();
    assert_limited(get_from(&s, "/rate/x", None, None).await).await;
    // The peer is not a trusted proxy: its X-Forwarded-For names nobody.
    assert_limited(get_from(&s, "/rate/x", None, Some("198.51.100.9")).await).await;
    assert_eq!(
        s.echo.hits(),
        hits,
        "refused requests never reach the upstream"
    );
    // Other routes are not limited.
    assert_eq!(get_from(&s, "/public/x", None, None).await.status(), 200);
    // Both refusals are counted, on their route only.
    let m = s.metrics().await;
    assert_eq!(
        metric(&m, "gateway_rate_limited_total{route=\"/rate\"}"),
        2.0
    );
    assert_eq!(
        metric(&m, "gateway_rate_limited_total{route=\"/public\"}"),
        0.0
    );
}

#[actix_web::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_budget() {
    let s = Stack::start_with(&[], r#"trusted_proxies = ["127.0.0.1"]"#).await;
    for _ in 0..3 {
        let res = get_from(&s, "/rate/x", None, Some("6.6.6.6, 198.51.100.1")).await;
        assert_eq!(res.status(), 200);
    }
    // The client's own prefix in the chain changes nothing: the proxy's entry counts.
    assert_limited(get_from(&s, "/rate/x", None, Some("7.7.7.7, 198.51.100.1")).await).await;
    assert_eq!(
        get_from(&s, "/rate/x", None, Some("198.51.100.2"))
            .await
            .status(),
        200
    );
}

#[actix_web::test]
async fn a_per_user_limit_counts_the_verified_user() {
    let s = Stack::start().await;
    let alice = s.auth.user("alice").await;
    let bob = s.auth.user("bob").await;
    for _ in 0..2 {
        let res = get_from(&s, "/user-rate/x", Some(&alice.access_token), None).await;
        assert_eq!(res.status(), 200);
    }
    assert_limited(get_from(&s, "/user-rate/x", Some(&alice.access_token), None).await).await;
    // Same address, another user: a budget of its own.
    assert_eq!(
        get_from(&s, "/user-rate/x", Some(&bob.access_token), None)
            .await
            .status(),
        200
    );
    // Without a valid token the route still answers 401 first, not 429.
    assert_eq!(get_from(&s, "/user-rate/x", None, None).await.status(), 401);
}
