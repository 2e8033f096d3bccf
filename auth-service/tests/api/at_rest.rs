//! Signing keys at rest: sealed with AES-256-GCM under AUTH_KEY_ENCRYPTION_KEY, plaintext keys of
//! earlier versions sealed at the first start, and the key-encryption key itself rotatable.

use std::sync::Arc;

use auth_service::crypto::kek::KeyEncryption;
use auth_service::crypto::keys::{FORMAT_PKCS8_PLAIN, FORMAT_PKCS8_SEALED, SigningKey};
use auth_service::storage::KeyStore;
use auth_service::storage::postgres::PgStore;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;

use crate::helpers::{Resources, TestApp, header, url_for_db};

const KEK_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const KEK_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

/// Every stored key: (kid, format, private bytes).
async fn rows(resources: &Resources) -> Vec<(String, i32, Vec<u8>)> {
    let (client, conn) = tokio_postgres::connect(&url_for_db(&resources.db), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query(
            "SELECT kid, format_version, private_key FROM signing_keys ORDER BY kid",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn opens_with(kek: &str, kid: &str, sealed: &[u8]) -> bool {
    KeyEncryption::new(&[SecretString::from(kek.to_owned())])
        .unwrap()
        .open(kid, sealed)
        .is_ok()
}

fn is_pkcs8(bytes: &[u8]) -> bool {
    aws_lc_rs::rsa::KeyPair::from_pkcs8(bytes).is_ok()
}

#[tokio::test]
async fn the_database_holds_no_plaintext_private_key() {
    let app = TestApp::builder()
        .env("AUTH_KEY_ENCRYPTION_KEY", KEK_A)
        .spawn()
        .await;
    let (_, t) = app.new_user().await;
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::OK);
    let stored = rows(&app.resources).await;
    assert_eq!(stored.len(), 1);
    for (kid, format, private) in &stored {
        assert_eq!(*format, FORMAT_PKCS8_SEALED);
        assert!(!is_pkcs8(private), "a private key is stored in plaintext");
        assert!(opens_with(KEK_A, kid, private));
        assert!(!opens_with(KEK_B, kid, private));
    }
}

#[tokio::test]
async fn plaintext_keys_of_earlier_versions_are_sealed_at_the_first_start() {
    let resources = Resources::create().await;
    let pg = PgStore::new(
        &SecretString::from(url_for_db(&resources.db)),
        2,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    pg.migrate().await.unwrap();
    // What an earlier version stored: format 1, plain PKCS#8.
    let old = SigningKey::generate(auth_service::crypto::keys::KeySpec::Rsa(2048)).unwrap();
    let kid = old.kid.clone();
    assert_eq!(old.format_version, FORMAT_PKCS8_PLAIN);
    assert!(pg.insert_if_no_current(old).await.unwrap());
    assert!(is_pkcs8(&rows(&resources).await[0].2));

    let app = TestApp::builder()
        .resources(Arc::clone(&resources))
        .env("AUTH_KEY_ENCRYPTION_KEY", KEK_A)
        .spawn()
        .await;
    let (_, t) = app.new_user().await;
    assert_eq!(
        header(&t.access_token)["kid"],
        kid.as_str(),
        "the same key signs"
    );
    let stored = rows(&resources).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1, FORMAT_PKCS8_SEALED);
    assert!(!is_pkcs8(&stored[0].2));
    assert!(opens_with(KEK_A, &kid, &stored[0].2));
}

#[tokio::test]
async fn the_key_encryption_key_can_be_rotated() {
    let a = TestApp::builder()
        .env("AUTH_KEY_ENCRYPTION_KEY", KEK_A)
        .spawn()
        .await;
    let (_, t) = a.new_user().await;
    let kid = header(&t.access_token)["kid"].as_str().unwrap().to_owned();
    a.stop().await;

    // New first, old second: keys are re-sealed under the new one.
    let both = TestApp::builder()
        .sharing(&a)
        .env("AUTH_KEY_ENCRYPTION_KEY", &format!("{KEK_B},{KEK_A}"))
        .spawn()
        .await;
    assert_eq!(both.me_status(&t.access_token).await, StatusCode::OK);
    let stored = rows(&a.resources).await;
    assert!(opens_with(KEK_B, &kid, &stored[0].2));
    assert!(!opens_with(KEK_A, &kid, &stored[0].2));
    both.stop().await;

    // The old one can now be dropped.
    let b = TestApp::builder()
        .sharing(&a)
        .env("AUTH_KEY_ENCRYPTION_KEY", KEK_B)
        .spawn()
        .await;
    let jwks: Value = b
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
    b.stop().await;

    // With only the old key, the service refuses to start and says why.
    let e = TestApp::builder()
        .sharing(&a)
        .env("AUTH_KEY_ENCRYPTION_KEY", KEK_A)
        .try_spawn()
        .await
        .err()
        .expect("refused");
    assert!(
        format!("{e:#}").contains("key-encryption key that is not configured"),
        "{e:#}"
    );
}

#[tokio::test]
async fn without_a_configured_key_development_mode_makes_a_local_one() {
    let dir = std::env::temp_dir().join(format!("kek-dev-{}", uuid::Uuid::new_v4().simple()));
    let app = TestApp::builder()
        .env("AUTH_KEY_ENCRYPTION_KEY", "")
        .env("AUTH_DATA_DIR", dir.to_str().unwrap())
        .spawn()
        .await;
    let file = std::fs::read_to_string(dir.join("key-encryption-key")).unwrap();
    let stored = rows(&app.resources).await;
    assert!(opens_with(file.trim(), &stored[0].0, &stored[0].2));
    let _ = std::fs::remove_dir_all(&dir);
}
