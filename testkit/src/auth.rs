//! The real auth-service, in-process, on its own database and Redis prefix.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::web;
use auth_service::configuration::Settings;
use auth_service::startup::Application;
use auth_service::state::AppState;
use serde_json::{Value, json};

use crate::stores::{Resources, redis_url, url_for_db};

/// A running auth-service.
pub struct Auth {
    /// `http://127.0.0.1:port`, which is also its issuer.
    pub url: String,
    /// Its state (keys, stores).
    pub state: web::Data<AppState>,
    /// Stops it.
    pub handle: ServerHandle,
    /// Its database and prefix.
    pub resources: Arc<Resources>,
    client: reqwest::Client,
}

/// Tokens from login.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Tokens {
    /// Access token.
    pub access_token: String,
    /// Refresh token.
    pub refresh_token: String,
}

impl Auth {
    /// Starts an auth-service whose issuer is its own URL, with a bootstrap admin `root`.
    pub async fn start(extra: &[(&str, &str)]) -> Auth {
        let resources = Resources::create().await;
        // A port found free can be taken again before the service binds it (by any socket of the
        // tests running beside this one, outgoing ones included): then another port is tried.
        for _ in 0..4 {
            match Self::try_start_on(crate::free_port(), Arc::clone(&resources), extra).await {
                Ok(auth) => return auth,
                Err(e) if address_in_use(&e) => continue,
                Err(e) => panic!("auth-service starts: {e:#}"),
            }
        }
        Self::start_on(crate::free_port(), resources, extra).await
    }

    /// Starts one on `port` with these resources (restarts, replicas).
    pub async fn start_on(port: u16, resources: Arc<Resources>, extra: &[(&str, &str)]) -> Auth {
        Self::try_start_on(port, resources, extra)
            .await
            .unwrap_or_else(|e| panic!("auth-service starts: {e:#}"))
    }

    async fn try_start_on(
        port: u16,
        resources: Arc<Resources>,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Auth> {
        let url = format!("http://127.0.0.1:{port}");
        let mut env: HashMap<String, String> = HashMap::from([
            ("AUTH_DATABASE_URL".into(), url_for_db(&resources.db)),
            ("AUTH_REDIS_URL".into(), redis_url()),
            ("AUTH_REDIS_PREFIX".into(), resources.prefix.clone()),
            ("AUTH_LISTEN".into(), format!("127.0.0.1:{port}")),
            ("AUTH_ISSUER".into(), url.clone()),
            ("AUTH_WORKERS".into(), "1".into()),
            ("AUTH_BOOTSTRAP_ADMIN_USERNAME".into(), "root".into()),
            (
                "AUTH_BOOTSTRAP_ADMIN_PASSWORD".into(),
                crate::PASSWORD.into(),
            ),
            ("AUTH_FEED_TOKEN".into(), crate::FEED_TOKEN.into()),
            ("AUTH_KEY_ENCRYPTION_KEY".into(), crate::KEK.into()),
            ("AUTH_FEED_HEARTBEAT_MS".into(), "500".into()),
            (
                "AUTH_ROLE_SCOPES".into(),
                r#"{"user":["profile","orders:read"],"admin":["users:write"]}"#.into(),
            ),
        ]);
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        let settings = Settings::from_lookup(&|k| env.get(k).cloned()).expect("auth settings");
        let app = Application::build(settings).await?;
        let state = app.state();
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        Ok(Auth {
            url,
            state,
            handle,
            resources,
            client: reqwest::Client::new(),
        })
    }

    /// Registers `username` and logs in.
    pub async fn user(&self, username: &str) -> Tokens {
        let res = self
            .client
            .post(format!("{}/v1/users", self.url))
            .json(&json!({"username": username, "password": crate::PASSWORD}))
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success() || res.status() == 409,
            "register {username}: {}",
            res.status()
        );
        self.login(username).await
    }

    /// Logs in.
    pub async fn login(&self, username: &str) -> Tokens {
        let res = self
            .client
            .post(format!("{}/v1/login", self.url))
            .form(&[("username", username), ("password", crate::PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "login {username}");
        res.json().await.unwrap()
    }

    /// The bootstrap admin's tokens.
    pub async fn admin(&self) -> Tokens {
        self.login("root").await
    }

    /// Registers a client through the admin API; its secret.
    pub async fn register_client(&self, client_id: &str, scopes: &[&str]) -> String {
        let admin = self.admin().await;
        let res = self
            .client
            .post(format!("{}/v1/admin/clients", self.url))
            .bearer_auth(&admin.access_token)
            .json(&json!({"client_id": client_id, "scopes": scopes, "audiences": ["api"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "register client {client_id}");
        let v: Value = res.json().await.unwrap();
        v["client_secret"].as_str().unwrap().to_owned()
    }

    /// A client-credentials access token (HTTP Basic).
    pub async fn client_token(&self, client_id: &str, secret: &str) -> String {
        let res = self
            .client
            .post(format!("{}/v1/token", self.url))
            .basic_auth(client_id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "client token for {client_id}");
        let v: Value = res.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// Signs any claims with the service's current key (for forged-but-signed attack tokens).
    pub fn sign(&self, typ: &str, claims: &Value) -> String {
        self.state.keys.ring().signing().sign(typ, claims).unwrap()
    }

    /// The current signing key id.
    pub fn kid(&self) -> String {
        self.state.keys.ring().signing().kid().to_owned()
    }

    /// Valid access-token claims for a made-up user, to alter one field at a time.
    pub fn claims(&self) -> Value {
        let now = shared::unix_now();
        json!({"iss": self.url, "sub": "00000000-0000-4000-8000-000000000001", "aud": "api", "client_id": "app",
               "exp": now + 600, "iat": now, "nbf": now, "jti": uuid::Uuid::new_v4().to_string(),
               "sid": uuid::Uuid::new_v4().to_string(), "roles": ["user"], "scope": "profile"})
    }

    /// Stops it (graceful).
    pub async fn stop(&self) {
        self.state.hub.close();
        self.handle.stop(true).await;
    }
}

/// The error is a listener's address already taken.
fn address_in_use(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
    })
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    #[test]
    fn a_taken_port_is_recognised_through_the_error_context() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let again = std::net::TcpListener::bind(taken.local_addr().unwrap())
            .context("cannot listen")
            .unwrap_err();
        assert!(super::address_in_use(&again));
        assert!(!super::address_in_use(&anyhow::anyhow!("other")));
    }
}
