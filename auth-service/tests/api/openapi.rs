//! `/openapi.json` (OpenAPI 3.1, generated from the handlers) and Swagger UI at `/docs`, served
//! from assets inside the binary.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

/// Every route of the public listener, as (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/users"),
    ("post", "/v1/login"),
    ("post", "/v1/token"),
    ("post", "/v1/revoke"),
    ("post", "/v1/logout"),
    ("get", "/v1/users/me"),
    ("post", "/v1/users/me/password"),
    ("get", "/v1/users/me/sessions"),
    ("delete", "/v1/users/me/sessions/{sid}"),
    ("get", "/v1/admin/users"),
    ("get", "/v1/admin/users/{id}"),
    ("patch", "/v1/admin/users/{id}"),
    ("delete", "/v1/admin/users/{id}"),
    ("get", "/v1/admin/users/{id}/sessions"),
    ("delete", "/v1/admin/users/{id}/sessions"),
    ("get", "/v1/admin/users/{id}/audit"),
    ("get", "/v1/admin/keys"),
    ("post", "/v1/admin/keys/rotate"),
    ("get", "/v1/admin/clients"),
    ("post", "/v1/admin/clients"),
    ("get", "/v1/admin/clients/{id}"),
    ("patch", "/v1/admin/clients/{id}"),
    ("delete", "/v1/admin/clients/{id}"),
    ("post", "/v1/admin/clients/{id}/secret"),
    ("post", "/v1/introspect"),
    ("get", "/v1/revocations"),
    ("get", "/.well-known/oauth-authorization-server"),
    ("get", "/.well-known/openid-configuration"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/healthz"),
    ("get", "/v1/authorize"),
    ("post", "/v1/authorize"),
    ("get", "/v1/end-session"),
    ("post", "/v1/end-session"),
    ("get", "/v1/userinfo"),
    ("get", "/v1/users/me/consents"),
    ("delete", "/v1/users/me/consents/{client_id}"),
    ("post", "/v1/userinfo"),
    ("get", "/readyz"),
];

#[tokio::test]
async fn the_openapi_document_validates_and_lists_every_route() {
    let app = TestApp::spawn().await;
    let res = app.get("/openapi.json", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );

    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut routes: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    routes.sort();
    assert_eq!(documented, routes);
    // Each documented route exists: its method never answers 404-for-no-route or 405.
    for (method, path) in ROUTES {
        let url = app.url(
            &path
                .replace("{sid}", "x")
                .replace("{client_id}", "x")
                .replace("{id}", &uuid::Uuid::new_v4().to_string()),
        );
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let res = app.client.request(m, &url).send().await.unwrap();
        assert_ne!(
            res.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        if res.status() == StatusCode::NOT_FOUND {
            let body: Value = res.json().await.unwrap_or(Value::Null);
            assert_ne!(body["code"], "not_found", "{method} {path} is not routed");
        }
    }
    // The Authorize dialog logs in through /v1/login (OAuth2 password flow form).
    assert_eq!(
        doc["components"]["securitySchemes"]["password"]["flows"]["password"]["tokenUrl"],
        "/v1/login"
    );
    assert_eq!(
        doc["paths"]["/v1/login"]["post"]["requestBody"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap(),
        "application/x-www-form-urlencoded"
    );

    // A validator that is not ours.
    let out = testkit::interop::pipe("openapi_validate.py", text.as_bytes()).await;
    assert!(
        out.status.success(),
        "openapi-spec-validator rejected the document: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn swagger_ui_and_its_assets_are_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let res = app.get("/docs/", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Nothing is loaded from elsewhere: every asset the page names is served here.
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "{html}"
    );
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "swagger-initializer.js",
    ] {
        let res = app.get(&format!("/docs/{asset}"), None).await;
        assert_eq!(res.status(), StatusCode::OK, "{asset}");
        assert!(!res.bytes().await.unwrap().is_empty(), "{asset}");
    }
    let init = app
        .get("/docs/swagger-initializer.js", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
    // The Authorize dialog offers the code flow with PKCE (client `docs`) beside the password
    // flow.
    let compact: String = init.split_whitespace().collect();
    assert!(
        compact.contains("\"usePkceWithAuthorizationCodeGrant\":true"),
        "{init}"
    );
    assert!(compact.contains("\"clientId\":\"docs\""), "{init}");
    let doc: serde_json::Value = app.get("/openapi.json", None).await.json().await.unwrap();
    let flows = &doc["components"]["securitySchemes"]["password"]["flows"];
    assert_eq!(
        flows["authorizationCode"]["authorizationUrl"],
        "/v1/authorize"
    );
    assert_eq!(flows["authorizationCode"]["tokenUrl"], "/v1/token");
    assert_eq!(flows["password"]["tokenUrl"], "/v1/login");
}
