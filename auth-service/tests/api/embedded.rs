//! The embedded store (no AUTH_DATABASE_URL): the service works on one SQLite file and finds
//! everything again after a restart.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, claims};

/// A data directory removed when dropped.
struct DataDir(std::path::PathBuf);

impl DataDir {
    fn new() -> DataDir {
        DataDir(
            std::env::temp_dir().join(format!("auth-embedded-{}", uuid::Uuid::new_v4().simple())),
        )
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn embedded(dir: &DataDir) -> TestApp {
    TestApp::builder()
        .env("AUTH_DATABASE_URL", "")
        .env("AUTH_REDIS_URL", "")
        .env("AUTH_DATA_DIR", dir.path())
        .with_admin()
        .spawn()
        .await
}

#[tokio::test]
async fn a_restarted_embedded_service_finds_users_keys_sessions_and_revocations() {
    let dir = DataDir::new();
    let app = embedded(&dir).await;
    let (name, kept) = app.new_user().await;
    let (_, revoked) = app.new_user().await;
    let res = app
        .post_form("/v1/logout", &[], Some(&revoked.access_token))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    app.stop().await;
    drop(app);

    let app = embedded(&dir).await;
    // The same signing key: tokens from before verify, and the JWKS is unchanged.
    let again: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, jwks);
    assert_eq!(app.me_status(&kept.access_token).await, StatusCode::OK);
    // The session: its refresh token still rotates.
    let res = app.refresh(&kept.refresh_token).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The revocation: still enforced.
    assert_eq!(
        app.me_status(&revoked.access_token).await,
        StatusCode::UNAUTHORIZED
    );
    // Users and the bootstrap admin (created once, not again).
    app.login(&name, PASSWORD).await;
    let admin = app.admin_tokens().await;
    let users: Value = app
        .get("/v1/admin/users", Some(&admin.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users["users"].as_array().unwrap().len(), 3, "{users}");
    // No private key is stored in plaintext in the file either.
    let conn = rusqlite::Connection::open(dir.0.join("auth.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT format_version, private_key FROM signing_keys")
        .unwrap();
    let keys: Vec<(i32, Vec<u8>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(keys.len(), 1);
    for (format, private) in keys {
        assert_eq!(format, auth_service::crypto::keys::FORMAT_PKCS8_SEALED);
        assert!(aws_lc_rs::rsa::KeyPair::from_pkcs8(&private).is_err());
    }
    // The database file is private to the service's user.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.0.join("auth.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
}

#[tokio::test]
async fn the_embedded_service_rotates_detects_reuse_and_serves_the_feed() {
    let dir = DataDir::new();
    let app = embedded(&dir).await;
    let (_, t) = app.new_user().await;
    let mut feed = testkit::feed::FeedClient::connect(&app.address, None, None)
        .await
        .ok()
        .unwrap();
    let first = feed.next_non_heartbeat().await;
    assert_eq!(first.event, "snapshot");
    assert_eq!(app.refresh(&t.refresh_token).await.status(), StatusCode::OK);
    // Replaying the spent token revokes the session, and the feed says so.
    assert_eq!(
        app.refresh(&t.refresh_token).await.status(),
        StatusCode::BAD_REQUEST
    );
    let e = feed.next_non_heartbeat().await;
    assert_eq!(e.event, "revoke");
    let event: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(event["type"], "sid");
    assert_eq!(event["value"], claims(&t.access_token)["sid"]);
    assert_eq!(
        app.me_status(&t.access_token).await,
        StatusCode::UNAUTHORIZED
    );
    let ready: Value = app.get("/readyz", None).await.json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
}

#[tokio::test]
async fn readiness_names_the_embedded_store() {
    let dir = DataDir::new();
    let app = embedded(&dir).await;
    let ready: Value = app.get("/readyz", None).await.json().await.unwrap();
    assert_eq!(
        ready,
        serde_json::json!({"status": "ready", "checks": {"sqlite": "ok", "signing_keys": "ok"}})
    );
}
