//! The attack table: every forged, altered or confused token gets 401, never a 5xx, never a
//! request to the upstream, never an outbound fetch of an attacker's key URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use testkit::attack_table::{self, Forger};

use crate::helpers::Stack;

#[actix_web::test]
async fn the_attack_table_is_refused_with_401() {
    let s = Stack::start().await;
    let good = s.auth.user("victim").await.access_token;
    let kid = s.auth.kid();
    let claims = s.auth.claims();
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
    let sign = |typ: &str, c: &Value| s.auth.sign(typ, c);
    let cases = attack_table::tokens(&Forger {
        good: &good,
        kid: &kid,
        claims: &claims,
        issuer: &s.auth.url,
        modulus: jwks["keys"][0]["n"].as_str().unwrap(),
        sign: &sign,
        trap_url: &trap_url,
    });
    // The genuine token first, so that it is in the verified-token cache: a tampered token that
    // keeps its signature (and with it the cache's key for the genuine one) must still be
    // refused, which only a comparison of the whole token decides.
    assert_eq!(s.get("/api/x", Some(&good)).await.status(), 200);
    let impostor = attack_table::same_length_impostor(&good);
    assert_ne!(impostor, good);
    assert_eq!(impostor.len(), good.len());
    assert_eq!(impostor[impostor.len() - 8..], good[good.len() - 8..]);
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
