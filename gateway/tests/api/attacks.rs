//! The attack table: every forged, altered or confused token gets 401, never a 5xx, never a
//! request to the upstream, never an outbound fetch of an attacker's key URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use shared::jws::b64_encode;

use crate::helpers::Stack;

fn with_header(token: &str, header: Value) -> String {
    let mut parts = token.splitn(2, '.');
    let _ = parts.next();
    format!(
        "{}.{}",
        b64_encode(header.to_string()),
        parts.next().unwrap()
    )
}

/// The same token with one signature byte changed.
fn flip_signature(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = shared::jws::b64_decode(sig).unwrap();
    bytes[20] ^= 0x01;
    format!("{head}.{}", b64_encode(bytes))
}

#[actix_web::test]
async fn the_attack_table_is_refused_with_401() {
    let s = Stack::start().await;
    let good = s.auth.user("victim").await.access_token;
    let kid = s.auth.kid();
    let claims = s.auth.claims();
    let at = |c: &Value| s.auth.sign("at+jwt", c);
    let with = |k: &str, v: Value| {
        let mut c = claims.clone();
        c[k] = v;
        at(&c)
    };
    // A listener standing in for an attacker's key server: nothing may ever connect to it.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_url = format!("http://{}/keys", trap.local_addr().unwrap());
    let trapped = Arc::new(AtomicUsize::new(0));
    let t2 = Arc::clone(&trapped);
    tokio::spawn(async move {
        while trap.accept().await.is_ok() {
            t2.fetch_add(1, Ordering::SeqCst);
        }
    });
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", s.auth.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let n = jwks["keys"][0]["n"].as_str().unwrap().to_owned();
    let payload = good.split('.').nth(1).unwrap().to_owned();
    let hs_input = format!(
        "{}.{payload}",
        b64_encode(json!({"alg":"HS256","typ":"at+jwt","kid":kid}).to_string())
    );
    let hs = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, n.as_bytes()),
        hs_input.as_bytes(),
    );
    let mut tampered_claims = claims.clone();
    tampered_claims["roles"] = json!(["admin"]);
    let signed = at(&claims);
    let refresh = s.auth.sign(
        "rt+jwt",
        &json!({"iss": s.auth.url, "sub": claims["sub"], "aud": s.auth.url, "exp": claims["exp"],
        "iat": claims["iat"], "jti": "r", "sid": "s", "client_id": "app"}),
    );

    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{payload}.",
                b64_encode(json!({"alg":"none","typ":"at+jwt"}).to_string())
            ),
        ),
        (
            "alg None",
            with_header(&good, json!({"alg":"None","typ":"at+jwt","kid":kid})),
        ),
        (
            "alg NONE",
            with_header(&good, json!({"alg":"NONE","typ":"at+jwt","kid":kid})),
        ),
        (
            "HS256 with the public key",
            format!("{hs_input}.{}", b64_encode(hs.as_ref())),
        ),
        (
            "RS512 relabelled",
            with_header(&good, json!({"alg":"RS512","typ":"at+jwt","kid":kid})),
        ),
        (
            "tampered payload",
            format!(
                "{}.{}.{}",
                signed.split('.').next().unwrap(),
                b64_encode(tampered_claims.to_string()),
                signed.split('.').nth(2).unwrap()
            ),
        ),
        ("tampered signature", flip_signature(&signed)),
        ("wrong iss", with("iss", json!("https://evil.example"))),
        ("wrong aud", with("aud", json!("other-api"))),
        ("wrong typ", s.auth.sign("JWT", &claims)),
        ("no typ", s.auth.sign("", &claims)),
        ("expired", with("exp", json!(shared::unix_now() - 120))),
        ("future nbf", with("nbf", json!(shared::unix_now() + 3600))),
        ("refresh token as access token", refresh),
        (
            "jku header",
            with_header(
                &signed,
                json!({"alg":"RS256","typ":"at+jwt","kid":"attacker","jku":trap_url}),
            ),
        ),
        (
            "x5u header",
            with_header(
                &signed,
                json!({"alg":"RS256","typ":"at+jwt","kid":"attacker","x5u":trap_url}),
            ),
        ),
        (
            "embedded jwk",
            with_header(
                &signed,
                json!({"alg":"RS256","typ":"at+jwt","kid":"attacker","jwk":jwks["keys"][0]}),
            ),
        ),
        (
            "kid traversal",
            with_header(
                &signed,
                json!({"alg":"RS256","typ":"at+jwt","kid":"../../../../etc/passwd"}),
            ),
        ),
        (
            "kid sql",
            with_header(
                &signed,
                json!({"alg":"RS256","typ":"at+jwt","kid":"'OR'1'='1"}),
            ),
        ),
        (
            "kid huge",
            with_header(
                &signed,
                json!({"alg":"RS256","typ":"at+jwt","kid":"k".repeat(4000)}),
            ),
        ),
        (
            "kid control chars",
            with_header(
                &signed,
                json!({"alg":"RS256","typ":"at+jwt","kid":"a\r\nX-Injected: 1"}),
            ),
        ),
        (
            "kid not a string",
            with_header(
                &signed,
                json!({"alg":"RS256","typ":"at+jwt","kid":{"$ne":1}}),
            ),
        ),
        (
            "crit",
            with_header(
                &signed,
                json!({"alg":"RS256","typ":"at+jwt","kid":kid,"crit":["exp"]}),
            ),
        ),
        (
            // Found by the token_raw fuzz target: a multi-byte character across byte 12 of
            // `typ` made the media-type check slice inside it and panic.
            "typ with a multi-byte character at byte 12",
            with_header(
                &signed,
                json!({"alg":"RS256","typ":"applicationé/at+jwt","kid":kid}),
            ),
        ),
        ("two parts", payload.clone()),
        ("empty", String::new()),
        ("garbage", "!!!.@@@.###".into()),
        ("oversized", "a".repeat(9000)),
        ("not base64 header", format!("%%%.{payload}.sig")),
        (
            "json bomb header",
            format!("{}.{payload}.sig", b64_encode("[".repeat(3000))),
        ),
    ];
    let before = s.echo.hits();
    for (name, token) in &cases {
        let res = s
            .client
            .get(format!("{}/api/x", s.url))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401, "{name}");
        let www = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(www.contains("error=\"invalid_token\""), "{name}: {www}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], 401, "{name}");
    }
    assert_eq!(s.echo.hits(), before, "no attack reached the upstream");
    assert_eq!(
        trapped.load(Ordering::SeqCst),
        0,
        "the gateway fetched an attacker-supplied key URL"
    );
    // The genuine token still works.
    assert_eq!(s.get("/api/x", Some(&good)).await.status(), 200);
}
