//! Path tricks cannot reach a protected route. Sent raw: a normal client would normalise them.

use testkit::raw;

use crate::helpers::Stack;

#[actix_web::test]
async fn path_tricks_cannot_reach_a_protected_route() {
    let s = Stack::start().await;
    let user = s.auth.user("mallory").await;
    let auth = format!("Bearer {}", user.access_token);
    let before = s.echo.hits();
    // Each normalises to /admin/…, which needs the admin role: 401 without a token, 403 with
    // a user's token; never a public pass-through.
    for path in [
        "/public/../admin/x",
        "/public/%2e%2e/admin/x",
        "/public/%2E%2e/admin/x",
        "//admin/x",
        "/public/./../admin/x",
        "/./admin/x",
        "/public/.%2e/admin/x",
    ] {
        let r = raw::get(&s.addr, path, &[]).await;
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        let r = raw::get(&s.addr, path, &[("Authorization", &auth)]).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    // Encoded separators, backslashes, NUL and `;` are refused outright.
    for path in [
        "/public/..%2fadmin/x",
        "/public%2f..%2fadmin/x",
        "/public/..%5cadmin/x",
        "/public/..\\admin/x",
        "/public/x%00",
        "/public/;/../admin",
        "/public/x%3b",
        "/public/%zz",
    ] {
        let r = raw::get(&s.addr, path, &[]).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.body.contains("\"status\":400"), "{}", r.body);
    }
    // Case matters: /ADMIN is not a route here, so it is 404 and reaches nothing.
    assert_eq!(
        raw::get(&s.addr, "/ADMIN/x", &[("Authorization", &auth)])
            .await
            .status,
        404
    );
    assert_eq!(
        raw::get(&s.addr, "/Public/../admin/x", &[]).await.status,
        401
    );
    assert_eq!(s.echo.hits(), before, "nothing reached the upstream");
}

#[actix_web::test]
async fn the_upstream_receives_the_normalised_path() {
    let s = Stack::start().await;
    let r = raw::get(&s.addr, "/public//a/./b/../c/%7Euser?q=%2e%2e", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let echo: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(echo["path"], "/public/a/c/~user");
    assert_eq!(echo["query"], "q=%2e%2e", "the query is passed as sent");
}
