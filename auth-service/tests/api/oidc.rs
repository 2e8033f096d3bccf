//! Browser sign-in as an OpenID provider, driven over HTTP the way a browser and a relying party
//! would: the authorization endpoint, the hosted sign-in and consent forms (CSRF tokens, the
//! browser session's cookie), the code exchange with PKCE, the ID token, UserInfo, SSO across
//! apps, `prompt` and `max_age`, and the refusals (redirect URIs, PKCE, codes).

use std::collections::HashMap;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ISSUER, PASSWORD, TestApp, assert_oauth_error, claims, header};

/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A browser: its own cookies (set by hand: the session cookie is `Secure`, and tests talk
/// plain http), never following redirects, so each step can be looked at.
struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || v.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let res = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&res);
        res
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let res = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&res);
        res
    }
}

/// The value of a hidden input in a page.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    unescape(&html[start..end])
}

fn unescape(s: &str) -> String {
    s.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&lt;", "<")
        .replace("&#62;", ">")
        .replace("&gt;", ">")
}

/// The query parameters of a redirect.
fn query(location: &str) -> HashMap<String, String> {
    let q = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .unwrap()
        .into_iter()
        .collect()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location: {}", res.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

fn authorize_url(
    app: &TestApp,
    client_id: &str,
    redirect_uri: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", "openid profile email offline_access"),
        ("state", "st&te=1 ü"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        params.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            params.push((k, v));
        }
    }
    format!(
        "{}?{}",
        app.url("/v1/authorize"),
        serde_urlencoded::to_string(&params).unwrap()
    )
}

async fn register_client(app: &TestApp, admin: &str, body: Value) -> Value {
    let res = app.post_json("/v1/admin/clients", &body, Some(admin)).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

/// A service with a first-party public SPA, a first-party confidential web app, a third-party
/// confidential app, and a user.
struct Setup {
    app: TestApp,
    username: String,
    web_secret: String,
    partner_secret: String,
}

async fn setup() -> Setup {
    setup_on(TestApp::spawn_with_admin().await).await
}

/// The same apps and user on a given service (another storage backend, say).
async fn setup_on(app: TestApp) -> Setup {
    let admin = app.admin_tokens().await.access_token;
    register_client(
        &app,
        &admin,
        json!({"client_id": "spa", "name": "The SPA", "type": "public", "first_party": true,
               "redirect_uris": ["http://127.0.0.1/cb", "https://spa.example.com/cb"]}),
    )
    .await;
    let web = register_client(
        &app,
        &admin,
        json!({"client_id": "web", "name": "Web app", "first_party": true,
               "redirect_uris": ["https://web.example.com/callback"]}),
    )
    .await;
    let partner = register_client(
        &app,
        &admin,
        json!({"client_id": "partner", "name": "Partner <App>",
               "scopes": ["openid", "profile"],
               "redirect_uris": ["https://partner.example.org/cb"]}),
    )
    .await;
    let (username, _) = app.new_user().await;
    Setup {
        app,
        username,
        web_secret: web["client_secret"].as_str().unwrap().to_owned(),
        partner_secret: partner["client_secret"].as_str().unwrap().to_owned(),
    }
}

/// Signs in on the page the authorization request showed; returns the redirect.
async fn sign_in_on(
    browser: &mut Browser,
    app: &TestApp,
    page: reqwest::Response,
    username: &str,
    password: &str,
) -> reqwest::Response {
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign in"), "{html}");
    let csrf = field(&html, "csrf");
    let request = field(&html, "request");
    browser
        .post(
            &app.url("/v1/signin"),
            &[
                ("csrf", &csrf),
                ("request", &request),
                ("username", username),
                ("password", password),
            ],
        )
        .await
}

async fn exchange(
    app: &TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut r = app.client.post(app.url("/v1/token")).form(form);
    if let Some((id, secret)) = basic {
        r = r.basic_auth(id, Some(secret));
    }
    r.send().await.unwrap()
}

async fn code_for_spa(s: &Setup, browser: &mut Browser, redirect: &str) -> HashMap<String, String> {
    let page = browser
        .get(&authorize_url(&s.app, "spa", redirect, &[]))
        .await;
    let res = sign_in_on(browser, &s.app, page, &s.username, PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let loc = location(&res);
    assert!(loc.starts_with(redirect), "{loc}");
    query(&loc)
}

fn spa_exchange<'a>(code: &'a str, redirect: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("code_verifier", VERIFIER),
        ("client_id", "spa"),
    ]
}

