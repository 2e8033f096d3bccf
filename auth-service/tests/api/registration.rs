//! `POST /v1/users`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_problem};

#[tokio::test]
async fn registration_creates_a_user_with_default_roles_and_server_chosen_id() {
    let app = TestApp::spawn().await;
    let res = app
        .post_json(
            "/v1/users",
            &json!({"username": "Alice", "password": PASSWORD, "email": "alice@example.com",
                    "id": "00000000-0000-0000-0000-000000000001", "roles": ["admin"], "is_admin": true, "disabled": true}),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["username"], "Alice");
    assert_eq!(body["email"], "alice@example.com");
    assert_eq!(
        body["roles"],
        json!(["user"]),
        "client-sent roles are ignored"
    );
    assert_eq!(body["disabled"], false);
    assert_ne!(body["id"], "00000000-0000-0000-0000-000000000001");
    assert!(body.get("password_hash").is_none() && body.get("password").is_none());
    // The stored hash is Argon2id at OWASP parameters or stronger.
    let (_, hash) = app
        .state
        .users
        .find_by_username("alice")
        .await
        .unwrap()
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    // And the roles really are the defaults in the token.
    let tokens = app.login("alice", PASSWORD).await;
    assert_eq!(
        crate::helpers::claims(&tokens.access_token)["roles"],
        json!(["user"])
    );
}

#[tokio::test]
async fn usernames_are_unique_case_insensitively() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("bob", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    for name in ["bob", "BOB", "Bob"] {
        let body = assert_problem(app.register(name, PASSWORD).await, StatusCode::CONFLICT).await;
        assert_eq!(body["code"], "username_taken");
    }
    // Login is case-insensitive too.
    app.login("BoB", PASSWORD).await;
}

#[tokio::test]
async fn form_encoded_registration_works() {
    let app = TestApp::spawn().await;
    let res = app
        .post_form(
            "/v1/users",
            &[("username", "carol"), ("password", PASSWORD)],
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn password_length_is_counted_in_code_points_within_byte_bounds() {
    let app = TestApp::spawn().await;
    let short = "a".repeat(14);
    let body = assert_problem(
        app.register("dave", &short).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["code"], "password_too_short");
    // 15 different emoji are 15 characters (60 bytes): accepted, and they log in.
    let emoji = "🦊🍉🚲🎻🌋🧭🪁🐙🍄🛶🎲🧊🌵🦉🪐";
    assert_eq!(
        app.register("erin", emoji).await.status(),
        StatusCode::CREATED
    );
    app.login("erin", emoji).await;
    let long = "a".repeat(1025);
    let body = assert_problem(
        app.register("frank", &long).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["code"], "password_too_long");
    let long_ok = "tangerine voyage quartz ".repeat(43)[..1024].to_owned();
    assert_eq!(
        app.register("frank", &long_ok).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn common_passwords_and_the_username_are_refused_with_nothing_written() {
    let app = TestApp::spawn().await;
    for (username, password, code) in [
        ("hank", "passwordpassword", "password_too_common"),
        ("hank", "123456789012345", "password_too_common"),
        ("hank", "qwertyuiopasdfgh", "password_too_common"),
        ("hank", "iloveyou12345678", "password_too_common"),
        (
            "hankhankhank1234",
            "hankhankhank1234",
            "password_equals_username",
        ),
        (
            "hankhankhank1234",
            "HANKHANKHANK1234",
            "password_equals_username",
        ),
    ] {
        let body = assert_problem(
            app.register(username, password).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(body["code"], code, "{password}: {body}");
        assert!(
            app.state
                .users
                .find_by_username(username)
                .await
                .unwrap()
                .is_none()
        );
    }
    // Passwords made of the email address or its parts are guessable too.
    for password in ["Ivy.Quintero@example.com", "quinteroquintero99"] {
        let res = app
            .post_json(
                "/v1/users",
                &serde_json::json!({"username": "ivy", "email": "ivy.quintero@example.com", "password": password}),
                None,
            )
            .await;
        let body = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["code"], "password_too_common", "{password}: {body}");
    }
    // The same words in another order are not a pattern.
    assert_eq!(
        app.register("hank", "staple battery horse correct")
            .await
            .status(),
        StatusCode::CREATED
    );
    // A password change is held to the same list.
    let tokens = app.login("hank", "staple battery horse correct").await;
    let res = app
        .post_json(
            "/v1/users/me/password",
            &serde_json::json!({"current_password": "staple battery horse correct", "new_password": "hank1234hank1234"}),
            Some(&tokens.access_token),
        )
        .await;
    let body = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["code"], "password_too_common", "{body}");
}

#[tokio::test]
async fn equivalent_unicode_passwords_log_in_alike() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("gina", "Ångström passphrase").await.status(),
        StatusCode::CREATED
    );
    // Decomposed form of the same text (NFKC makes them equal).
    app.login("gina", "A\u{30a}ngstro\u{308}m passphrase").await;
}

/// Unrelated words: not guessable at any of the lengths the tests cut.
const WORDS: &str = "tangerine voyage quartz kettle zebra moss lantern fjord cobalt wren";

#[tokio::test]
async fn password_bounds_are_configurable() {
    let app = TestApp::builder()
        .env("AUTH_PASSWORD_MIN_LENGTH", "20")
        .env("AUTH_PASSWORD_MAX_BYTES", "64")
        .spawn()
        .await;
    assert_eq!(
        app.register("hank", &WORDS[..19]).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.register("hank", &WORDS[..20]).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.register("hank", &WORDS[..65]).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.register("hank2", &WORDS[..64]).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn invalid_usernames_and_emails_are_refused_with_a_reason() {
    let app = TestApp::spawn().await;
    for name in ["ab", " padded", "has space", "ünïcode", "-dash"] {
        let body = assert_problem(
            app.register(name, PASSWORD).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(body["code"], "invalid_username", "{name}");
    }
    let res = app
        .post_json(
            "/v1/users",
            &json!({"username": "ivan", "password": PASSWORD, "email": "nope"}),
            None,
        )
        .await;
    assert_eq!(
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "invalid_email"
    );
}

#[tokio::test]
async fn closed_registration_refuses_everyone() {
    let app = TestApp::builder()
        .env("AUTH_REGISTRATION", "closed")
        .spawn()
        .await;
    let body = assert_problem(app.register("judy", PASSWORD).await, StatusCode::FORBIDDEN).await;
    assert_eq!(body["code"], "registration_closed");
    assert!(
        app.state
            .users
            .find_by_username("judy")
            .await
            .unwrap()
            .is_none()
    );
}
