//! The local stack's walkthrough (run by `scripts/dev.sh`): registers a user, logs in, calls
//! through the gateway, refreshes, replays a spent refresh token, logs out, and shows the gateway
//! rejecting the revoked tokens. Each step prints the equivalent `curl` command and checks the
//! answer; any surprise exits non-zero.
//!
//! `walkthrough wait URL` waits (up to 60 s) until URL answers 200.
//! `walkthrough run AUTH_URL GATEWAY_URL [CLIENT_ID CLIENT_SECRET]` walks through; with a
//! registered client, also through client credentials, a route for services only, and
//! introspection.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

fn step(text: &str) {
    println!("\n\x1b[1m$ {text}\x1b[0m");
}

fn short(s: &str) -> String {
    if s.len() > 110 {
        format!("{}…", &s[..110])
    } else {
        s.to_owned()
    }
}

struct Walk {
    http: reqwest::Client,
    auth: String,
    gw: String,
    client: Option<(String, String)>,
}

impl Walk {
    async fn expect(&self, req: reqwest::RequestBuilder, want: u16) -> Result<String, String> {
        let res = req
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = res.status().as_u16();
        let body = res.text().await.unwrap_or_default();
        println!("{status} {}", short(&body));
        if status != want {
            return Err(format!("expected {want}, got {status}"));
        }
        Ok(body)
    }

    fn tokens(body: &str) -> Result<(String, String), String> {
        let v: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        let get = |k: &str| {
            v[k].as_str()
                .map(str::to_owned)
                .ok_or(format!("no {k} in the answer"))
        };
        Ok((get("access_token")?, get("refresh_token")?))
    }

    async fn login(&self, user: &str) -> Result<(String, String), String> {
        let body = self
            .expect(
                self.http
                    .post(format!("{}/v1/login", self.auth))
                    .form(&[("username", user), ("password", PASSWORD)]),
                200,
            )
            .await?;
        Self::tokens(&body)
    }

    /// What an app does to sign a user in (the demo page's client, `demo`): the authorization
    /// request gets the hosted sign-in page; the password, posted with the page's CSRF token,
    /// brings the browser back with a code; the code and the PKCE verifier get the tokens.
    async fn code_flow(&self, user: &str) -> Result<(), String> {
        const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let gw = &self.gw;
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let redirect = format!("{gw}/app/");
        let query = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", "demo"),
            ("redirect_uri", redirect.as_str()),
            ("scope", "openid profile"),
            ("state", "walk"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .map_err(|e| e.to_string())?;
        step(&format!(
            "curl '{gw}/v1/authorize?{query}'   (an app sends the browser here: the hosted sign-in page)"
        ));
        let page = browser
            .get(format!("{gw}/v1/authorize?{query}"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let csrf_cookie = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("__Host-auth_csrf="))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
            .ok_or("the sign-in page set no CSRF cookie")?;
        let status = page.status().as_u16();
        let html = page.text().await.unwrap_or_default();
        let hidden = |name: &str| -> Result<String, String> {
            let marker = format!("name=\"{name}\" value=\"");
            let start = html.find(&marker).ok_or(format!("no {name} on the page"))? + marker.len();
            let end = start + html[start..].find('"').ok_or("a broken page")?;
            Ok(html[start..end].replace("&#38;", "&"))
        };
        println!("{status} the sign-in page (form with a CSRF token and the request)");
        step(&format!(
            "curl -X POST {gw}/v1/signin -b '<CSRF cookie>' -d csrf=… -d request=… -d username={user} -d password=…   (303 back to the app with a code)"
        ));
        let signed_in = browser
            .post(format!("{gw}/v1/signin"))
            .header("cookie", csrf_cookie)
            .form(&[
                ("csrf", hidden("csrf")?.as_str()),
                ("request", hidden("request")?.as_str()),
                ("username", user),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let location = signed_in
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or(format!(
                "sign-in answered {} without a redirect",
                signed_in.status()
            ))?
            .to_owned();
        println!("{} {}", signed_in.status().as_u16(), short(&location));
        let code = location
            .split_once('?')
            .and_then(|(_, q)| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
            .and_then(|p| p.into_iter().find(|(k, _)| k == "code"))
            .map(|(_, v)| v)
            .ok_or("no code in the redirect")?;
        step(&format!(
            "curl -X POST {gw}/v1/token -d grant_type=authorization_code -d code=… -d redirect_uri={redirect} -d code_verifier=… -d client_id=demo"
        ));
        let body = self
            .expect(
                self.http.post(format!("{gw}/v1/token")).form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect.as_str()),
                    ("code_verifier", VERIFIER),
                    ("client_id", "demo"),
                ]),
                200,
            )
            .await?;
        let tokens: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let access = tokens["access_token"].as_str().ok_or("no access token")?;
        tokens["id_token"].as_str().ok_or("no ID token")?;
        step(&format!(
            "curl {gw}/v1/userinfo -H 'authorization: Bearer <access token>'   (the user's claims)"
        ));
        self.expect(
            self.http
                .get(format!("{gw}/v1/userinfo"))
                .bearer_auth(access),
            200,
        )
        .await?;
        Ok(())
    }

    /// Polls the gateway until it rejects `token`; returns how long that took.
    async fn until_rejected(&self, token: &str) -> Result<Duration, String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            let res = self
                .http
                .get(format!("{}/api/orders", self.gw))
                .bearer_auth(token)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if res.status() == 401 {
                let body = res.text().await.unwrap_or_default();
                println!("401 {}", short(&body));
                return Ok(start.elapsed());
            }
        }
        Err("the gateway still accepts the revoked token after 5 s".into())
    }