#[tokio::test]
async fn a_public_client_signs_a_user_in_with_the_code_flow_and_pkce() {
    let s = setup().await;
    let app = &s.app;
    let mut browser = Browser::new();
    // A native app's loopback redirect may use any port (RFC 8252 §7.3).
    let redirect = "http://127.0.0.1:53781/cb";
    let page = browser.get(&authorize_url(app, "spa", redirect, &[])).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for part in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "script-src 'nonce-",
        "form-action 'self' http://127.0.0.1:53781",
    ] {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(browser.cookies.contains_key("__Host-auth_csrf"));
    let res = sign_in_on(&mut browser, app, page, &s.username, PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let session_cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-auth_session="))
        .expect("the browser session's cookie");
    for attr in ["Path=/", "HttpOnly", "Secure", "SameSite=Lax"] {
        assert!(
            session_cookie.split("; ").any(|a| a == attr),
            "{attr}: {session_cookie}"
        );
    }
    assert!(!session_cookie.contains("Domain"), "{session_cookie}");
    let loc = location(&res);
    assert!(loc.starts_with("http://127.0.0.1:53781/cb?"), "{loc}");
    let q = query(&loc);
    assert_eq!(q["state"], "st&te=1 ü", "state comes back untouched");
    assert_eq!(q["iss"], ISSUER, "RFC 9207");
    let code = &q["code"];
    assert!(code.len() >= 43, "at least 256 bits: {code}");

    let res = exchange(app, &spa_exchange(code, redirect), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "email offline_access openid profile");
    let access = t["access_token"].as_str().unwrap();
    let refresh = t["refresh_token"]
        .as_str()
        .expect("offline_access: a refresh token");
    let id_token = t["id_token"].as_str().unwrap();

    let h = header(id_token);
    assert_eq!(
        (h["alg"].as_str(), h["typ"].as_str()),
        (Some("RS256"), Some("JWT"))
    );
    let id = claims(id_token);
    let at = claims(access);
    assert_eq!(id["iss"], ISSUER);
    assert_eq!(id["aud"], "spa");
    assert_eq!(id["azp"], "spa");
    assert_eq!(id["sub"], at["sub"]);
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id["amr"], json!(["pwd"]));
    assert_eq!(id["preferred_username"], s.username);
    assert!(id["auth_time"].as_i64().unwrap() <= id["iat"].as_i64().unwrap());
    assert!(id["exp"].as_i64().unwrap() > id["iat"].as_i64().unwrap());
    assert!(id["sid"].as_str().is_some_and(|s| !s.is_empty()));
    // at_hash: the left half of SHA-256 of the access token, base64url.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access.as_bytes());
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
    assert_eq!(id["at_hash"], expected);
    // The access token keeps today's contract; its client is the app.
    assert_eq!(header(access)["typ"], "at+jwt");
    assert_eq!(at["client_id"], "spa");
    assert_eq!(at["aud"], "api");

    // UserInfo, GET and POST.
    let info: Value = app
        .get("/v1/userinfo", Some(access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], at["sub"]);
    assert_eq!(info["preferred_username"], s.username);
    let res = app
        .client
        .post(app.url("/v1/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // The refresh token rotates like any other and keeps the OpenID scopes.
    let res = app
        .post_form(
            "/v1/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", "spa"),
            ],
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    assert_eq!(rotated["scope"], "email offline_access openid profile");

    // The session shows in the user's sessions: the browser's and the app's.
    let sessions: Value = app
        .get("/v1/users/me/sessions", Some(access))
        .await
        .json()
        .await
        .unwrap();
    let clients: Vec<&str> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["client_id"].as_str().unwrap())
        .collect();
    assert!(
        clients.contains(&"spa") && clients.contains(&"browser"),
        "{sessions}"
    );

    // A second use of the code is refused and revokes what the first issued.
    let res = exchange(app, &spa_exchange(code, redirect), None).await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let new_access = rotated["access_token"].as_str().unwrap();
    assert_eq!(app.me_status(access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(new_access).await, StatusCode::UNAUTHORIZED);
    let res = app
        .post_form(
            "/v1/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rotated["refresh_token"].as_str().unwrap()),
            ],
            None,
        )
        .await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn a_second_app_signs_in_silently_and_prompt_and_max_age_are_honoured() {
    let s = setup().await;
    let app = &s.app;
    let mut browser = Browser::new();
    let q = code_for_spa(&s, &mut browser, "https://spa.example.com/cb").await;
    assert!(q.contains_key("code"));

    // The web app: no password asked, a code at once; a confidential client authenticates.
    let res = browser
        .get(&authorize_url(
            app,
            "web",
            "https://web.example.com/callback",
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let q = query(&location(&res));
    let code = &q["code"];
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://web.example.com/callback"),
        ("code_verifier", VERIFIER),
    ];
    let res = exchange(app, &form, Some(("web", "wrong"))).await;
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // The failed authentication did not spend the code.
    let res = exchange(app, &form, Some(("web", &s.web_secret))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    let spa_sid = claims(t["id_token"].as_str().unwrap())["sid"].clone();

    // prompt=login asks again; max_age=0 does too once a second has passed.
    let res = browser
        .get(&authorize_url(
            app,
            "web",
            "https://web.example.com/callback",
            &[("prompt", "login")],
        ))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "prompt=login shows the sign-in page"
    );
    let res = sign_in_on(&mut browser, app, res, &s.username, PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let code = query(&location(&res))["code"].clone();
    let res = exchange(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://web.example.com/callback"),
            ("code_verifier", VERIFIER),
        ],
        Some(("web", &s.web_secret)),
    )
    .await;
    let t: Value = res.json().await.unwrap();
    let again = claims(t["id_token"].as_str().unwrap());
    assert_eq!(
        again["sid"], spa_sid,
        "the same browser session, signed in again"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let res = browser
        .get(&authorize_url(
            app,
            "web",
            "https://web.example.com/callback",
            &[("max_age", "0")],
        ))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "max_age=0 asks for a fresh sign-in"
    );
    let res = browser
        .get(&authorize_url(
            app,
            "web",
            "https://web.example.com/callback",
            &[("max_age", "0"), ("prompt", "none")],
        ))
        .await;
    assert_eq!(query(&location(&res))["error"], "login_required");

    // Without a session, prompt=none answers login_required at the redirect URI.
    let mut stranger = Browser::new();
    let res = stranger
        .get(&authorize_url(
            app,
            "spa",
            "https://spa.example.com/cb",
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let q = query(&location(&res));
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["state"], "st&te=1 ü");
    assert_eq!(q["iss"], ISSUER);
}

#[tokio::test]
async fn unregistered_and_near_miss_redirect_uris_get_an_error_page_and_no_redirect() {
    let s = setup().await;
    let app = &s.app;
    let mut browser = Browser::new();
    for near in [
        "https://web.example.com/callback/",
        "https://web.example.com/callbac",
        "https://web.example.com/callbackx",
        "https://web.example.com/callback?x=1",
        "https://web.example.com/callback#x",
        "https://evil.web.example.com/callback",
        "https://web.example.com.evil.com/callback",
        "https://web.example.com:8443/callback",
        "https://web.example.com:443/callback",
        "http://web.example.com/callback",
        "https://user@web.example.com/callback",
        "https://web.example.com/%63allback",
        "https://web.example.com/CALLBACK",
        "https://web.example.com//callback",
        "https://attacker.example/callback",
    ] {
        let res = browser.get(&authorize_url(app, "web", near, &[])).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{near}");
        assert!(res.headers().get("location").is_none(), "{near}");
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        let html = res.text().await.unwrap();
        assert!(html.contains("not one it registered"), "{near}: {html}");
    }
    // Unknown or missing client, missing redirect URI: the same page.
    for (client, redirect) in [
        ("nobody", "https://web.example.com/callback"),
        ("", "https://web.example.com/callback"),
        ("web", ""),
    ] {
        let res = browser
            .get(&authorize_url(app, client, redirect, &[]))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{client} {redirect}");
        assert!(res.headers().get("location").is_none());
    }
    // A parameter sent twice cannot be trusted to pick a redirect URI.
    let url = format!(
        "{}&redirect_uri=https%3A%2F%2Fattacker.example%2Fcb",
        authorize_url(app, "web", "https://web.example.com/callback", &[])
    );
    let res = browser.get(&url).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
}

#[tokio::test]
async fn pkce_and_response_type_errors_go_back_to_the_client() {
    let s = setup().await;
    let app = &s.app;
    let mut browser = Browser::new();
    let redirect = "https://spa.example.com/cb";
    for (extra, error) in [
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge_method", "")], "invalid_request"),
        (
            vec![("code_challenge", ""), ("code_challenge_method", "")],
            "invalid_request",
        ),
        (vec![("code_challenge", "short")], "invalid_request"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            vec![("response_type", "code id_token")],
            "unsupported_response_type",
        ),
        (vec![("response_type", "")], "invalid_request"),
        (vec![("prompt", "none login")], "invalid_request"),
        (vec![("max_age", "-1")], "invalid_request"),
        (vec![("response_mode", "fragment")], "invalid_request"),
        (
            vec![("request", "eyJhbGciOiJub25lIn0.e30.")],
            "request_not_supported",
        ),
    ] {
        let res = browser
            .get(&authorize_url(app, "spa", redirect, &extra))
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{extra:?}");
        let q = query(&location(&res));
        assert_eq!(q["error"], error, "{extra:?}");
        assert_eq!(q["state"], "st&te=1 ü");
        assert_eq!(q["iss"], ISSUER);
        assert!(!q.contains_key("code"));
    }

    // At the token endpoint: a wrong or missing verifier, another client's code, another
    // redirect URI, and an expired code are refused.
    let q = code_for_spa(&s, &mut browser, redirect).await;
    let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj";
    let mut form = spa_exchange(&q["code"], redirect);
    form[3] = ("code_verifier", wrong);
    assert_oauth_error(
        exchange(app, &form, None).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // The code was spent by the failed attempt: PKCE failures do not get another try.
    let res = exchange(app, &spa_exchange(&q["code"], redirect), None).await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let q = query(&location(
        &browser.get(&authorize_url(app, "spa", redirect, &[])).await,
    ));
    let mut form = spa_exchange(&q["code"], redirect);
    form.remove(3);
    assert_oauth_error(
        exchange(app, &form, None).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;

    let q = query(&location(
        &browser.get(&authorize_url(app, "spa", redirect, &[])).await,
    ));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("redirect_uri", redirect),
        ("code_verifier", VERIFIER),
    ];
    let res = exchange(app, &form, Some(("web", &s.web_secret))).await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let q = query(&location(
        &browser.get(&authorize_url(app, "spa", redirect, &[])).await,
    ));
    let res = exchange(app, &spa_exchange(&q["code"], "http://127.0.0.1/cb"), None).await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // A public client cannot use a confidential client's code path without authenticating.
    let q = query(&location(
        &browser
            .get(&authorize_url(
                app,
                "web",
                "https://web.example.com/callback",
                &[],
            ))
            .await,
    ));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("redirect_uri", "https://web.example.com/callback"),
        ("code_verifier", VERIFIER),
        ("client_id", "web"),
    ];
    assert_oauth_error(
        exchange(app, &form, None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    // A made-up code.
    let res = exchange(app, &spa_exchange("not-a-code", redirect), None).await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn a_third_party_app_asks_for_consent_once_and_a_denial_goes_back_as_access_denied() {
    let s = setup().await;
    let app = &s.app;
    let mut browser = Browser::new();
    code_for_spa(&s, &mut browser, "https://spa.example.com/cb").await;
    let redirect = "https://partner.example.org/cb";
    let res = browser
        .get(&authorize_url(app, "partner", redirect, &[]))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("Allow access?"), "{html}");
    assert!(
        html.contains("Partner &#60;App&#62;") || html.contains("Partner &lt;App&gt;"),
        "escaped: {html}"
    );
    // It asked for email and offline_access too, but may only have openid and profile.
    assert!(!html.contains("email address"), "{html}");
    let csrf = field(&html, "csrf");
    let request = field(&html, "request");
    // A form without the CSRF token (or with another) changes nothing.
    for bad in ["", "x"] {
        let res = browser
            .post(
                &app.url("/v1/consent"),
                &[("csrf", bad), ("request", &request), ("decision", "allow")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.headers().get("location").is_none());
    }
    let res = browser
        .post(
            &app.url("/v1/consent"),
            &[("csrf", &csrf), ("request", &request), ("decision", "deny")],
        )
        .await;
    let q = query(&location(&res));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st&te=1 ü");
    // prompt=none cannot ask: consent_required.
    let res = browser
        .get(&authorize_url(
            app,
            "partner",
            redirect,
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(query(&location(&res))["error"], "consent_required");

    let res = browser
        .post(
            &app.url("/v1/consent"),
            &[
                ("csrf", &csrf),
                ("request", &request),
                ("decision", "allow"),
            ],
        )
        .await;
    let q = query(&location(&res));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("redirect_uri", redirect),
        ("code_verifier", VERIFIER),
    ];
    let res = exchange(app, &form, Some(("partner", &s.partner_secret))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["scope"], "openid profile");
    assert!(t.get("refresh_token").is_none(), "no offline_access: {t}");
    // Remembered: the next request goes straight back with a code, even with prompt=none.
    let res = browser
        .get(&authorize_url(
            app,
            "partner",
            redirect,
            &[("prompt", "none")],
        ))
        .await;
    assert!(query(&location(&res)).contains_key("code"));
    // prompt=consent asks again.
    let res = browser
        .get(&authorize_url(
            app,
            "partner",
            redirect,
            &[("prompt", "consent")],
        ))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused_and_failures_are_one_answer() {
    let s = setup().await;
    let app = &s.app;
    let mut browser = Browser::new();
    let page = browser
        .get(&authorize_url(
            app,
            "spa",
            "https://spa.example.com/cb",
            &[],
        ))
        .await;
    let html = page.text().await.unwrap();
    let request = field(&html, "request");
    let csrf = field(&html, "csrf");
    // No token, another token, or no cookie: refused, no session.
    for token in ["", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let res = browser
            .post(
                &app.url("/v1/signin"),
                &[
                    ("csrf", token),
                    ("request", &request),
                    ("username", &s.username),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    let mut cookieless = Browser::new();
    let res = cookieless
        .post(
            &app.url("/v1/signin"),
            &[
                ("csrf", &csrf),
                ("request", &request),
                ("username", &s.username),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!cookieless.cookies.contains_key("__Host-auth_session"));
    assert!(!browser.cookies.contains_key("__Host-auth_session"));

    // A wrong password and an unknown user get the same page and status.
    let mut answers = Vec::new();
    for (user, password) in [
        (s.username.as_str(), "wrong password here"),
        ("nobody-at-all", PASSWORD),
    ] {
        let res = browser
            .post(
                &app.url("/v1/signin"),
                &[
                    ("csrf", &csrf),
                    ("request", &request),
                    ("username", user),
                    ("password", password),
                ],
            )
            .await;
        let status = res.status();
        let html = res.text().await.unwrap();
        assert!(html.contains("Invalid username or password."), "{html}");
        assert!(html.contains("role=\"alert\""), "{html}");
        assert!(
            html.contains("aria-invalid=\"true\""),
            "errors tied to the fields: {html}"
        );
        answers.push(status);
    }
    assert_eq!(
        answers,
        [StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED]
    );
    assert!(!browser.cookies.contains_key("__Host-auth_session"));
}

#[tokio::test]
async fn ending_the_browser_session_revokes_every_token_issued_through_it() {
    let s = setup().await;
    let app = &s.app;
    let mut browser = Browser::new();
    let redirect = "https://spa.example.com/cb";
    let q = code_for_spa(&s, &mut browser, redirect).await;
    let t: Value = exchange(app, &spa_exchange(&q["code"], redirect), None)
        .await
        .json()
        .await
        .unwrap();
    let spa_access = t["access_token"].as_str().unwrap().to_owned();
    let spa_refresh = t["refresh_token"].as_str().unwrap().to_owned();
    let sso = claims(t["id_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    // A second app, without a refresh token (its access token belongs to the browser session).
    let res = browser
        .get(&authorize_url(
            app,
            "web",
            "https://web.example.com/callback",
            &[("scope", "openid")],
        ))
        .await;
    let code = query(&location(&res))["code"].clone();
    let t: Value = exchange(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://web.example.com/callback"),
            ("code_verifier", VERIFIER),
        ],
        Some(("web", &s.web_secret)),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(t.get("refresh_token").is_none());
    let web_access = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.me_status(&spa_access).await, StatusCode::OK);
    assert_eq!(app.me_status(&web_access).await, StatusCode::OK);

    // The user ends the browser session from their session list.
    let res = app
        .client
        .delete(app.url(&format!("/v1/users/me/sessions/{sso}")))
        .bearer_auth(&spa_access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&spa_access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&web_access).await, StatusCode::UNAUTHORIZED);
    let res = app
        .post_form(
            "/v1/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &spa_refresh),
            ],
            None,
        )
        .await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // The cookie no longer signs the browser in.
    let res = browser
        .get(&authorize_url(app, "spa", redirect, &[("prompt", "none")]))
        .await;
    assert_eq!(query(&location(&res))["error"], "login_required");
}

/// A relying party's back-channel logout endpoint: records each logout token; answers 503 to
/// the first request (the provider must retry).
async fn logout_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let (g, c) = (got.clone(), calls.clone());
    let server = actix_web::HttpServer::new(move || {
        let (g, c) = (g.clone(), c.clone());
        actix_web::App::new().route(
            "/bcl",
            actix_web::web::post().to(
                move |form: actix_web::web::Form<HashMap<String, String>>| {
                    let (g, c) = (g.clone(), c.clone());
                    async move {
                        if c.fetch_add(1, Ordering::SeqCst) == 0 {
                            return actix_web::HttpResponse::ServiceUnavailable().finish();
                        }
                        g.lock()
                            .unwrap()
                            .push(form.get("logout_token").cloned().unwrap_or_default());
                        actix_web::HttpResponse::Ok().finish()
                    }
                },
            ),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    tokio::spawn(server.run());
    (format!("http://{addr}/bcl"), got)
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_returns_with_state_and_tells_apps_by_back_channel() {
    let s = setup().await;
    let app = &s.app;
    let admin = app.admin_tokens().await.access_token;
    let (bcl, received) = logout_receiver().await;
    let rp = register_client(
        app,
        &admin,
        json!({"client_id": "rp", "first_party": true, "redirect_uris": ["https://rp.example.com/cb"],
               "post_logout_redirect_uris": ["https://rp.example.com/bye"], "backchannel_logout_uri": bcl}),
    )
    .await;
    let rp_secret = rp["client_secret"].as_str().unwrap().to_owned();
    let mut browser = Browser::new();
    let q = code_for_spa(&s, &mut browser, "https://spa.example.com/cb").await;
    let spa: Value = exchange(
        app,
        &spa_exchange(&q["code"], "https://spa.example.com/cb"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let res = browser
        .get(&authorize_url(app, "rp", "https://rp.example.com/cb", &[]))
        .await;
    let code = query(&location(&res))["code"].clone();
    let t: Value = exchange(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://rp.example.com/cb"),
            ("code_verifier", VERIFIER),
        ],
        Some(("rp", &rp_secret)),
    )
    .await
    .json()
    .await
    .unwrap();
    let id_token = t["id_token"].as_str().unwrap().to_owned();
    let id = claims(&id_token);
    let rp_access = t["access_token"].as_str().unwrap().to_owned();

    // An unregistered return address: an error page, and nothing ended.
    let url = |extra: &[(&str, &str)]| {
        format!(
            "{}?{}",
            app.url("/v1/end-session"),
            serde_urlencoded::to_string(extra).unwrap()
        )
    };
    let res = browser
        .get(&url(&[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", "https://rp.example.com/bye/"),
        ]))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
    assert_eq!(app.me_status(&rp_access).await, StatusCode::OK);
    // A hint that is not ours: refused.
    let res = browser
        .get(&url(&[(
            "id_token_hint",
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.e30.",
        )]))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // The app's own hint for this browser's session: signed out at once, back with state.
    let res = browser
        .get(&url(&[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", "https://rp.example.com/bye"),
            ("state", "bye&1"),
        ]))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "https://rp.example.com/bye?state=bye%261");
    assert!(
        !browser.cookies.contains_key("__Host-auth_session"),
        "cookie cleared"
    );
    assert_eq!(app.me_status(&rp_access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.me_status(spa["access_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED
    );

    // The app hears of it by back channel (the first delivery failed; the retry arrives).
    let mut token = None;
    for _ in 0..100 {
        if let Some(t) = received.lock().unwrap().first().cloned() {
            token = Some(t);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let token = token.expect("a logout token within ten seconds");
    assert_eq!(header(&token)["typ"], "logout+jwt");
    let lt = claims(&token);
    assert_eq!(lt["iss"], ISSUER);
    assert_eq!(lt["aud"], "rp");
    assert_eq!(lt["sub"], id["sub"]);
    assert_eq!(lt["sid"], id["sid"]);
    assert!(lt["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(lt.get("nonce").is_none());
    assert!(lt["jti"].as_str().is_some());
    // The SPA registered no back-channel URI: one token only.
    assert_eq!(received.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_logout_link_without_the_apps_hint_asks_the_user_first() {
    let s = setup().await;
    let app = &s.app;
    let mut browser = Browser::new();
    let q = code_for_spa(&s, &mut browser, "https://spa.example.com/cb").await;
    let t: Value = exchange(
        app,
        &spa_exchange(&q["code"], "https://spa.example.com/cb"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let access = t["access_token"].as_str().unwrap().to_owned();
    let res = browser.get(&app.url("/v1/end-session")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("Sign out?"), "{html}");
    assert_eq!(
        app.me_status(&access).await,
        StatusCode::OK,
        "nothing ended by the link"
    );
    let csrf = field(&html, "csrf");
    let request = field(&html, "request");
    let res = browser
        .post(
            &app.url("/v1/end-session"),
            &[("confirm", "yes"), ("request", &request), ("csrf", "")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.me_status(&access).await, StatusCode::OK);
    let res = browser
        .post(
            &app.url("/v1/end-session"),
            &[("confirm", "yes"), ("request", &request), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("You are signed out."));
    assert_eq!(app.me_status(&access).await, StatusCode::UNAUTHORIZED);
    assert!(!browser.cookies.contains_key("__Host-auth_session"));
}

#[tokio::test]
async fn with_the_password_grant_off_only_the_hosted_pages_take_passwords() {
    let app = TestApp::builder()
        .with_admin()
        .env("AUTH_PASSWORD_GRANT", "off")
        .spawn()
        .await;
    let res = app.login_response("root", PASSWORD).await;
    let body = assert_oauth_error(res, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("authorization code"),
        "{body}"
    );
    // The code flow signs the same account in.
    let admin_app = &app;
    let mut browser = Browser::new();
    let page = browser.get(&admin_app.url("/v1/account")).await;
    let page = if page.status() == StatusCode::SEE_OTHER {
        browser.get(&admin_app.url(&location(&page))).await
    } else {
        page
    };
    let res = sign_in_on(&mut browser, admin_app, page, "root", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(browser.cookies.contains_key("__Host-auth_session"));
}

#[tokio::test]
async fn the_account_page_lists_sessions_and_consents_and_withdraws_them() {
    let s = setup().await;
    let app = &s.app;
    let mut browser = Browser::new();
    // Without a session: the sign-in page, which comes back to the account page.
    let res = browser.get(&app.url("/v1/account")).await;
    let res = sign_in_on(&mut browser, app, res, &s.username, PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/v1/account");
    // Consent to the partner app and get its tokens.
    let redirect = "https://partner.example.org/cb";
    let html = browser
        .get(&authorize_url(app, "partner", redirect, &[]))
        .await
        .text()
        .await
        .unwrap();
    let res = browser
        .post(
            &app.url("/v1/consent"),
            &[
                ("csrf", &field(&html, "csrf")),
                ("request", &field(&html, "request")),
                ("decision", "allow"),
            ],
        )
        .await;
    let code = query(&location(&res))["code"].clone();
    let t: Value = exchange(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", VERIFIER),
        ],
        Some(("partner", &s.partner_secret)),
    )
    .await
    .json()
    .await
    .unwrap();
    let partner_access = t["access_token"].as_str().unwrap().to_owned();

    let res = browser.get(&app.url("/v1/account")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains(&s.username), "{html}");
    assert!(html.contains("Partner &#60;App&#62;"), "{html}");
    assert!(html.contains("(this browser)"), "{html}");
    assert!(html.contains("see your username"), "{html}");
    let csrf = field(&html, "csrf");
    // The same consent through the API, for apps with an account screen of their own.
    let api_token = app.login(&s.username, PASSWORD).await.access_token;
    let listed: Value = app
        .get("/v1/users/me/consents", Some(&api_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["consents"][0]["client_id"], "partner");
    assert_eq!(listed["consents"][0]["name"], "Partner <App>");
    assert_eq!(
        listed["consents"][0]["scopes"],
        json!(["openid", "profile"])
    );
    let res = app
        .client
        .delete(app.url("/v1/users/me/consents/nobody"))
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Withdrawing the consent ends the app's sessions and asks again next time.
    let res = browser
        .post(
            &app.url("/v1/account/consents/revoke"),
            &[("csrf", ""), ("client_id", "partner")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = browser
        .post(
            &app.url("/v1/account/consents/revoke"),
            &[("csrf", &csrf), ("client_id", "partner")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.me_status(&partner_access).await,
        StatusCode::UNAUTHORIZED
    );
    let res = browser
        .get(&authorize_url(
            app,
            "partner",
            redirect,
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(query(&location(&res))["error"], "consent_required");
    // Given again on the page, then withdrawn through the API: asked again as well.
    let html = browser
        .get(&authorize_url(app, "partner", redirect, &[]))
        .await
        .text()
        .await
        .unwrap();
    browser
        .post(
            &app.url("/v1/consent"),
            &[
                ("csrf", &field(&html, "csrf")),
                ("request", &field(&html, "request")),
                ("decision", "allow"),
            ],
        )
        .await;
    let res = app
        .client
        .delete(app.url("/v1/users/me/consents/partner"))
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = browser
        .get(&authorize_url(
            app,
            "partner",
            redirect,
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(query(&location(&res))["error"], "consent_required");
    let html = browser
        .get(&app.url("/v1/account"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("Withdraw access"), "{html}");
    // Ending this browser's own session from the page signs it out.
    // (The row marked as this browser's: the user also has a session from the API login.)
    let sid = {
        let row = html.find("(this browser)").unwrap();
        let marker = "name=\"sid\" value=\"";
        let start = row + html[row..].find(marker).unwrap() + marker.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    };
    let res = browser
        .post(
            &app.url("/v1/account/sessions/end"),
            &[("csrf", &csrf), ("sid", &sid)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = browser
        .get(&app.url("/v1/account"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Sign in"), "signed out: {html}");
}

#[tokio::test]
async fn a_confidential_clients_refresh_token_needs_the_client_and_a_public_ones_does_not() {
    let s = setup().await;
    let app = &s.app;
    let mut browser = Browser::new();
    code_for_spa(&s, &mut browser, "https://spa.example.com/cb").await;
    let res = browser
        .get(&authorize_url(
            app,
            "web",
            "https://web.example.com/callback",
            &[],
        ))
        .await;
    let code = query(&location(&res))["code"].clone();
    let t: Value = exchange(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://web.example.com/callback"),
            ("code_verifier", VERIFIER),
        ],
        Some(("web", &s.web_secret)),
    )
    .await
    .json()
    .await
    .unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let res = exchange(app, &form, None).await;
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let res = exchange(app, &form, Some(("web", "wrong"))).await;
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let res = exchange(app, &form, Some(("partner", &s.partner_secret))).await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // None of the refused attempts spent it.
    let res = exchange(app, &form, Some(("web", &s.web_secret))).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn form_post_answers_with_a_self_submitting_form_and_prompt_create_shows_sign_up() {
    let s = setup().await;
    let app = &s.app;
    let mut browser = Browser::new();
    code_for_spa(&s, &mut browser, "https://spa.example.com/cb").await;
    let res = browser
        .get(&authorize_url(
            app,
            "spa",
            "https://spa.example.com/cb",
            &[("response_mode", "form_post")],
        ))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self' https://spa.example.com"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    assert!(
        html.contains("action=\"https://spa.example.com/cb\""),
        "{html}"
    );
    assert!(
        html.contains("<noscript>"),
        "usable without JavaScript: {html}"
    );
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    assert!(
        html.contains(&format!("<script nonce=\"{nonce}\">")),
        "{html}"
    );
    assert!(!field(&html, "code").is_empty());
    assert_eq!(field(&html, "state"), "st&te=1 ü");
    assert_eq!(field(&html, "iss"), ISSUER);

    // prompt=create: the sign-up page, which creates the account and signs it in.
    let mut newcomer = Browser::new();
    let res = newcomer
        .get(&authorize_url(
            app,
            "spa",
            "https://spa.example.com/cb",
            &[("prompt", "create")],
        ))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("Create an account"), "{html}");
    let (csrf, request) = (field(&html, "csrf"), field(&html, "request"));
    let name = format!("new-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    // The API's password policy, tied to the field.
    let res = newcomer
        .post(
            &app.url("/v1/signup"),
            &[
                ("csrf", &csrf),
                ("request", &request),
                ("username", &name),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"password-error\""), "{html}");
    assert!(
        html.contains(&format!("value=\"{name}\"")),
        "keeps what was typed: {html}"
    );
    let res = newcomer
        .post(
            &app.url("/v1/signup"),
            &[
                ("csrf", &csrf),
                ("request", &request),
                ("username", &name),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let q = query(&location(&res));
    let t: Value = exchange(
        app,
        &spa_exchange(&q["code"], "https://spa.example.com/cb"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        claims(t["id_token"].as_str().unwrap())["preferred_username"],
        name
    );
    // The name is taken now: said on the field.
    let res = Browser::new()
        .get(&authorize_url(
            app,
            "spa",
            "https://spa.example.com/cb",
            &[("prompt", "create")],
        ))
        .await;
    let html = res.text().await.unwrap();
    let mut other = Browser::new();
    other
        .cookies
        .insert("__Host-auth_csrf".into(), field(&html, "csrf"));
    let res = other
        .post(
            &app.url("/v1/signup"),
            &[
                ("csrf", &field(&html, "csrf")),
                ("request", &field(&html, "request")),
                ("username", &name),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("That username is taken.")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_is_counted_audited_and_shown_in_the_operators_brand() {
    let app = TestApp::builder()
        .with_admin()
        .env("AUTH_ADMIN_LISTEN", "127.0.0.1:0")
        .env("AUTH_UI_PRODUCT_NAME", "Acme ID")
        .env("AUTH_UI_LOGO_URL", "https://cdn.example.com/logo.svg")
        .env("AUTH_UI_PRIMARY_COLOR", "#123abc")
        .spawn()
        .await;
    let metrics = app.admin.clone().expect("admin listener");
    let admin = app.admin_tokens().await.access_token;
    register_client(
        &app,
        &admin,
        json!({"client_id": "spa", "type": "public", "first_party": true,
               "redirect_uris": ["https://spa.example.com/cb"]}),
    )
    .await;
    let (username, t) = app.new_user().await;
    let user_id = app.user_id(&t.access_token).await;
    let before = crate::metrics::scrape(&metrics).await;

    let mut browser = Browser::new();
    let redirect = "https://spa.example.com/cb";
    let page = browser
        .get(&authorize_url(&app, "spa", redirect, &[]))
        .await;
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("img-src 'self' https:"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>Sign in · Acme ID</title>"), "{html}");
    assert!(
        html.contains("src=\"https://cdn.example.com/logo.svg\""),
        "{html}"
    );
    assert!(html.contains("--primary: #123abc"), "{html}");
    let res = browser
        .post(
            &app.url("/v1/signin"),
            &[
                ("csrf", &field(&html, "csrf")),
                ("request", &field(&html, "request")),
                ("username", &username),
                ("password", PASSWORD),
            ],
        )
        .await;
    let code = query(&location(&res))["code"].clone();
    let res = exchange(&app, &spa_exchange(&code, redirect), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = exchange(&app, &spa_exchange(&code, redirect), None).await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let res = Browser::new()
        .get(&authorize_url(&app, "spa", redirect, &[("prompt", "none")]))
        .await;
    assert_eq!(query(&location(&res))["error"], "login_required");
    let res = Browser::new()
        .get(&authorize_url(&app, "spa", "https://evil.example/cb", &[]))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    let after = crate::metrics::scrape(&metrics).await;
    let d = |k: &str| crate::metrics::delta(&before, &after, k);
    assert_eq!(d("auth_authorizations_total{outcome=code_issued}"), 1.0);
    assert_eq!(d("auth_authorizations_total{outcome=code_exchanged}"), 1.0);
    assert_eq!(d("auth_authorizations_total{outcome=code_reused}"), 1.0);
    assert_eq!(d("auth_authorizations_total{outcome=login_required}"), 1.0);
    assert_eq!(
        d("auth_authorizations_total{outcome=invalid_client_or_redirect_uri}"),
        1.0
    );
    assert_eq!(
        d("auth_logins_total{outcome=success}"),
        1.0,
        "the hosted sign-in"
    );

    let audit: Value = app
        .get(&format!("/v1/admin/users/{user_id}/audit"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let events = audit["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds[..2],
        ["authorization_code_reused", "login_succeeded"],
        "{audit}"
    );
    assert_eq!(events[1]["detail"]["via"], "hosted");
    assert_eq!(events[1]["detail"]["client_id"], "spa");
    assert_eq!(events[0]["detail"]["client_id"], "spa");
}

/// The embedded store (SQLite) runs the same flow: codes taken once and reuse revoking, the
/// browser session ending what was issued through it (the conformance suite covers the stores;
/// this covers the service on them).
#[tokio::test]
async fn the_flow_runs_on_the_embedded_store_too() {
    let dir = std::env::temp_dir().join(format!("oidc-embedded-{}", uuid::Uuid::new_v4().simple()));
    let app = TestApp::builder()
        .env("AUTH_DATABASE_URL", "")
        .env("AUTH_REDIS_URL", "")
        .env("AUTH_DATA_DIR", dir.to_str().unwrap())
        .with_admin()
        .spawn()
        .await;
    let s = setup_on(app).await;
    let app = &s.app;
    let mut browser = Browser::new();
    let redirect = "https://spa.example.com/cb";
    let q = code_for_spa(&s, &mut browser, redirect).await;
    let t: Value = exchange(app, &spa_exchange(&q["code"], redirect), None)
        .await
        .json()
        .await
        .unwrap();
    let access = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.me_status(&access).await, StatusCode::OK);
    let res = exchange(app, &spa_exchange(&q["code"], redirect), None).await;
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(
        app.me_status(&access).await,
        StatusCode::UNAUTHORIZED,
        "reuse revoked it"
    );

    let q = query(&location(
        &browser
            .get(&authorize_url(app, "spa", redirect, &[("prompt", "none")]))
            .await,
    ));
    let t: Value = exchange(app, &spa_exchange(&q["code"], redirect), None)
        .await
        .json()
        .await
        .unwrap();
    let access = t["access_token"].as_str().unwrap().to_owned();
    let sso = claims(t["id_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .delete(app.url(&format!("/v1/users/me/sessions/{sso}")))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&access).await, StatusCode::UNAUTHORIZED);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Signing in as someone else in a browser that holds a session ends that session first (its
/// apps' tokens revoked), and the new one has another id: no session is carried across users.
#[tokio::test]
async fn signing_in_as_another_user_ends_the_browsers_previous_session() {
    let s = setup().await;
    let app = &s.app;
    let mut browser = Browser::new();
    let redirect = "https://spa.example.com/cb";
    let q = code_for_spa(&s, &mut browser, redirect).await;
    let first: Value = exchange(app, &spa_exchange(&q["code"], redirect), None)
        .await
        .json()
        .await
        .unwrap();
    let first_cookie = browser.cookies["__Host-auth_session"].clone();
    let (other, _) = app.new_user().await;
    let page = browser
        .get(&authorize_url(app, "spa", redirect, &[("prompt", "login")]))
        .await;
    let res = sign_in_on(&mut browser, app, page, &other, PASSWORD).await;
    let q = query(&location(&res));
    let second: Value = exchange(app, &spa_exchange(&q["code"], redirect), None)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(
        browser.cookies["__Host-auth_session"], first_cookie,
        "a new cookie"
    );
    let (a, b) = (
        claims(first["id_token"].as_str().unwrap()),
        claims(second["id_token"].as_str().unwrap()),
    );
    assert_ne!(a["sub"], b["sub"]);
    assert_ne!(a["sid"], b["sid"], "another session");
    assert_eq!(
        app.me_status(first["access_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "the first user's session ended"
    );
    assert_eq!(
        app.me_status(second["access_token"].as_str().unwrap())
            .await,
        StatusCode::OK
    );
    // The old cookie no longer signs anyone in.
    let mut replay = Browser::new();
    replay
        .cookies
        .insert("__Host-auth_session".into(), first_cookie);
    let res = replay
        .get(&authorize_url(app, "spa", redirect, &[("prompt", "none")]))
        .await;
    assert_eq!(query(&location(&res))["error"], "login_required");
}
