//! Signing keys: one key across restarts and replicas, rotation by CLI, unknown-kid reload.

use tokio::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, claims, header, legacy_refresh_token};

async fn kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn restarts_and_replicas_sign_with_the_same_key() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    let kid = header(&t.access_token)["kid"].clone();
    app.stop().await;
    let again = TestApp::builder().sharing(&app).spawn().await;
    assert_eq!(kids(&again).await, vec![kid.as_str().unwrap().to_owned()]);
    assert_eq!(
        again.me_status(&t.access_token).await,
        StatusCode::OK,
        "tokens survive a restart"
    );
    let replica = TestApp::builder().sharing(&app).spawn().await;
    let (_, t2) = replica.new_user().await;
    assert_eq!(header(&t2.access_token)["kid"], kid);
    assert_eq!(
        again.me_status(&t2.access_token).await,
        StatusCode::OK,
        "one replica's token works on another"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_make_one_key() {
    let first = TestApp::builder().spawn().await;
    // Wipe the key the first instance made, then start three at once on the empty table.
    let (client, conn) = tokio_postgres::connect(
        &crate::helpers::url_for_db(&first.resources.db),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    first.stop().await;
    client
        .batch_execute("DELETE FROM signing_keys")
        .await
        .unwrap();
    let spawn = || TestApp::builder().sharing(&first).spawn();
    let (a, b, c) = tokio::join!(spawn(), spawn(), spawn());
    let ka = kids(&a).await;
    assert_eq!(ka.len(), 1);
    assert_eq!(kids(&b).await, ka);
    assert_eq!(kids(&c).await, ka);
    let n: i64 = client
        .query_one("SELECT count(*) FROM signing_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let v: i32 = client
        .query_one("SELECT format_version FROM signing_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 2, "sealed at rest");
}

/// Runs the CLI against the app's stores (async: the test runtime drives the app's connections).
async fn cli(
    env: &std::collections::HashMap<String, String>,
    args: &[&str],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .args(args)
        .env_clear()
        .envs(env)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap()
}

/// `keys rotate --now` is the compromise response: a new key signs at once, every older key is
/// deleted, and the running service (which reloads keys only every hour here) refuses the old
/// key's access tokens, and the signed refresh tokens of earlier versions, at once, told by the
/// revocation stream. Sessions survive: their opaque refresh tokens owe nothing to a key.
#[tokio::test]
async fn keys_rotate_now_replaces_every_key_and_the_running_service_refuses_the_old_ones_at_once() {
    let app = TestApp::builder()
        .env("AUTH_KEY_RELOAD_INTERVAL", "3600")
        .spawn()
        .await;
    let (name, old) = app.new_user().await;
    let old_kid = header(&old.access_token)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    // A signed refresh token as earlier versions issued them, signed by the old key.
    let at = claims(&old.access_token);
    let signed_before = legacy_refresh_token(
        &app,
        at["sub"].as_str().unwrap(),
        at["client_id"].as_str().unwrap(),
        "",
    )
    .await;
    let out = cli(&app.env, &["keys", "rotate", "--now"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_kid = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_ne!(new_kid, old_kid);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&old_kid));
    // `keys list` shows the new key alone, current, without key material.
    let out = cli(&app.env, &["keys", "list"]).await;
    assert!(out.status.success());
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![(new_kid.clone(), "current".into())],
        "{listed}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("private"));
    // The running service stops trusting and publishing the old key within a second.
    let mut refused = false;
    for _ in 0..100 {
        if app.me_status(&old.access_token).await == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "the old key's token is still accepted");
    let body: Value = app.me(&old.access_token).await.json().await.unwrap();
    assert!(body.to_string().contains("revoked"), "{body}");
    assert_eq!(kids(&app).await, vec![new_kid.clone()]);
    // A signed refresh token of an earlier version, signed by the old key, is refused: a key in
    // other hands could have made it.
    assert_eq!(
        app.refresh(&signed_before).await.status(),
        StatusCode::BAD_REQUEST,
        "a signed refresh token of the old key"
    );
    // The session itself survives: its refresh token is opaque, which no signing key can
    // forge, and rotates into a pair of the new key.
    let res = app.refresh(&old.refresh_token).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the session survives the rotation"
    );
    let pair: Value = res.json().await.unwrap();
    assert_eq!(
        header(pair["access_token"].as_str().unwrap())["kid"],
        new_kid.as_str()
    );
    let fresh = app.login(&name, crate::helpers::PASSWORD).await;
    assert_eq!(header(&fresh.access_token)["kid"], new_kid.as_str());
    assert_eq!(app.me_status(&fresh.access_token).await, StatusCode::OK);
    assert_eq!(
        app.refresh(&fresh.refresh_token).await.status(),
        StatusCode::OK
    );
}

/// The same on the embedded store: the CLI writes to the file the service has open, and the
/// service finds the revocation by reading the file again (every 250 ms).
#[tokio::test]
async fn keys_rotate_now_reaches_a_running_service_on_the_embedded_store() {
    let dir = std::env::temp_dir().join(format!("rotate-now-{}", uuid::Uuid::new_v4().simple()));
    let app = TestApp::builder()
        .env("AUTH_DATABASE_URL", "")
        .env("AUTH_REDIS_URL", "")
        .env("AUTH_DATA_DIR", dir.to_str().unwrap())
        .env("AUTH_KEY_RELOAD_INTERVAL", "3600")
        .spawn()
        .await;
    let (_, old) = app.new_user().await;
    let out = cli(&app.env, &["keys", "rotate", "--now"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_kid = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut refused = false;
    for _ in 0..100 {
        if app.me_status(&old.access_token).await == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "the old key's token is still accepted");
    assert_eq!(kids(&app).await, vec![new_kid]);
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_token_from_a_key_this_replica_has_not_loaded_triggers_a_reload() {
    let a = TestApp::builder()
        .env("AUTH_KEY_RELOAD_INTERVAL", "3600")
        .spawn()
        .await;
    // Another replica's plain rotation came due: its new key signs, and `a`, reloading only every
    // hour, has not seen it.
    let store = &a.state.key_store;
    let now = shared::unix_now();
    let key = auth_service::crypto::keys::SigningKey::generate(
        auth_service::crypto::keys::KeySpec::Rsa(2048),
    )
    .unwrap();
    let key = auth_service::crypto::keys::SigningKey::seal(key, a.state.keys.kek()).unwrap();
    assert!(store.add_next(key, now).await.unwrap());
    assert!(store.advance(now, 3600).await.unwrap());
    let b = TestApp::builder().sharing(&a).spawn().await;
    let (_, t) = b.new_user().await;
    assert_eq!(kids(&a).await.len(), 1);
    assert_eq!(a.me_status(&t.access_token).await, StatusCode::OK);
    assert_eq!(kids(&a).await.len(), 2);
}

#[tokio::test]
async fn invalid_configuration_exits_with_a_one_line_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .env_clear()
        .env("AUTH_REDIS_URL", "redis://127.0.0.1")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("without AUTH_DATABASE_URL"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .env_clear()
        .env("AUTH_DATABASE_URL", "postgres://x@127.0.0.1/db")
        .env("AUTH_REDIS_URL", "redis://127.0.0.1")
        .env("AUTH_PRODUCTION", "true")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success() && err.contains("AUTH_ISSUER"),
        "{err}"
    );
}

#[tokio::test]
async fn config_command_prints_settings_without_secrets() {
    let (_, _resources, env) = TestApp::builder().with_admin().settings().await;
    let out = cli(&env, &["config"]).await;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["bootstrap_admin"]["password"], "[redacted]");
    assert!(!text.contains(crate::helpers::PASSWORD));
    assert!(v["database_url"].as_str().unwrap().contains("[redacted]@"));
}

/// A scheduled rotation publishes the new key first; it signs only after the lead time, then the
/// old key stays published until its tokens have expired, and is removed after.
#[tokio::test]
async fn a_rotation_publishes_before_use_and_removes_the_old_key_after_its_tokens_expire() {
    let app = TestApp::builder()
        .with_admin()
        .env("AUTH_KEY_RELOAD_INTERVAL", "1")
        .env("AUTH_JWKS_MAX_AGE", "1")
        .env("AUTH_KEY_ROTATION_LEAD", "2")
        .env("AUTH_ACCESS_TOKEN_TTL", "2")
        .env("AUTH_LEEWAY", "0")
        .spawn()
        .await;
    let admin = app.admin_tokens().await;
    let old_kid = header(&admin.access_token)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .post(app.url("/v1/admin/keys/rotate"))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body: Value = res.json().await.unwrap();
    let new_kid = body["kid"].as_str().unwrap().to_owned();
    // Published at once, not signing yet; a second rotation is refused while this one waits.
    assert_eq!(kids(&app).await.len(), 2);
    let t = app.login("root", crate::helpers::PASSWORD).await;
    assert_eq!(header(&t.access_token)["kid"], old_kid.as_str());
    let again = app
        .client
        .post(app.url("/v1/admin/keys/rotate"))
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let listed: Value = app
        .get("/v1/admin/keys", Some(&t.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["keys"][0]["state"], "next");
    assert!(listed["keys"][0].get("private").is_none());
    // After the lead time the new key signs.
    let mut signing = String::new();
    for _ in 0..60 {
        let t = app.login("root", crate::helpers::PASSWORD).await;
        signing = header(&t.access_token)["kid"].as_str().unwrap().to_owned();
        if signing == new_kid {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(signing, new_kid);
    // The old key stays published while its access tokens may live, then leaves the JWKS.
    let mut published = kids(&app).await;
    for _ in 0..60 {
        published = kids(&app).await;
        if published.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(published, vec![new_kid.clone()]);
    // Its refresh tokens live longer (7 days here): one it signed still rotates, into the new
    // key, after the key has left the JWKS. (Only this service reads refresh tokens.)
    let res = app.refresh(&t.refresh_token).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a rotation logged a session out"
    );
    let pair: Value = res.json().await.unwrap();
    assert_eq!(
        header(pair["access_token"].as_str().unwrap())["kid"],
        new_kid.as_str()
    );
    // The admin API lists it as retired, unpublished, with when it is deleted.
    let fresh = app.login("root", crate::helpers::PASSWORD).await;
    let listed: Value = app
        .get("/v1/admin/keys", Some(&fresh.access_token))
        .await
        .json()
        .await
        .unwrap();
    let old = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == old_kid.as_str())
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(old["state"], "retired");
    assert_eq!(old["published"], false);
    assert!(old["times"]["remove_after"].as_i64().unwrap() >= shared::unix_now() + 7 * 86_400 - 60);
}

/// With AUTH_KEY_ROTATION_INTERVAL, replicas rotate by themselves: a next key is published once
/// the current one is old enough, and signs after the lead time.
#[tokio::test]
async fn keys_rotate_on_a_schedule() {
    let app = TestApp::builder()
        .env("AUTH_KEY_RELOAD_INTERVAL", "1")
        .env("AUTH_JWKS_MAX_AGE", "1")
        .env("AUTH_KEY_ROTATION_LEAD", "2")
        .env("AUTH_KEY_ROTATION_INTERVAL", "3")
        .spawn()
        .await;
    let (name, t) = app.new_user().await;
    let first = header(&t.access_token)["kid"].as_str().unwrap().to_owned();
    let mut signing = first.clone();
    for _ in 0..100 {
        let t = app.login(&name, crate::helpers::PASSWORD).await;
        signing = header(&t.access_token)["kid"].as_str().unwrap().to_owned();
        if signing != first {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_ne!(signing, first, "a scheduled rotation happened");
    assert!(kids(&app).await.contains(&signing));
}

/// Switching `AUTH_SIGNING_ALG` is a rotation. A replica started with ES256 on keys that are
/// RS256 publishes an ES256 key at once, keeps signing RS256 until the lead time has passed
/// (publish before use), then signs ES256; the RS256 tokens issued before still verify, and the
/// sessions opened under RS256 refresh into ES256 pairs.
#[tokio::test]
async fn switching_the_signing_algorithm_is_a_rotation_published_before_use() {
    let timing = [
        ("AUTH_KEY_RELOAD_INTERVAL", "1"),
        ("AUTH_JWKS_MAX_AGE", "1"),
        ("AUTH_KEY_ROTATION_LEAD", "2"),
    ];
    let mut first = TestApp::builder();
    for (k, v) in timing {
        first = first.env(k, v);
    }
    let rs = first.spawn().await;
    let (name, before) = rs.new_user().await;
    assert_eq!(header(&before.access_token)["alg"], "RS256");
    let mut second = TestApp::builder()
        .resources(rs.resources.clone())
        .env("AUTH_SIGNING_ALG", "ES256");
    for (k, v) in timing {
        second = second.env(k, v);
    }
    let es = second.spawn().await;
    // Published at once (both keys in the JWKS), not signing yet.
    let mut published = Vec::new();
    for _ in 0..20 {
        let jwks: Value = es
            .get("/.well-known/jwks.json", None)
            .await
            .json()
            .await
            .unwrap();
        published = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["alg"].as_str().unwrap().to_owned())
            .collect();
        if published.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    published.sort();
    assert_eq!(published, vec!["ES256", "RS256"]);
    let t = es.login(&name, crate::helpers::PASSWORD).await;
    assert_eq!(
        header(&t.access_token)["alg"],
        "RS256",
        "signing before the lead time"
    );
    // After the lead time, ES256 signs, on both replicas (the RS256 one follows the store).
    let mut algs = (String::new(), String::new());
    for _ in 0..60 {
        let a = es.login(&name, crate::helpers::PASSWORD).await;
        let b = rs.login(&name, crate::helpers::PASSWORD).await;
        algs = (
            header(&a.access_token)["alg"].as_str().unwrap().to_owned(),
            header(&b.access_token)["alg"].as_str().unwrap().to_owned(),
        );
        if algs.0 == "ES256" && algs.1 == "ES256" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(algs, ("ES256".to_owned(), "ES256".to_owned()));
    // The RS256 token issued before still verifies, and its session refreshes into ES256.
    assert_eq!(es.me_status(&before.access_token).await, StatusCode::OK);
    let res = es.refresh(&before.refresh_token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let pair: Value = res.json().await.unwrap();
    assert_eq!(
        header(pair["access_token"].as_str().unwrap())["alg"],
        "ES256"
    );
}
