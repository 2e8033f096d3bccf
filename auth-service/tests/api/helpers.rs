//! Test harness: each `TestApp` is the real service on a random port with its own fresh
//! PostgreSQL database and Redis key prefix; both are removed when the last app using them drops.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::web;
use auth_service::configuration::Settings;
use auth_service::startup::Application;
use auth_service::state::AppState;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

pub use testkit::PASSWORD;
pub const ISSUER: &str = "http://auth.test";

pub use testkit::stores::{Resources, pg_admin_url, redis_url, url_for_db};

/// Tokens as returned by login, refresh and password change.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub refresh_expires_in: i64,
    #[serde(default)]
    pub scope: Option<String>,
}

/// Configures a `TestApp`.
#[derive(Default)]
pub struct Builder {
    env: Vec<(String, String)>,
    resources: Option<Arc<Resources>>,
}

impl Builder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds a bootstrap admin `root` with the standard test password.
    pub fn with_admin(self) -> Self {
        self.env("AUTH_BOOTSTRAP_ADMIN_USERNAME", "root")
            .env("AUTH_BOOTSTRAP_ADMIN_PASSWORD", PASSWORD)
    }

    /// Uses these resources (a database and prefix made beforehand).
    pub fn resources(mut self, resources: Arc<Resources>) -> Self {
        self.resources = Some(resources);
        self
    }

    /// Shares another app's database and Redis prefix (a replica, or a restart).
    pub fn sharing(mut self, other: &TestApp) -> Self {
        self.resources = Some(Arc::clone(&other.resources));
        self
    }

    pub async fn settings(&self) -> (Settings, Arc<Resources>, HashMap<String, String>) {
        let resources = match &self.resources {
            Some(r) => Arc::clone(r),
            None => Resources::create().await,
        };
        let mut env: HashMap<String, String> = HashMap::from([
            ("AUTH_DATABASE_URL".into(), url_for_db(&resources.db)),
            ("AUTH_REDIS_URL".into(), redis_url()),
            ("AUTH_REDIS_PREFIX".into(), resources.prefix.clone()),
            ("AUTH_LISTEN".into(), "127.0.0.1:0".into()),
            ("AUTH_ISSUER".into(), ISSUER.into()),
            ("AUTH_WORKERS".into(), "2".into()),
            ("AUTH_STARTUP_TIMEOUT".into(), "10".into()),
            ("AUTH_FEED_TOKEN".into(), testkit::FEED_TOKEN.into()),
            ("AUTH_KEY_ENCRYPTION_KEY".into(), testkit::KEK.into()),
            ("AUTH_FEED_HEARTBEAT_MS".into(), "300".into()),
            (
                "AUTH_ROLE_SCOPES".into(),
                r#"{"user":["profile","orders:read"],"admin":["users:write"]}"#.into(),
            ),
        ]);
        for (k, v) in &self.env {
            env.insert(k.clone(), v.clone());
        }
        let lookup = env.clone();
        let settings = Settings::from_lookup(&|k| lookup.get(k).cloned()).expect("test settings");
        (settings, resources, env)
    }

    pub async fn try_spawn(self) -> anyhow::Result<TestApp> {
        if std::env::var("TEST_LOG").is_ok() {
            auth_service::telemetry::init_subscriber("info");
        }
        let (settings, resources, env) = self.settings().await;
        let app = Application::build(settings).await?;
        let port = app.port();
        let admin = app.admin_port().map(|p| format!("http://127.0.0.1:{p}"));
        let state = app.state();
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        Ok(TestApp {
            address: format!("http://127.0.0.1:{port}"),
            admin,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            state,
            handle,
            resources,
            env,
        })
    }

    pub async fn spawn(self) -> TestApp {
        self.try_spawn().await.expect("the service starts")
    }
}

/// The real service, running.
pub struct TestApp {
    pub address: String,
    /// The admin listener, when `AUTH_ADMIN_LISTEN` was set.
    pub admin: Option<String>,
    pub client: reqwest::Client,
    pub state: web::Data<AppState>,
    pub handle: ServerHandle,
    pub resources: Arc<Resources>,
    pub env: HashMap<String, String>,
}

