//! The issuer's public keys over HTTP: discovered through its metadata, fetched before a service
//! is ready, refreshed in the background within `Cache-Control` bounds, refetched (single-flight,
//! at most once per cool-down) when a token names an unknown `kid`, and kept while the JWKS
//! endpoint is down, up to a maximum age. The gateway and downstream services share this cache.
//!
//! A key revoked by the issuer (a compromised key: the revocation feed's `key_revoked`) leaves the
//! cache at once, and no JWKS fetched afterwards brings it back while the revocation lives: a
//! stale copy of the JWKS (a cache in front of the issuer) cannot resurrect it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use http::Uri;

use crate::http_client::{self, Client};
use crate::{JwkSet, KeySet};

/// Largest metadata document read.
const MAX_METADATA_BYTES: usize = 256 * 1024;
/// Largest JWKS read.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Refresh interval when the JWKS response names none (before the bounds apply).
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// Where the keys come from and how long they may be kept.
#[derive(Debug, Clone)]
pub struct KeyCacheConfig {
    /// The issuer: the metadata's `issuer` must equal it (no trailing slash).
    pub issuer: String,
    /// The metadata document (RFC 8414); `{issuer}/.well-known/oauth-authorization-server` by
    /// default.
    pub discovery_url: String,
    /// A JWKS URL used instead of the metadata's `jwks_uri` (when the public issuer URL is not
    /// reachable from where the service runs).
    pub jwks_url: Option<String>,
    /// A revocation feed URL used instead of the metadata's `revocation_feed_endpoint`.
    pub feed_url: Option<String>,
    /// Accept a published `jwks_uri` on another origin than the issuer's (production only).
    pub allow_cross_origin_jwks: bool,
    /// Production: URLs the metadata publishes must be https (or loopback) and on the issuer's
    /// origin unless `allow_cross_origin_jwks`.
    pub production: bool,
    /// Never refetch sooner than this, whatever `Cache-Control` says.
    pub min_refresh: Duration,
    /// Never keep a JWKS longer than this without trying to refetch.
    pub max_refresh: Duration,
    /// Keep using the last good keys at most this long when the JWKS endpoint is down.
    pub max_stale: Duration,
    /// At most one refetch per this period for unknown `kid`s.
    pub unknown_kid_cooldown: Duration,
    /// Timeout of one fetch (connect, then headers, then body).
    pub fetch_timeout: Duration,
}

impl KeyCacheConfig {
    /// Discovery at `{issuer}/.well-known/oauth-authorization-server`, the gateway's default
    /// bounds (refresh between 30 s and 1 h, keys kept 24 h while the issuer is down, one
    /// unknown-`kid` refetch per 10 s, 5 s per fetch), production checks off.
    pub fn new(issuer: impl Into<String>) -> Self {
        let issuer = issuer.into().trim_end_matches('/').to_owned();
        KeyCacheConfig {
            discovery_url: format!("{issuer}/.well-known/oauth-authorization-server"),
            issuer,
            jwks_url: None,
            feed_url: None,
            allow_cross_origin_jwks: false,
            production: false,
            min_refresh: Duration::from_secs(30),
            max_refresh: Duration::from_secs(3600),
            max_stale: Duration::from_secs(86_400),
            unknown_kid_cooldown: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(5),
        }
    }

    /// The refresh interval for a response that asked for `cache` (`max-age`), within bounds.
    fn refresh_interval(&self, cache: Option<Duration>) -> Duration {
        cache
            .unwrap_or(DEFAULT_REFRESH)
            .clamp(self.min_refresh, self.max_refresh.max(self.min_refresh))
    }

    /// Wait after a first failure: `min_refresh`, kept between 0.5 and 5 s.
    fn first_backoff(&self) -> Duration {
        self.min_refresh
            .min(Duration::from_secs(5))
            .max(Duration::from_millis(500))
    }

    /// Longest wait between attempts while fetches fail.
    fn max_backoff(&self) -> Duration {
        self.min_refresh.max(Duration::from_secs(30))
    }
}

