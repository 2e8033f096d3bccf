//! Typed settings, loaded once from the environment names of the operator contract (DESIGN.md).
//! Every secret also has a `_FILE` form. Invalid configuration is a one-line error.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::domain::{PasswordPolicy, Role};
use crate::throttle::{Limit, ThrottleSettings};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
/// Default bound on a request's headers, bytes (`AUTH_MAX_HEADER_BYTES`).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default issuer: a development value that production mode refuses.
pub const DEFAULT_ISSUER: &str = "http://127.0.0.1:8081";

/// Whether anyone may register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    /// `POST /v1/users` is open to anyone.
    Open,
    /// Only admins create users (registration answers 403).
    Closed,
}

/// A secret setting (a password, a token, a key): it prints as `[redacted]`, in logs, in
/// `auth-service config` and in `Debug`, whatever code prints it.
#[derive(Clone)]
pub struct Secret(SecretString);

impl ExposeSecret<str> for Secret {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl Secret {
    /// As a `secrecy` secret.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl From<SecretString> for Secret {
    fn from(s: SecretString) -> Self {
        Secret(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// A URL that may carry a password (a database's, Redis's): it prints with its userinfo and
/// query replaced (`postgres://[redacted]@host/db`).
#[derive(Clone)]
pub struct SecretUrl(SecretString);

impl ExposeSecret<str> for SecretUrl {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl SecretUrl {
    /// As a `secrecy` secret.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(self.0.expose_secret()))
    }
}

impl serde::Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&redact_url(self.0.expose_secret()))
    }
}

/// Seconds as a whole number (`Duration` settings print this way).
fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

fn as_name<S: serde::Serializer>(a: &shared::Algorithm, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.name())
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs()),
        None => s.serialize_none(),
    }
}

/// Whole seconds of a duration, for arithmetic with Unix times.
pub fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Argon2id cost and the bounds on concurrent hashing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HashSettings {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Hashes computed at once (default: the cores this process may use).
    pub concurrency: usize,
    /// Requests allowed to wait for a hashing slot before new ones get 503.
    pub queue_limit: usize,
}

/// The bootstrap admin account, created only into an empty user table, once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BootstrapAdmin {
    /// Username.
    pub username: String,
    /// Password (validated with the normal policy at start).
    pub password: Secret,
}

/// The listeners and what they accept.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerSettings {
    /// `AUTH_LISTEN`.
    #[serde(serialize_with = "display")]
    pub listen: SocketAddr,
    /// `AUTH_ADMIN_LISTEN`: `/metrics` (and `/healthz`, `/readyz`) on a listener of their own.
    #[serde(serialize_with = "opt_display")]
    pub admin_listen: Option<SocketAddr>,
    /// `AUTH_WORKERS`.
    pub workers: usize,
    /// `AUTH_SHUTDOWN_TIMEOUT`: what in-flight requests get on SIGTERM.
    #[serde(serialize_with = "as_secs")]
    pub shutdown_timeout: Duration,
    /// `AUTH_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// `AUTH_MAX_HEADER_BYTES`: larger request heads get 431.
    pub max_header_bytes: usize,
}

/// Where the data lives.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreSettings {
    /// `AUTH_DATABASE_URL` (`postgres://…`); unset: the embedded SQLite store.
    pub database_url: Option<SecretUrl>,
    /// `AUTH_DATA_DIR`: where the embedded store keeps its file (`auth.db`).
    pub data_dir: std::path::PathBuf,
    /// `AUTH_DATABASE_POOL_SIZE`.
    pub database_pool_size: usize,
    /// `AUTH_REDIS_URL` (`redis://` or `rediss://`).
    pub redis_url: Option<SecretUrl>,
    /// `AUTH_REDIS_PREFIX`: every Redis key starts with it (tests use one per test).
    pub redis_prefix: String,
    /// `AUTH_STORE_TIMEOUT_MS`: how long a request waits for PostgreSQL or Redis.
    #[serde(rename = "store_timeout_ms", serialize_with = "as_millis")]
    pub timeout: Duration,
    /// `AUTH_STARTUP_TIMEOUT`: how long start-up waits for the stores to appear.
    #[serde(rename = "startup_timeout", serialize_with = "as_secs")]
    pub startup_timeout: Duration,
}

/// The tokens issued and how they are read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenSettings {
    /// `AUTH_ISSUER`, without a trailing slash.
    pub issuer: String,
    /// `AUTH_AUDIENCE`.
    pub audience: String,
    /// `AUTH_ACCESS_TOKEN_TTL`.
    #[serde(rename = "access_token_ttl", serialize_with = "as_secs")]
    pub access_ttl: Duration,
    /// `AUTH_REFRESH_TOKEN_TTL`: the session's idle timeout.
    #[serde(rename = "refresh_token_ttl", serialize_with = "as_secs")]
    pub refresh_ttl: Duration,
    /// `AUTH_SESSION_MAX_TTL`: the absolute session limit rotation never extends.
    #[serde(serialize_with = "as_secs")]
    pub session_max_ttl: Duration,
    /// `AUTH_REFRESH_REUSE_GRACE`.
    #[serde(serialize_with = "as_secs")]
    pub refresh_reuse_grace: Duration,
    /// `AUTH_LEEWAY`: clock skew allowed on `exp`/`nbf`.
    #[serde(serialize_with = "as_secs")]
    pub leeway: Duration,
    /// `AUTH_ROLE_SCOPES`: JSON object role → scopes a token may carry.
    pub role_scopes: BTreeMap<String, Vec<String>>,
    /// `AUTH_CLIENT_IDS`: accepted `client_id` values; the first is the default.
    pub client_ids: Vec<String>,
}

