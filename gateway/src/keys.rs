//! The issuer's public keys: the shared key cache (`shared::keys`, also what downstream services
//! use), configured from the gateway's settings and reporting into the gateway's metrics.

use std::sync::Arc;

use crate::configuration::Settings;
use crate::metrics::Metrics;

pub use shared::keys::{FetchError, KeyCache, KeySnapshot};

/// The cache's settings, from the gateway's.
pub fn cache_config(settings: &Settings) -> shared::keys::KeyCacheConfig {
    let mut config = shared::keys::KeyCacheConfig::new(settings.issuer.clone());
    config.discovery_url = settings.discovery_url.clone();
    config.jwks_url = settings.jwks_url.clone();
    config.feed_url = settings.feed_url.clone();
    config.allow_cross_origin_jwks = settings.allow_cross_origin_jwks;
    config.production = settings.production;
    config.min_refresh = settings.jwks.min_refresh;
    config.max_refresh = settings.jwks.max_refresh;
    config.max_stale = settings.jwks.max_stale;
    config.unknown_kid_cooldown = settings.jwks.unknown_kid_cooldown;
    config.fetch_timeout = settings.jwks.fetch_timeout;
    config
}

/// The gateway's key cache, with no keys yet, counting its fetches in `metrics`.
pub fn key_cache(
    settings: &Settings,
    metrics: Arc<Metrics>,
    tls: Arc<rustls::ClientConfig>,
) -> KeyCache {
    KeyCache::with_parts(cache_config(settings), tls, metrics)
}

impl shared::keys::KeyEvents for Metrics {
    fn fetched(&self, ok: bool) {
        self.jwks_fetch(ok);
    }
    fn unknown_kid_refetch(&self) {
        Metrics::unknown_kid_refetch(self);
    }
    fn keys_held(&self, count: usize) {
        self.set_keys(count);
    }
}
