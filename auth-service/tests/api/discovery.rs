//! Metadata, JWKS, health.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ISSUER, TestApp, header};

#[tokio::test]
async fn metadata_documents_describe_the_issuer() {
    let app = TestApp::spawn().await;
    let a: Value = app
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json()
        .await
        .unwrap();
    let b: Value = app
        .get("/.well-known/openid-configuration", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a["issuer"], ISSUER);
    assert_eq!(a["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    assert_eq!(a["token_endpoint"], format!("{ISSUER}/v1/token"));
    assert_eq!(a["revocation_endpoint"], format!("{ISSUER}/v1/revoke"));
    assert_eq!(
        a["grant_types_supported"],
        json!(["authorization_code", "refresh_token", "client_credentials"]),
        "the password login is not advertised as a grant"
    );
    // A Basic OpenID provider's metadata (OpenID Connect Discovery 1.0 §3), truthfully.
    assert_eq!(
        a["authorization_endpoint"],
        format!("{ISSUER}/v1/authorize")
    );
    assert_eq!(a["userinfo_endpoint"], format!("{ISSUER}/v1/userinfo"));
    assert_eq!(
        a["end_session_endpoint"],
        format!("{ISSUER}/v1/end-session")
    );
    assert_eq!(a["response_types_supported"], json!(["code"]));
    assert_eq!(a["response_modes_supported"], json!(["query", "form_post"]));
    assert_eq!(a["subject_types_supported"], json!(["public"]));
    assert_eq!(a["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert_eq!(a["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        a["prompt_values_supported"],
        json!(["none", "login", "consent", "create"])
    );
    assert_eq!(a["authorization_response_iss_parameter_supported"], true);
    for scope in ["openid", "profile", "email", "offline_access"] {
        assert!(
            a["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(scope)),
            "{scope}"
        );
    }
    for claim in [
        "sub",
        "auth_time",
        "nonce",
        "sid",
        "amr",
        "at_hash",
        "email_verified",
    ] {
        assert!(
            a["claims_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(claim)),
            "{claim}"
        );
    }
    assert_eq!(
        a["introspection_endpoint"],
        format!("{ISSUER}/v1/introspect")
    );
    assert_eq!(
        a["token_endpoint_auth_methods_supported"],
        json!(["none", "client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        a["introspection_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        a["scopes_supported"],
        json!([
            "email",
            "offline_access",
            "openid",
            "orders:read",
            "profile",
            "users:write"
        ])
    );
}

#[tokio::test]
async fn jwks_publishes_public_parts_only_with_caching_headers() {
    let app = TestApp::spawn().await;
    let (_, tokens) = app.new_user().await;
    let res = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
    assert_eq!(res.headers()["content-type"], "application/jwk-set+json");
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let body: Value = res.json().await.unwrap();
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().unwrap();
    let mut members: Vec<&str> = key.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["alg", "e", "kid", "kty", "n", "use"],
        "no private members"
    );
    assert_eq!(key["kid"], header(&tokens.access_token)["kid"]);
    // RSA ≥ 2048 bits.
    let n = shared::jws::b64_decode(key["n"].as_str().unwrap()).unwrap();
    assert!(n.len() * 8 >= 2048);

    let res = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let res = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let res = app.get("/healthz", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("x-request-id"));
    let res = app.get("/readyz", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "ready", "checks": {"postgres": "ok", "redis": "ok", "signing_keys": "ok"}})
    );
}

#[tokio::test]
async fn request_ids_are_kept_when_sane_and_made_otherwise() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id\twith junk")
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}