/// Signing keys: their size, lifecycle and sealing at rest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeySettings {
    /// `AUTH_KEY_RELOAD_INTERVAL`: between re-reads of the signing keys.
    #[serde(rename = "key_reload_interval", serialize_with = "as_secs")]
    pub reload_interval: Duration,
    /// `AUTH_RSA_KEY_BITS`.
    pub rsa_key_bits: usize,
    /// `AUTH_SIGNING_ALG`: `RS256` (default), `ES256` or `EdDSA`, what new keys sign with.
    /// Changing it is a rotation: a key of the new algorithm is published before it signs.
    #[serde(serialize_with = "as_name")]
    pub signing_alg: shared::Algorithm,
    /// `AUTH_JWKS_MAX_AGE`: how long clients and gateways may cache the JWKS.
    #[serde(serialize_with = "as_secs")]
    pub jwks_max_age: Duration,
    /// `AUTH_KEY_ROTATION_LEAD`: how long a new key is published before it signs. At least the
    /// JWKS cache age plus the key reload interval, so that every gateway and replica has seen
    /// it first.
    #[serde(rename = "key_rotation_lead", serialize_with = "as_secs")]
    pub rotation_lead: Duration,
    /// `AUTH_KEY_ROTATION_INTERVAL`: rotate on a schedule, this long after the current key
    /// started signing (unset: only by CLI or admin API).
    #[serde(rename = "key_rotation_interval", serialize_with = "opt_secs")]
    pub rotation_interval: Option<Duration>,
    /// `AUTH_KEY_ENCRYPTION_KEY` (comma-separated, each base64 of 32 bytes): seals the signing
    /// keys at rest; the first seals, all open (so it can be rotated). Empty: development only,
    /// with a key kept in the data directory.
    #[serde(rename = "key_encryption_keys")]
    pub encryption_keys: Vec<Secret>,
}

impl KeySettings {
    /// The kind of key a rotation generates.
    pub fn spec(&self) -> crate::crypto::keys::KeySpec {
        use crate::crypto::keys::KeySpec;
        match self.signing_alg {
            shared::Algorithm::ES256 => KeySpec::P256,
            shared::Algorithm::EdDSA => KeySpec::Ed25519,
            _ => KeySpec::Rsa(self.rsa_key_bits),
        }
    }
}

/// Accounts: who may register, the first admin, passwords.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountSettings {
    /// `AUTH_REGISTRATION`.
    pub registration: RegistrationMode,
    /// `AUTH_BOOTSTRAP_ADMIN_USERNAME` + `_PASSWORD`.
    pub bootstrap_admin: Option<BootstrapAdmin>,
    /// `AUTH_PASSWORD_MIN_LENGTH` / `AUTH_PASSWORD_MAX_BYTES`.
    #[serde(flatten, serialize_with = "password_policy")]
    pub password_policy: PasswordPolicy,
    /// `AUTH_ARGON2_*`, `AUTH_HASH_CONCURRENCY`, `AUTH_HASH_QUEUE_LIMIT`.
    #[serde(rename = "argon2")]
    pub hashing: HashSettings,
    /// `AUTH_DEFAULT_ROLES`: roles every registered user starts with.
    #[serde(serialize_with = "role_names")]
    pub default_roles: Vec<Role>,
}

/// Browsers: the origins allowed to call with credentials.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrowserSettings {
    /// Browser origins (`scheme://host[:port]`) allowed to call with credentials (CORS) and to
    /// use the refresh-token cookie; the issuer's own origin is always among them.
    #[serde(rename = "browser_origins")]
    pub origins: Vec<String>,
    /// `AUTH_PASSWORD_GRANT` (`on` by default): `off` turns off `/v1/login` (the resource-owner
    /// password grant), leaving browser sign-in to the hosted pages and the code flow.
    pub password_grant: bool,
    /// How the hosted sign-in pages look.
    #[serde(flatten)]
    pub brand: Brand,
    /// `AUTH_BOOTSTRAP_CLIENTS_FILE`: public clients (apps that sign users in) registered, or
    /// brought to these settings, at every start; a JSON list in the admin API's registration
    /// shape, where `{issuer}` stands for the issuer URL.
    #[serde(rename = "bootstrap_clients_file")]
    pub clients_file: Option<std::path::PathBuf>,
}

/// The operator's branding of the hosted pages.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Brand {
    /// `AUTH_UI_PRODUCT_NAME`: shown in titles and headings.
    #[serde(rename = "ui_product_name")]
    pub product_name: String,
    /// `AUTH_UI_LOGO_URL`: an https (or same-origin path) image shown above the forms.
    #[serde(rename = "ui_logo_url")]
    pub logo_url: Option<String>,
    /// `AUTH_UI_PRIMARY_COLOR`: buttons and links (`#rgb` or `#rrggbb`).
    #[serde(rename = "ui_primary_color")]
    pub primary_color: String,
    /// `AUTH_UI_BACKGROUND_COLOR`: the page background.
    #[serde(rename = "ui_background_color")]
    pub background_color: String,
}

fn parse_color(name: &str, raw: Option<String>, default: &str) -> Result<String, ConfigError> {
    let v = raw.unwrap_or_else(|| default.to_owned());
    let hex = v.strip_prefix('#').unwrap_or("");
    if !matches!(hex.len(), 3 | 6) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return err(format!("{name}: {v:?} must be a colour such as #1a73e8"));
    }
    Ok(v)
}

/// The revocation feed gateways follow.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedSettings {
    /// `AUTH_FEED_TOKEN` (comma-separated, so that it can be rotated): the credentials gateways
    /// present. Empty: the feed is off.
    #[serde(rename = "feed_tokens")]
    pub tokens: Vec<Secret>,
    /// `AUTH_FEED_HEARTBEAT_MS`: how often the feed confirms it is alive when nothing happens.
    #[serde(rename = "feed_heartbeat_ms", serialize_with = "as_millis")]
    pub heartbeat: Duration,
    /// `AUTH_FEED_RETENTION`: about how many events the stream keeps for gateways to resume from.
    #[serde(rename = "feed_retention")]
    pub retention: u64,
    /// `AUTH_FEED_OUTAGE_GRACE` (seconds, default 30, 0: off): while Redis is down, the feed
    /// tells its gateways that no revocation can be acknowledged without them for this long, so
    /// gateways that fail closed on a stale list (`max_staleness`) keep serving through a store
    /// outage of up to this length. The price: every replica acknowledges a revocation only once
    /// each replica serving a gateway has read it (milliseconds), and while one replica is cut
    /// off from a Redis the others reach, their revocations answer 503 until its grace runs out.
    #[serde(rename = "feed_outage_grace", serialize_with = "as_secs")]
    pub outage_grace: Duration,
}

/// Everything the auth-service is configured with, by section. `auth-service config` prints it
/// whole (serialised, one level of names as in the operator contract), secrets redacted by their
/// types.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    /// `AUTH_PRODUCTION`: refuse development defaults.
    pub production: bool,
    /// Listeners.
    #[serde(flatten)]
    pub server: ServerSettings,
    /// Stores.
    #[serde(flatten)]
    pub stores: StoreSettings,
    /// Tokens.
    #[serde(flatten)]
    pub tokens: TokenSettings,
    /// Signing keys.
    #[serde(flatten)]
    pub keys: KeySettings,
    /// Accounts.
    #[serde(flatten)]
    pub accounts: AccountSettings,
    /// `AUTH_THROTTLE*` and `AUTH_TRUSTED_PROXIES`: brute-force defence.
    pub throttle: ThrottleSettings,
    /// Browsers.
    #[serde(flatten)]
    pub browser: BrowserSettings,
    /// The revocation feed.
    #[serde(flatten)]
    pub feed: FeedSettings,
}

