//! Verifying tokens: a valid one is accepted; the gateway's attack table gets 401, never a 5xx,
//! never an outbound fetch of an attacker's key URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, test};
use serde_json::{Value, json};
use shared::jws::b64_encode;

use crate::support::{Issuer, Signer, get, routes, send};

fn with_header(token: &str, header: Value) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    format!("{}.{rest}", b64_encode(header.to_string()))
}

fn flip_signature(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = shared::jws::b64_decode(sig).unwrap();
    bytes[20] ^= 0x01;
    format!("{head}.{}", b64_encode(bytes))
}

#[actix_web::test]
async fn a_valid_token_is_accepted_and_becomes_an_identity() {
    let issuer = Issuer::start().await;
    let (auth, _) = issuer.authenticator().await;
    let app = test::init_service(App::new().app_data(auth).configure(routes)).await;

    let r = send(&app, get("/me", Some(&issuer.token())).to_request()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["user_id"], "00000000-0000-4000-8000-000000000001");
    assert_eq!(r.body["roles"], json!(["user"]));
    assert_eq!(r.body["scopes"], json!(["profile"]));
    assert_eq!(r.body["session_id"], "s-1");
    assert_eq!(r.body["principal"], "user");
    assert_eq!(r.body["client_id"], "app");

    // `Verified` and `Identity` in one handler.
    let r = send(&app, get("/claims", Some(&issuer.token())).to_request()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["sub"], "00000000-0000-4000-8000-000000000001");

    // A client's own token (client credentials): no session, the subject is the client.
    let mut c = issuer.claims();
    c.as_object_mut().unwrap().remove("sid");
    c["sub"] = json!("billing");
    c["client_id"] = json!("billing");
    c["roles"] = json!([]);
    c["scope"] = json!("invoices:write");
    let client = issuer.signer.sign("at+jwt", &c);
    let r = send(&app, get("/me", Some(&client)).to_request()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["principal"], "client");
    assert_eq!(r.body["session_id"], Value::Null);
    assert_eq!(
        send(&app, get("/billing", Some(&client)).to_request())
            .await
            .status,
        200
    );
}

#[actix_web::test]
async fn roles_scopes_and_principals_are_enforced_with_403() {
    let issuer = Issuer::start().await;
    let (auth, _) = issuer.authenticator().await;
    let app = test::init_service(App::new().app_data(auth).configure(routes)).await;
    let user = issuer.token();
    let r = send(&app, get("/admin", Some(&user)).to_request()).await;
    assert_eq!(r.status, 403);
    assert!(r.header("www-authenticate").contains("insufficient_scope"));
    assert_eq!(r.body["status"], 403);
    // A user's token on a client-only route.
    assert_eq!(
        send(&app, get("/billing", Some(&user)).to_request())
            .await
            .status,
        403
    );
    let mut c = issuer.claims();
    c["roles"] = json!(["user", "admin"]);
    let admin = issuer.signer.sign("at+jwt", &c);
    assert_eq!(
        send(&app, get("/admin", Some(&admin)).to_request())
            .await
            .status,
        200
    );
}

#[actix_web::test]
async fn requests_without_one_bearer_token_are_refused() {
    let issuer = Issuer::start().await;
    let (auth, _) = issuer.authenticator().await;
    let app = test::init_service(App::new().app_data(auth).configure(routes)).await;
    for req in [
        get("/me", None),
        get("/me", None).insert_header(("authorization", "Basic dXNlcjpwYXNz")),
    ] {
        let r = send(&app, req.to_request()).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), "Bearer");
        assert_eq!(r.header("content-type"), "application/problem+json");
        assert_eq!(r.body["code"], "unauthorized");
    }
    let t = issuer.token();
    let two = get("/me", Some(&t)).append_header(("authorization", format!("Bearer {t}")));
    let r = send(&app, two.to_request()).await;
    assert_eq!(r.status, 400);
    assert!(r.header("www-authenticate").contains("invalid_request"));
}

