//! The admin CLI against the real stores: each command's effect is checked through the API.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::helpers::{PASSWORD, TestApp};

async fn run(env: &HashMap<String, String>, args: &[&str], stdin: &str) -> (bool, Value, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), stdout, stderr)
}

#[tokio::test]
async fn users_are_created_changed_disabled_and_logged_out_from_the_command_line() {
    let app = TestApp::spawn().await;
    let env = &app.env;

    // create: password from stdin, never an argument.
    let (ok, user, err) = run(
        env,
        &["users", "create", "carla", "--email", "carla@example.com"],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(user["username"], "carla");
    assert_eq!(user["roles"], serde_json::json!(["user"]));
    assert!(!err.contains(PASSWORD), "the password reached the logs");
    let t = app.login("carla", PASSWORD).await;
    let (ok, _, err) = run(env, &["users", "create", "carla"], &format!("{PASSWORD}\n")).await;
    assert!(!ok && err.contains("taken"), "{err}");
    let (ok, _, err) = run(env, &["users", "create", "short"], "tooshort\n").await;
    assert!(!ok && err.contains("password"), "{err}");
    let (ok, _, err) = run(env, &["users", "create", "nobody"], "").await;
    assert!(!ok && err.contains("standard input"), "{err}");

    // create --admin: the admin API opens to it.
    let (ok, admin, err) = run(
        env,
        &["users", "create", "boss", "--admin"],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(admin["roles"], serde_json::json!(["admin", "user"]));
    let boss = app.login("boss", PASSWORD).await;
    assert_eq!(
        app.get("/v1/admin/users", Some(&boss.access_token))
            .await
            .status(),
        StatusCode::OK
    );

    // sessions, then set-roles (revokes the access tokens; the new login carries the roles).
    let (ok, s, err) = run(env, &["users", "sessions", "carla"], "").await;
    assert!(ok, "{err}");
    assert_eq!(s["sessions"].as_array().unwrap().len(), 1);
    let (ok, changed, err) =
        run(env, &["users", "set-roles", "CARLA", "user", "support"], "").await;
    assert!(ok, "{err}");
    assert_eq!(changed["roles"], serde_json::json!(["support", "user"]));
    assert_eq!(
        app.me_status(&t.access_token).await,
        StatusCode::UNAUTHORIZED
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let t = app.login("carla", PASSWORD).await;
    let me: Value = app.me(&t.access_token).await.json().await.unwrap();
    assert_eq!(me["roles"], serde_json::json!(["support", "user"]));

    // revoke-sessions by id.
    let id = me["id"].as_str().unwrap().to_owned();
    let (ok, r, err) = run(env, &["users", "revoke-sessions", &id], "").await;
    assert!(ok, "{err}");
    assert!(r["sessions_ended"].as_u64().unwrap() >= 1);
    assert_eq!(
        app.me_status(&t.access_token).await,
        StatusCode::UNAUTHORIZED
    );

    // disable / enable.
    let (ok, d, err) = run(env, &["users", "disable", "carla"], "").await;
    assert!(ok && d["disabled"] == true, "{err}");
    assert_eq!(
        app.login_response("carla", PASSWORD).await.status(),
        StatusCode::BAD_REQUEST
    );
    let (ok, e, err) = run(env, &["users", "enable", "carla"], "").await;
    assert!(ok && e["disabled"] == false, "{err}");
    app.login("carla", PASSWORD).await;

    // Unknown users are a clear error.
    let (ok, _, err) = run(env, &["users", "disable", "ghost"], "").await;
    assert!(!ok && err.contains("no user"), "{err}");
}

#[tokio::test]
async fn clients_are_registered_rotated_disabled_and_deleted_from_the_command_line() {
    let app = TestApp::spawn().await;
    let env = &app.env;
    let token = |id: &str, secret: &str| {
        let (id, secret) = (id.to_owned(), secret.to_owned());
        let app = &app;
        async move {
            app.client
                .post(app.url("/v1/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let (ok, c, err) = run(
        env,
        &[
            "clients",
            "create",
            "nightly-job",
            "--name",
            "Nightly",
            "--scope",
            "orders:read",
            "--audience",
            "api",
        ],
        "",
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(c["client_id"], "nightly-job");
    assert_eq!(c["scopes"], serde_json::json!(["orders:read"]));
    let first = c["client_secret"].as_str().unwrap().to_owned();
    assert!(!err.contains(&first), "the secret reached the logs");
    assert_eq!(token("nightly-job", &first).await, StatusCode::OK);
    let (ok, _, err) = run(env, &["clients", "create", "nightly-job"], "").await;
    assert!(!ok && err.contains("exists"), "{err}");
    let (ok, _, err) = run(env, &["clients", "create", "Not Valid"], "").await;
    assert!(!ok && err.contains("client_id"), "{err}");

    let (ok, list, _) = run(env, &["clients", "list"], "").await;
    assert!(ok);
    assert_eq!(list[0]["client_id"], "nightly-job");
    assert!(!list.to_string().contains(&first));

    // rotate-secret with an overlap: both work; then without: only the newest.
    let (ok, r, err) = run(
        env,
        &[
            "clients",
            "rotate-secret",
            "nightly-job",
            "--overlap",
            "600",
        ],
        "",
    )
    .await;
    assert!(ok, "{err}");
    let second = r["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(token("nightly-job", &first).await, StatusCode::OK);
    assert_eq!(token("nightly-job", &second).await, StatusCode::OK);
    let (ok, r, _) = run(env, &["clients", "rotate-secret", "nightly-job"], "").await;
    assert!(ok);
    let third = r["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        token("nightly-job", &second).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(token("nightly-job", &third).await, StatusCode::OK);

    // disable, enable, delete.
    let (ok, _, _) = run(env, &["clients", "disable", "nightly-job"], "").await;
    assert!(ok);
    assert_eq!(token("nightly-job", &third).await, StatusCode::UNAUTHORIZED);
    let (ok, _, _) = run(env, &["clients", "enable", "nightly-job"], "").await;
    assert!(ok);
    assert_eq!(token("nightly-job", &third).await, StatusCode::OK);
    let (ok, _, _) = run(env, &["clients", "delete", "nightly-job"], "").await;
    assert!(ok);
    assert_eq!(token("nightly-job", &third).await, StatusCode::UNAUTHORIZED);
    let (ok, _, err) = run(env, &["clients", "delete", "nightly-job"], "").await;
    assert!(!ok && err.contains("no such client"), "{err}");

    // An app that signs users in: public, first party, its redirect URIs; then changed.
    let (ok, c, err) = run(
        env,
        &[
            "clients",
            "create",
            "spa",
            "--public",
            "--first-party",
            "--redirect-uri",
            "http://localhost:5173/callback",
            "--post-logout-redirect-uri",
            "http://localhost:5173/",
        ],
        "",
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(c["type"], "public");
    assert_eq!(c["first_party"], true);
    assert!(c.get("client_secret").is_none(), "{c}");
    assert_eq!(
        c["redirect_uris"],
        serde_json::json!(["http://localhost:5173/callback"])
    );
    let (ok, c, err) = run(
        env,
        &[
            "clients",
            "update",
            "spa",
            "--third-party",
            "--redirect-uri",
            "http://localhost:5174/callback",
        ],
        "",
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(c["first_party"], false);
    assert_eq!(
        c["redirect_uris"],
        serde_json::json!(["http://localhost:5174/callback"])
    );
    let (ok, _, err) = run(
        env,
        &["clients", "update", "spa", "--redirect-uri", "/cb"],
        "",
    )
    .await;
    assert!(!ok && err.contains("absolute URI"), "{err}");
}
