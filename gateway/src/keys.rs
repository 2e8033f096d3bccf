//! The issuer's public keys: discovered through its metadata, fetched before the gateway is ready,
//! refreshed in the background within `Cache-Control` bounds, refetched (single-flight, at most
//! once per cool-down) when a token names an unknown `kid`, and kept while the JWKS endpoint is
//! down, up to a maximum age.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::Uri;
use arc_swap::ArcSwapOption;
use shared::{JwkSet, KeySet};

use crate::configuration::Settings;
use crate::metrics::Metrics;

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
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Transport or HTTP status problem.
    #[error("{0}")]
    Http(String),
    /// The document is not what it should be.
    #[error("{0}")]
    Invalid(String),
}

/// What the issuer's metadata publishes.
#[derive(Debug, Clone)]
struct Metadata {
    jwks_uri: String,
    feed: Option<String>,
}

/// Owns the keys.
pub struct KeyManager {
    issuer: String,
    discovery_url: String,
    jwks_override: Option<String>,
    allow_cross_origin: bool,
    production: bool,
    bounds: crate::configuration::JwksSettings,
    snapshot: ArcSwapOption<KeySnapshot>,
    feed_override: Option<String>,
    metadata: std::sync::Mutex<Option<Metadata>>,
    refetch: tokio::sync::Mutex<Option<Instant>>,
    generation: AtomicU64,
    /// When each held key was first seen (for the key-age metric).
    first_seen: std::sync::Mutex<std::collections::HashMap<String, std::time::SystemTime>>,
    last_error: std::sync::Mutex<Option<String>>,
    metrics: Arc<Metrics>,
    client: crate::upstream::Client,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Max-age of a `Cache-Control` header.
fn max_age(value: Option<&str>) -> Option<Duration> {
    value?
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

impl KeyManager {
    /// A manager with no keys yet.
    pub fn new(settings: &Settings, metrics: Arc<Metrics>, tls: Arc<rustls::ClientConfig>) -> Self {
        KeyManager {
            issuer: settings.issuer.clone(),
            discovery_url: settings.discovery_url.clone(),
            jwks_override: settings.jwks_url.clone(),
            allow_cross_origin: settings.allow_cross_origin_jwks,
            production: settings.production,
            bounds: settings.jwks.clone(),
            snapshot: ArcSwapOption::empty(),
            feed_override: settings.feed_url.clone(),
            metadata: std::sync::Mutex::new(None),
            refetch: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            first_seen: std::sync::Mutex::new(std::collections::HashMap::new()),
            last_error: std::sync::Mutex::new(None),
            metrics,
            client: crate::upstream::client(tls, settings.jwks.fetch_timeout),
        }
    }

    /// The keys, unless none were ever fetched or the last good set is older than `max_stale`.
    pub fn current(&self) -> Option<Arc<KeySnapshot>> {
        self.snapshot
            .load_full()
            .filter(|s| s.fetched_at.elapsed() <= self.bounds.max_stale)
    }

    /// Age of the last successful fetch.
    pub fn age(&self) -> Option<Duration> {
        self.snapshot
            .load()
            .as_ref()
            .map(|s| s.fetched_at.elapsed())
    }

    /// Each held key and how long since this gateway first saw it (newest first).
    pub fn key_ages(&self) -> Vec<(String, Duration)> {
        let seen = self
            .first_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut ages: Vec<(String, Duration)> = seen
            .iter()
            .map(|(kid, at)| (kid.clone(), at.elapsed().unwrap_or_default()))
            .collect();
        ages.sort_by_key(|(_, age)| *age);
        ages
    }

    /// The last fetch error, if the last fetch failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_error(&self, e: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = e;
    }

    /// Reads the issuer's metadata: its `issuer` must equal ours; `jwks_uri` must be on the
    /// issuer's origin in production unless configured otherwise.
    /// GETs a document: no redirects (a redirect could lead anywhere), bounded in time and size.
    async fn get(
        &self,
        url: &str,
        accept: &'static str,
        limit: usize,
    ) -> Result<(http::HeaderMap, bytes::Bytes), FetchError> {
        use http_body_util::BodyExt as _;
        let request = hyper::Request::get(url)
            .header(http::header::ACCEPT, accept)
            .body(crate::upstream::empty())
            .map_err(|e| FetchError::Invalid(format!("{url}: {e}")))?;
        let res = tokio::time::timeout(self.bounds.fetch_timeout, self.client.request(request))
            .await
            .map_err(|_| FetchError::Http(format!("{url}: timed out")))?
            .map_err(|e| FetchError::Http(format!("{url}: {e}")))?;
        if !res.status().is_success() {
            return Err(FetchError::Http(format!("{url}: HTTP {}", res.status())));
        }
        let headers = res.headers().clone();
        let body = tokio::time::timeout(
            self.bounds.fetch_timeout,
            http_body_util::Limited::new(res.into_body(), limit).collect(),
        )
        .await
        .map_err(|_| FetchError::Http(format!("{url}: timed out")))?
        .map_err(|e| FetchError::Http(format!("{url}: {e}")))?
        .to_bytes();
        Ok((headers, body))
    }

    /// In production, a URL the metadata publishes must be https (or loopback) and on the
    /// issuer's origin unless configured otherwise.
    fn check_published(&self, what: &str, url: &str) -> Result<(), FetchError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| FetchError::Invalid(format!("{what} {url:?} is not a URL")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(FetchError::Invalid(format!(
                "{what} {url:?} is not an http(s) URL"
            )));
        }
        if !self.production {
            return Ok(());
        }
        if !self.allow_cross_origin && shared::net::origin(url) != shared::net::origin(&self.issuer)
        {
            return Err(FetchError::Invalid(format!(
                "{what} {url} is on another origin than the issuer (allow_cross_origin_jwks to accept)"
            )));
        }
        let loopback = uri.host().is_some_and(|h| {
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        if uri.scheme_str() != Some("https") && !loopback {
            return Err(FetchError::Invalid(format!("{what} {url} is plain http")));
        }
        Ok(())
    }

    /// Reads the issuer's metadata (its `issuer` must equal ours) and remembers the `jwks_uri`
    /// and `revocation_feed_endpoint` it publishes.
    async fn read_metadata(&self) -> Result<Metadata, FetchError> {
        let (_, body) = self
            .get(&self.discovery_url, "application/json", 256 * 1024)
            .await?;
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Invalid(format!("metadata is not JSON: {e}")))?;
        let issuer = doc["issuer"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('/');
        if issuer != self.issuer {
            return Err(FetchError::Invalid(format!(
                "metadata names issuer {issuer:?}, expected {:?}",
                self.issuer
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
        let metadata = Metadata { jwks_uri, feed };
        *self
            .metadata
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(metadata.clone());
        Ok(metadata)
    }

    async fn metadata(&self) -> Result<Metadata, FetchError> {
        let cached = self
            .metadata
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match cached {
            Some(m) => Ok(m),
            None => self.read_metadata().await,
        }
    }

    /// The JWKS URL: configured, or from the metadata.
    async fn discover(&self) -> Result<String, FetchError> {
        match &self.jwks_override {
            Some(u) => Ok(u.clone()),
            None => Ok(self.metadata().await?.jwks_uri),
        }
    }

    /// The revocation feed's URL: configured, or from the metadata.
    pub async fn feed_url(&self) -> Result<String, FetchError> {
        if let Some(u) = &self.feed_override {
            return Ok(u.clone());
        }
        self.metadata().await?.feed.ok_or_else(|| {
            FetchError::Invalid(
                "the issuer's metadata has no revocation_feed_endpoint (set feed_url)".into(),
            )
        })
    }

    /// The HTTP client the key manager uses (the feed follower shares it).
    pub fn client(&self) -> &crate::upstream::Client {
        &self.client
    }

    /// Fetches the JWKS now. Returns how long to wait before the next refresh.
    pub async fn fetch(&self) -> Result<Duration, FetchError> {
        let result = self.fetch_inner().await;
        match &result {
            Ok(_) => {
                self.metrics.jwks_fetch(true);
                self.set_error(None);
            }
            Err(e) => {
                self.metrics.jwks_fetch(false);
                tracing::warn!(error = %e, "JWKS fetch failed; keeping the last good keys");
                self.set_error(Some(e.to_string()));
            }
        }
        result
    }

    async fn fetch_inner(&self) -> Result<Duration, FetchError> {
        let url = self.discover().await?;
        let (headers, body) = self
            .get(
                &url,
                "application/jwk-set+json, application/json",
                1024 * 1024,
            )
            .await?;
        let cache = max_age(
            headers
                .get(http::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
        );
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Invalid(format!("JWKS is not a JWK set: {e}")))?;
        let (keys, skipped) = KeySet::from_jwks(&set);
        for (kid, why) in &skipped {
            tracing::debug!(kid = ?kid, reason = %why, "JWKS key skipped");
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
        self.metrics.set_keys(keys.len());
        {
            let mut seen = self
                .first_seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.retain(|kid, _| keys.get(kid).is_some());
            for kid in keys.kids() {
                seen.entry(kid.to_owned())
                    .or_insert_with(std::time::SystemTime::now);
            }
        }
        self.snapshot.store(Some(Arc::new(KeySnapshot {
            keys,
            generation,
            fetched_at: Instant::now(),
        })));
        Ok(cache
            .unwrap_or(Duration::from_secs(300))
            .clamp(self.bounds.min_refresh, self.bounds.max_refresh))
    }

    /// A token named `kid`, which we do not hold: refetch, at most once per cool-down, with one
    /// fetch in flight however many requests ask. True if the key is known afterwards.
    pub async fn refetch_for_unknown_kid(&self, kid: &str) -> bool {
        let mut last = self.refetch.lock().await;
        if self.current().is_some_and(|s| s.keys.get(kid).is_some()) {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < self.bounds.unknown_kid_cooldown) {
            return false;
        }
        *last = Some(Instant::now());
        self.metrics.unknown_kid_refetch();
        let _ = self.fetch().await;
        self.current().is_some_and(|s| s.keys.get(kid).is_some())
    }

    /// Refreshes forever: at the interval the JWKS's `Cache-Control` asks for (within bounds), and
    /// with a backoff from `min_refresh` up while the endpoint fails.
    pub async fn refresh_forever(self: Arc<Self>, mut next: Duration) {
        let mut backoff = self
            .bounds
            .min_refresh
            .min(Duration::from_secs(5))
            .max(Duration::from_millis(500));
        loop {
            tokio::time::sleep(next).await;
            next = match self.fetch().await {
                Ok(wait) => {
                    backoff = self
                        .bounds
                        .min_refresh
                        .min(Duration::from_secs(5))
                        .max(Duration::from_millis(500));
                    wait
                }
                Err(_) => {
                    let wait = backoff;
                    backoff =
                        (backoff * 2).min(self.bounds.min_refresh.max(Duration::from_secs(30)));
                    wait
                }
            };
        }
    }
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
}
