//! Verifying tokens: a valid one is accepted; the gateway's attack table gets 401, never a 5xx,
//! never an outbound fetch of an attacker's key URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, test};
use serde_json::{Value, json};

use crate::attack_table::{self, Forger};
use crate::support::{Issuer, get, routes, send};

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
    let sign = |typ: &str, c: &Value| issuer.signer.sign(typ, c);
    let cases = attack_table::tokens(&Forger {
        good: &good,
        kid: &kid,
        claims: &claims,
        issuer: issuer.url(),
        modulus: jwk["n"].as_str().unwrap(),
        sign: &sign,
        trap_url: &trap_url,
    });
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
