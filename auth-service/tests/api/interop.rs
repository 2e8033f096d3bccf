//! A JWT library that is not ours (PyJWT) verifies our tokens through our JWKS.

use serde_json::Value;
use tokio::process::Command;

use crate::helpers::{ISSUER, TestApp};

async fn pyjwt(app: &TestApp, token: &str) -> std::process::Output {
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
