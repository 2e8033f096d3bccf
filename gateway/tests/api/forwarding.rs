//! What the upstream receives: the verified identity, none of the client's spoofs.

use serde_json::{Value, json};

use crate::helpers::{Stack, assert_problem};

fn header<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"][name][0].as_str()
}

#[actix_web::test]
async fn a_valid_token_forwards_the_verified_identity_and_no_spoofs() {
    let s = Stack::start().await;
    let t = s.auth.user("alice").await;
    let spoofs = [
        ("X-User-Id", "admin"),
        ("X-User-Roles", "admin"),
        ("x_user_id", "admin"),
        ("X-Auth-User", "root"),
        ("X-Auth-Request-Email", "root@example.com"),
        ("X-Session-Id", "stolen"),
        ("Forwarded", "for=1.2.3.4;proto=https"),
        ("X-Real-IP", "1.2.3.4"),
        ("X-Original-URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-Forwarded-For", "1.2.3.4"),
        ("X-Forwarded-Host", "evil.example"),
        ("Connection", "X-Smuggled"),
        ("X-Smuggled", "yes"),
    ];
    let (status, echo) = s
        .echo_of("/api/orders?x=1&y=%20", Some(&t.access_token), &spoofs)
        .await;
    assert_eq!(status, 200, "{echo}");
    let claims = {
        let payload = t.access_token.split('.').nth(1).unwrap();
        serde_json::from_slice::<Value>(&shared::jws::b64_decode(payload).unwrap()).unwrap()
    };
    assert_eq!(echo["path"], "/api/orders");
    assert_eq!(echo["query"], "x=1&y=%20");
    assert_eq!(header(&echo, "x-user-id"), claims["sub"].as_str());
    assert_eq!(header(&echo, "x-user-roles"), Some("user"));
    assert_eq!(header(&echo, "x-user-scopes"), Some("orders:read,profile"));
    assert_eq!(header(&echo, "x-session-id"), claims["sid"].as_str());
    assert_eq!(echo["headers"]["x-user-id"].as_array().unwrap().len(), 1);
    assert_eq!(header(&echo, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header(&echo, "x-forwarded-proto"), Some("http"));
    assert!(header(&echo, "x-request-id").is_some());
    let names: Vec<&String> = echo["headers"].as_object().unwrap().keys().collect();
    for bad in [
        "authorization",
        "x-auth-user",
        "x-auth-request-email",
        "forwarded",
        "x-real-ip",
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
        "x-smuggled",
        "x_user_id",
        "connection",
    ] {
        assert!(
            !names.iter().any(|n| n.as_str() == bad),
            "{bad} reached the upstream: {names:?}"
        );
    }
}

/// Spellings an upstream may fold to one name: as given, upper case, title case, each with
/// `_` for `-`.
fn spellings(name: &str) -> Vec<String> {
    let title: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-");
    let mut out = Vec::new();
    for n in [name.to_owned(), name.to_ascii_uppercase(), title] {
        out.push(n.replace('-', "_"));
        out.push(n);
    }
    out
}

/// Identity and routing names of other authentication proxies, CDNs and load balancers, and
/// the whole `X-Forwarded-*` family: an upstream once set up behind one of them trusts these.
const NAMESPACE_SPOOFS: [&str; 40] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-forwarded-client-cert",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-uri",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-for",
    "forwarded",
    "x-auth-request-user",
    "x-auth-request-email",
    "remote-user",
    "remote-groups",
    "remote-email",
    "x-remote-user",
    "x-remote-group",
    "x-webauth-user",
    "x-authenticated-userid",
    "x-amzn-oidc-identity",
    "x-goog-authenticated-user-email",
    "cf-access-authenticated-user-email",
    "x-ms-client-principal-name",
    "x-consumer-username",
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-client-ip",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-http-method-override",
    "x-user-id",
    "x-session-id",
];