fn display<S: serde::Serializer>(v: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn opt_display<S: serde::Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(a) => s.collect_str(a),
        None => s.serialize_none(),
    }
}

fn password_policy<S: serde::Serializer>(p: &PasswordPolicy, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap as _;
    let mut m = s.serialize_map(Some(2))?;
    m.serialize_entry("password_min_length", &p.min_chars)?;
    m.serialize_entry("password_max_bytes", &p.max_bytes)?;
    m.end()
}

fn role_names<S: serde::Serializer>(roles: &[Role], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(roles.iter().map(Role::as_str))
}

/// A one-line reason the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Reads configuration values by name; `from_env` uses the process environment.
struct Source<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl Source<'_> {
    fn var(&self, name: &str) -> Option<String> {
        (self.get)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn parsed<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError> {
        match self.var(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .or_else(|_| err(format!("{name}: cannot parse {v:?}"))),
        }
    }

    fn seconds(&self, name: &str, default: i64, min: i64) -> Result<i64, ConfigError> {
        let v = self.parsed(name, default)?;
        if v < min {
            return err(format!("{name} must be at least {min} (got {v})"));
        }
        Ok(v)
    }

    fn bool(&self, name: &str) -> Result<bool, ConfigError> {
        match self.var(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("false" | "0" | "no" | "off") => Ok(false),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some(v) => err(format!("{name}: expected true or false, got {v:?}")),
        }
    }

    /// A comma-separated list of secrets (rotation: new and old together), from `NAME` or
    /// `NAME_FILE`.
    fn secret_list(&self, name: &str) -> Result<Vec<SecretString>, ConfigError> {
        Ok(match self.secret(name)? {
            None => Vec::new(),
            Some(list) => list
                .expose_secret()
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| SecretString::from(t.to_owned()))
                .collect(),
        })
    }

    /// A secret from `NAME` or from the file named by `NAME_FILE` (not both).
    fn secret(&self, name: &str) -> Result<Option<SecretString>, ConfigError> {
        let file_var = format!("{name}_FILE");
        match (self.var(name), self.var(&file_var)) {
            (Some(_), Some(_)) => err(format!("set {name} or {file_var}, not both")),
            (Some(v), None) => Ok(Some(SecretString::from(v))),
            (None, Some(path)) => {
                let raw = std::fs::read_to_string(&path)
                    .or_else(|e| err(format!("{file_var}: cannot read {path}: {e}")))?;
                let v = raw.trim_end_matches(['\n', '\r']).to_owned();
                if v.is_empty() {
                    return err(format!("{file_var}: {path} is empty"));
                }
                Ok(Some(SecretString::from(v)))
            }
            (None, None) => Ok(None),
        }
    }
}

/// Puts a password given on its own (`AUTH_DATABASE_PASSWORD[_FILE]`, `AUTH_REDIS_PASSWORD[_FILE]`)
/// into its URL, percent-encoded, so the URL itself need not be a secret and one secret file can
/// serve both the server and its clients.
fn with_password(
    name: &str,
    url: Option<SecretString>,
    password: Option<SecretString>,
) -> Result<Option<SecretString>, ConfigError> {
    let (url, password) = match (url, password) {
        (url, None) => return Ok(url),
        (None, Some(_)) => {
            return err(format!("a password for {name} is set, but {name} is not"));
        }
        (Some(u), Some(p)) => (u, p),
    };
    let url = url.expose_secret();
    let Some((scheme, rest)) = url.split_once("://") else {
        return err(format!("{name} is not a URL"));
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            return err(format!(
                "{name} holds a password already: set it there or in {name}'s _PASSWORD variable, not both"
            ));
        }
        Some((user, host)) => (user, host),
        None => ("", authority),
    };
    let mut encoded = String::new();
    for b in password.expose_secret().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(Some(SecretString::from(format!(
        "{scheme}://{user}:{encoded}@{host}{tail}"
    ))))
}