    async fn run(&self) -> Result<(), String> {
        let (auth, gw) = (&self.auth, &self.gw);
        let user = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);

        step(&format!(
            "curl -X POST {auth}/v1/users -H 'content-type: application/json' -d '{{\"username\":\"{user}\",\"password\":\"…\"}}'"
        ));
        self.expect(
            self.http
                .post(format!("{auth}/v1/users"))
                .json(&json!({"username": user, "password": PASSWORD})),
            201,
        )
        .await?;

        self.code_flow(&user).await?;

        step(&format!(
            "curl -X POST {auth}/v1/login -d username={user} -d password=…"
        ));
        let (access, refresh) = self.login(&user).await?;

        step(&format!(
            "curl {gw}/api/orders   (no token: 401 from the gateway)"
        ));
        self.expect(self.http.get(format!("{gw}/api/orders")), 401)
            .await?;

        step(&format!(
            "curl {gw}/api/orders -H 'authorization: Bearer <access token>' -H 'x-user-id: admin'   (verified locally; the spoofed header is dropped)"
        ));
        let body = self
            .expect(
                self.http
                    .get(format!("{gw}/api/orders"))
                    .bearer_auth(&access)
                    .header("x-user-id", "admin"),
                200,
            )
            .await?;
        let seen: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        if seen["user_id"] == "admin" {
            return Err("the spoofed identity reached the upstream".into());
        }

        step(&format!(
            "curl {gw}/admin/panel -H 'authorization: Bearer <access token>'   (a user token: 403)"
        ));
        self.expect(
            self.http
                .get(format!("{gw}/admin/panel"))
                .bearer_auth(&access),
            403,
        )
        .await?;