#[actix_web::test]
async fn identity_and_forwarding_namespaces_are_stripped_in_every_spelling() {
    let s = Stack::start().await;
    let t = s.auth.user("nora").await;
    let lines: Vec<String> = NAMESPACE_SPOOFS
        .iter()
        .flat_map(|n| spellings(n))
        .map(|spelling| format!("{spelling}: spoofed\r\n"))
        .collect();
    // The gateway takes at most 100 header lines a request: several requests carry them all.
    for batch in lines.chunks(90) {
        let head = format!(
            "GET /api/x HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer {}\r\nConnection: close\r\n{}X-Kept: yes\r\n\r\n",
            t.access_token,
            batch.concat()
        );
        let res = testkit::raw::send(&s.addr, &head, b"").await;
        assert_eq!(res.status, 200, "{res:?}");
        let echo: Value = serde_json::from_str(&res.body).unwrap();
        let headers = echo["headers"].as_object().unwrap();
        for (name, values) in headers {
            assert!(
                !values.to_string().contains("spoofed"),
                "{name} reached the upstream: {values}"
            );
        }
        assert_eq!(headers["x-kept"][0], "yes");
        assert_eq!(headers["x-forwarded-host"][0], "gw.example");
        assert_eq!(headers["x-forwarded-for"][0], "127.0.0.1");
        assert_eq!(headers["x-user-id"].as_array().unwrap().len(), 1);
    }
}

#[actix_web::test]
async fn a_route_may_let_named_reserved_headers_through() {
    let auth = testkit::auth::Auth::start(&[]).await;
    let echo = testkit::echo::start().await;
    let toml = format!(
        r#"
issuer = "{issuer}"
audiences = ["api"]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
workers = 1

[[routes]]
prefix = "/mtls"
upstream = "{up}"
auth = "public"
forward_reserved_headers = ["X-Forwarded-Client-Cert"]
"#,
        issuer = auth.url,
        up = echo.url
    );
    let gw = crate::helpers::start_ready_gateway(&toml, &[]).await;
    let head = "GET /mtls/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nX-Forwarded-Client-Cert: By=spiffe://a\r\nx_forwarded_client_cert: smuggled\r\nX-Forwarded-User: spoofed\r\n\r\n";
    let res = testkit::raw::send(&gw.addr, head, b"").await;
    assert_eq!(res.status, 200, "{res:?}");
    let echo: Value = serde_json::from_str(&res.body).unwrap();
    let headers = echo["headers"].as_object().unwrap();
    assert_eq!(
        headers["x-forwarded-client-cert"],
        json!(["By=spiffe://a"]),
        "{headers:?}"
    );
    assert!(!echo.to_string().contains("smuggled") && !echo.to_string().contains("spoofed"));
    // Names the gateway sets itself can never be let through.
    for name in [
        "X-User-Id",
        "x-forwarded-for",
        "X-Session-Id",
        "x-request-id",
        "x-user-email",
    ] {
        let bad = toml.replace("X-Forwarded-Client-Cert", name);
        let mut map = std::collections::HashMap::new();
        map.insert("GATEWAY_CONFIG_TOML".to_owned(), bad);
        map.insert(
            "GATEWAY_FEED_TOKEN".to_owned(),
            testkit::FEED_TOKEN.to_owned(),
        );
        let e = gateway::configuration::Settings::load(&|k| map.get(k).cloned()).unwrap_err();
        assert!(e.to_string().contains("set by the gateway"), "{name}: {e}");
    }
}

#[actix_web::test]
async fn public_routes_forward_no_identity_even_with_a_token() {
    let s = Stack::start().await;
    let t = s.auth.user("bob").await;
    let (status, echo) = s
        .echo_of(
            "/public/x",
            Some(&t.access_token),
            &[("X-User-Id", "admin")],
        )
        .await;
    assert_eq!(status, 200);
    let names: Vec<&String> = echo["headers"].as_object().unwrap().keys().collect();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("x-user") && *n != "x-session-id" && *n != "authorization"),
        "{names:?}"
    );
    let (status, _) = s.echo_of("/public/x", None, &[]).await;
    assert_eq!(status, 200, "no token needed");
}

