//! Service to service: a client's own token (client credentials) through the gateway, routes
//! that require a user's or a client's token, and a revoked client's tokens dying at the gateway.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Stack, assert_problem};

/// Polls until the gateway answers `want` for `token` on `path` (10 s at most).
async fn until(s: &Stack, path: &str, token: &str, want: u16) {
    let mut seen = Vec::new();
    for _ in 0..200 {
        let got = s.get(path, Some(token)).await.status().as_u16();
        seen.push(got);
        if got == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never answered {want}: {seen:?}");
}

fn sid_of(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&shared::jws::b64_decode(payload).unwrap()).unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn a_service_calls_another_through_the_gateway_with_its_own_token() {
    let s = Stack::start().await;
    let secret = s
        .auth
        .register_client("billing", &["orders:read", "profile"])
        .await;
    let token = s.auth.client_token("billing", &secret).await;

    // The upstream sees the client as the verified identity, and no session.
    let (status, echo) = s
        .echo_of(
            "/api/invoices",
            Some(&token),
            &[("x-auth-principal", "user"), ("x-session-id", "forged")],
        )
        .await;
    assert_eq!(status, 200, "{echo}");
    let h = &echo["headers"];
    assert_eq!(h["x-user-id"], json!(["billing"]));
    assert_eq!(h["x-auth-client-id"], json!(["billing"]));
    assert_eq!(
        h["x-auth-principal"],
        json!(["client"]),
        "the client's spoofed value is gone"
    );
    assert_eq!(h["x-user-scopes"], json!(["orders:read,profile"]));
    assert!(h.get("x-session-id").is_none(), "{h}");
    // Scopes granted to the client satisfy scope rules like a user's.
    assert_eq!(s.get("/scoped/x", Some(&token)).await.status(), 200);

    // A user's token carries the user principal and its session.
    let user = s.auth.user("ana").await;
    let (status, echo) = s.echo_of("/api/x", Some(&user.access_token), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(echo["headers"]["x-auth-principal"], json!(["user"]));
    assert_eq!(echo["headers"]["x-auth-client-id"], json!(["app"]));
    assert_eq!(
        echo["headers"]["x-session-id"],
        json!([sid_of(&user.access_token)])
    );
}

#[actix_web::test]
async fn routes_may_require_a_users_or_a_clients_token() {
    let s = Stack::start().await;
    let secret = s.auth.register_client("reporter", &[]).await;
    let client = s.auth.client_token("reporter", &secret).await;
    let user = s.auth.user("ben").await.access_token;

    assert_eq!(s.get("/users-only/x", Some(&user)).await.status(), 200);
    assert_eq!(s.get("/services-only/x", Some(&client)).await.status(), 200);
    for (path, token, why) in [
        ("/users-only/x", &client, "a user's token"),
        ("/services-only/x", &user, "a client's own token"),
    ] {
        let res = s.get(path, Some(token)).await;
        let www = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(www.contains("insufficient_scope"), "{www}");
        let body = assert_problem(res, 403).await;
        assert!(body["detail"].as_str().unwrap().contains(why), "{body}");
    }
    // Without a token: 401 as on any protected route.
    assert_eq!(s.get("/services-only/x", None).await.status(), 401);
}

#[actix_web::test]
async fn a_disabled_or_deleted_clients_tokens_die_at_the_gateway() {
    let s = Stack::start().await;
    let admin = s.auth.admin().await;
    let secret = s.auth.register_client("worker", &[]).await;
    let token = s.auth.client_token("worker", &secret).await;
    let other_secret = s.auth.register_client("bystander", &[]).await;
    let other = s.auth.client_token("bystander", &other_secret).await;
    assert_eq!(s.get("/api/x", Some(&token)).await.status(), 200);

    // Disabled: the feed carries the revocation to the gateway, which rejects the token
    // locally; the other client is untouched.
    let res = s
        .client
        .patch(format!("{}/v1/admin/clients/worker", s.auth.url))
        .bearer_auth(&admin.access_token)
        .json(&serde_json::json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    until(&s, "/api/x", &token, 401).await;
    let body = assert_problem(s.get("/api/x", Some(&token)).await, 401).await;
    assert_eq!(body["detail"], "the token has been revoked");
    assert_eq!(s.get("/api/x", Some(&other)).await.status(), 200);

    // Enabled again: a new token passes; deleting the client kills it too.
    let res = s
        .client
        .patch(format!("{}/v1/admin/clients/worker", s.auth.url))
        .bearer_auth(&admin.access_token)
        .json(&serde_json::json!({"disabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let fresh = s.auth.client_token("worker", &secret).await;
    assert_eq!(s.get("/api/x", Some(&fresh)).await.status(), 200);
    let res = s
        .client
        .delete(format!("{}/v1/admin/clients/worker", s.auth.url))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    until(&s, "/api/x", &fresh, 401).await;
    assert_eq!(s.get("/api/x", Some(&other)).await.status(), 200);
}

/// Runs the Authlib client (scripts/interop/authlib_client.py) with `INTEROP_PYTHON`.
async fn authlib(s: &Stack, id: &str, secret: &str, method: &str) -> serde_json::Value {
    let python = std::env::var("INTEROP_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/interop/authlib_client.py"
    );
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg(format!(
            "{}/.well-known/oauth-authorization-server",
            s.auth.url
        ))
        .arg(id)
        .arg(secret)
        .arg(format!("{}/api/reports", s.url))
        .arg(method)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run {python} (scripts/test.sh prepares a venv with Authlib): {e}")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named"),
        "Authlib is not installed for INTEROP_PYTHON: run scripts/test.sh ({stderr})"
    );
    assert!(out.status.success(), "the Authlib client failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[actix_web::test]
async fn an_authlib_client_gets_a_token_and_calls_through_the_gateway() {
    let s = Stack::start().await;
    let secret = s.auth.register_client("py-service", &["orders:read"]).await;
    for method in ["client_secret_basic", "client_secret_post"] {
        let v = authlib(&s, "py-service", &secret, method).await;
        assert_eq!(v["token"]["token_type"], "Bearer", "{v}");
        assert_eq!(v["token"]["scope"], "orders:read");
        assert!(v["token"].get("refresh_token").is_none(), "{v}");
        assert_eq!(v["status"], 200, "{v}");
        let h = &v["body"]["headers"];
        assert_eq!(h["x-user-id"], json!(["py-service"]), "{method}");
        assert_eq!(h["x-auth-principal"], json!(["client"]));
        assert_eq!(h["x-user-scopes"], json!(["orders:read"]));
    }
}