impl Settings {
    /// Loads settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Loads settings from any name → value lookup (tests pass a map).
    #[allow(
        clippy::too_many_lines,
        reason = "one validation per variable, in the contract's order"
    )]
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let src = Source { get };
        let production = src.bool("AUTH_PRODUCTION")?;

        let listen = src.parsed(
            "AUTH_LISTEN",
            DEFAULT_LISTEN.parse().or_else(|_| err("default listen"))?,
        )?;
        let issuer = normalise_issuer(
            &src.var("AUTH_ISSUER")
                .unwrap_or_else(|| DEFAULT_ISSUER.into()),
        )?;

        let database_url = with_password(
            "AUTH_DATABASE_URL",
            src.secret("AUTH_DATABASE_URL")?,
            src.secret("AUTH_DATABASE_PASSWORD")?,
        )?;
        let redis_url = with_password(
            "AUTH_REDIS_URL",
            src.secret("AUTH_REDIS_URL")?,
            src.secret("AUTH_REDIS_PASSWORD")?,
        )?;
        let data_dir_set = src.var("AUTH_DATA_DIR");
        let data_dir =
            std::path::PathBuf::from(data_dir_set.clone().unwrap_or_else(|| "data".into()));
        match (&database_url, &redis_url) {
            (None, None) => {
                if production && data_dir_set.is_none() {
                    return err(
                        "AUTH_PRODUCTION=true with the embedded store needs AUTH_DATA_DIR set explicitly (or AUTH_DATABASE_URL and AUTH_REDIS_URL)",
                    );
                }
            }
            (None, Some(_)) => {
                return err(
                    "AUTH_REDIS_URL is set without AUTH_DATABASE_URL: set both (PostgreSQL + Redis) or neither (the embedded store)",
                );
            }
            (Some(db), redis) => {
                let db = db.expose_secret();
                if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
                    return err("AUTH_DATABASE_URL must be a postgres:// URL");
                }
                let Some(redis) = redis else {
                    return err(
                        "AUTH_REDIS_URL is required with a PostgreSQL database (redis://… or rediss://…)",
                    );
                };
                let redis = redis.expose_secret();
                if !(redis.starts_with("redis://") || redis.starts_with("rediss://")) {
                    return err("AUTH_REDIS_URL must be a redis:// or rediss:// URL");
                }
            }
        }

        let access_ttl = src.seconds("AUTH_ACCESS_TOKEN_TTL", 900, 1)?;
        let refresh_ttl = src.seconds("AUTH_REFRESH_TOKEN_TTL", 7 * 86_400, 1)?;
        let session_max_ttl = src.seconds("AUTH_SESSION_MAX_TTL", 30 * 86_400, 1)?;
        if session_max_ttl < refresh_ttl {
            return err("AUTH_SESSION_MAX_TTL must not be shorter than AUTH_REFRESH_TOKEN_TTL");
        }
        let refresh_reuse_grace = src.seconds("AUTH_REFRESH_REUSE_GRACE", 0, 0)?;
        if refresh_reuse_grace > 300 {
            return err("AUTH_REFRESH_REUSE_GRACE above 300 s would defeat reuse detection");
        }
        let leeway = src.seconds("AUTH_LEEWAY", 30, 0)?;
        if leeway > 300 {
            return err("AUTH_LEEWAY above 300 s is not a clock skew");
        }

        let registration = match src
            .var("AUTH_REGISTRATION")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            Some("open") => RegistrationMode::Open,
            Some("closed") => RegistrationMode::Closed,
            None if production => RegistrationMode::Closed,
            None => RegistrationMode::Open,
            Some(v) => {
                return err(format!(
                    "AUTH_REGISTRATION: expected open or closed, got {v:?}"
                ));
            }
        };

        let bootstrap_admin = match (
            src.var("AUTH_BOOTSTRAP_ADMIN_USERNAME"),
            src.secret("AUTH_BOOTSTRAP_ADMIN_PASSWORD")?,
        ) {
            (Some(username), Some(password)) => Some(BootstrapAdmin {
                username,
                password: Secret(password),
            }),
            (None, None) => None,
            _ => {
                return err(
                    "AUTH_BOOTSTRAP_ADMIN_USERNAME and AUTH_BOOTSTRAP_ADMIN_PASSWORD go together",
                );
            }
        };

        let min_chars = src.parsed("AUTH_PASSWORD_MIN_LENGTH", 15usize)?;
        let max_bytes = src.parsed("AUTH_PASSWORD_MAX_BYTES", 1024usize)?;
        if min_chars < 8 {
            return err("AUTH_PASSWORD_MIN_LENGTH below 8 is not allowed (NIST SP 800-63B)");
        }
        if !(64..=4096).contains(&max_bytes) || max_bytes < min_chars {
            return err(
                "AUTH_PASSWORD_MAX_BYTES must be within 64..=4096 and at least the minimum length",
            );
        }

        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let hashing = HashSettings {
            memory_kib: src.parsed("AUTH_ARGON2_MEMORY_KIB", 19_456u32)?,
            iterations: src.parsed("AUTH_ARGON2_ITERATIONS", 2u32)?,
            parallelism: src.parsed("AUTH_ARGON2_PARALLELISM", 1u32)?,
            concurrency: src.parsed("AUTH_HASH_CONCURRENCY", cores)?.max(1),
            queue_limit: src.parsed("AUTH_HASH_QUEUE_LIMIT", 64 * cores)?,
        };
        // OWASP's equivalent Argon2id settings all spend at least m·t ≈ 35 MiB·pass with m ≥ 7 MiB.
        if hashing.memory_kib < 7_168
            || u64::from(hashing.memory_kib) * u64::from(hashing.iterations) < 35_840
            || hashing.parallelism == 0
        {
            return err(
                "Argon2id settings are weaker than OWASP's minimum (e.g. m=19456 KiB, t=2, p=1)",
            );
        }

        let default_roles = src
            .var("AUTH_DEFAULT_ROLES")
            .unwrap_or_else(|| "user".into())
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| Role::parse(r).or_else(|e| err(format!("AUTH_DEFAULT_ROLES: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;

        let role_scopes: BTreeMap<String, Vec<String>> = match src.var("AUTH_ROLE_SCOPES") {
            None => BTreeMap::new(),
            Some(v) => serde_json::from_str(&v).or_else(|e| {
                err(format!(
                    "AUTH_ROLE_SCOPES: expected a JSON object of role → [scopes]: {e}"
                ))
            })?,
        };
        for (role, scopes) in &role_scopes {
            Role::parse(role).or_else(|e| err(format!("AUTH_ROLE_SCOPES: {e}")))?;
            for s in scopes {
                if !crate::domain::valid_scope_token(s) {
                    return err(format!("AUTH_ROLE_SCOPES: invalid scope {s:?}"));
                }
            }
        }

        let client_ids: Vec<String> = src
            .var("AUTH_CLIENT_IDS")
            .unwrap_or_else(|| "app".into())
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if client_ids.is_empty()
            || client_ids
                .iter()
                .any(|c| !crate::domain::valid_scope_token(c))
        {
            return err("AUTH_CLIENT_IDS must list one or more client ids without spaces");
        }

        let audience = src.var("AUTH_AUDIENCE").unwrap_or_else(|| "api".into());
        if audience == issuer {
            return err(
                "AUTH_AUDIENCE must differ from the issuer (refresh tokens use the issuer as audience)",
            );
        }

        let rsa_key_bits = src.parsed("AUTH_RSA_KEY_BITS", 2048usize)?;
        if ![2048, 3072, 4096].contains(&rsa_key_bits) {
            return err("AUTH_RSA_KEY_BITS must be 2048, 3072 or 4096");
        }
        let signing_alg = match src.var("AUTH_SIGNING_ALG").as_deref() {
            None | Some("") | Some("RS256") => shared::Algorithm::RS256,
            Some("ES256") => shared::Algorithm::ES256,
            Some("EdDSA") => shared::Algorithm::EdDSA,
            Some(other) => {
                return err(format!(
                    "AUTH_SIGNING_ALG must be RS256, ES256 or EdDSA (exactly so spelled), not {other:?}"
                ));
            }
        };

        let feed_tokens = src.secret_list("AUTH_FEED_TOKEN")?;
        if feed_tokens.iter().any(|t| {
            t.expose_secret().len() < 16 || t.expose_secret().contains(char::is_whitespace)
        }) {
            return err(
                "AUTH_FEED_TOKEN: each token must be at least 16 characters, without spaces",
            );
        }
        let key_encryption_keys = src.secret_list("AUTH_KEY_ENCRYPTION_KEY")?;
        for (i, k) in key_encryption_keys.iter().enumerate() {
            if let Err(e) = crate::crypto::kek::decode(k.expose_secret()) {
                return err(format!(
                    "AUTH_KEY_ENCRYPTION_KEY value {}: {e} (make one with: openssl rand -base64 32)",
                    i + 1
                ));
            }
        }
        let reload_interval = src.parsed("AUTH_KEY_RELOAD_INTERVAL", 60u64)?.max(1);
        let jwks_max_age = src.parsed("AUTH_JWKS_MAX_AGE", 300u64)?;
        if jwks_max_age > 86_400 {
            return err("AUTH_JWKS_MAX_AGE above a day would delay key rotation that long");
        }
        let min_lead = i64::try_from(jwks_max_age + reload_interval).unwrap_or(i64::MAX);
        let key_rotation_lead = src.seconds("AUTH_KEY_ROTATION_LEAD", min_lead + 60, 0)?;
        if key_rotation_lead < min_lead {
            return err(format!(
                "AUTH_KEY_ROTATION_LEAD must be at least AUTH_JWKS_MAX_AGE + AUTH_KEY_RELOAD_INTERVAL ({min_lead} s): a new key must be published before anyone can meet a token it signed"
            ));
        }
        let key_rotation_interval = match src.var("AUTH_KEY_ROTATION_INTERVAL") {
            None => None,
            Some(_) => Some(src.seconds("AUTH_KEY_ROTATION_INTERVAL", 0, key_rotation_lead + 1)?),
        };
        let feed_heartbeat_ms = src.parsed("AUTH_FEED_HEARTBEAT_MS", 5000u64)?;
        if !(100..=60_000).contains(&feed_heartbeat_ms) {
            return err("AUTH_FEED_HEARTBEAT_MS must be within 100..=60000");
        }
        let feed_retention = src.parsed("AUTH_FEED_RETENTION", 100_000u64)?;
        if feed_retention < 100 {
            return err("AUTH_FEED_RETENTION must be at least 100");
        }
        let feed_outage_grace = src.parsed("AUTH_FEED_OUTAGE_GRACE", 30u64)?;
        if feed_outage_grace > 3600 {
            return err("AUTH_FEED_OUTAGE_GRACE must be at most 3600 seconds");
        }

        let throttle = throttle_settings(&src)?;

        // The issuer is an http(s) URL with a host (checked above), so it has an origin.
        let mut browser_origins: Vec<String> = shared::net::origin(&issuer).into_iter().collect();
        for o in src
            .var("AUTH_CORS_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
        {
            browser_origins.push(parse_origin(o)?);
        }
        let admin_listen = match src.var("AUTH_ADMIN_LISTEN") {
            None => None,
            Some(v) => Some(
                v.parse()
                    .or_else(|_| err(format!("AUTH_ADMIN_LISTEN: cannot parse {v:?}")))?,
            ),
        };
        let seconds = |v: i64| Duration::from_secs(u64::try_from(v).unwrap_or(0));
        let secrets = |list: Vec<SecretString>| list.into_iter().map(Secret).collect::<Vec<_>>();
        let settings = Settings {
            production,
            server: ServerSettings {
                listen,
                admin_listen,
                workers: src.parsed("AUTH_WORKERS", cores)?.max(1),
                shutdown_timeout: Duration::from_secs(src.parsed("AUTH_SHUTDOWN_TIMEOUT", 10u64)?),
                max_body_bytes: src
                    .parsed("AUTH_MAX_BODY_BYTES", 16 * 1024usize)?
                    .clamp(1024, 1 << 20),
                max_header_bytes: src
                    .parsed("AUTH_MAX_HEADER_BYTES", DEFAULT_MAX_HEADER_BYTES)?
                    .clamp(1024, 64 * 1024),
            },
            stores: StoreSettings {
                database_url: database_url.map(SecretUrl),
                data_dir,
                database_pool_size: src.parsed("AUTH_DATABASE_POOL_SIZE", 16usize)?.max(1),
                redis_url: redis_url.map(SecretUrl),
                redis_prefix: src
                    .var("AUTH_REDIS_PREFIX")
                    .unwrap_or_else(|| "auth:".into()),
                timeout: Duration::from_millis(
                    src.parsed("AUTH_STORE_TIMEOUT_MS", 2000u64)?.max(50),
                ),
                startup_timeout: Duration::from_secs(src.parsed("AUTH_STARTUP_TIMEOUT", 30u64)?),
            },
            tokens: TokenSettings {
                issuer,
                audience,
                access_ttl: seconds(access_ttl),
                refresh_ttl: seconds(refresh_ttl),
                session_max_ttl: seconds(session_max_ttl),
                refresh_reuse_grace: seconds(refresh_reuse_grace),
                leeway: seconds(leeway),
                role_scopes,
                client_ids,
            },
            keys: KeySettings {
                reload_interval: Duration::from_secs(reload_interval),
                rsa_key_bits,
                signing_alg,
                jwks_max_age: Duration::from_secs(jwks_max_age),
                rotation_lead: seconds(key_rotation_lead),
                rotation_interval: key_rotation_interval.map(seconds),
                encryption_keys: secrets(key_encryption_keys),
            },
            accounts: AccountSettings {
                registration,
                bootstrap_admin,
                password_policy: PasswordPolicy {
                    min_chars,
                    max_bytes,
                },
                hashing,
                default_roles,
            },
            throttle,
            browser: BrowserSettings {
                origins: browser_origins,
                clients_file: src
                    .var("AUTH_BOOTSTRAP_CLIENTS_FILE")
                    .filter(|v| !v.is_empty())
                    .map(std::path::PathBuf::from),
                password_grant: match src.var("AUTH_PASSWORD_GRANT").as_deref() {
                    None | Some("on") => true,
                    Some("off") => false,
                    Some(other) => {
                        return err(format!("AUTH_PASSWORD_GRANT: {other:?} must be on or off"));
                    }
                },
                brand: Brand {
                    product_name: {
                        let name = src
                            .var("AUTH_UI_PRODUCT_NAME")
                            .unwrap_or_else(|| "Account".into());
                        if name.is_empty() || name.chars().count() > 60 {
                            return err("AUTH_UI_PRODUCT_NAME must be 1 to 60 characters");
                        }
                        name
                    },
                    logo_url: match src.var("AUTH_UI_LOGO_URL").filter(|v| !v.is_empty()) {
                        None => None,
                        Some(v)
                            if (v.starts_with("https://") || v.starts_with('/'))
                                && v.len() <= 2000
                                && !v.contains(['"', '\'', '<', '>', ' ']) =>
                        {
                            Some(v)
                        }
                        Some(v) => {
                            return err(format!(
                                "AUTH_UI_LOGO_URL: {v:?} must be an https URL or a path"
                            ));
                        }
                    },
                    primary_color: parse_color(
                        "AUTH_UI_PRIMARY_COLOR",
                        src.var("AUTH_UI_PRIMARY_COLOR"),
                        "#1a56db",
                    )?,
                    background_color: parse_color(
                        "AUTH_UI_BACKGROUND_COLOR",
                        src.var("AUTH_UI_BACKGROUND_COLOR"),
                        "#f4f5f7",
                    )?,
                },
            },
            feed: FeedSettings {
                tokens: secrets(feed_tokens),
                heartbeat: Duration::from_millis(feed_heartbeat_ms),
                retention: feed_retention,
                outage_grace: Duration::from_secs(feed_outage_grace),
            },
        };
        if production {
            settings.check_production()?;
        }
        Ok(settings)
    }

    /// Production mode refuses development defaults.
    fn check_production(&self) -> Result<(), ConfigError> {
        if self.tokens.issuer == DEFAULT_ISSUER {
            return err(
                "AUTH_PRODUCTION=true needs AUTH_ISSUER set to the service's public https URL",
            );
        }
        if !self.tokens.issuer.starts_with("https://") {
            return err("AUTH_PRODUCTION=true needs an https AUTH_ISSUER");
        }
        if self.keys.encryption_keys.is_empty() {
            return err(
                "AUTH_PRODUCTION=true needs AUTH_KEY_ENCRYPTION_KEY (base64 of 32 random bytes: openssl rand -base64 32) to seal the signing keys at rest",
            );
        }
        if self.feed.tokens.is_empty() {
            return err(
                "AUTH_PRODUCTION=true needs AUTH_FEED_TOKEN: gateways cannot follow revocations without it",
            );
        }
        if self
            .feed
            .tokens
            .iter()
            .any(|t| t.expose_secret().len() < 32)
        {
            return err(
                "AUTH_PRODUCTION=true needs AUTH_FEED_TOKEN values of at least 32 characters",
            );
        }
        Ok(())
    }

    /// How long a retired key stays published (in the JWKS, verifying access tokens): until
    /// every access token it signed has expired, counting replicas that may sign with it until
    /// their next key reload.
    pub fn key_published_after_retirement(&self) -> i64 {
        secs(self.tokens.access_ttl) + secs(self.tokens.leeway) + secs(self.keys.reload_interval)
    }

    /// How long a retired key is kept: until every refresh token it signed has expired too (it
    /// verifies them, unpublished, after it has left the JWKS), then it is deleted.
    pub fn key_kept_after_retirement(&self) -> i64 {
        let refresh = secs(self.tokens.refresh_ttl.min(self.tokens.session_max_ttl))
            + secs(self.tokens.leeway)
            + secs(self.keys.reload_interval);
        self.key_published_after_retirement().max(refresh)
    }

    /// The accepted client id used when a request names none (or an unknown one).
    pub fn default_client_id(&self) -> &str {
        self.tokens.client_ids.first().map_or("app", String::as_str)
    }

    /// The configuration as printed at start and by `auth-service config`: every setting, each
    /// secret redacted by its type ([`Secret`], [`SecretUrl`]), and which store shape it means.
    pub fn redacted(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["store"] = json!(if self.stores.database_url.is_some() {
            "postgres+redis".to_owned()
        } else {
            format!(
                "embedded ({})",
                self.stores.data_dir.join("auth.db").display()
            )
        });
        v
    }
}

fn throttle_settings(src: &Source<'_>) -> Result<ThrottleSettings, ConfigError> {
    let defaults = ThrottleSettings::default();
    let limit = |name: &str, default: Limit| -> Result<Limit, ConfigError> {
        match src.var(name) {
            None => Ok(default),
            Some(v) => Limit::parse(&v).ok_or_else(|| {
                ConfigError(format!(
                    "{name}: expected count/window such as 30/60s or 10/15m, got {v:?}"
                ))
            }),
        }
    };
    let enabled = match src
        .var("AUTH_THROTTLE")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("on") => true,
        Some("off") => false,
        Some(v) => return err(format!("AUTH_THROTTLE: expected on or off, got {v:?}")),
    };
    let trusted_proxies = src
        .var("AUTH_TRUSTED_PROXIES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            shared::net::Cidr::parse(c).ok_or_else(|| {
                ConfigError(format!(
                    "AUTH_TRUSTED_PROXIES: {c:?} is not an address or CIDR"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let free = src.parsed("AUTH_THROTTLE_ACCOUNT_FREE_FAILURES", defaults.account.free)?;
    let max_delay = src.parsed(
        "AUTH_THROTTLE_ACCOUNT_MAX_DELAY",
        defaults.account.max.as_secs(),
    )?;
    if free == 0 || !(1..=86_400).contains(&max_delay) {
        return err(
            "AUTH_THROTTLE_ACCOUNT_FREE_FAILURES must be at least 1 and AUTH_THROTTLE_ACCOUNT_MAX_DELAY within 1..=86400 s",
        );
    }
    Ok(ThrottleSettings {
        enabled,
        trusted_proxies,
        per_client: limit("AUTH_THROTTLE_PER_CLIENT", defaults.per_client)?,
        per_account_client: limit(
            "AUTH_THROTTLE_PER_ACCOUNT_CLIENT",
            defaults.per_account_client,
        )?,
        token_failures: limit("AUTH_THROTTLE_TOKEN_FAILURES", defaults.token_failures)?,
        account: crate::storage::Backoff {
            free,
            max: std::time::Duration::from_secs(max_delay),
            ..defaults.account
        },
        known_client_ttl: Duration::from_secs(
            src.parsed(
                "AUTH_THROTTLE_KNOWN_CLIENT_TTL",
                defaults.known_client_ttl.as_secs(),
            )?
            .max(60),
        ),
    })
}

/// `scheme://user:password@host/…` → `scheme://[redacted]@host/…`; query strings dropped.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split('?').next().unwrap_or("");
    match rest.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://[redacted]@{host}"),
        None => format!("{scheme}://{rest}"),
    }
}

fn parse_origin(raw: &str) -> Result<String, ConfigError> {
    let trimmed = raw.trim_end_matches('/');
    match shared::net::origin(trimmed) {
        Some(o) if o.eq_ignore_ascii_case(trimmed) => Ok(o),
        _ => err(format!(
            "AUTH_CORS_ORIGINS: {raw:?} must be an origin such as https://app.example.com (scheme, host, optional port; no path)"
        )),
    }
}

fn normalise_issuer(raw: &str) -> Result<String, ConfigError> {
    let issuer = raw.trim_end_matches('/');
    let uri: actix_web::http::Uri = issuer
        .parse()
        .or_else(|_| err(format!("AUTH_ISSUER: {raw:?} is not a URL")))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none() || uri.query().is_some() || issuer.contains('#') {
        return err(format!(
            "AUTH_ISSUER: {raw:?} must be an http(s) URL without query or fragment"
        ));
    }
    Ok(issuer.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut map: HashMap<String, String> = HashMap::from([
            (
                "AUTH_DATABASE_URL".into(),
                "postgres://postgres:pw@127.0.0.1/db".into(),
            ),
            ("AUTH_REDIS_URL".into(), "redis://127.0.0.1:6379".into()),
        ]);
        for (k, v) in pairs {
            map.insert((*k).into(), (*v).into());
        }
        Settings::from_lookup(&|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_operator_contract() {
        let s = load(&[]).unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(s.tokens.issuer, "http://127.0.0.1:8081");
        assert_eq!(s.tokens.audience, "api");
        assert_eq!(s.tokens.access_ttl, Duration::from_secs(900));
        assert_eq!(s.accounts.registration, RegistrationMode::Open);
        assert_eq!(s.accounts.hashing.memory_kib, 19_456);
        assert_eq!(s.accounts.password_policy.min_chars, 15);
        assert_eq!(s.accounts.password_policy.max_bytes, 1024);
        assert_eq!(s.feed.outage_grace, Duration::from_secs(30));
    }

    #[test]
    fn nothing_configured_means_the_embedded_store_and_exactly_two_shapes_exist() {
        let s = Settings::from_lookup(&|_| None).unwrap();
        assert!(s.stores.database_url.is_none() && s.stores.redis_url.is_none());
        assert_eq!(s.stores.data_dir, std::path::PathBuf::from("data"));
        assert!(
            s.redacted()["store"]
                .as_str()
                .unwrap()
                .starts_with("embedded")
        );
        let map = HashMap::from([("AUTH_REDIS_URL", "redis://127.0.0.1")]);
        let e = Settings::from_lookup(&|k| map.get(k).map(|v| v.to_string()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("set both"), "{e}");
        assert!(!e.contains('\n'));
        // Production must name the directory on purpose.
        let map = HashMap::from([
            ("AUTH_PRODUCTION", "true"),
            ("AUTH_ISSUER", "https://auth.example.com"),
            ("AUTH_FEED_TOKEN", "feed-token-0123456789abcdef0123456789"),
            (
                "AUTH_KEY_ENCRYPTION_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
        ]);
        let e = Settings::from_lookup(&|k| map.get(k).map(|v| v.to_string()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("AUTH_DATA_DIR"), "{e}");
    }

    #[test]
    fn passwords_given_on_their_own_go_into_their_urls_encoded() {
        let url = |s: &Settings| {
            (
                s.stores
                    .database_url
                    .as_ref()
                    .unwrap()
                    .expose_secret()
                    .to_owned(),
                s.stores
                    .redis_url
                    .as_ref()
                    .unwrap()
                    .expose_secret()
                    .to_owned(),
            )
        };
        let s = load(&[
            (
                "AUTH_DATABASE_URL",
                "postgres://auth@db:5432/auth?sslmode=require",
            ),
            ("AUTH_DATABASE_PASSWORD", "p@ss:w/rd é"),
            ("AUTH_REDIS_URL", "redis://redis:6379/0"),
            ("AUTH_REDIS_PASSWORD", "s3cret"),
        ])
        .unwrap();
        assert_eq!(
            url(&s),
            (
                "postgres://auth:p%40ss%3Aw%2Frd%20%C3%A9@db:5432/auth?sslmode=require".to_owned(),
                "redis://:s3cret@redis:6379/0".to_owned()
            )
        );
        assert!(!s.redacted().to_string().contains("s3cret"));
        assert!(!format!("{s:?}").contains("s3cret"), "Debug redacts too");
        // Without a separate password, the URLs are used as given.
        let s = load(&[
            ("AUTH_DATABASE_URL", "postgres://a:b@db/auth"),
            ("AUTH_REDIS_URL", "redis://redis"),
        ])
        .unwrap();
        assert_eq!(url(&s).0, "postgres://a:b@db/auth");
        for (env, reason) in [
            (
                [
                    ("AUTH_DATABASE_URL", "postgres://a:b@db/auth"),
                    ("AUTH_DATABASE_PASSWORD", "c"),
                ],
                "holds a password already",
            ),
            (
                [("AUTH_REDIS_PASSWORD", "c"), ("AUTH_REDIS_URL", "")],
                "AUTH_REDIS_URL is not",
            ),
        ] {
            let e = load(&env).unwrap_err().to_string();
            assert!(e.contains(reason) && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn browser_origins_are_the_issuers_and_the_configured_ones() {
        let s = load(&[
            ("AUTH_ISSUER", "https://Auth.Example.com/base"),
            (
                "AUTH_CORS_ORIGINS",
                "https://app.example.com, http://localhost:3000/",
            ),
        ])
        .unwrap();
        assert_eq!(
            s.browser.origins,
            [
                "https://auth.example.com",
                "https://app.example.com",
                "http://localhost:3000"
            ]
        );
        for bad in [
            "app.example.com",
            "https://app.example.com/path",
            "ftp://x",
            "https://a?b",
        ] {
            let e = load(&[("AUTH_CORS_ORIGINS", bad)]).unwrap_err().to_string();
            assert!(e.starts_with("AUTH_CORS_ORIGINS"), "{bad}: {e}");
        }
    }

    #[test]
    fn postgres_requires_redis() {
        let map = HashMap::from([("AUTH_DATABASE_URL", "postgres://x@y/z")]);
        let e = Settings::from_lookup(&|k| map.get(k).map(|v| v.to_string())).unwrap_err();
        assert!(e.to_string().contains("AUTH_REDIS_URL is required"));
    }

    #[test]
    fn the_hosted_pages_settings_are_checked() {
        let s = load(&[]).unwrap();
        assert!(s.browser.password_grant);
        assert_eq!(s.browser.brand.product_name, "Account");
        assert_eq!(s.browser.brand.primary_color, "#1a56db");
        let s = load(&[
            ("AUTH_PASSWORD_GRANT", "off"),
            ("AUTH_UI_PRIMARY_COLOR", "#abc"),
            ("AUTH_UI_LOGO_URL", "/logo.svg"),
        ])
        .unwrap();
        assert!(!s.browser.password_grant);
        assert_eq!(s.browser.brand.logo_url.as_deref(), Some("/logo.svg"));
        for (name, bad) in [
            ("AUTH_PASSWORD_GRANT", "maybe"),
            ("AUTH_UI_PRIMARY_COLOR", "red; background: url(x)"),
            ("AUTH_UI_BACKGROUND_COLOR", "#12345"),
            ("AUTH_UI_LOGO_URL", "http://cdn.example.com/logo.svg"),
            ("AUTH_UI_LOGO_URL", "https://cdn.example.com/a\"onerror=\"x"),
            ("AUTH_UI_PRODUCT_NAME", &"x".repeat(61)),
        ] {
            let e = load(&[(name, bad)]).unwrap_err().to_string();
            assert!(e.starts_with(name), "{bad}: {e}");
        }
    }

    #[test]
    fn production_refuses_development_defaults() {
        let e = load(&[("AUTH_PRODUCTION", "true")]).unwrap_err();
        assert!(e.to_string().contains("AUTH_ISSUER"), "{e}");
        let e = load(&[
            ("AUTH_PRODUCTION", "true"),
            ("AUTH_ISSUER", "http://auth.example.com"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("https"), "{e}");
        let e = load(&[
            ("AUTH_PRODUCTION", "true"),
            ("AUTH_ISSUER", "https://auth.example.com/"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("AUTH_KEY_ENCRYPTION_KEY"), "{e}");
        let e = load(&[
            ("AUTH_PRODUCTION", "true"),
            ("AUTH_ISSUER", "https://auth.example.com/"),
            ("AUTH_KEY_ENCRYPTION_KEY", "too short"),
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains("AUTH_KEY_ENCRYPTION_KEY value 1"),
            "{e}"
        );
        let e = load(&[
            ("AUTH_PRODUCTION", "true"),
            ("AUTH_ISSUER", "https://auth.example.com/"),
            ("AUTH_KEY_ENCRYPTION_KEY", KEK),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("AUTH_FEED_TOKEN"), "{e}");
        let e = load(&[
            ("AUTH_PRODUCTION", "true"),
            ("AUTH_ISSUER", "https://auth.example.com/"),
            ("AUTH_FEED_TOKEN", "short-but-16-chars"),
            ("AUTH_KEY_ENCRYPTION_KEY", KEK),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("32 characters"), "{e}");
        let s = load(&[
            ("AUTH_PRODUCTION", "true"),
            ("AUTH_ISSUER", "https://auth.example.com/"),
            (
                "AUTH_FEED_TOKEN",
                "new-feed-token-0123456789abcdef0123, old-feed-token-0123456789abcdef0123",
            ),
            ("AUTH_KEY_ENCRYPTION_KEY", KEK),
        ])
        .unwrap();
        assert_eq!(s.keys.encryption_keys.len(), 1);
        assert!(!s.redacted().to_string().contains(KEK));
        assert_eq!(s.feed.tokens.len(), 2);
        assert!(!s.redacted().to_string().contains("feed-token-"));
        let debug = format!("{s:?}");
        assert!(
            !debug.contains(KEK) && !debug.contains("feed-token-"),
            "{debug}"
        );
        assert_eq!(s.tokens.issuer, "https://auth.example.com");
        assert_eq!(s.accounts.registration, RegistrationMode::Closed);
    }

    #[test]
    fn weak_argon2_and_bad_values_are_refused() {
        assert!(load(&[("AUTH_ARGON2_MEMORY_KIB", "4096")]).is_err());
        assert!(load(&[("AUTH_ARGON2_ITERATIONS", "1")]).is_err());
        assert!(
            load(&[
                ("AUTH_ARGON2_MEMORY_KIB", "47104"),
                ("AUTH_ARGON2_ITERATIONS", "1")
            ])
            .is_ok()
        );
        assert!(load(&[("AUTH_ACCESS_TOKEN_TTL", "abc")]).is_err());
        assert!(load(&[("AUTH_REGISTRATION", "maybe")]).is_err());
        assert!(load(&[("AUTH_PASSWORD_MIN_LENGTH", "6")]).is_err());
        assert!(load(&[("AUTH_ROLE_SCOPES", "{\"Admin\":[\"x\"]}")]).is_err());
        assert!(load(&[("AUTH_ROLE_SCOPES", "{\"admin\":[\"users:write\"]}")]).is_ok());
        assert!(load(&[("AUTH_BOOTSTRAP_ADMIN_USERNAME", "root")]).is_err());
        for bad in ["3601", "-1", "ten"] {
            assert!(
                load(&[("AUTH_FEED_OUTAGE_GRACE", bad)]).is_err(),
                "AUTH_FEED_OUTAGE_GRACE={bad:?}"
            );
        }
        for (good, secs) in [("0", 0), ("3600", 3600), ("45", 45)] {
            let s = load(&[("AUTH_FEED_OUTAGE_GRACE", good)]).unwrap();
            assert_eq!(s.feed.outage_grace, Duration::from_secs(secs));
        }
    }

    #[test]
    fn secrets_come_from_files_and_are_redacted() {
        let dir = std::env::temp_dir().join(format!("auth-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "a very long bootstrap password\n").unwrap();
        let path = f.to_string_lossy().into_owned();
        let s = load(&[
            ("AUTH_BOOTSTRAP_ADMIN_USERNAME", "root"),
            ("AUTH_BOOTSTRAP_ADMIN_PASSWORD_FILE", &path),
        ])
        .unwrap();
        let admin = s.accounts.bootstrap_admin.clone().unwrap();
        assert_eq!(
            admin.password.expose_secret(),
            "a very long bootstrap password"
        );
        let printed = s.redacted().to_string();
        assert!(!printed.contains("bootstrap password"));
        assert!(!printed.contains(":pw@"), "{printed}");
        assert!(printed.contains("[redacted]@127.0.0.1/db"));
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("bootstrap password") && !debug.contains(":pw@"),
            "{debug}"
        );
        assert!(
            load(&[("AUTH_REDIS_URL_FILE", &path)]).is_err(),
            "both forms set"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
