//! Gateway configuration: a TOML file (`GATEWAY_CONFIG`) with environment overrides, validated at
//! start. Unknown keys, duplicate prefixes, `public` combined with roles or scopes, bad URLs → a
//! one-line reason and a non-zero exit.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::{Method, Uri};
use secrecy::SecretString;
use serde::Deserialize;
use shared::Algorithm;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default admin listen address (`/healthz`, `/readyz`, `/metrics`).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";

/// A one-line reason the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    admin_listen: Option<String>,
    issuer: Option<String>,
    audiences: Option<Vec<String>>,
    leeway: Option<i64>,
    algorithms: Option<Vec<String>>,
    discovery_url: Option<String>,
    jwks_url: Option<String>,
    feed_url: Option<String>,
    allow_cross_origin_jwks: Option<bool>,
    trusted_proxies: Option<Vec<String>>,
    workers: Option<usize>,
    verified_token_cache: Option<usize>,
    max_header_bytes: Option<usize>,
    shutdown_timeout: Option<u64>,
    jwks: Option<JwksFile>,
    revocation: Option<RevocationFile>,
    #[serde(default)]
    routes: Vec<RouteFile>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevocationFile {
    enabled: Option<bool>,
    max_staleness: Option<u64>,
    max_outage_grace: Option<u64>,
    idle_timeout: Option<u64>,
    sweep_interval: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct JwksFile {
    min_refresh: Option<u64>,
    max_refresh: Option<u64>,
    max_stale: Option<u64>,
    unknown_kid_cooldown: Option<u64>,
    fetch_timeout: Option<u64>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum AuthFile {
    Public,
    Authenticated,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum PrincipalFile {
    User,
    Client,
    Any,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    prefix: String,
    upstream: String,
    auth: Option<AuthFile>,
    roles: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    principal: Option<PrincipalFile>,
    methods: Option<Vec<String>>,
    strip_prefix: Option<bool>,
    timeout: Option<f64>,
    forward_token: Option<bool>,
    forward_reserved_headers: Option<Vec<String>>,
    websocket: Option<bool>,
    max_body_bytes: Option<u64>,
    cors: Option<CorsFile>,
    rate_limit: Option<RateLimitFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitFile {
    requests: u32,
    per: Option<f64>,
    by: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorsFile {
    allowed_origins: Vec<String>,
    allowed_methods: Option<Vec<String>>,
    allowed_headers: Option<Vec<String>>,
    exposed_headers: Option<Vec<String>>,
    allow_credentials: Option<bool>,
    max_age: Option<u64>,
}

/// Who may pass a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRule {
    /// Anyone; no identity is forwarded.
    Public,
    /// A valid access token, holding any of `roles` (if set) and all of `scopes` (if set),
    /// speaking for `principal` (if set: a user's token, or a client's own).
    Authenticated {
        /// Any-of.
        roles: Vec<String>,
        /// All-of.
        scopes: Vec<String>,
        /// `None`: either kind of token.
        principal: Option<shared::Principal>,
    },
}

/// Where a route forwards to.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub authority: String,
    /// Path the upstream URL itself carries (prepended), without a trailing slash.
    pub base_path: String,
}

/// CORS for one route.
#[derive(Debug, Clone)]
pub struct Cors {
    /// Exact origins, or `*` (not with credentials).
    pub allowed_origins: Vec<String>,
    /// Methods a preflight may ask for.
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for (lowercase).
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may read.
    pub exposed_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials`.
    pub allow_credentials: bool,
    /// Preflight cache time, seconds.
    pub max_age: u64,
}

/// One validated route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Normalised prefix.
    pub prefix: String,
    /// Target.
    pub upstream: Upstream,
    /// Access rule.
    pub auth: AuthRule,
    /// Allowed methods (`None`: all).
    pub methods: Option<Vec<Method>>,
    /// Remove the prefix before forwarding.
    pub strip_prefix: bool,
    /// Upstream timeout (connect + response head).
    pub timeout: Duration,
    /// Forward the `Authorization` header (off by default).
    pub forward_token: bool,
    /// Client headers in a reserved namespace that this route lets through (lowercase; each
    /// passes only in exactly this spelling, any case).
    pub forward_reserved_headers: Vec<Box<str>>,
    /// Allow WebSocket upgrades.
    pub websocket: bool,
    /// Largest request body (`None`: unlimited, streamed).
    pub max_body_bytes: Option<u64>,
    /// CORS.
    pub cors: Option<Cors>,
    /// Requests per period, per client or user (this gateway's own count).
    pub rate_limit: Option<std::sync::Arc<crate::ratelimit::RateLimit>>,
}

/// JWKS fetching bounds.
#[derive(Debug, Clone)]
pub struct JwksSettings {
    /// Never refetch sooner than this, whatever `Cache-Control` says.
    pub min_refresh: Duration,
    /// Never keep a JWKS longer than this without trying to refetch.
    pub max_refresh: Duration,
    /// Keep using the last good keys at most this long when the JWKS endpoint is down.
    pub max_stale: Duration,
    /// At most one refetch per this period for unknown `kid`s.
    pub unknown_kid_cooldown: Duration,
    /// Timeout of one fetch.
    pub fetch_timeout: Duration,
}

/// Following the issuer's revocation feed.
#[derive(Debug, Clone)]
pub struct RevocationSettings {
    /// Follow the feed and enforce revocations (default). Off: tokens stay valid until they
    /// expire, as with gateways that ignore revocation.
    pub enabled: bool,
    /// Fail closed (503) once the list has not been confirmed by the feed for this long; unset:
    /// keep verifying with the last known list while the feed is down.
    pub max_staleness: Option<Duration>,
    /// The longest store-outage grace taken from the feed: while the issuer's store is down, the
    /// feed vouches that nothing is acknowledged this gateway has not had, for a while (default
    /// 300 s; 0: never, a store outage counts against `max_staleness` like a cut feed).
    pub max_outage_grace: Duration,
    /// Reconnect when the feed has sent nothing (heartbeats included) for this long.
    pub idle_timeout: Duration,
    /// How often entries past their `exp` plus the leeway are dropped.
    pub sweep_interval: Duration,
}

pub use shared::net::Cidr;

/// Everything the gateway is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Public listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Expected `iss`, and where the metadata lives unless `discovery_url` says otherwise.
    pub issuer: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp`/`nbf`.
    pub leeway: i64,
    /// Accepted algorithms (RS256 only unless configured).
    pub algorithms: Vec<Algorithm>,
    /// Metadata document URL.
    pub discovery_url: String,
    /// JWKS URL overriding the metadata's `jwks_uri`.
    pub jwks_url: Option<String>,
    /// Revocation feed URL overriding the metadata's.
    pub feed_url: Option<String>,
    /// Credential for the revocation feed.
    pub feed_token: Option<SecretString>,
    /// Accept a `jwks_uri` on another origin than the issuer's.
    pub allow_cross_origin_jwks: bool,
    /// Peers whose `X-Forwarded-For` is extended rather than replaced.
    pub trusted_proxies: Vec<Cidr>,
    /// Production mode.
    pub production: bool,
    /// HTTP workers.
    pub workers: usize,
    /// Verified tokens remembered, in one cache the workers share.
    pub verified_token_cache: usize,
    /// Largest request head (headers), bytes; beyond it, 431.
    pub max_header_bytes: usize,
    /// Seconds in-flight requests get after SIGTERM.
    pub shutdown_timeout: u64,
    /// JWKS bounds.
    pub jwks: JwksSettings,
    /// The revocation feed.
    pub revocation: RevocationSettings,
    /// Routes, longest prefix first.
    pub routes: Vec<Route>,
}

fn parse_url(what: &str, raw: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = raw
        .parse()
        .or_else(|_| err(format!("{what}: {raw:?} is not a URL")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return err(format!(
            "{what}: {raw:?} must be an http(s) URL with a host"
        ));
    }
    if uri.query().is_some() || raw.contains('#') {
        return err(format!("{what}: {raw:?} must not have a query or fragment"));
    }
    Ok(uri)
}

fn loopback(uri: &Uri) -> bool {
    match uri.host() {
        Some("localhost") => true,
        Some(h) => h
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// Production refuses plain http to anything but loopback: keys fetched over it could be forged.
fn check_transport(what: &str, uri: &Uri, production: bool) -> Result<(), ConfigError> {
    if production && uri.scheme_str() == Some("http") && !loopback(uri) {
        return err(format!(
            "{what}: plain http to a non-loopback host is refused in production"
        ));
    }
    Ok(())
}

const DAY: u64 = 86_400;
/// More worker threads than this is a typo, not a machine.
const MAX_WORKERS: usize = 1024;

/// A duration setting in seconds, refused above `max`: an unbounded one could overflow the
/// clock arithmetic it feeds (found by the gateway_config fuzz target's checks).
fn seconds(name: &str, value: u64, max: u64) -> Result<Duration, ConfigError> {
    if value > max {
        return err(format!("{name}: at most {max} seconds, not {value}"));
    }
    Ok(Duration::from_secs(value))
}

fn check_prefix(prefix: &str) -> Result<(), ConfigError> {
    let normal = crate::routing::normalize(prefix).ok();
    let canonical = prefix == "/" || (normal.as_deref() == Some(prefix) && !prefix.ends_with('/'));
    if !canonical {
        return err(format!(
            "route prefix {prefix:?} must be a normalised path without a trailing slash (e.g. \"/api\")"
        ));
    }
    Ok(())
}

fn route(r: RouteFile) -> Result<Route, ConfigError> {
    check_prefix(&r.prefix)?;
    let what = format!("route {}", r.prefix);
    let uri = parse_url(&format!("{what}: upstream"), &r.upstream)?;
    let upstream = Upstream {
        scheme: uri.scheme_str().unwrap_or("http").to_owned(),
        authority: uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default(),
        base_path: uri.path().trim_end_matches('/').to_owned(),
    };
    let roles = r.roles.unwrap_or_default();
    let scopes = r.scopes.unwrap_or_default();
    let principal = match r.principal {
        None | Some(PrincipalFile::Any) => None,
        Some(PrincipalFile::User) => Some(shared::Principal::User),
        Some(PrincipalFile::Client) => Some(shared::Principal::Client),
    };
    let auth = match r.auth.unwrap_or(AuthFile::Authenticated) {
        AuthFile::Public if !roles.is_empty() || !scopes.is_empty() || r.principal.is_some() => {
            return err(format!(
                "{what}: auth = \"public\" cannot be combined with roles, scopes or principal"
            ));
        }
        AuthFile::Public => AuthRule::Public,
        AuthFile::Authenticated => AuthRule::Authenticated {
            roles,
            scopes,
            principal,
        },
    };
    let methods = match r.methods {
        None => None,
        Some(list) if list.is_empty() => return err(format!("{what}: methods must not be empty")),
        Some(list) => Some(
            list.iter()
                .map(|m| {
                    Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                        .or_else(|_| err(format!("{what}: bad method {m:?}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let timeout = r.timeout.unwrap_or(30.0);
    if !(timeout > 0.0 && timeout <= 3600.0) {
        return err(format!("{what}: timeout must be within (0, 3600] seconds"));
    }
    let cors = r
        .cors
        .map(|c| {
            if c.allowed_origins.is_empty() {
                return err(format!("{what}: cors.allowed_origins must not be empty"));
            }
            let credentials = c.allow_credentials.unwrap_or(false);
            for o in &c.allowed_origins {
                if o == "*" {
                    if credentials {
                        return err(format!(
                            "{what}: cors: \"*\" cannot be combined with allow_credentials"
                        ));
                    }
                } else {
                    parse_url(&format!("{what}: cors origin"), o)?;
                    if !shared::net::origin(o).is_some_and(|n| n.eq_ignore_ascii_case(o)) {
                        return err(format!(
                            "{what}: cors origin {o:?} must be scheme://host[:port] only"
                        ));
                    }
                }
            }
            Ok(Cors {
                allowed_origins: c.allowed_origins,
                allowed_methods: c
                    .allowed_methods
                    .unwrap_or_else(|| {
                        ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
                            .map(String::from)
                            .to_vec()
                    })
                    .into_iter()
                    .map(|m| m.to_ascii_uppercase())
                    .collect(),
                allowed_headers: c
                    .allowed_headers
                    .unwrap_or_else(|| ["authorization", "content-type"].map(String::from).to_vec())
                    .into_iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
                exposed_headers: c.exposed_headers.unwrap_or_default(),
                allow_credentials: credentials,
                max_age: c.max_age.unwrap_or(600),
            })
        })
        .transpose()?;
    let rate_limit = r
        .rate_limit
        .map(|l| {
            let per = l.per.unwrap_or(1.0);
            if l.requests == 0 || !(per > 0.0 && per <= 86_400.0) {
                return err(format!(
                    "{what}: rate_limit needs requests ≥ 1 and per within (0, 86400] seconds"
                ));
            }
            let by = match l.by.as_deref() {
                None | Some("client") => crate::ratelimit::LimitBy::Client,
                Some("user") => crate::ratelimit::LimitBy::User,
                Some(other) => {
                    return err(format!(
                        "{what}: rate_limit.by must be \"client\" or \"user\", not {other:?}"
                    ));
                }
            };
            Ok(std::sync::Arc::new(crate::ratelimit::RateLimit::new(
                l.requests,
                Duration::from_secs_f64(per),
                by,
            )))
        })
        .transpose()?;
    let forward_reserved_headers = r
        .forward_reserved_headers
        .unwrap_or_default()
        .into_iter()
        .map(|h| {
            let name = h.trim().to_ascii_lowercase();
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^`|~".contains(&b));
            if !token {
                return err(format!(
                    "{what}: forward_reserved_headers: {h:?} is not a header name in its `-` spelling (`_` spellings never pass)"
                ));
            }
            if crate::forwarding::SET_BY_GATEWAY.contains(&name.as_str())
                || name.starts_with("x-user-")
            {
                return err(format!(
                    "{what}: forward_reserved_headers: {h:?} is set by the gateway itself and can never come from a client"
                ));
            }
            if !crate::forwarding::reserved(&name) {
                return err(format!(
                    "{what}: forward_reserved_headers: {h:?} is not reserved, and passes anyway"
                ));
            }
            Ok(name.into_boxed_str())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Route {
        prefix: r.prefix,
        upstream,
        auth,
        methods,
        strip_prefix: r.strip_prefix.unwrap_or(false),
        timeout: Duration::from_secs_f64(timeout),
        forward_token: r.forward_token.unwrap_or(false),
        forward_reserved_headers,
        websocket: r.websocket.unwrap_or(false),
        max_body_bytes: r.max_body_bytes,
        cors,
        rate_limit,
    })
}

impl Settings {
    /// Loads `GATEWAY_CONFIG` and the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::load(&|name| std::env::var(name).ok())
    }

    /// Loads from any name → value lookup (tests pass a map). The file named by `GATEWAY_CONFIG`
    /// is read from disk; `GATEWAY_CONFIG_TOML` may hold the TOML itself.
    pub fn load(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |n: &str| {
            get(n)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let text = match (var("GATEWAY_CONFIG_TOML"), var("GATEWAY_CONFIG")) {
            (Some(t), _) => t,
            (None, Some(path)) => std::fs::read_to_string(&path)
                .or_else(|e| err(format!("GATEWAY_CONFIG: cannot read {path}: {e}")))?,
            (None, None) => {
                return err(
                    "GATEWAY_CONFIG is not set: point it at the gateway's TOML configuration (see gateway/gateway.example.toml)",
                );
            }
        };
        let file: FileConfig = toml::from_str(&text).or_else(|e| {
            err(format!(
                "gateway configuration: {}",
                e.to_string()
                    .replace('\n', " ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
        })?;
        let production = match var("GATEWAY_PRODUCTION")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("false" | "0" | "no") => false,
            Some("true" | "1" | "yes") => true,
            Some(v) => {
                return err(format!(
                    "GATEWAY_PRODUCTION: expected true or false, got {v:?}"
                ));
            }
        };
        let addr = |name: &str,
                    file_value: Option<String>,
                    default: &str|
         -> Result<SocketAddr, ConfigError> {
            let raw = var(name)
                .or(file_value)
                .unwrap_or_else(|| default.to_owned());
            raw.parse()
                .or_else(|_| err(format!("{name}: {raw:?} is not an address:port")))
        };
        let listen = addr("GATEWAY_LISTEN", file.listen, DEFAULT_LISTEN)?;
        let admin_listen = addr(
            "GATEWAY_ADMIN_LISTEN",
            file.admin_listen,
            DEFAULT_ADMIN_LISTEN,
        )?;

        let Some(issuer) = var("GATEWAY_ISSUER").or(file.issuer) else {
            return err("issuer is not set (in the configuration file or GATEWAY_ISSUER)");
        };
        let issuer = issuer.trim_end_matches('/').to_owned();
        let issuer_uri = parse_url("issuer", &issuer)?;
        let discovery_url = var("GATEWAY_DISCOVERY_URL")
            .or(file.discovery_url)
            .unwrap_or_else(|| format!("{issuer}/.well-known/oauth-authorization-server"));
        check_transport(
            "discovery_url",
            &parse_url("discovery_url", &discovery_url)?,
            production,
        )?;
        let jwks_url = var("GATEWAY_JWKS_URL").or(file.jwks_url);
        if let Some(u) = &jwks_url {
            check_transport("jwks_url", &parse_url("jwks_url", u)?, production)?;
        }
        let feed_url = var("GATEWAY_FEED_URL").or(file.feed_url);
        if let Some(u) = &feed_url {
            check_transport("feed_url", &parse_url("feed_url", u)?, production)?;
        }
        if production && issuer_uri.scheme_str() != Some("https") && !loopback(&issuer_uri) {
            return err("issuer: production needs an https issuer");
        }

        let audiences = file.audiences.unwrap_or_else(|| vec!["api".into()]);
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return err("audiences must list at least one non-empty audience");
        }
        let leeway = file.leeway.unwrap_or(30);
        if !(0..=300).contains(&leeway) {
            return err("leeway must be within 0..=300 seconds");
        }
        let algorithms = file
            .algorithms
            .unwrap_or_else(|| vec!["RS256".into()])
            .iter()
            .map(|a| {
                Algorithm::from_name(a).ok_or_else(|| {
                    ConfigError(format!(
                        "algorithms: unsupported {a:?} (RS256, RS384, RS512, PS256, PS384, PS512, ES256, EdDSA)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if algorithms.is_empty() {
            return err("algorithms must not be empty");
        }
        let trusted_proxies = file
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|c| {
                Cidr::parse(c).ok_or_else(|| {
                    ConfigError(format!("trusted_proxies: {c:?} is not an address or CIDR"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let j = file.jwks.unwrap_or_default();
        let jwks = JwksSettings {
            min_refresh: seconds("jwks.min_refresh", j.min_refresh.unwrap_or(30), DAY)?,
            max_refresh: seconds("jwks.max_refresh", j.max_refresh.unwrap_or(3600), 7 * DAY)?,
            max_stale: seconds("jwks.max_stale", j.max_stale.unwrap_or(86_400), 30 * DAY)?,
            unknown_kid_cooldown: seconds(
                "jwks.unknown_kid_cooldown",
                j.unknown_kid_cooldown.unwrap_or(10),
                3600,
            )?,
            fetch_timeout: seconds(
                "jwks.fetch_timeout",
                j.fetch_timeout.unwrap_or(5).max(1),
                300,
            )?,
        };
        if jwks.min_refresh > jwks.max_refresh || jwks.max_refresh.is_zero() {
            return err("jwks: min_refresh must not exceed max_refresh");
        }

        if file.routes.is_empty() {
            return err("no routes: add at least one [[routes]] table");
        }
        let mut seen = HashSet::new();
        let mut routes = Vec::new();
        for r in file.routes {
            if !seen.insert(r.prefix.clone()) {
                return err(format!("duplicate route prefix {:?}", r.prefix));
            }
            routes.push(route(r)?);
        }
        routes.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then_with(|| a.prefix.cmp(&b.prefix))
        });

        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let workers = match var("GATEWAY_WORKERS") {
            Some(w) => w
                .parse()
                .or_else(|_| err(format!("GATEWAY_WORKERS: {w:?} is not a number")))?,
            None => file.workers.unwrap_or(cores),
        }
        .max(1);
        if workers > MAX_WORKERS {
            return err(format!("workers: at most {MAX_WORKERS}, not {workers}"));
        }
        let feed_token = match (var("GATEWAY_FEED_TOKEN"), var("GATEWAY_FEED_TOKEN_FILE")) {
            (Some(_), Some(_)) => {
                return err("set GATEWAY_FEED_TOKEN or GATEWAY_FEED_TOKEN_FILE, not both");
            }
            (Some(t), None) => Some(SecretString::from(t)),
            (None, Some(p)) => Some(SecretString::from(
                std::fs::read_to_string(&p)
                    .or_else(|e| err(format!("GATEWAY_FEED_TOKEN_FILE: cannot read {p}: {e}")))?
                    .trim()
                    .to_owned(),
            )),
            (None, None) => None,
        };
        let rf = file.revocation.unwrap_or_default();
        let revocation = RevocationSettings {
            enabled: rf.enabled.unwrap_or(true),
            max_staleness: rf
                .max_staleness
                .map(|m| seconds("revocation.max_staleness", m, DAY))
                .transpose()?,
            max_outage_grace: Duration::from_secs(
                rf.max_outage_grace
                    .map(|m| {
                        if m > DAY {
                            err("revocation.max_outage_grace must be at most 86400 seconds")
                        } else {
                            Ok(m)
                        }
                    })
                    .transpose()?
                    .unwrap_or(300),
            ),
            idle_timeout: Duration::from_secs(rf.idle_timeout.unwrap_or(20).clamp(1, 3600)),
            sweep_interval: Duration::from_secs(rf.sweep_interval.unwrap_or(30).clamp(1, 3600)),
        };
        if revocation.max_staleness.is_some_and(|m| m.is_zero()) {
            return err("revocation.max_staleness must be at least 1 second");
        }
        if revocation.enabled && feed_token.is_none() {
            return err(
                "GATEWAY_FEED_TOKEN (or GATEWAY_FEED_TOKEN_FILE) is required to follow the revocation feed; [revocation] enabled = false runs without revocation",
            );
        }
        if feed_token
            .as_ref()
            .is_some_and(|t| secrecy::ExposeSecret::expose_secret(t).is_empty())
        {
            return err("GATEWAY_FEED_TOKEN is empty");
        }
        Ok(Settings {
            listen,
            admin_listen,
            issuer,
            audiences,
            leeway,
            algorithms,
            discovery_url,
            jwks_url,
            feed_url,
            feed_token,
            allow_cross_origin_jwks: file.allow_cross_origin_jwks.unwrap_or(false),
            trusted_proxies,
            production,
            workers,
            verified_token_cache: file.verified_token_cache.unwrap_or(10_000),
            max_header_bytes: file
                .max_header_bytes
                .unwrap_or(16 * 1024)
                .clamp(1024, 256 * 1024),
            shutdown_timeout: seconds(
                "shutdown_timeout",
                file.shutdown_timeout.unwrap_or(10),
                3600,
            )?
            .as_secs(),
            jwks,
            revocation,
            routes,
        })
    }

    /// The configuration as printed at start (the feed token redacted).
    pub fn redacted(&self) -> serde_json::Value {
        serde_json::json!({
            "listen": self.listen.to_string(),
            "admin_listen": self.admin_listen.to_string(),
            "issuer": self.issuer,
            "audiences": self.audiences,
            "leeway": self.leeway,
            "algorithms": self.algorithms.iter().map(|a| a.name()).collect::<Vec<_>>(),
            "discovery_url": self.discovery_url,
            "jwks_url": self.jwks_url,
            "feed_url": self.feed_url,
            "feed_token": self.feed_token.as_ref().map(|_| "[redacted]"),
            "revocation": {"enabled": self.revocation.enabled,
                           "max_staleness": self.revocation.max_staleness.map(|d| d.as_secs()),
                           "idle_timeout": self.revocation.idle_timeout.as_secs()},
            "production": self.production,
            "workers": self.workers,
            "trusted_proxies": self.trusted_proxies.len(),
            "routes": self.routes.iter().map(|r| serde_json::json!({
                "prefix": r.prefix,
                "upstream": format!("{}://{}{}", r.upstream.scheme, r.upstream.authority, r.upstream.base_path),
                "auth": match &r.auth { AuthRule::Public => "public".to_owned(), AuthRule::Authenticated { roles, scopes, principal } =>
                    format!("authenticated roles={roles:?} scopes={scopes:?} principal={}", principal.map_or("any", |p| p.as_str())) },
                "methods": r.methods.as_ref().map(|m| m.iter().map(|m| m.as_str().to_owned()).collect::<Vec<_>>()),
                "strip_prefix": r.strip_prefix,
                "websocket": r.websocket,
                "forward_token": r.forward_token,
                "forward_reserved_headers": r.forward_reserved_headers,
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        map.insert("GATEWAY_CONFIG_TOML".into(), toml.into());
        map.entry("GATEWAY_FEED_TOKEN".into())
            .or_insert_with(|| "feed-token-for-tests".into());
        map.retain(|_, v| !v.is_empty());
        Settings::load(&|k| map.get(k).cloned())
    }

    #[test]
    fn durations_and_workers_are_bounded() {
        const ROUTE: &str = "[[routes]]\nprefix = \"/a\"\nupstream = \"http://127.0.0.1:1\"\n";
        let with = |top: &str| format!("issuer = \"http://127.0.0.1:8081\"\n{top}\n{ROUTE}");
        for (top, name) in [
            ("shutdown_timeout = 9223372036854775807", "shutdown_timeout"),
            ("[jwks]\nmax_stale = 9223372036854775807", "jwks.max_stale"),
            (
                "[jwks]\nunknown_kid_cooldown = 3601",
                "jwks.unknown_kid_cooldown",
            ),
            ("[jwks]\nfetch_timeout = 301", "jwks.fetch_timeout"),
            (
                "[jwks]\nmin_refresh = 86401\nmax_refresh = 86402",
                "jwks.min_refresh",
            ),
            (
                "[revocation]\nmax_staleness = 86401",
                "revocation.max_staleness",
            ),
            (
                "[revocation]\nmax_outage_grace = 86401",
                "revocation.max_outage_grace",
            ),
            ("workers = 1025", "workers"),
        ] {
            let e = load(&with(top), &[]).unwrap_err().to_string();
            assert!(e.starts_with(name) && !e.contains('\n'), "{top}: {e}");
        }
        let e = load(&with(""), &[("GATEWAY_WORKERS", "100000")]).unwrap_err();
        assert!(e.to_string().starts_with("workers"), "{e}");
        let s = load(
            &with("shutdown_timeout = 3600\nworkers = 1024\n[jwks]\nmax_stale = 2592000"),
            &[],
        )
        .unwrap();
        assert_eq!(s.shutdown_timeout, 3600);
        assert_eq!(s.jwks.max_stale, Duration::from_secs(30 * 86_400));
    }

    #[test]
    fn revocation_needs_a_feed_token_unless_switched_off() {
        const ROUTE: &str = "[[routes]]\nprefix = \"/a\"\nupstream = \"http://127.0.0.1:1\"\n";
        let with = |table: &str| format!("issuer = \"http://127.0.0.1:8081\"\n{table}\n{ROUTE}");
        let e = load(&with(""), &[("GATEWAY_FEED_TOKEN", "")]).unwrap_err();
        assert!(e.to_string().contains("GATEWAY_FEED_TOKEN"), "{e}");
        let s = load(
            &with("[revocation]\nenabled = false"),
            &[("GATEWAY_FEED_TOKEN", "")],
        )
        .unwrap();
        assert!(!s.revocation.enabled);
        let s = load(&with("[revocation]\nmax_staleness = 30"), &[]).unwrap();
        assert_eq!(s.revocation.max_staleness, Some(Duration::from_secs(30)));
        assert!(s.revocation.enabled && s.revocation.max_staleness.is_some());
        assert!(!s.redacted().to_string().contains("feed-token-for-tests"));
        assert!(load(&with("[revocation]\nmax_staleness = 0"), &[]).is_err());
        assert!(load(&with("[revocation]\nbogus = 1"), &[]).is_err());
        assert_eq!(s.revocation.max_outage_grace, Duration::from_secs(300));
        for (v, secs) in [("0", 0), ("86400", 86_400)] {
            let s = load(&with(&format!("[revocation]\nmax_outage_grace = {v}")), &[]).unwrap();
            assert_eq!(s.revocation.max_outage_grace, Duration::from_secs(secs));
        }
    }

    const EXAMPLE: &str = r#"
issuer = "http://127.0.0.1:8081"
audiences = ["api"]

[[routes]]
prefix = "/public"
upstream = "http://127.0.0.1:8082"
auth = "public"

[[routes]]
prefix = "/api"
upstream = "http://127.0.0.1:8082"

[[routes]]
prefix = "/admin"
upstream = "http://127.0.0.1:8082"
roles = ["admin"]

[[routes]]
prefix = "/internal"
upstream = "http://127.0.0.1:8082"
principal = "client"
"#;

    #[test]
    fn the_design_example_loads() {
        let s = load(EXAMPLE, &[]).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.admin_listen.to_string(), DEFAULT_ADMIN_LISTEN);
        assert_eq!(
            s.discovery_url,
            "http://127.0.0.1:8081/.well-known/oauth-authorization-server"
        );
        assert_eq!(s.algorithms, vec![Algorithm::RS256]);
        assert_eq!(s.routes.len(), 4);
        let admin = s.routes.iter().find(|r| r.prefix == "/admin").unwrap();
        assert_eq!(
            admin.auth,
            AuthRule::Authenticated {
                roles: vec!["admin".into()],
                scopes: vec![],
                principal: None,
            }
        );
        let internal = s.routes.iter().find(|r| r.prefix == "/internal").unwrap();
        assert_eq!(
            internal.auth,
            AuthRule::Authenticated {
                roles: vec![],
                scopes: vec![],
                principal: Some(shared::Principal::Client),
            }
        );
        assert_eq!(
            s.routes
                .iter()
                .find(|r| r.prefix == "/public")
                .unwrap()
                .auth,
            AuthRule::Public
        );
        assert!(!admin.forward_token);
    }

    #[test]
    fn the_shipped_example_config_loads() {
        let s = load(include_str!("../gateway.example.toml"), &[]).unwrap();
        assert_eq!(s.routes.len(), 4);
        let internal = s.routes.iter().find(|r| r.prefix == "/internal").unwrap();
        assert!(matches!(
            internal.auth,
            AuthRule::Authenticated {
                principal: Some(shared::Principal::Client),
                ..
            }
        ));
    }

    #[test]
    fn the_deployment_configs_load() {
        for (toml, issuer, production) in [
            (
                include_str!("../../deploy/compose/gateway.toml"),
                "http://localhost:8080",
                "false",
            ),
            (
                include_str!("../../k8s/gateway.toml"),
                "https://auth.example.com",
                "false",
            ),
        ] {
            let s = load(
                toml,
                &[
                    ("GATEWAY_ISSUER", issuer),
                    ("GATEWAY_PRODUCTION", production),
                ],
            )
            .unwrap();
            assert_eq!(s.issuer, issuer);
            let v1 = s.routes.iter().find(|r| r.prefix == "/v1").unwrap();
            assert!(v1.forward_token && v1.auth == AuthRule::Public);
            assert!(s.jwks_url.is_some() && s.feed_url.is_some());
            let admin = s.routes.iter().find(|r| r.prefix == "/admin").unwrap();
            assert!(
                matches!(&admin.auth, AuthRule::Authenticated { roles, .. } if roles == &["admin"])
            );
        }
    }

    #[test]
    fn env_overrides_the_file() {
        let s = load(
            EXAMPLE,
            &[
                ("GATEWAY_LISTEN", "0.0.0.0:9000"),
                ("GATEWAY_ISSUER", "http://10.0.0.1:8081/"),
            ],
        )
        .unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(s.issuer, "http://10.0.0.1:8081");
    }

    #[test]
    fn invalid_configurations_are_one_line_reasons() {
        let base = "issuer = \"http://127.0.0.1:8081\"\n";
        let cases = [
            (
                format!(
                    "{base}colour = \"blue\"\n[[routes]]\nprefix=\"/a\"\nupstream=\"http://x\""
                ),
                "unknown field",
            ),
            (
                format!(
                    "{base}[[routes]]\nprefix=\"/a\"\nupstream=\"http://x\"\n[[routes]]\nprefix=\"/a\"\nupstream=\"http://y\""
                ),
                "duplicate route prefix",
            ),
            (
                format!(
                    "{base}[[routes]]\nprefix=\"/a\"\nupstream=\"http://x\"\nauth=\"public\"\nroles=[\"admin\"]"
                ),
                "cannot be combined",
            ),
            (
                format!(
                    "{base}[[routes]]\nprefix=\"/a\"\nupstream=\"http://x\"\nauth=\"public\"\nprincipal=\"user\""
                ),
                "cannot be combined",
            ),
            (
                format!(
                    "{base}[[routes]]\nprefix=\"/a\"\nupstream=\"http://x\"\nprincipal=\"robot\""
                ),
                "unknown variant",
            ),
            (
                format!("{base}[[routes]]\nprefix=\"/a\"\nupstream=\"ftp://x\""),
                "http(s) URL",
            ),
            (
                format!("{base}[[routes]]\nprefix=\"/a\"\nupstream=\"not a url\""),
                "not a URL",
            ),
            (
                format!("{base}[[routes]]\nprefix=\"a\"\nupstream=\"http://x\""),
                "normalised path",
            ),
            (
                format!("{base}[[routes]]\nprefix=\"/a/\"\nupstream=\"http://x\""),
                "normalised path",
            ),
            (
                format!("{base}[[routes]]\nprefix=\"/a/../b\"\nupstream=\"http://x\""),
                "normalised path",
            ),
            (
                format!("{base}[[routes]]\nprefix=\"/a\"\nupstream=\"http://x\"\nunknown=1"),
                "unknown field",
            ),
            (
                format!(
                    "{base}[[routes]]\nprefix=\"/a\"\nupstream=\"http://x\"\nauth=\"sometimes\""
                ),
                "unknown variant",
            ),
            (
                format!(
                    "{base}[[routes]]\nprefix=\"/a\"\nupstream=\"http://x\"\n[routes.cors]\nallowed_origins=[\"*\"]\nallow_credentials=true"
                ),
                "cannot be combined",
            ),
            (base.to_owned(), "no routes"),
            (
                "[[routes]]\nprefix=\"/a\"\nupstream=\"http://x\"".to_owned(),
                "issuer is not set",
            ),
            (
                format!(
                    "{base}algorithms=[\"HS256\"]\n[[routes]]\nprefix=\"/a\"\nupstream=\"http://x\""
                ),
                "unsupported",
            ),
            (
                format!(
                    "{base}trusted_proxies=[\"10.0.0.0/33\"]\n[[routes]]\nprefix=\"/a\"\nupstream=\"http://x\""
                ),
                "trusted_proxies",
            ),
            (
                "issuer = \"http://x\"\n[[routes]\n".to_owned(),
                "gateway configuration",
            ),
        ];
        for (toml, want) in cases {
            let e = load(&toml, &[]).unwrap_err().to_string();
            assert!(e.contains(want), "{toml:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn production_refuses_plain_http_off_loopback() {
        let remote = EXAMPLE.replace("http://127.0.0.1:8081", "http://auth.internal:8081");
        assert!(load(&remote, &[]).is_ok());
        let e = load(&remote, &[("GATEWAY_PRODUCTION", "true")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("production"), "{e}");
        assert!(
            load(EXAMPLE, &[("GATEWAY_PRODUCTION", "true")]).is_ok(),
            "loopback is fine"
        );
        let https = EXAMPLE.replace("http://127.0.0.1:8081", "https://auth.example.com");
        let e = load(
            &https,
            &[
                ("GATEWAY_PRODUCTION", "true"),
                ("GATEWAY_JWKS_URL", "http://auth.internal/jwks"),
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("jwks_url"));
        assert!(
            load(
                &https,
                &[
                    ("GATEWAY_PRODUCTION", "true"),
                    ("GATEWAY_JWKS_URL", "http://127.0.0.1:8081/jwks")
                ]
            )
            .is_ok()
        );
    }
}