impl TestApp {
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub async fn spawn() -> TestApp {
        Builder::default().spawn().await
    }

    pub async fn spawn_with_admin() -> TestApp {
        Builder::default().with_admin().spawn().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Stops this instance (graceful) and waits for it.
    pub async fn stop(&self) {
        self.state.hub.close();
        self.handle.stop(true).await;
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut r = self.client.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        let mut r = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        token: Option<&str>,
    ) -> Response {
        let mut r = self.client.post(self.url(path)).form(form);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    pub async fn register(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/v1/users",
            &json!({"username": username, "password": password}),
            None,
        )
        .await
    }

    pub async fn login_response(&self, username: &str, password: &str) -> Response {
        self.post_form(
            "/v1/login",
            &[("username", username), ("password", password)],
            None,
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Tokens {
        let res = self.login_response(username, password).await;
        assert_eq!(res.status(), StatusCode::OK, "login of {username}");
        res.json().await.unwrap()
    }

    /// Registers a fresh user and logs in.
    pub async fn new_user(&self) -> (String, Tokens) {
        let name = format!("user-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let res = self.register(&name, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let tokens = self.login(&name, PASSWORD).await;
        (name, tokens)
    }

    pub async fn admin_tokens(&self) -> Tokens {
        self.login("root", PASSWORD).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_form(
            "/v1/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            None,
        )
        .await
    }

    pub async fn me(&self, access_token: &str) -> Response {
        self.get("/v1/users/me", Some(access_token)).await
    }

    pub async fn me_status(&self, access_token: &str) -> StatusCode {
        self.me(access_token).await.status()
    }

    pub async fn user_id(&self, access_token: &str) -> String {
        let body: Value = self.me(access_token).await.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }
}

/// Asserts an RFC 6749 error body and returns it.
pub async fn assert_oauth_error(res: Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
    body
}

/// Asserts an RFC 9457 problem body and returns it.
pub async fn assert_problem(res: Response, status: StatusCode) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

/// The claims of a JWT, decoded without verification (to inspect what we issued).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&shared::jws::b64_decode(payload).unwrap()).unwrap()
}

/// The JOSE header of a JWT.
pub fn header(token: &str) -> Value {
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(&shared::jws::b64_decode(h).unwrap()).unwrap()
}

/// A signed refresh token as versions before opaque refresh tokens issued them (`typ` `rt+jwt`,
/// signed by the current key), with the session record they made: a session of `sub` for
/// `client_id` and `scope`. Its store record has no expiry of its own, as theirs had none.
pub async fn legacy_refresh_token(
    app: &TestApp,
    sub: &str,
    client_id: &str,
    scope: &str,
) -> String {
    let now = shared::unix_now();
    let (sid, jti) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let exp = now + 600;
    let opened = app
        .state
        .sessions
        .create(
            &auth_service::storage::NewSession {
                sid: sid.clone(),
                sub: sub.to_owned(),
                refresh_jti: Some(jti.clone()),
                parent: None,
                browser: None,
                amr: "pwd".into(),
                auth_time: now,
                abs_exp: now + 3600,
                refresh_exp: exp,
                client_id: client_id.to_owned(),
                scope: scope.to_owned(),
                user_agent: "an earlier version".into(),
            },
            now,
        )
        .await
        .unwrap();
    assert!(opened);
    if app.env.get("AUTH_REDIS_URL").is_some_and(|u| !u.is_empty()) {
        let prefix = &app.env["AUTH_REDIS_PREFIX"];
        let mut conn = redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: i64 = redis::cmd("HDEL")
            .arg(format!("{prefix}r:{jti}"))
            .arg("exp")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let claims = shared::RefreshClaims {
        iss: app.state.issuance.issuer.clone(),
        sub: sub.to_owned(),
        aud: shared::Audience::One(app.state.issuance.issuer.clone()),
        exp,
        iat: now,
        jti,
        sid,
        client_id: client_id.to_owned(),
        scope: scope.to_owned(),
    };
    let ring = app.state.keys.signing_ring().await.unwrap();
    ring.signing()
        .sign(shared::claims::REFRESH_TOKEN_TYPE, &claims)
        .unwrap()
}
