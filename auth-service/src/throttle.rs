//! Brute-force defence shared by every replica (the counters live in the store: Redis, or the
//! embedded store).
//!
//! - **Per client** (address, or IPv6 /64): attempts at login and registration, and failed
//!   refresh or revoke calls, each counted in a fixed window. Stops one address from spraying.
//! - **Per account and client**: login attempts at one account from one address, counted before
//!   the password is checked (so concurrent guesses cannot slip past the count) and forgotten
//!   after a success. Stops one address from guessing one password.
//! - **Per account, over all clients**: after a number of free failures, growing delays
//!   (doubling up to a bound) between attempts. Stops many addresses from guessing one password.
//!   Never a lockout: addresses the account logged in from before ("known clients") pass the
//!   delays, so an attacker's failures cannot keep the owner out, and the delay is bounded.
//!
//! Every counter is keyed by the username as sent, whether or not the account exists, so
//! throttling answers the same for existing and unknown accounts.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use shared::net::Cidr;

use crate::metrics::Metrics;
use crate::storage::{Backoff, RateLimitStore, StoreError};

/// `count` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Events allowed in a window.
    pub count: u64,
    /// The window.
    pub window: Duration,
}

impl Limit {
    /// Parses `30/60s`, `30/60` (seconds) or `5/15m`.
    pub fn parse(s: &str) -> Option<Limit> {
        let (count, window) = s.trim().split_once('/')?;
        let count: u64 = count.trim().parse().ok().filter(|c| *c > 0)?;
        let window = window.trim();
        let (num, unit) = match window.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => window.split_at(i),
            None => (window, "s"),
        };
        let num: u64 = num.parse().ok().filter(|n| *n > 0)?;
        let secs = match unit {
            "s" => num,
            "m" => num.checked_mul(60)?,
            "h" => num.checked_mul(3600)?,
            _ => return None,
        };
        Some(Limit {
            count,
            window: Duration::from_secs(secs),
        })
    }
}

/// How the throttling is set up (`AUTH_THROTTLE_*`, `AUTH_TRUSTED_PROXIES`).
#[derive(Debug, Clone)]
pub struct ThrottleSettings {
    /// `AUTH_THROTTLE`: off only where something in front already does it.
    pub enabled: bool,
    /// `AUTH_TRUSTED_PROXIES`: peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<Cidr>,
    /// `AUTH_THROTTLE_PER_CLIENT`: login or registration attempts per client address.
    pub per_client: Limit,
    /// `AUTH_THROTTLE_PER_ACCOUNT_CLIENT`: login attempts at one account from one address.
    pub per_account_client: Limit,
    /// `AUTH_THROTTLE_TOKEN_FAILURES`: failed refresh or revoke calls per client address.
    pub token_failures: Limit,
    /// `AUTH_THROTTLE_ACCOUNT_FREE_FAILURES` / `AUTH_THROTTLE_ACCOUNT_MAX_DELAY`: the growing
    /// delays of an account under attack.
    pub account: Backoff,
    /// `AUTH_THROTTLE_KNOWN_CLIENT_TTL`: how long an address stays known after a login.
    pub known_client_ttl: Duration,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            enabled: true,
            trusted_proxies: Vec::new(),
            per_client: Limit {
                count: 30,
                window: Duration::from_secs(60),
            },
            per_account_client: Limit {
                count: 10,
                window: Duration::from_secs(15 * 60),
            },
            token_failures: Limit {
                count: 30,
                window: Duration::from_secs(60),
            },
            account: Backoff {
                free: 20,
                base: Duration::from_secs(1),
                max: Duration::from_secs(15 * 60),
                window: Duration::from_secs(3600),
            },
            known_client_ttl: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Printed at start (and by `auth-service config`) in the operator's notation.
impl serde::Serialize for ThrottleSettings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.printed().serialize(s)
    }
}

impl ThrottleSettings {
    /// As printed at start.
    fn printed(&self) -> serde_json::Value {
        serde_json::json!({
                "enabled": self.enabled,
                "trusted_proxies": self.trusted_proxies.len(),
                "per_client": format!("{}/{}s", self.per_client.count, self.per_client.window.as_secs()),
                "per_account_client": format!("{}/{}s", self.per_account_client.count, self.per_account_client.window.as_secs()),
                "token_failures": format!("{}/{}s", self.token_failures.count, self.token_failures.window.as_secs()),
                "account_free_failures": self.account.free,
                "account_max_delay": self.account.max.as_secs(),
                "known_client_ttl": self.known_client_ttl.as_secs(),
        })
    }
}