        step(&format!(
            "curl -X POST {auth}/v1/token -d grant_type=refresh_token -d refresh_token=<refresh token>   (rotation)"
        ));
        let body = self
            .expect(
                self.http.post(format!("{auth}/v1/token")).form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                ]),
                200,
            )
            .await?;
        let (newest, _) = Self::tokens(&body)?;

        step("the same with the spent refresh token   (reuse: the whole session is revoked)");
        self.expect(
            self.http.post(format!("{auth}/v1/token")).form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
            ]),
            400,
        )
        .await?;
        step(&format!(
            "curl {gw}/api/orders with the session's newest access token   (the revocation reached the gateway)"
        ));
        let took = self.until_rejected(&newest).await?;
        println!(
            "rejected {:.1} ms after the replay was answered",
            took.as_secs_f64() * 1000.0
        );

        step(&format!(
            "log in again, call through the gateway, then curl -X POST {auth}/v1/logout -H 'authorization: Bearer <access token>'"
        ));
        let (access, _) = self.login(&user).await?;
        self.expect(
            self.http
                .get(format!("{gw}/api/orders"))
                .bearer_auth(&access),
            200,
        )
        .await?;
        self.expect(
            self.http
                .post(format!("{auth}/v1/logout"))
                .bearer_auth(&access),
            204,
        )
        .await?;
        let took = self.until_rejected(&access).await?;
        println!(
            "the gateway rejected the logged-out token {:.1} ms after the logout returned",
            took.as_secs_f64() * 1000.0
        );
        if let Some((id, secret)) = &self.client {
            self.service(id, secret, &user).await?;
        }
        Ok(())
    }

    /// A service's own token (client credentials) through the gateway, and introspection.
    async fn service(&self, id: &str, secret: &str, user: &str) -> Result<(), String> {
        let (auth, gw) = (&self.auth, &self.gw);
        step(&format!(
            "curl -X POST {auth}/v1/token -u {id}:<secret> -d grant_type=client_credentials   (a service's own token: no refresh token)"
        ));
        let body = self
            .expect(
                self.http
                    .post(format!("{auth}/v1/token"))
                    .basic_auth(id, Some(secret))
                    .form(&[("grant_type", "client_credentials")]),
                200,
            )
            .await?;
        let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let token = v["access_token"]
            .as_str()
            .ok_or("no access_token in the answer")?
            .to_owned();

        step(&format!(
            "curl {gw}/internal/jobs -H 'authorization: Bearer <client token>'   (a route for services: principal = \"client\")"
        ));
        let body = self
            .expect(
                self.http
                    .get(format!("{gw}/internal/jobs"))
                    .bearer_auth(&token),
                200,
            )
            .await?;
        let seen: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        if seen["user_id"] != id || seen["principal"] != "client" {
            return Err(format!("the upstream did not see the client {id}: {seen}"));
        }

        step(&format!(
            "curl {gw}/internal/jobs -H 'authorization: Bearer <a user's token>'   (403: the route is for services)"
        ));
        let (access, _) = self.login(user).await?;
        self.expect(
            self.http
                .get(format!("{gw}/internal/jobs"))
                .bearer_auth(&access),
            403,
        )
        .await?;

        step(&format!(
            "curl -X POST {auth}/v1/introspect -u {id}:<secret> -d token=<the user's token>   (RFC 7662, for services that cannot verify locally)"
        ));
        let body = self
            .expect(
                self.http
                    .post(format!("{auth}/v1/introspect"))
                    .basic_auth(id, Some(secret))
                    .form(&[("token", access.as_str())]),
                200,
            )
            .await?;
        let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        if v["active"] != true || v["principal"] != "user" {
            return Err(format!("introspection did not find the token active: {v}"));
        }

        // With an admin (WALK_ADMIN, WALK_ADMIN_PASSWORD): disabling the client revokes its
        // tokens at the gateway.
        let (Ok(admin), Ok(admin_password)) = (
            std::env::var("WALK_ADMIN"),
            std::env::var("WALK_ADMIN_PASSWORD"),
        ) else {
            return Ok(());
        };
        let body = self
            .expect(
                self.http
                    .post(format!("{auth}/v1/login"))
                    .form(&[("username", admin.as_str()), ("password", &admin_password)]),
                200,
            )
            .await?;
        let (admin_token, _) = Self::tokens(&body)?;
        step(&format!(
            "curl -X PATCH {auth}/v1/admin/clients/{id} -H 'authorization: Bearer <admin token>' -H 'content-type: application/json' -d '{{\"disabled\":true}}'   (its tokens are revoked)"
        ));
        self.expect(
            self.http
                .patch(format!("{auth}/v1/admin/clients/{id}"))
                .bearer_auth(&admin_token)
                .json(&json!({"disabled": true})),
            200,
        )
        .await?;
        let took = self.until_rejected(&token).await?;
        println!(
            "the gateway rejected the disabled client's token {:.1} ms after the change returned",
            took.as_secs_f64() * 1000.0
        );
        Ok(())
    }
}

async fn wait(url: &str) -> Result<(), String> {
    let http = reqwest::Client::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(r) = http.get(url).send().await
            && r.status() == 200
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{url} did not answer 200 within 60 s"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["wait", url] => wait(url).await,
        ["run", auth, gw, ref client @ ..] if matches!(client.len(), 0 | 2) => {
            Walk {
                http: reqwest::Client::new(),
                auth: auth.trim_end_matches('/').to_owned(),
                gw: gw.trim_end_matches('/').to_owned(),
                client: match client {
                    [id, secret] => Some(((*id).to_owned(), (*secret).to_owned())),
                    _ => None,
                },
            }
            .run()
            .await
        }
        _ => Err(
            "usage: walkthrough wait URL | walkthrough run AUTH_URL GATEWAY_URL [CLIENT_ID CLIENT_SECRET]"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("walkthrough: {e}");
            ExitCode::FAILURE
        }
    }
}
