//! Upstream failures and oversize requests: problem bodies with no internal detail.

use crate::helpers::{Stack, assert_problem};

#[actix_web::test]
async fn connect_failures_are_502_and_timeouts_504() {
    let s = Stack::start().await;
    let res = s.get("/dead/x", None).await;
    let body = assert_problem(res, 502).await;
    assert_eq!(body["code"], "upstream_unavailable");
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "no internal detail: {body}"
    );
    let start = std::time::Instant::now();
    let res = s.get("/slow?ms=3000", None).await;
    assert_eq!(assert_problem(res, 504).await["code"], "upstream_timeout");
    assert!(start.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(s.get("/slow?ms=10", None).await.status(), 200);
}

#[actix_web::test]
async fn upstream_statuses_pass_through_and_head_works() {
    let s = Stack::start().await;
    assert_eq!(s.get("/public/status/418", None).await.status(), 418);
    assert_eq!(
        s.get("/public/status/503", None).await.status(),
        503,
        "an upstream's own error passes as it is"
    );
    let t = s.auth.user("hank").await;
    let res = s
        .client
        .head(format!("{}/get-only/x", s.url))
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn oversized_bodies_are_413_and_oversized_headers_431() {
    let s = Stack::start().await;
    let before = s.echo.hits();
    let res = s
        .client
        .post(format!("{}/limited/x", s.url))
        .body(vec![b'a'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(assert_problem(res, 413).await["code"], "body_too_large");
    assert_eq!(
        s.echo.hits(),
        before,
        "refused before contacting the upstream"
    );
    // Chunked, so the size is only known while streaming.
    let chunks =
        futures_util::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 512])));
    let res = s
        .client
        .post(format!("{}/limited/x", s.url))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let res = s
        .client
        .post(format!("{}/limited/x", s.url))
        .body(vec![b'a'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = s
        .client
        .get(format!("{}/public/x", s.url))
        .header("x-big", "b".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_problem(res, 431).await["code"], "headers_too_large");
}
