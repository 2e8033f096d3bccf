//! A stack per test: auth-service, echo upstream, gateway.

use gateway::configuration::Settings;
use gateway::startup::Application;
use serde_json::Value;
use testkit::auth::Auth;
use testkit::echo::Echo;

pub struct Stack {
    pub auth: Auth,
    pub echo: Echo,
    pub url: String,
    pub addr: String,
    pub admin: String,
    pub client: reqwest::Client,
}

/// Routes every test can use; `extra` is more TOML (top-level keys first, then tables).
pub fn config(issuer: &str, echo: &str, extra_top: &str) -> String {
    let dead = testkit::free_port();
    format!(
        r#"
issuer = "{issuer}"
audiences = ["api"]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
workers = 1
{extra_top}

[jwks]
min_refresh = 1
unknown_kid_cooldown = 2

[[routes]]
prefix = "/public"
upstream = "{echo}"
auth = "public"

[[routes]]
prefix = "/api"
upstream = "{echo}"

[[routes]]
prefix = "/admin"
upstream = "{echo}"
roles = ["admin"]

[[routes]]
prefix = "/users-only"
upstream = "{echo}"
principal = "user"

[[routes]]
prefix = "/services-only"
upstream = "{echo}"
principal = "client"

[[routes]]
prefix = "/scoped"
upstream = "{echo}"
scopes = ["orders:read", "profile"]

[[routes]]
prefix = "/strip"
upstream = "{echo}/base"
strip_prefix = true

[[routes]]
prefix = "/token"
upstream = "{echo}"
forward_token = true

[[routes]]
prefix = "/get-only"
upstream = "{echo}"
methods = ["GET", "HEAD"]

[[routes]]
prefix = "/slow"
upstream = "{echo}"
auth = "public"
timeout = 0.5

[[routes]]
prefix = "/limited"
upstream = "{echo}"
auth = "public"
max_body_bytes = 1024

[[routes]]
prefix = "/bytes"
upstream = "{echo}"
auth = "public"

[[routes]]
prefix = "/dead"
upstream = "http://127.0.0.1:{dead}"
auth = "public"

[[routes]]
prefix = "/live"
upstream = "{echo}"
websocket = true

[[routes]]
prefix = "/rate"
upstream = "{echo}"
auth = "public"
rate_limit = {{ requests = 3, per = 60 }}

[[routes]]
prefix = "/user-rate"
upstream = "{echo}"
rate_limit = {{ requests = 2, per = 60, by = "user" }}

[[routes]]
prefix = "/cors"
upstream = "{echo}"
[routes.cors]
allowed_origins = ["https://app.example.com"]
allowed_headers = ["authorization", "content-type", "x-custom"]
"#
    )
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(&[], "").await
    }

    pub async fn start_with(auth_env: &[(&str, &str)], extra_top: &str) -> Stack {
        let auth = Auth::start(auth_env).await;
        let echo = testkit::echo::start().await;
        let toml = config(&auth.url, &echo.url, extra_top);
        let Started { url, addr, admin } = start_ready_gateway(&toml, &[]).await;
        Stack {
            auth,
            echo,
            url,
            addr,
            admin,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut r = self.client.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    /// GET through the gateway; the echo's JSON when it answered.
    pub async fn echo_of(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut r = self.client.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Where a started gateway listens.
pub struct Started {
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// `http://127.0.0.1:admin-port`.
    pub admin: String,
}

/// Starts a gateway from TOML (plus env; the test feed token unless `GATEWAY_FEED_TOKEN` is
/// given) without waiting for it to be ready.
pub async fn start_gateway(toml: &str, env: &[(&str, &str)]) -> Started {
    let mut map: std::collections::HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    map.insert("GATEWAY_CONFIG_TOML".into(), toml.into());
    map.entry("GATEWAY_FEED_TOKEN".into())
        .or_insert_with(|| testkit::FEED_TOKEN.into());
    let settings = Settings::load(&|k| map.get(k).cloned()).expect("gateway settings");
    let app = Application::build(settings).await.expect("gateway starts");
    let (port, admin) = (app.port(), app.admin_port());
    actix_web::rt::spawn(app.run_until_stopped());
    Started {
        url: format!("http://127.0.0.1:{port}"),
        addr: format!("127.0.0.1:{port}"),
        admin: format!("http://127.0.0.1:{admin}"),
    }
}

/// Starts a gateway and waits until it is ready (keys and the first revocation snapshot).
pub async fn start_ready_gateway(toml: &str, env: &[(&str, &str)]) -> Started {
    let started = start_gateway(toml, env).await;
    wait_ready(&started.admin).await;
    started
}

/// Waits up to 10 s for `/readyz` to answer 200.
pub async fn wait_ready(admin: &str) {
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("{admin}/readyz")).await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the gateway at {admin} did not become ready within 10 s");
}

/// The value of a metric line (exact name with labels).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// Asserts a problem+json answer.
pub async fn assert_problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    body
}