/// What the cache reports as it works (the gateway counts these in its metrics). Every method
/// does nothing by default.
pub trait KeyEvents: Send + Sync {
    /// A fetch finished; `ok` false: it failed and the last good keys are kept.
    fn fetched(&self, ok: bool) {
        let _ = ok;
    }
    /// A token's unknown `kid` started a refetch.
    fn unknown_kid_refetch(&self) {}
    /// A fetch succeeded and this many keys are now held.
    fn keys_held(&self, count: usize) {
        let _ = count;
    }
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl KeyEvents for NoEvents {}

/// A key set as fetched.
#[derive(Debug)]
pub struct KeySnapshot {
    /// The verifying keys.
    pub keys: KeySet,
    /// Increases with every change of keys (verified-token caches compare it).
    pub generation: u64,
    /// When this set was last confirmed by a successful fetch.
    pub fetched_at: Instant,
}

/// Why a fetch failed (kept for readiness details and logs).
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// Transport or HTTP status problem.
    #[error("{0}")]
    Http(String),
    /// The document is not what it should be.
    #[error("{0}")]
    Invalid(String),
}

/// What the issuer's metadata publishes that the cache uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerMetadata {
    /// `jwks_uri`.
    pub jwks_uri: String,
    /// `revocation_feed_endpoint` (our extension), when published.
    pub revocation_feed_endpoint: Option<String>,
}