/// Which endpoint is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /v1/login`.
    Login,
    /// `POST /v1/users`.
    Register,
    /// `POST /v1/token` (refresh).
    Refresh,
    /// `POST /v1/revoke` and `POST /v1/logout`.
    Revoke,
    /// Client authentication: `POST /v1/token` (client credentials) and `POST /v1/introspect`.
    ClientAuth,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::Register => "register",
            Action::Refresh => "refresh",
            Action::Revoke => "revoke",
            Action::ClientAuth => "client_auth",
        }
    }
}

/// A request held back: how long until it may be tried again, and which limit said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Time until the limit lets the next attempt through.
    pub retry_after: Duration,
    /// `client`, `account_client` or `account`.
    pub limit: &'static str,
}

impl Throttled {
    /// Whole seconds for `Retry-After`, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let ms = self.retry_after.as_millis();
        u64::try_from(ms.div_ceil(1000)).unwrap_or(u64::MAX).max(1)
    }
}

/// Why a request was not let through.
#[derive(Debug)]
pub enum Refusal {
    /// Over a limit.
    Throttled(Throttled),
    /// The counters could not be read.
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

/// The brute-force defence of one process (the counters are shared through the store).
#[derive(Clone)]
pub struct Throttle {
    settings: Arc<ThrottleSettings>,
    store: Arc<dyn RateLimitStore>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The key of an account: a digest of the username as sent (bounded length, nothing
/// user-controlled in the store's key space).
fn account_key(username: &str) -> String {
    let normal = username.trim().to_lowercase();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, normal.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Throttle {
    /// Throttling with `settings` on `store`.
    pub fn new(
        settings: ThrottleSettings,
        store: Arc<dyn RateLimitStore>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Throttle {
            settings: Arc::new(settings),
            store,
            metrics,
        }
    }

    /// The same limits on another handle to the store (a worker's own connection).
    pub fn with_store(&self, store: Arc<dyn RateLimitStore>) -> Self {
        Throttle {
            store,
            ..self.clone()
        }
    }

    fn refuse(&self, endpoint: &str, t: Throttled) -> Refusal {
        self.metrics.throttled(endpoint, t.limit);
        Refusal::Throttled(t)
    }

    /// The settings.
    pub fn settings(&self) -> &ThrottleSettings {
        &self.settings
    }

    /// The client's address: the TCP peer, or behind trusted proxies the `X-Forwarded-For`
    /// entry they vouch for.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok());
        Some(shared::net::client_address(
            peer,
            forwarded,
            &self.settings.trusted_proxies,
        ))
    }

    /// The key the client is counted under.
    pub fn client(&self, req: &HttpRequest) -> String {
        self.client_ip(req)
            .map(shared::net::rate_key)
            .unwrap_or_else(|| "unknown".into())
    }

    async fn count(
        &self,
        endpoint: &str,
        key: &str,
        limit: Limit,
        scope: &'static str,
    ) -> Result<(), Refusal> {
        let (n, left) = self.store.hit(key, limit.window).await?;
        if n > limit.count {
            return Err(self.refuse(
                endpoint,
                Throttled {
                    retry_after: left,
                    limit: scope,
                },
            ));
        }
        Ok(())
    }

    /// Before checking a password: counts the attempt per client and per account and client,
    /// then asks the account's gate (unless the client is known to the account).
    pub async fn before_login(&self, username: &str, client: &str) -> Result<(), Refusal> {
        if !self.settings.enabled {
            return Ok(());
        }
        let account = account_key(username);
        self.count(
            "login",
            &format!("login:c:{client}"),
            self.settings.per_client,
            "client",
        )
        .await?;
        self.count(
            "login",
            &format!("login:ac:{account}:{client}"),
            self.settings.per_account_client,
            "account_client",
        )
        .await?;
        if self.known(&account, client).await? {
            return Ok(());
        }
        let (_, wait) = self
            .store
            .gate(&format!("login:a:{account}"), &self.settings.account, false)
            .await?;
        if wait > Duration::ZERO {
            return Err(self.refuse(
                "login",
                Throttled {
                    retry_after: wait,
                    limit: "account",
                },
            ));
        }
        Ok(())
    }

    async fn known(&self, account: &str, client: &str) -> Result<bool, StoreError> {
        Ok(self
            .store
            .peek(&format!("login:k:{account}:{client}"))
            .await?
            .0
            > 0)
    }

    /// A login failed (wrong password, unknown or disabled account alike).
    pub async fn login_failed(&self, username: &str) -> Result<(), StoreError> {
        if !self.settings.enabled {
            return Ok(());
        }
        let account = account_key(username);
        self.store
            .gate(&format!("login:a:{account}"), &self.settings.account, true)
            .await
            .map(|_| ())
    }

    /// A login succeeded: the client's attempts at the account are forgotten and the client
    /// becomes known to the account. The account's failure count is kept (it decays), so that
    /// the owner's logins do not hand an attacker fresh free attempts.
    pub async fn login_succeeded(&self, username: &str, client: &str) -> Result<(), StoreError> {
        if !self.settings.enabled {
            return Ok(());
        }
        let account = account_key(username);
        self.store
            .clear(&format!("login:ac:{account}:{client}"))
            .await?;
        let known = format!("login:k:{account}:{client}");
        self.store.clear(&known).await?;
        self.store
            .hit(&known, self.settings.known_client_ttl)
            .await
            .map(|_| ())
    }

    /// Before a registration: counts the attempt per client and per username and client.
    pub async fn before_register(&self, username: &str, client: &str) -> Result<(), Refusal> {
        if !self.settings.enabled {
            return Ok(());
        }
        self.count(
            "register",
            &format!("register:c:{client}"),
            self.settings.per_client,
            "client",
        )
        .await?;
        self.count(
            "register",
            &format!("register:ac:{}:{client}", account_key(username)),
            self.settings.per_account_client,
            "account_client",
        )
        .await
    }

    /// Before a refresh or revocation: refused while the client's failures are over the limit.
    pub async fn before_token(&self, action: Action, client: &str) -> Result<(), Refusal> {
        if !self.settings.enabled {
            return Ok(());
        }
        let (n, left) = self
            .store
            .peek(&format!("{}:f:{client}", action.as_str()))
            .await?;
        if n >= self.settings.token_failures.count {
            return Err(self.refuse(
                action.as_str(),
                Throttled {
                    retry_after: left,
                    limit: "client",
                },
            ));
        }
        Ok(())
    }

    /// A refresh or revocation presented a token that is not valid.
    pub async fn token_failed(&self, action: Action, client: &str) -> Result<(), StoreError> {
        if !self.settings.enabled {
            return Ok(());
        }
        self.store
            .hit(
                &format!("{}:f:{client}", action.as_str()),
                self.settings.token_failures.window,
            )
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        assert_eq!(
            Limit::parse("30/60s"),
            Some(Limit {
                count: 30,
                window: Duration::from_secs(60)
            })
        );
        assert_eq!(
            Limit::parse("5/15m").unwrap().window,
            Duration::from_secs(900)
        );
        assert_eq!(
            Limit::parse("5/2h").unwrap().window,
            Duration::from_secs(7200)
        );
        assert_eq!(Limit::parse(" 7 / 10 ").unwrap().count, 7);
        for bad in ["", "30", "0/60", "30/0", "x/60", "30/60d", "30/-1", "30/m"] {
            assert_eq!(Limit::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn account_keys_ignore_case_and_bound_the_length() {
        assert_eq!(account_key("Alice"), account_key("alice "));
        assert_ne!(account_key("alice"), account_key("bob"));
        assert_eq!(account_key(&"x".repeat(10_000)).len(), 32);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let t = |ms| Throttled {
            retry_after: Duration::from_millis(ms),
            limit: "client",
        };
        assert_eq!(t(0).retry_after_secs(), 1);
        assert_eq!(t(1).retry_after_secs(), 1);
        assert_eq!(t(1000).retry_after_secs(), 1);
        assert_eq!(t(1001).retry_after_secs(), 2);
    }
}
