//! Header-trust mode: the identity comes from the headers the gateway forwards, and a request
//! without them is refused; tokens are not looked at.

use actix_web::{App, test, web};
use shared::Authenticator;

use crate::support::{Issuer, get, routes, send};

const USER: [(&str, &str); 6] = [
    ("x-user-id", "00000000-0000-4000-8000-000000000001"),
    ("x-user-roles", "user,admin"),
    ("x-user-scopes", "profile,orders:read"),
    ("x-session-id", "s-1"),
    ("x-auth-principal", "user"),
    ("x-auth-client-id", "app"),
];

fn with_headers(path: &str, headers: &[(&str, &str)]) -> test::TestRequest {
    headers
        .iter()
        .fold(get(path, None), |r, (k, v)| r.append_header((*k, *v)))
}

#[actix_web::test]
async fn the_gateways_headers_are_the_identity() {
    let auth = web::Data::new(Authenticator::trust_gateway_headers());
    let app = test::init_service(App::new().app_data(auth).configure(routes)).await;
    let r = send(&app, with_headers("/me", &USER).to_request()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["user_id"], "00000000-0000-4000-8000-000000000001");
    assert_eq!(r.body["roles"], serde_json::json!(["user", "admin"]));
    assert_eq!(
        r.body["scopes"],
        serde_json::json!(["profile", "orders:read"])
    );
    assert_eq!(r.body["session_id"], "s-1");
    assert_eq!(r.body["principal"], "user");
    assert_eq!(r.body["client_id"], "app");
    assert_eq!(
        send(&app, with_headers("/admin", &USER).to_request())
            .await
            .status,
        200
    );
    let client = [
        ("x-user-id", "billing"),
        ("x-user-roles", ""),
        ("x-user-scopes", "invoices:write"),
        ("x-auth-principal", "client"),
        ("x-auth-client-id", "billing"),
    ];
    assert_eq!(
        send(&app, with_headers("/billing", &client).to_request())
            .await
            .status,
        200
    );
}

#[actix_web::test]
async fn requests_lacking_the_gateways_headers_are_refused() {
    let issuer = Issuer::start().await;
    let auth = web::Data::new(Authenticator::trust_gateway_headers());
    let app = test::init_service(App::new().app_data(auth).configure(routes)).await;
    let missing = |name: &str| -> Vec<(&str, &str)> {
        USER.iter().copied().filter(|(n, _)| *n != name).collect()
    };
    let mut repeated = USER.to_vec();
    repeated.push(("X-User-Id", "00000000-0000-4000-8000-000000000002"));
    let cases: Vec<(&str, test::TestRequest)> = vec![
        ("nothing", get("/me", None)),
        // A valid token is not an identity in this mode: only the gateway's headers are.
        ("a token only", get("/me", Some(&issuer.token()))),
        ("no user id", with_headers("/me", &missing("x-user-id"))),
        (
            "no principal",
            with_headers("/me", &missing("x-auth-principal")),
        ),
        (
            "no client id",
            with_headers("/me", &missing("x-auth-client-id")),
        ),
        (
            "user without session",
            with_headers("/me", &missing("x-session-id")),
        ),
        ("repeated user id", with_headers("/me", &repeated)),
    ];
    for (name, req) in cases {
        let r = send(&app, req.to_request()).await;
        assert_eq!(r.status, 401, "{name}");
        assert_eq!(r.header("www-authenticate"), "Bearer", "{name}");
        assert_eq!(
            r.header("content-type"),
            "application/problem+json",
            "{name}"
        );
        assert_eq!(r.body["status"], 401, "{name}");
    }
    // Claims exist only when a token was verified here: asking for them in this mode is a
    // programming error, reported as such.
    let r = send(&app, with_headers("/claims", &USER).to_request()).await;
    assert_eq!(r.status, 500);
}

#[actix_web::test]
async fn without_an_authenticator_the_extractor_fails_closed() {
    let app = test::init_service(App::new().configure(routes)).await;
    let r = send(&app, with_headers("/me", &USER).to_request()).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body["code"], "internal");
}