/// The keys of one issuer. Share it behind an `Arc`; every method takes `&self`.
pub struct KeyCache {
    config: KeyCacheConfig,
    snapshot: ArcSwapOption<KeySnapshot>,
    metadata: Mutex<Option<IssuerMetadata>>,
    /// Held while an unknown-`kid` refetch runs; holds when the last one started.
    refetch: tokio::sync::Mutex<Option<Instant>>,
    generation: AtomicU64,
    /// When each held key was first seen (for key-age metrics).
    first_seen: Mutex<HashMap<String, SystemTime>>,
    last_error: Mutex<Option<String>>,
    /// Revoked key ids and until when (Unix seconds) they stay refused. Also held while a new
    /// snapshot is stored, so that a fetch racing a revocation cannot store the revoked key.
    revoked: Mutex<HashMap<String, i64>>,
    events: Arc<dyn KeyEvents>,
    client: Client,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// `max-age` of a `Cache-Control` header.
fn max_age(value: Option<&str>) -> Option<Duration> {
    value?
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KeyCache {
    /// A cache with no keys yet, fetching over TLS with the system's roots and reporting nothing.
    pub fn new(config: KeyCacheConfig) -> Self {
        Self::with_parts(config, http_client::tls_config(), Arc::new(NoEvents))
    }

    /// A cache with no keys yet, with this TLS configuration and these event hooks.
    pub fn with_parts(
        config: KeyCacheConfig,
        tls: Arc<rustls::ClientConfig>,
        events: Arc<dyn KeyEvents>,
    ) -> Self {
        let client = http_client::client(tls, config.fetch_timeout);
        KeyCache {
            config,
            snapshot: ArcSwapOption::empty(),
            metadata: Mutex::new(None),
            refetch: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            first_seen: Mutex::new(HashMap::new()),
            last_error: Mutex::new(None),
            revoked: Mutex::new(HashMap::new()),
            events,
            client,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &KeyCacheConfig {
        &self.config
    }

    /// The keys, unless none were ever fetched or the last good set is older than `max_stale`.
    pub fn current(&self) -> Option<Arc<KeySnapshot>> {
        self.snapshot
            .load_full()
            .filter(|s| s.fetched_at.elapsed() <= self.config.max_stale)
    }

    /// The generation of the keys [`KeyCache::current`] would give at `now`, without taking a
    /// reference to them: all that a cache of already-verified tokens needs to know per request.
    pub fn generation_at(&self, now: Instant) -> Option<u64> {
        self.snapshot
            .load()
            .as_ref()
            .filter(|s| now.saturating_duration_since(s.fetched_at) <= self.config.max_stale)
            .map(|s| s.generation)
    }

    /// Age of the last successful fetch.
    pub fn age(&self) -> Option<Duration> {
        self.snapshot
            .load()
            .as_ref()
            .map(|s| s.fetched_at.elapsed())
    }

    /// Each held key and how long since this cache first saw it (newest first).
    pub fn key_ages(&self) -> Vec<(String, Duration)> {
        let mut ages: Vec<(String, Duration)> = lock(&self.first_seen)
            .iter()
            .map(|(kid, at)| (kid.clone(), at.elapsed().unwrap_or_default()))
            .collect();
        ages.sort_by_key(|(_, age)| *age);
        ages
    }

    /// Refuses the key `kid` from now until `until` (Unix seconds): it leaves the current keys at
    /// once (a new generation, so caches of verified tokens drop what it verified), and fetches
    /// until then skip it. True if the cache held it.
    pub fn revoke_key(&self, kid: &str, until: i64) -> bool {
        let held = {
            let mut revoked = lock(&self.revoked);
            let entry = revoked.entry(kid.to_owned()).or_insert(until);
            *entry = (*entry).max(until);
            let current = self.snapshot.load_full();
            match current {
                Some(s) if s.keys.get(kid).is_some() => {
                    let mut keys = s.keys.clone();
                    keys.remove(kid);
                    let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                    self.snapshot.store(Some(Arc::new(KeySnapshot {
                        keys,
                        generation,
                        fetched_at: s.fetched_at,
                    })));
                    lock(&self.first_seen).remove(kid);
                    true
                }
                _ => false,
            }
        };
        if held {
            tracing::warn!(
                kid,
                "signing key revoked by the issuer: dropped, and refused from now on"
            );
            // The issuer signs with a new key now: the first token naming it may refetch at once,
            // whatever unknown kids came before.
            if let Ok(mut last) = self.refetch.try_lock() {
                *last = None;
            }
        }
        held
    }

    /// True while `kid` is revoked.
    pub fn is_revoked_key(&self, kid: &str) -> bool {
        let now = crate::unix_now();
        lock(&self.revoked)
            .get(kid)
            .is_some_and(|until| *until >= now)
    }

    /// The revoked key ids still refused.
    pub fn revoked_keys(&self) -> Vec<String> {
        let now = crate::unix_now();
        let mut kids: Vec<String> = lock(&self.revoked)
            .iter()
            .filter(|(_, until)| **until >= now)
            .map(|(k, _)| k.clone())
            .collect();
        kids.sort();
        kids
    }

    /// The last fetch error, if the last fetch failed.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// The HTTP client the cache fetches with (a revocation-feed follower can share it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// GETs a document: no redirects (a redirect could lead anywhere), bounded in time and size.
    async fn get(
        &self,
        url: &str,
        accept: &'static str,
        limit: usize,
    ) -> Result<(http::HeaderMap, bytes::Bytes), FetchError> {
        use http_body_util::BodyExt as _;
        let timeout = self.config.fetch_timeout;
        let request = hyper::Request::get(url)
            .header(http::header::ACCEPT, accept)
            .body(http_client::empty())
            .map_err(|e| FetchError::Invalid(format!("{url}: {e}")))?;
        let res = tokio::time::timeout(timeout, self.client.request(request))
            .await
            .map_err(|_| FetchError::Http(format!("{url}: timed out")))?
            .map_err(|e| FetchError::Http(format!("{url}: {e}")))?;
        if !res.status().is_success() {
            return Err(FetchError::Http(format!("{url}: HTTP {}", res.status())));
        }
        let headers = res.headers().clone();
        let body = tokio::time::timeout(
            timeout,
            http_body_util::Limited::new(res.into_body(), limit).collect(),
        )
        .await
        .map_err(|_| FetchError::Http(format!("{url}: timed out")))?
        .map_err(|e| FetchError::Http(format!("{url}: {e}")))?
        .to_bytes();
        Ok((headers, body))
    }

    /// A URL the metadata publishes must be http(s); in production also https (or loopback) and
    /// on the issuer's origin unless configured otherwise.
    fn check_published(&self, what: &str, url: &str) -> Result<(), FetchError> {
        check_published(&self.config, what, url)
    }

    /// Reads the issuer's metadata (its `issuer` must equal ours) and remembers the `jwks_uri`
    /// and `revocation_feed_endpoint` it publishes.
    async fn read_metadata(&self) -> Result<IssuerMetadata, FetchError> {
        let (_, body) = self
            .get(
                &self.config.discovery_url,
                "application/json",
                MAX_METADATA_BYTES,
            )
            .await?;
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Invalid(format!("metadata is not JSON: {e}")))?;
        let issuer = doc["issuer"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('/');
        if issuer != self.config.issuer {
            return Err(FetchError::Invalid(format!(
                "metadata names issuer {issuer:?}, expected {:?}",
                self.config.issuer
            )));
        }
        let jwks_uri = doc["jwks_uri"]
            .as_str()
            .ok_or_else(|| FetchError::Invalid("metadata has no jwks_uri".into()))?
            .to_owned();
        self.check_published("jwks_uri", &jwks_uri)?;
        let feed = doc["revocation_feed_endpoint"].as_str().map(str::to_owned);
        if let Some(f) = &feed {
            self.check_published("revocation_feed_endpoint", f)?;
        }
        let metadata = IssuerMetadata {
            jwks_uri,
            revocation_feed_endpoint: feed,
        };
        *lock(&self.metadata) = Some(metadata.clone());
        Ok(metadata)
    }

    /// The issuer's metadata: read once, then remembered.
    pub async fn metadata(&self) -> Result<IssuerMetadata, FetchError> {
        let cached = lock(&self.metadata).clone();
        match cached {
            Some(m) => Ok(m),
            None => self.read_metadata().await,
        }
    }

    /// The JWKS URL: configured, or from the metadata.
    async fn jwks_url(&self) -> Result<String, FetchError> {
        match &self.config.jwks_url {
            Some(u) => Ok(u.clone()),
            None => Ok(self.metadata().await?.jwks_uri),
        }
    }

    /// The revocation feed's URL: configured, or from the metadata.
    pub async fn feed_url(&self) -> Result<String, FetchError> {
        if let Some(u) = &self.config.feed_url {
            return Ok(u.clone());
        }
        self.metadata()
            .await?
            .revocation_feed_endpoint
            .ok_or_else(|| {
                FetchError::Invalid(
                    "the issuer's metadata has no revocation_feed_endpoint (set feed_url)".into(),
                )
            })
    }

    /// Fetches the JWKS now. Returns how long to wait before the next refresh.
    pub async fn fetch(&self) -> Result<Duration, FetchError> {
        let result = self.fetch_inner().await;
        match &result {
            Ok(_) => {
                self.events.fetched(true);
                *lock(&self.last_error) = None;
            }
            Err(e) => {
                self.events.fetched(false);
                tracing::warn!(error = %e, "JWKS fetch failed; keeping the last good keys");
                *lock(&self.last_error) = Some(e.to_string());
            }
        }
        result
    }

    async fn fetch_inner(&self) -> Result<Duration, FetchError> {
        let url = self.jwks_url().await?;
        let (headers, body) = self
            .get(
                &url,
                "application/jwk-set+json, application/json",
                MAX_JWKS_BYTES,
            )
            .await?;
        let cache = max_age(
            headers
                .get(http::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
        );
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Invalid(format!("JWKS is not a JWK set: {e}")))?;
        let (mut keys, skipped) = KeySet::from_jwks(&set);
        for (kid, why) in &skipped {
            tracing::debug!(kid = ?kid, reason = %why, "JWKS key skipped");
        }
        // Held until the snapshot is stored: a revocation either happened before (and its key
        // is skipped here) or comes after (and removes it from what is stored).
        let mut revoked = lock(&self.revoked);
        let now = crate::unix_now();
        revoked.retain(|_, until| *until >= now);
        for kid in revoked.keys() {
            if keys.remove(kid) {
                tracing::warn!(kid = %kid, "the JWKS still publishes a revoked key: skipped");
            }
        }
        if keys.is_empty() {
            return Err(FetchError::Invalid("the JWKS holds no usable key".into()));
        }
        let previous = self.snapshot.load_full();
        let same = previous.as_ref().is_some_and(|p| {
            p.keys.len() == keys.len() && keys.kids().all(|k| p.keys.get(k).is_some())
        });
        let generation = if same {
            previous.as_ref().map_or(0, |p| p.generation)
        } else {
            let g = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::info!(keys = keys.len(), generation = g, "JWKS keys changed");
            g
        };
        self.events.keys_held(keys.len());
        {
            let mut seen = lock(&self.first_seen);
            seen.retain(|kid, _| keys.get(kid).is_some());
            for kid in keys.kids() {
                seen.entry(kid.to_owned()).or_insert_with(SystemTime::now);
            }
        }
        self.snapshot.store(Some(Arc::new(KeySnapshot {
            keys,
            generation,
            fetched_at: Instant::now(),
        })));
        drop(revoked);
        Ok(self.config.refresh_interval(cache))
    }

    /// A token named `kid`, which we do not hold: refetch, at most once per cool-down, with one
    /// fetch in flight however many requests ask. True if the key is known afterwards.
    pub async fn refetch_for_unknown_kid(&self, kid: &str) -> bool {
        if self.is_revoked_key(kid) {
            return false;
        }
        let mut last = self.refetch.lock().await;
        if self.current().is_some_and(|s| s.keys.get(kid).is_some()) {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < self.config.unknown_kid_cooldown) {
            return false;
        }
        *last = Some(Instant::now());
        self.events.unknown_kid_refetch();
        let _ = self.fetch().await;
        self.current().is_some_and(|s| s.keys.get(kid).is_some())
    }

    /// Refreshes forever, the first time after `next`: then at the interval the JWKS's
    /// `Cache-Control` asks for (within bounds), and with a backoff from `min_refresh` up while
    /// the endpoint fails.
    pub async fn refresh_forever(self: Arc<Self>, mut next: Duration) {
        let mut backoff = self.config.first_backoff();
        loop {
            tokio::time::sleep(next).await;
            next = match self.fetch().await {
                Ok(wait) => {
                    backoff = self.config.first_backoff();
                    wait
                }
                Err(_) => {
                    let wait = backoff;
                    backoff = (backoff * 2).min(self.config.max_backoff());
                    wait
                }
            };
        }
    }

    /// Fetches now and then keeps the keys fresh, on the current Tokio runtime (an actix-web
    /// runtime is one). Requests verified before the first fetch completes find no keys
    /// ([`KeyCache::current`] is `None`); abort the handle to stop.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(Arc::clone(self).refresh_forever(Duration::ZERO))
    }
}

/// See [`KeyCache::check_published`].
fn check_published(config: &KeyCacheConfig, what: &str, url: &str) -> Result<(), FetchError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| FetchError::Invalid(format!("{what} {url:?} is not a URL")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(FetchError::Invalid(format!(
            "{what} {url:?} is not an http(s) URL"
        )));
    }
    if !config.production {
        return Ok(());
    }
    if !config.allow_cross_origin_jwks
        && crate::net::origin(url) != crate::net::origin(&config.issuer)
    {
        return Err(FetchError::Invalid(format!(
            "{what} {url} is on another origin than the issuer (allow_cross_origin_jwks to accept)"
        )));
    }
    let loopback = uri.host().is_some_and(|h| {
        h == "localhost"
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if uri.scheme_str() != Some("https") && !loopback {
        return Err(FetchError::Invalid(format!("{what} {url} is plain http")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age(Some("public, max-age=300")),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            max_age(Some("max-age=60, must-revalidate")),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age(Some("no-cache")), None);
        assert_eq!(max_age(None), None);
        assert_eq!(max_age(Some("max-age=abc")), None);
    }

    #[test]
    fn refresh_intervals_stay_within_bounds() {
        let mut c = KeyCacheConfig::new("https://issuer.example/");
        assert_eq!(c.issuer, "https://issuer.example");
        assert_eq!(
            c.discovery_url,
            "https://issuer.example/.well-known/oauth-authorization-server"
        );
        c.min_refresh = Duration::from_secs(30);
        c.max_refresh = Duration::from_secs(600);
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(c.refresh_interval(secs(1)), Duration::from_secs(30));
        assert_eq!(c.refresh_interval(secs(120)), Duration::from_secs(120));
        assert_eq!(c.refresh_interval(secs(86_400)), Duration::from_secs(600));
        assert_eq!(c.refresh_interval(None), Duration::from_secs(300));
        // Bounds given the wrong way round do not panic: the minimum wins.
        c.max_refresh = Duration::from_secs(1);
        assert_eq!(c.refresh_interval(None), Duration::from_secs(30));
        assert_eq!(c.first_backoff(), Duration::from_secs(5));
        c.min_refresh = Duration::ZERO;
        assert_eq!(c.first_backoff(), Duration::from_millis(500));
        assert_eq!(c.max_backoff(), Duration::from_secs(30));
    }

    #[test]
    fn published_urls_are_checked_in_production() {
        let mut c = KeyCacheConfig::new("https://issuer.example");
        let ok = |c: &KeyCacheConfig, url| check_published(c, "jwks_uri", url).is_ok();
        for bad in ["ftp://issuer.example/jwks", "/relative", "not a url", ""] {
            assert!(!ok(&c, bad), "{bad}");
        }
        // Development: any http(s) URL.
        assert!(ok(&c, "http://elsewhere.example/jwks"));
        c.production = true;
        assert!(ok(&c, "https://issuer.example/jwks"));
        assert!(ok(&c, "https://ISSUER.example/jwks"));
        assert!(!ok(&c, "https://elsewhere.example/jwks"));
        assert!(!ok(&c, "http://issuer.example/jwks"));
        c.allow_cross_origin_jwks = true;
        assert!(ok(&c, "https://elsewhere.example/jwks"));
        assert!(ok(&c, "http://127.0.0.1:8081/jwks"));
        assert!(ok(&c, "http://[::1]:8081/jwks"));
        assert!(!ok(&c, "http://elsewhere.example/jwks"));
    }
}
