//! Hostile and malformed input: always a 4xx with a JSON body, never a 5xx or a panic.

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::jws::b64_encode;

use crate::helpers::{PASSWORD, TestApp, assert_problem, header};

#[tokio::test]
async fn hostile_bearer_tokens_get_401_with_a_challenge() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    let kid = header(&t.access_token)["kid"].as_str().unwrap().to_owned();
    let payload = t.access_token.split('.').nth(1).unwrap().to_owned();
    let sig = t.access_token.split('.').nth(2).unwrap().to_owned();
    let with_header = |h: Value| format!("{}.{payload}.{sig}", b64_encode(h.to_string()));
    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let n = jwks["keys"][0]["n"].as_str().unwrap().to_owned();
    let hs_input = format!(
        "{}.{payload}",
        b64_encode(json!({"alg":"HS256","typ":"at+jwt","kid":kid}).to_string())
    );
    let hs_sig = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, n.as_bytes()),
        hs_input.as_bytes(),
    );
    let mut tokens = vec![
        "".to_owned(),
        "garbage".into(),
        "a.b.c".into(),
        "...".into(),
        // Oversized, yet within the header limit (beyond it: 431, below).
        "x".repeat(12_000),
        format!(
            "{}.{payload}.",
            b64_encode(json!({"alg":"none","typ":"at+jwt"}).to_string())
        ),
        with_header(json!({"alg":"NONE","typ":"at+jwt","kid":kid})),
        with_header(json!({"alg":"RS384","typ":"at+jwt","kid":kid})),
        with_header(json!({"alg":"RS256","typ":"at+jwt","kid":"../../../../etc/passwd"})),
        with_header(json!({"alg":"RS256","typ":"at+jwt","kid":"x".repeat(5000)})),
        with_header(
            json!({"alg":"RS256","typ":"at+jwt","kid":kid,"jku":"http://127.0.0.1:9/jwks.json"}),
        ),
        with_header(json!({"alg":"RS256","typ":"at+jwt","kid":kid,"crit":["exp"]})),
        // A multi-byte character across byte 12 of `typ` (found by the token_raw fuzz target).
        with_header(json!({"alg":"RS256","typ":"applicationé/at+jwt","kid":kid})),
        format!("{hs_input}.{}", b64_encode(hs_sig.as_ref())),
        format!("{}x", t.access_token),
        t.access_token.replacen('.', "..", 1),
    ];
    // Tampered claims with the original signature.
    let mut c = crate::helpers::claims(&t.access_token);
    c["roles"] = json!(["admin"]);
    tokens.push(format!(
        "{}.{}.{sig}",
        t.access_token.split('.').next().unwrap(),
        b64_encode(c.to_string())
    ));
    let res = app
        .client
        .get(app.url("/v1/users/me"))
        .header("authorization", format!("Bearer {}", "x".repeat(20_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    for token in &tokens {
        let res = app
            .client
            .get(app.url("/v1/users/me"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "token {:?}",
            &token[..token.len().min(60)]
        );
        let www = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(www.starts_with("Bearer realm=\"auth\""), "{www}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], 401);
    }
    // The real token was never harmed.
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::OK);
}

#[tokio::test]
async fn odd_authorization_headers() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    let send = |value: &'static str| {
        app.client
            .get(app.url("/v1/users/me"))
            .header("authorization", value)
            .send()
    };
    let res = send("Basic dXNlcjpwYXNz").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"auth\"");
    for v in ["Bearer", "Bearer ", "bearer"] {
        assert_eq!(
            send(v).await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{v:?}"
        );
    }
    let lower = app
        .client
        .get(app.url("/v1/users/me"))
        .header("authorization", format!("bearer {}", t.access_token))
        .send()
        .await
        .unwrap();
    assert_eq!(
        lower.status(),
        StatusCode::OK,
        "the scheme is case-insensitive"
    );
    let mut two = app.client.get(app.url("/v1/users/me")).build().unwrap();
    for _ in 0..2 {
        two.headers_mut().append(
            "authorization",
            format!("Bearer {}", t.access_token).parse().unwrap(),
        );
    }
    let res = app.client.execute(two).await.unwrap();
    assert_problem(res, StatusCode::BAD_REQUEST).await;
    let raw = reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap();
    let res = app
        .client
        .get(app.url("/v1/users/me"))
        .header("authorization", raw)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_bodies_are_400_413_or_415_with_problem_details() {
    let app = TestApp::spawn().await;
    let post = |ct: &'static str, body: Vec<u8>| {
        app.client
            .post(app.url("/v1/users"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    for body in [
        &b"{"[..],
        b"null",
        b"[]",
        b"\"x\"",
        b"{\"username\":1,\"password\":2}",
        b"{\"username\":\"ok-name\"}",
        b"\xff\xfe\xfd",
    ] {
        let res = post("application/json", body.to_vec()).await.unwrap();
        let p = assert_problem(res, StatusCode::BAD_REQUEST).await;
        assert_eq!(p["code"], "invalid_request");
    }
    // Nesting deeper than the parser's recursion limit is an error, not a stack overflow.
    let deep = format!("{{\"username\":{}", "[".repeat(10_000));
    assert_problem(
        post("application/json", deep.into_bytes()).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let res = post("application/json", vec![b' '; 20_000]).await.unwrap();
    assert_eq!(
        assert_problem(res, StatusCode::PAYLOAD_TOO_LARGE).await["code"],
        "body_too_large"
    );
    let res = post("text/plain", b"hello".to_vec()).await.unwrap();
    assert_eq!(
        assert_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await["code"],
        "unsupported_media_type"
    );
    let res = post(
        "application/x-www-form-urlencoded",
        b"username=%zz&password=%%".to_vec(),
    )
    .await
    .unwrap();
    assert!(res.status().is_client_error());
    // A missing field is named.
    let res = app
        .post_json("/v1/users", &json!({"username": "nobody"}), None)
        .await;
    let p = assert_problem(res, StatusCode::BAD_REQUEST).await;
    assert!(p["detail"].as_str().unwrap().contains("password"), "{p}");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_problem_bodies() {
    let app = TestApp::spawn().await;
    assert_problem(app.get("/nope", None).await, StatusCode::NOT_FOUND).await;
    assert_problem(
        app.get("/v1/users/me/../../etc/passwd", None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let res = app.get("/v1/login", None).await;
    assert_eq!(res.headers()["allow"], "POST");
    assert_problem(res, StatusCode::METHOD_NOT_ALLOWED).await;
    let res = app
        .client
        .put(app.url("/v1/admin/users/x"))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::METHOD_NOT_ALLOWED).await;
}

/// A cheap deterministic generator: no randomness crate needed for junk.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[tokio::test]
async fn random_junk_at_every_endpoint_never_yields_a_5xx() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let endpoints = [
        ("POST", "/v1/users"),
        ("POST", "/v1/login"),
        ("POST", "/v1/token"),
        ("POST", "/v1/revoke"),
        ("POST", "/v1/logout"),
        ("POST", "/v1/users/me/password"),
        (
            "PATCH",
            "/v1/admin/users/00000000-0000-0000-0000-000000000000",
        ),
        ("DELETE", "/v1/users/me/sessions/abc"),
        ("GET", "/v1/admin/users?limit=%FF&cursor=%00"),
    ];
    let types = [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/json; charset=latin1",
        "",
    ];
    let fragments: [&[u8]; 8] = [
        b"{\"username\":",
        b"grant_type=refresh_token&refresh_token=",
        b"password=",
        b"\x00",
        b"%",
        b"[",
        b"{}",
        b"token=",
    ];
    for i in 0..300 {
        let (method, path) = endpoints[i % endpoints.len()];
        let mut body = fragments[(rng.next() % 8) as usize].to_vec();
        let n = (rng.next() % 64) as usize;
        body.extend(rng.bytes(n));
        let ct = types[(rng.next() % types.len() as u64) as usize];
        let mut req = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .body(body);
        if !ct.is_empty() {
            req = req.header("content-type", ct);
        }
        if i % 2 == 0 {
            req = req.bearer_auth(&admin.access_token);
        }
        let res = req.send().await.unwrap();
        assert!(
            res.status().is_client_error() || res.status().is_success(),
            "{method} {path} → {}",
            res.status()
        );
        assert!(res.status() != StatusCode::OK || method != "PATCH");
    }
    // Still healthy, and the admin can still log in.
    assert_eq!(app.get("/readyz", None).await.status(), StatusCode::OK);
    app.login("root", PASSWORD).await;
}
