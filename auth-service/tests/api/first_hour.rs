//! What a newcomer trips on, answered: errors that name the fix (a refresh token sent as an
//! access token, an `Authorization` header without the Bearer scheme, a JSON body without its
//! content type, a 405's code, the challenge of a 403), `HEAD` wherever `GET` works, and token
//! responses that always say what was granted.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_problem};

#[tokio::test]
async fn a_refresh_token_sent_as_an_access_token_is_named() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    let res = app.me(&t.refresh_token).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let p = assert_problem(res, StatusCode::UNAUTHORIZED).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("this is a refresh token"),
        "{p}"
    );
}

#[tokio::test]
async fn an_authorization_header_without_the_bearer_scheme_says_how_to_send_it() {
    let app = TestApp::spawn().await;
    let (_, t) = app.new_user().await;
    for (value, says) in [
        (t.access_token.clone(), "has no scheme"),
        (format!("Token {}", t.access_token), "Authorization: Bearer"),
        ("Basic dXNlcjpwYXNz".to_owned(), "Authorization: Bearer"),
    ] {
        let res = app
            .client
            .get(app.url("/v1/users/me"))
            .header("authorization", &value)
            .send()
            .await
            .unwrap();
        assert!(res.headers().contains_key("www-authenticate"), "{value}");
        let p = assert_problem(res, StatusCode::UNAUTHORIZED).await;
        assert!(p["detail"].as_str().unwrap().contains(says), "{value}: {p}");
        assert!(p["code"].is_string(), "{p}");
    }
}

#[tokio::test]
async fn a_json_body_without_its_content_type_is_told_to_add_it() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let body = json!({"username": "newcomer", "password": PASSWORD}).to_string();
    // No Content-Type at all, and curl's default for -d (a form), on JSON-only and
    // JSON-or-form endpoints alike.
    for content_type in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
    ] {
        let mut r = app.client.post(app.url("/v1/users")).body(body.clone());
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        let res = r.send().await.unwrap();
        // /v1/users reads forms too: JSON labelled as a form is named as JSON all the same.
        let p = assert_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("Content-Type: application/json"),
            "{content_type:?}: {p}"
        );
    }
    // The same on the form endpoints of OAuth (their errors are RFC 6749 JSON).
    for path in ["/v1/login", "/v1/token", "/v1/revoke", "/v1/introspect"] {
        let res = app
            .client
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(r#"{"grant_type":"refresh_token","token":"x"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
        let text = res.text().await.unwrap();
        assert!(
            text.contains("Content-Type: application/json"),
            "{path}: {text}"
        );
    }
    let (_, t) = app.new_user().await;
    let id = app.user_id(&t.access_token).await;
    let res = app
        .client
        .patch(app.url(&format!("/v1/admin/users/{id}")))
        .bearer_auth(&admin.access_token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"roles":["user","support"]}"#)
        .send()
        .await
        .unwrap();
    let p = assert_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("Content-Type: application/json"),
        "{p}"
    );
}

#[tokio::test]
async fn every_problem_carries_its_code_and_every_bearer_refusal_its_challenge() {
    let app = TestApp::spawn_with_admin().await;
    // A 405 names what the endpoint answers, HEAD included wherever GET is.
    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/v1/login", "POST"),
        (reqwest::Method::PUT, "/v1/users/me", "GET, HEAD"),
        (reqwest::Method::POST, "/healthz", "GET, HEAD"),
        (
            reqwest::Method::DELETE,
            "/.well-known/jwks.json",
            "GET, HEAD",
        ),
    ] {
        let res = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
        let p = assert_problem(res, StatusCode::METHOD_NOT_ALLOWED).await;
        assert_eq!(p["code"], "method_not_allowed", "{method} {path}: {p}");
        assert!(p["detail"].as_str().unwrap().contains(allow), "{p}");
    }
    let res = app.get("/no/such/route", None).await;
    assert_eq!(
        assert_problem(res, StatusCode::NOT_FOUND).await["code"],
        "not_found"
    );

    // A client's own token on a route that acts for a user: 403 with a challenge.
    let admin = app.admin_tokens().await;
    let c: Value = app
        .post_json(
            "/v1/admin/clients",
            &json!({"client_id": "svc"}),
            Some(&admin.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let t: Value = app
        .client
        .post(app.url("/v1/token"))
        .basic_auth("svc", c["client_secret"].as_str())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = app.me(t["access_token"].as_str().unwrap()).await;
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert_eq!(
        assert_problem(res, StatusCode::FORBIDDEN).await["code"],
        "user_token_required"
    );
}

#[tokio::test]
async fn head_works_wherever_get_does() {
    let app = TestApp::spawn().await;
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs/",
        "/docs/swagger-ui.css",
    ] {
        let get = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(get.status(), StatusCode::OK, "GET {path}");
        let length = get.bytes().await.unwrap().len();
        let head = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
        if let Some(cl) = head.headers().get("content-length") {
            assert_eq!(cl.to_str().unwrap(), length.to_string(), "HEAD {path}");
        }
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} has a body"
        );
    }
}