#[actix_web::test]
async fn the_attack_table_is_refused_with_401() {
    let issuer = Issuer::start().await;
    let (auth, _) = issuer.authenticator().await;
    let app = test::init_service(App::new().app_data(auth).configure(routes)).await;
    let good = issuer.token();
    let kid = issuer.signer.kid.clone();
    let claims = issuer.claims();
    let at = |c: &Value| issuer.signer.sign("at+jwt", c);
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
    actix_web::rt::spawn(async move {
        while trap.accept().await.is_ok() {
            t2.fetch_add(1, Ordering::SeqCst);
        }
    });
    let jwk = serde_json::to_value(issuer.signer.jwk()).unwrap();
    let n = jwk["n"].as_str().unwrap().to_owned();
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
    let refresh = issuer.signer.sign(
        "rt+jwt",
        &json!({"iss": issuer.url(), "sub": claims["sub"], "aud": issuer.url(),
                "exp": claims["exp"], "iat": claims["iat"], "jti": "r", "sid": "s",
                "client_id": "app"}),
    );
    // The attacker's own key, embedded, under the issuer's kid or its own.
    let evil = Signer::new(&kid);
    let evil_jwk = serde_json::to_value(evil.jwk()).unwrap();
    let self_signed = evil.sign_raw(
        &json!({"alg":"RS256","typ":"at+jwt","kid":kid,"jwk":evil_jwk,"jku":trap_url}),
        &claims,
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
            "alg none with kid",
            format!(
                "{}.{payload}.",
                b64_encode(json!({"alg":"none","typ":"at+jwt","kid":kid}).to_string())
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
            "alg nOnE",
            with_header(&good, json!({"alg":"nOnE","typ":"at+jwt","kid":kid})),
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
            "PS256 relabelled",
            with_header(&good, json!({"alg":"PS256","typ":"at+jwt","kid":kid})),
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
        ("truncated signature", signed[..signed.len() - 4].to_owned()),
        ("wrong iss", with("iss", json!("https://evil.example"))),
        ("wrong aud", with("aud", json!("other-api"))),
        ("wrong aud list", with("aud", json!(["other", "another"]))),
        ("wrong typ", issuer.signer.sign("JWT", &claims)),
        ("no typ", issuer.signer.sign("", &claims)),
        ("expired", with("exp", json!(shared::unix_now() - 120))),
        ("future nbf", with("nbf", json!(shared::unix_now() + 3600))),
        ("refresh token as access token", refresh),
        ("self-signed with embedded jwk and jku", self_signed),
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
                json!({"alg":"RS256","typ":"at+jwt","kid":"attacker","jwk":evil_jwk}),
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
            "no kid",
            with_header(&signed, json!({"alg":"RS256","typ":"at+jwt"})),
        ),
        (
            "crit",
            with_header(
                &signed,
                json!({"alg":"RS256","typ":"at+jwt","kid":kid,"crit":["exp"]}),
            ),
        ),
        (
            "typ with a multi-byte character at byte 12",
            with_header(
                &signed,
                json!({"alg":"RS256","typ":"applicationé/at+jwt","kid":kid}),
            ),
        ),
        ("two parts", payload.clone()),
        ("four parts", format!("{good}.x")),
        ("empty", String::new()),
        ("garbage", "!!!.@@@.###".into()),
        ("oversized", "a".repeat(9000)),
        (
            "oversized but well formed",
            with("scope", json!("s ".repeat(20_000))),
        ),
        ("not base64 header", format!("%%%.{payload}.sig")),
        (
            "json bomb header",
            format!("{}.{payload}.sig", b64_encode("[".repeat(3000))),
        ),
        (
            "claims not json",
            issuer.signer.sign_bytes(
                json!({"alg":"RS256","typ":"at+jwt","kid":kid})
                    .to_string()
                    .as_bytes(),
                b"not json",
            ),
        ),
        ("exp as a string", with("exp", json!("tomorrow"))),
        ("empty sub", with("sub", json!(""))),
    ];
    for (name, token) in &cases {
        let req = get("/me", None).insert_header(("authorization", format!("Bearer {token}")));
        let r = send(&app, req.to_request()).await;
        assert_eq!(r.status, 401, "{name}");
        assert!(
            r.header("www-authenticate")
                .starts_with("Bearer error=\"invalid_token\""),
            "{name}: {}",
            r.header("www-authenticate")
        );
        assert_eq!(
            r.header("content-type"),
            "application/problem+json",
            "{name}"
        );
        assert_eq!(r.body["status"], 401, "{name}");
        assert_eq!(r.body["code"], "invalid_token", "{name}");
    }
    assert_eq!(
        trapped.load(Ordering::SeqCst),
        0,
        "an attacker-supplied key URL was fetched"
    );
    // The genuine token still works.
    assert_eq!(
        send(&app, get("/me", Some(&good)).to_request())
            .await
            .status,
        200
    );
}