#[actix_web::test]
async fn forward_token_and_strip_prefix_routes() {
    let s = Stack::start().await;
    let t = s.auth.user("carol").await;
    let (_, echo) = s.echo_of("/token/x", Some(&t.access_token), &[]).await;
    assert_eq!(
        header(&echo, "authorization"),
        Some(format!("Bearer {}", t.access_token).as_str())
    );
    let (status, echo) = s
        .echo_of("/strip/users/7", Some(&t.access_token), &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(echo["path"], "/base/users/7");
}

#[actix_web::test]
async fn authorisation_rules_401_403_405_404() {
    let s = Stack::start().await;
    let user = s.auth.user("dave").await;
    let admin = s.auth.admin().await;
    let before = s.echo.hits();

    let res = s.get("/api/x", None).await;
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"gateway\""
    );
    assert_problem(res, 401).await;
    let res = s.get("/api/x", Some("garbage")).await;
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_problem(res, 401).await;
    let res = s.get("/admin/x", Some(&user.access_token)).await;
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    assert_eq!(assert_problem(res, 403).await["code"], "insufficient_scope");
    let res = s
        .client
        .post(format!("{}/get-only/x", s.url))
        .bearer_auth(&user.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    assert_problem(res, 405).await;
    assert_problem(s.get("/nowhere", Some(&user.access_token)).await, 404).await;
    assert_problem(s.get("/apix", Some(&user.access_token)).await, 404).await;
    assert_eq!(
        s.echo.hits(),
        before,
        "no refused request reached the upstream"
    );

    assert_eq!(
        s.get("/admin/x", Some(&admin.access_token)).await.status(),
        200
    );
    // Scopes are all-of: users hold both, the admin holds neither of them.
    assert_eq!(
        s.get("/scoped/x", Some(&user.access_token)).await.status(),
        200
    );
    assert_eq!(
        s.get("/scoped/x", Some(&admin.access_token)).await.status(),
        200,
        "admin has the user role too"
    );
    let narrowed = s
        .client
        .post(format!("{}/v1/login", s.auth.url))
        .form(&[
            ("username", "dave"),
            ("password", testkit::PASSWORD),
            ("scope", "profile"),
        ])
        .send()
        .await
        .unwrap();
    let narrowed: Value = narrowed.json().await.unwrap();
    let res = s.get("/scoped/x", narrowed["access_token"].as_str()).await;
    assert_problem(res, 403).await;
}

#[actix_web::test]
async fn forwarded_for_is_extended_only_for_trusted_proxies() {
    let s = Stack::start_with(&[], "trusted_proxies = [\"127.0.0.1\"]").await;
    let t = s.auth.user("erin").await;
    let (_, echo) = s
        .echo_of(
            "/api/x",
            Some(&t.access_token),
            &[
                ("X-Forwarded-For", "203.0.113.9"),
                ("X-Forwarded-Proto", "https"),
            ],
        )
        .await;
    assert_eq!(
        header(&echo, "x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(header(&echo, "x-forwarded-proto"), Some("https"));
}

#[actix_web::test]
async fn request_ids_and_upstream_connections_are_reused() {
    let s = Stack::start().await;
    let t = s.auth.user("frank").await;
    let res = s
        .client
        .get(format!("{}/api/x", s.url))
        .bearer_auth(&t.access_token)
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-42");
    let echo: Value = res.json().await.unwrap();
    assert_eq!(header(&echo, "x-request-id"), Some("req-42"));
    let mut ports = std::collections::HashSet::new();
    for _ in 0..20 {
        let (_, echo) = s.echo_of("/api/x", Some(&t.access_token), &[]).await;
        ports.insert(echo["peer_port"].as_u64().unwrap());
    }
    assert!(
        ports.len() <= 2,
        "upstream connections are pooled: {ports:?}"
    );
}

#[actix_web::test]
async fn admin_listener_health_readiness_and_metrics() {
    let s = Stack::start().await;
    let h: Value = s
        .client
        .get(format!("{}/healthz", s.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h, json!({"status": "ok"}));
    let r = s
        .client
        .get(format!("{}/readyz", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["checks"]["keys"], "ok");
    assert_eq!(r["checks"]["key_count"], 1);
    let _ = s.get("/api/x", Some("garbage")).await;
    let t = s.auth.user("gina").await;
    let _ = s.get("/api/x", Some(&t.access_token)).await;
    let m = s.metrics().await;
    // Two lookups missed (the garbage, the token's first use); the token's second use, on the
    // same keep-alive connection (the same worker), hits.
    let _ = s.get("/api/x", Some(&t.access_token)).await;
    let after = s.metrics().await;
    assert_eq!(
        crate::helpers::metric(&after, "gateway_token_cache_lookups_total{result=\"miss\"}"),
        2.0
    );
    assert_eq!(
        crate::helpers::metric(&after, "gateway_token_cache_lookups_total{result=\"hit\"}"),
        1.0
    );
    assert_eq!(
        crate::helpers::metric(&after, "gateway_token_cache_evictions_total"),
        0.0
    );
    assert_eq!(
        crate::helpers::metric(
            &m,
            "gateway_token_verification_failures_total{reason=\"malformed\"}"
        ),
        1.0
    );
    assert_eq!(
        crate::helpers::metric(&m, "gateway_requests_total{route=\"/api\",code=\"2xx\"}"),
        1.0
    );
    assert_eq!(
        crate::helpers::metric(
            &after,
            "gateway_requests_total{route=\"/api\",code=\"2xx\"}"
        ),
        2.0
    );
    assert_eq!(
        crate::helpers::metric(&m, "gateway_requests_total{route=\"/api\",code=\"4xx\"}"),
        1.0
    );
    assert_eq!(crate::helpers::metric(&m, "gateway_jwks_keys"), 1.0);
    assert!(crate::helpers::metric(&m, "gateway_jwks_fetches_total{result=\"ok\"}") >= 1.0);
}

/// The auth-service's browser-session and CSRF cookies (same origin as the apps behind the
/// gateway) never reach an upstream that does not take credentials; the app's own cookies do.
#[actix_web::test]
async fn the_auth_services_cookies_do_not_reach_other_upstreams() {
    let s = Stack::start().await;
    let t = s.auth.user("alice").await;
    let (status, echo) = s
        .echo_of(
            "/api/orders",
            Some(&t.access_token),
            &[(
                "Cookie",
                "theme=dark; __Host-auth_session=stolen-session; __Host-auth_csrf=c; cart=3",
            )],
        )
        .await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(header(&echo, "cookie"), Some("theme=dark; cart=3"));
    let (status, echo) = s
        .echo_of(
            "/api/orders",
            Some(&t.access_token),
            &[("Cookie", "__Host-auth_session=stolen-session")],
        )
        .await;
    assert_eq!(status, 200, "{echo}");
    assert!(echo["headers"].get("cookie").is_none(), "{echo}");
    // A public route as well, and another spelling of the header's name.
    let (status, echo) = s
        .echo_of(
            "/public/page",
            None,
            &[("COOKIE", "a=1;__Host-auth_session=x ; b=2")],
        )
        .await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(header(&echo, "cookie"), Some("a=1; b=2"));
}

/// `HEAD` works wherever `GET` does on the admin listener (the same status and headers, no
/// body), and another method is 405 with `Allow`, not 404.
#[actix_web::test]
async fn the_admin_listener_answers_head_and_names_its_methods() {
    let s = Stack::start().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let url = format!("{}{path}", s.admin);
        let get = s.client.get(&url).send().await.unwrap();
        let head = s.client.head(&url).send().await.unwrap();
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
        let post = s.client.post(&url).send().await.unwrap();
        assert_eq!(post.status(), 405, "{path}");
        assert_eq!(post.headers()["allow"], "GET, HEAD", "{path}");
        let body: Value = post.json().await.unwrap();
        assert_eq!(body["code"], "method_not_allowed", "{path}");
    }
    let res = s
        .client
        .get(format!("{}/nowhere", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
}

/// Errors that name the fix, as the auth-service's do: a token sent without the Bearer scheme,
/// another scheme, and a refresh token sent as an access token are each told what to send.
#[actix_web::test]
async fn a_token_sent_the_wrong_way_is_told_how_to_send_it() {
    let s = Stack::start().await;
    let t = s.auth.user("hugo").await;
    for (authorization, says) in [
        (
            t.access_token.clone(),
            "has no scheme: send Authorization: Bearer",
        ),
        (
            format!("Token {}", t.access_token),
            "not a bearer token: send Authorization: Bearer",
        ),
        (
            "Basic dXNlcjpwYXNz".to_owned(),
            "not a bearer token: send Authorization: Bearer",
        ),
        (
            format!("Bearer {}", t.refresh_token),
            "this is not an access token",
        ),
    ] {
        let res = s
            .client
            .get(format!("{}/api/x", s.url))
            .header("authorization", &authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{says}");
        assert!(res.headers().contains_key("www-authenticate"), "{says}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains(says),
            "{says}: {body}"
        );
    }
    // With no header at all, the answer says what to send, without an error code (RFC 6750).
    let res = s.get("/api/x", None).await;
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"gateway\""
    );
    let body: Value = res.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
}