#[tokio::test]
async fn token_responses_always_say_what_was_granted() {
    let app = TestApp::builder()
        .env("AUTH_ROLE_SCOPES", r#"{"user":["profile"]}"#)
        .spawn()
        .await;
    let (name, t) = app.new_user().await;
    assert_eq!(t.scope.as_deref(), Some("profile"));
    for (asked, granted) in [
        ("profile orders:read", "profile"),
        ("orders:read", ""),
        ("", "profile"),
    ] {
        let res = app
            .post_form(
                "/v1/login",
                &[
                    ("username", &name),
                    ("password", PASSWORD),
                    ("scope", asked),
                ],
                None,
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["scope"], granted, "asked {asked:?}: {v}");
    }
    // A narrower refresh says so too; an empty grant is "" rather than absent.
    let empty: Value = app
        .post_form(
            "/v1/login",
            &[
                ("username", &name),
                ("password", PASSWORD),
                ("scope", "orders:read"),
            ],
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let res = app.refresh(empty["refresh_token"].as_str().unwrap()).await;
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["scope"], "", "{v}");
}

#[tokio::test]
async fn docs_without_its_slash_redirects_to_swagger_ui() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(res.headers()["location"], "/docs/");
}

async fn send_json(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: &str,
    token: &str,
) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn update_bodies_refuse_null_and_need_a_change() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let (_, user) = app.new_user().await;
    let id = app.user_id(&user.access_token).await;
    let created = app
        .post_json(
            "/v1/admin/clients",
            &json!({"client_id": "batch", "scopes": ["orders:read"]}),
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let patch = reqwest::Method::PATCH;
    let user_path = format!("/v1/admin/users/{id}");
    // `null` is not "leave it": it is refused, alone or beside a real change, in every field.
    for body in [
        r#"{"roles": null}"#,
        r#"{"disabled": null}"#,
        r#"{"roles": null, "disabled": false}"#,
        r#"{"roles": ["user"], "disabled": null}"#,
    ] {
        let res = send_json(&app, patch.clone(), &user_path, body, &admin.access_token).await;
        assert_problem(res, StatusCode::BAD_REQUEST).await;
    }
    for field in [
        "name",
        "scopes",
        "audiences",
        "disabled",
        "type",
        "first_party",
        "grant_types",
        "redirect_uris",
        "post_logout_redirect_uris",
        "backchannel_logout_uri",
    ] {
        let body = format!(r#"{{"{field}": null}}"#);
        let res = send_json(
            &app,
            patch.clone(),
            "/v1/admin/clients/batch",
            &body,
            &admin.access_token,
        )
        .await;
        assert_problem(res, StatusCode::BAD_REQUEST).await;
    }
    // Nothing to change (unknown fields do not count).
    for body in ["{}", r#"{"role": ["admin"]}"#] {
        let res = send_json(&app, patch.clone(), &user_path, body, &admin.access_token).await;
        let p = assert_problem(res, StatusCode::BAD_REQUEST).await;
        assert!(
            p["detail"].as_str().unwrap().contains("nothing to change"),
            "{p}"
        );
    }
    let res = send_json(
        &app,
        patch.clone(),
        "/v1/admin/clients/batch",
        "{}",
        &admin.access_token,
    )
    .await;
    assert_problem(res, StatusCode::BAD_REQUEST).await;
    // A real change still works.
    let res = send_json(
        &app,
        patch,
        "/v1/admin/clients/batch",
        r#"{"name": "Batch"}"#,
        &admin.access_token,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_secret_rotations_overlap_is_a_whole_number_as_json_schema_counts_them() {
    let app = TestApp::spawn_with_admin().await;
    let admin = app.admin_tokens().await;
    let created = app
        .post_json(
            "/v1/admin/clients",
            &json!({"client_id": "batch"}),
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let path = "/v1/admin/clients/batch/secret";
    let post = reqwest::Method::POST;
    for (body, status) in [
        (r#"{"previous_secret_ttl": 60}"#, StatusCode::OK),
        (r#"{"previous_secret_ttl": 60.0}"#, StatusCode::OK),
        (r#"{"previous_secret_ttl": 6e1}"#, StatusCode::OK),
        (r#"{}"#, StatusCode::OK),
        (r#"{"previous_secret_ttl": 60.5}"#, StatusCode::BAD_REQUEST),
        (r#"{"previous_secret_ttl": null}"#, StatusCode::BAD_REQUEST),
        (r#"{"previous_secret_ttl": "60"}"#, StatusCode::BAD_REQUEST),
        (r#"{"previous_secret_ttl": 1e300}"#, StatusCode::BAD_REQUEST),
        (
            r#"{"previous_secret_ttl": -1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"previous_secret_ttl": 2592001.0}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let res = send_json(&app, post.clone(), path, body, &admin.access_token).await;
        assert_eq!(res.status(), status, "{body}");
    }
    // The body is optional.
    let res = app
        .client
        .post(app.url(path))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_openapi_document_states_the_constraints_as_configured() {
    let app = TestApp::builder()
        .env("AUTH_PASSWORD_MIN_LENGTH", "20")
        .env("AUTH_PASSWORD_MAX_BYTES", "512")
        .spawn()
        .await;
    let doc: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    let password = &schema("Registration")["properties"]["password"];
    assert_eq!(password["minLength"], 20, "{password}");
    assert_eq!(password["maxLength"], 512, "{password}");
    assert_eq!(
        schema("PasswordChange")["properties"]["new_password"]["minLength"],
        20
    );
    let username = &schema("Registration")["properties"]["username"];
    assert_eq!(
        (username["minLength"].clone(), username["maxLength"].clone()),
        (json!(3), json!(64))
    );
    assert!(username["pattern"].is_string());
    // Update bodies must change something, and their fields are not nullable.
    for name in ["ClientUpdate", "UserUpdate"] {
        let s = schema(name);
        assert_eq!(s["minProperties"], 1, "{name}");
        let fields = s["properties"].as_object().unwrap();
        assert_eq!(s["anyOf"].as_array().unwrap().len(), fields.len(), "{name}");
        for (field, f) in fields {
            assert!(
                !f.to_string().contains("\"null\""),
                "{name}.{field} is nullable: {f}"
            );
        }
    }
    // Ranges.
    let limit = doc["paths"]["/v1/admin/users"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()["schema"]
        .clone();
    assert_eq!(
        (limit["minimum"].clone(), limit["maximum"].clone()),
        (json!(1), json!(200))
    );
    let ttl = &schema("SecretRotation")["properties"]["previous_secret_ttl"];
    assert_eq!(
        (ttl["minimum"].clone(), ttl["maximum"].clone()),
        (json!(0), json!(2592000))
    );
    // The forms of the POST variants are the GET's parameters, with the same constraints.
    for path in ["/v1/authorize", "/v1/end-session"] {
        let params = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .clone();
        let form = &doc["paths"][path]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
            ["schema"];
        for p in params {
            let name = p["name"].as_str().unwrap();
            let field = &form["properties"][name];
            assert_eq!(field["pattern"], p["schema"]["pattern"], "{path} {name}");
            assert_eq!(
                form["required"].as_array().unwrap().contains(&p["name"]),
                p["required"] == json!(true),
                "{path} {name}"
            );
        }
    }
    assert_eq!(
        doc["paths"]["/v1/end-session"]["post"]["requestBody"]["required"],
        false
    );
    assert_eq!(
        doc["paths"]["/v1/admin/clients/{id}/secret"]["post"]["requestBody"]["required"],
        false
    );
}

#[tokio::test]
async fn unrecognised_authorization_parameters_are_ignored_even_repeated() {
    let app = TestApp::spawn().await;
    // RFC 6749 §3.1: unknown parameters are ignored; only the known ones may not repeat. Both
    // reach the same answer for an unknown client: the error page, about the client.
    let res = app
        .client
        .get(app.url(
            "/v1/authorize?x=1&x=2&=a&=b&client_id=nobody&redirect_uri=https%3A%2F%2Fa.example%2F",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = res.text().await.unwrap();
    assert!(!page.contains("more than once"), "{page}");
    let res = app
        .client
        .get(app.url("/v1/authorize?client_id=a&client_id=b"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("more than once"));
}
