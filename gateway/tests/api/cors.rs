//! CORS: preflights are answered without authentication; allowed origins see the headers.

use crate::helpers::Stack;

#[actix_web::test]
async fn preflights_are_answered_without_a_token() {
    let s = Stack::start().await;
    let before = s.echo.hits();
    let res = s
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/cors/items", s.url))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "Authorization, X-Custom")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(h["access-control-allow-headers"], "authorization, x-custom");
    assert_eq!(h["access-control-max-age"], "600");
    assert_eq!(h["vary"], "Origin");
    assert_eq!(
        s.echo.hits(),
        before,
        "preflights are answered by the gateway"
    );

    for (origin, method, headers) in [
        ("https://evil.example", "GET", ""),
        ("https://app.example.com", "TRACE", ""),
        ("https://app.example.com", "GET", "x-not-allowed"),
    ] {
        let mut r = s
            .client
            .request(reqwest::Method::OPTIONS, format!("{}/cors/items", s.url))
            .header("origin", origin)
            .header("access-control-request-method", method);
        if !headers.is_empty() {
            r = r.header("access-control-request-headers", headers);
        }
        let res = r.send().await.unwrap();
        assert_eq!(res.status(), 403, "{origin} {method} {headers}");
        assert!(!res.headers().contains_key("access-control-allow-origin"));
    }
}

#[actix_web::test]
async fn actual_requests_and_errors_carry_cors_headers_for_allowed_origins() {
    let s = Stack::start().await;
    let t = s.auth.user("cora").await;
    let res = s
        .client
        .get(format!("{}/cors/items", s.url))
        .bearer_auth(&t.access_token)
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let res = s
        .client
        .get(format!("{}/cors/items", s.url))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com",
        "the page can read the 401"
    );
    let res = s
        .client
        .get(format!("{}/cors/items", s.url))
        .bearer_auth(&t.access_token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "CORS is for browsers; the request itself is fine"
    );
    assert!(!res.headers().contains_key("access-control-allow-origin"));
}
