//! A JWT library that is not ours (PyJWT) verifies our tokens through our JWKS.

use serde_json::Value;
use tokio::process::Command;

use crate::helpers::{ISSUER, TestApp};

async fn pyjwt(app: &TestApp, token: &str) -> std::process::Output {
    pyjwt_with(app, token, "RS256").await
}

async fn pyjwt_with(app: &TestApp, token: &str, alg: &str) -> std::process::Output {
    let python = std::env::var("INTEROP_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/interop/pyjwt_verify.py"
    );
    Command::new(&python)
        .arg(script)
        .arg(app.url("/.well-known/jwks.json"))
        .arg(token)
        .arg(ISSUER)
        .arg("api")
        .arg(alg)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run {python} (scripts/test.sh prepares a venv with PyJWT): {e}")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_our_access_tokens_with_our_jwks() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    let out = pyjwt(&app, &t.access_token).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named"),
        "PyJWT is not installed for INTEROP_PYTHON: run scripts/test.sh ({stderr})"
    );
    assert!(out.status.success(), "PyJWT rejected our token: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["claims"]["sub"],
        crate::helpers::claims(&t.access_token)["sub"]
    );
    assert_eq!(v["header"]["typ"], "at+jwt");

    // The check is not vacuous: PyJWT rejects a tampered token and a wrong audience.
    let mut parts: Vec<&str> = t.access_token.split('.').collect();
    let mut c = crate::helpers::claims(&t.access_token);
    c["sub"] = "someone-else".into();
    let forged = shared::jws::b64_encode(c.to_string());
    parts[1] = &forged;
    let out = pyjwt(&app, &parts.join(".")).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Signature"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = pyjwt(&app, &t.refresh_token).await;
    assert!(
        !out.status.success(),
        "a refresh token's audience is the issuer, not the API"
    );
}

/// Each signing algorithm end to end, on both storage backends: the service signs with it (`AUTH_SIGNING_ALG`), publishes
/// the matching JWK (`EC` P-256 or `OKP` Ed25519, with its RFC 7638 thumbprint as `kid`), and
/// PyJWT verifies the token with that JWKS, for that algorithm only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_tokens_of_each_signing_algorithm() {
    let cases = [("ES256", "EC", "P-256"), ("EdDSA", "OKP", "Ed25519")];
    // Both storage backends: the keys are sealed, stored and loaded back by each.
    for ((alg, kty, crv), embedded) in cases.iter().flat_map(|c| [(*c, false), (*c, true)]) {
        let mut builder = TestApp::builder().env("AUTH_SIGNING_ALG", alg);
        if embedded {
            let dir = std::env::temp_dir().join(format!("alg-{}", uuid::Uuid::new_v4().simple()));
            builder = builder
                .env("AUTH_DATABASE_URL", "")
                .env("AUTH_REDIS_URL", "")
                .env("AUTH_DATA_DIR", dir.to_str().unwrap());
        }
        let app = builder.spawn().await;
        let (_, t) = app.new_user().await;
        let header = crate::helpers::header(&t.access_token);
        assert_eq!(header["alg"], alg);
        let jwks: Value = app
            .get("/.well-known/jwks.json", None)
            .await
            .json()
            .await
            .unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
        assert_eq!(
            (
                key["kty"].as_str(),
                key["crv"].as_str(),
                key["alg"].as_str()
            ),
            (Some(kty), Some(crv), Some(alg)),
            "{jwks}"
        );
        assert!(key.get("n").is_none() && key.get("d").is_none(), "{jwks}");
        assert_eq!(key["kid"], header["kid"]);
        let jwk: shared::Jwk = serde_json::from_value(key.clone()).unwrap();
        assert_eq!(jwk.thumbprint(), key["kid"].as_str().unwrap());

        let out = pyjwt_with(&app, &t.access_token, alg).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{alg}: PyJWT rejected our token: {stderr}"
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["claims"]["sub"],
            crate::helpers::claims(&t.access_token)["sub"]
        );
        // Not vacuous: a changed claim fails, and so does asking for another algorithm.
        let mut parts: Vec<&str> = t.access_token.split('.').collect();
        let mut c = crate::helpers::claims(&t.access_token);
        c["sub"] = "someone-else".into();
        let forged = shared::jws::b64_encode(c.to_string());
        parts[1] = &forged;
        assert!(
            !pyjwt_with(&app, &parts.join("."), alg)
                .await
                .status
                .success()
        );
        assert!(
            !pyjwt_with(&app, &t.access_token, "RS256")
                .await
                .status
                .success()
        );
        // The service verifies its own tokens, and refreshes sign with the same algorithm.
        assert_eq!(
            app.me_status(&t.access_token).await,
            reqwest::StatusCode::OK
        );
        let res = app.refresh(&t.refresh_token).await;
        assert_eq!(res.status(), reqwest::StatusCode::OK);
        let pair: Value = res.json().await.unwrap();
        assert_eq!(
            crate::helpers::header(pair["access_token"].as_str().unwrap())["alg"],
            alg
        );
        // Discovery says so.
        let meta: Value = app
            .get("/.well-known/openid-configuration", None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            meta["id_token_signing_alg_values_supported"],
            serde_json::json!([alg])
        );
    }
}
