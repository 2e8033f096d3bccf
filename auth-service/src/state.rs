//! The application's shared state and the operations several routes share: authenticating a
//! bearer token, verifying refresh tokens, opening sessions and signing token pairs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::{Validation, Verifier};

use crate::configuration::Settings;
use crate::configuration::secs;
use crate::crypto::kek::KeyEncryption;
use crate::crypto::keys::KeyManager;
use crate::crypto::password::Hasher;
use crate::storage::postgres::PgStore;
use crate::storage::redis::RedisStore;
use crate::storage::sqlite::SqliteStore;
use crate::storage::{
    AuditStore, ClientStore, KeyStore, RateLimitStore, RevocationFeed, RevocationStore,
    SessionStore, Stores, UserStore,
};
use crate::tokens::Issuance;

/// Everything a request handler may use. Each HTTP worker gets its own copy with its own store
/// connections (see [`AppState::for_worker`]); the rest is shared.
#[derive(Clone)]
pub struct AppState {
    /// Settings.
    pub settings: Arc<Settings>,
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Registered clients.
    pub clients: Arc<dyn ClientStore>,
    /// Users' consents to clients.
    pub consents: Arc<dyn crate::storage::ConsentStore>,
    /// Outgoing HTTP (back-channel logout), pooled.
    pub http: shared::http_client::Client,
    /// Signing keys in the store.
    pub key_store: Arc<dyn KeyStore>,
    /// Sessions and refresh tokens.
    pub sessions: Arc<dyn SessionStore>,
    /// Revocation list.
    pub revocations: Arc<dyn RevocationStore>,
    /// The revocation event stream behind the feed.
    pub feed: Arc<dyn RevocationFeed>,
    /// Fans the event stream out to the feed's connections (one per process).
    pub hub: crate::feed_server::Hub,
    /// Loaded keys.
    pub keys: Arc<KeyManager>,
    /// Password hashing.
    pub hasher: Arc<Hasher>,
    /// Claim rules.
    pub issuance: Issuance,
    /// Rate-limit counters.
    pub rate_limits: Arc<dyn RateLimitStore>,
    /// Brute-force defence on `rate_limits`.
    pub throttle: crate::throttle::Throttle,
    /// Prometheus counters.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Recent audit events per user (read here; written through `audit_writer`).
    pub audit_store: Arc<dyn AuditStore>,
    /// The audit trail: logs each event at once and stores it off the request path, in order.
    pub audit_writer: crate::audit::AuditWriter,
    /// Access-token rules (this issuer, the configured audience).
    pub(crate) access_verifier: Verifier,
    /// Refresh-token rules (this issuer as audience).
    pub(crate) refresh_verifier: Verifier,
    backend: Backend,
    /// Whether the live key revocations have been read since the start.
    pub(crate) revoked_keys_read: Arc<std::sync::atomic::AtomicBool>,
    /// The OpenAPI document as served (it states the configured password policy).
    pub openapi: actix_web::web::Bytes,
}

/// Which stores back the state.
#[derive(Clone)]
enum Backend {
    /// PostgreSQL + Redis: each HTTP worker gets connections of its own.
    Shared {
        pg: Arc<PgStore>,
        redis: Arc<RedisStore>,
    },
    /// One SQLite file, served by its own thread.
    Embedded,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// Retries `f` until it succeeds or `deadline` passes (stores may start after us in compose).
async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() + delay < deadline => {
                tracing::warn!(error = %format!("{e:#}"), "waiting for {what}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e.context(format!("{what} is not reachable"))),
        }
    }
}

/// Connects to PostgreSQL and applies migrations (also used by CLI commands).
pub async fn connect_postgres(settings: &Settings) -> anyhow::Result<PgStore> {
    let url = settings
        .stores
        .database_url
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("AUTH_DATABASE_URL is not set"))?;
    let pg = PgStore::new(
        url.secret(),
        settings.stores.database_pool_size,
        settings.stores.timeout,
    )?;
    wait_for("PostgreSQL", settings.stores.startup_timeout, || async {
        pg.migrate().await.map_err(anyhow::Error::from)
    })
    .await?;
    Ok(pg)
}

/// The key-encryption keys: configured, or (development only; production refuses to start
/// without them) a local one kept in the data directory.
pub fn key_encryption(settings: &Settings) -> anyhow::Result<Arc<KeyEncryption>> {
    if !settings.keys.encryption_keys.is_empty() {
        return Ok(Arc::new(KeyEncryption::new(
            &settings.keys.encryption_keys,
        )?));
    }
    let (kek, path, created) = KeyEncryption::development(&settings.stores.data_dir)?;
    tracing::warn!(
        path = %path.display(),
        created,
        "AUTH_KEY_ENCRYPTION_KEY is not set: signing keys are sealed with a development key kept in this file (production refuses to start without AUTH_KEY_ENCRYPTION_KEY)"
    );
    Ok(Arc::new(kek))
}

impl AppState {
    /// Connects to the stores (or opens the embedded one), applies migrations, loads or creates
    /// the signing key and the bootstrap admin.
    pub async fn init(settings: Settings) -> anyhow::Result<AppState> {
        if settings.stores.database_url.is_none() {
            let path = settings.stores.data_dir.join("auth.db");
            let store = Arc::new(SqliteStore::open(
                &path,
                secs(settings.tokens.leeway),
                settings.feed.retention,
            )?);
            tracing::info!(path = %path.display(), "using the embedded store (SQLite)");
            return Self::assemble(settings, Stores::embedded(store), Backend::Embedded).await;
        }
        let pg = Arc::new(connect_postgres(&settings).await?);
        let redis_url = settings
            .stores
            .redis_url
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("AUTH_REDIS_URL is not set"))?;
        let redis = Arc::new(
            wait_for("Redis", settings.stores.startup_timeout, || {
                RedisStore::connect(
                    redis_url.secret(),
                    &settings.stores.redis_prefix,
                    secs(settings.tokens.leeway),
                    secs(settings.tokens.session_max_ttl),
                    settings.feed.retention,
                    settings.stores.timeout,
                )
            })
            .await?
            .with_outage_grace(settings.feed.outage_grace),
        );
        check_redis(&redis, settings.production).await?;
        let stores = Stores::shared(Arc::clone(&pg), Arc::clone(&redis));
        Self::assemble(settings, stores, Backend::Shared { pg, redis }).await
    }

    /// A state over stores the caller built (tests wrap the real ones to watch what a request
    /// does to them). Every worker shares them.
    pub async fn from_stores(settings: Settings, stores: Stores) -> anyhow::Result<AppState> {
        Self::assemble(settings, stores, Backend::Embedded).await
    }

    async fn assemble(
        settings: Settings,
        stores: Stores,
        backend: Backend,
    ) -> anyhow::Result<AppState> {
        let key_store = Arc::clone(&stores.keys);
        let kek = key_encryption(&settings)?;
        let keys = KeyManager::start(
            Arc::clone(&key_store),
            settings.keys.spec(),
            kek,
            settings.key_published_after_retirement(),
        )
        .await?;
        let hasher = Hasher::new(&settings.accounts.hashing).await?;
        let issuance = Issuance {
            issuer: settings.tokens.issuer.clone(),
            audience: settings.tokens.audience.clone(),
            access_ttl: secs(settings.tokens.access_ttl),
        };
        let mut access = Validation::new(
            settings.tokens.issuer.clone(),
            vec![settings.tokens.audience.clone()],
        );
        access.leeway = secs(settings.tokens.leeway);
        // Only this service's own keys are in its rings: each key's algorithm is the one it was
        // made for, whichever `AUTH_SIGNING_ALG` says now (a switch keeps older keys verifying).
        let own = vec![
            shared::Algorithm::RS256,
            shared::Algorithm::ES256,
            shared::Algorithm::EdDSA,
        ];
        access.algorithms = own.clone();
        let mut refresh = Validation::new(
            settings.tokens.issuer.clone(),
            vec![settings.tokens.issuer.clone()],
        );
        refresh.leeway = secs(settings.tokens.leeway);
        refresh.algorithms = own;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let state = AppState {
            users: stores.users,
            clients: stores.clients,
            consents: stores.consents,
            http: shared::http_client::client(
                shared::http_client::tls_config(),
                std::time::Duration::from_secs(3),
            ),
            key_store,
            sessions: stores.sessions,
            revocations: stores.revocations,
            feed: stores.feed,
            throttle: crate::throttle::Throttle::new(
                settings.throttle.clone(),
                Arc::clone(&stores.rate_limits),
                Arc::clone(&metrics),
            ),
            rate_limits: stores.rate_limits,
            audit_writer: crate::audit::AuditWriter::start(Arc::clone(&stores.audit)),
            audit_store: stores.audit,
            metrics,
            hub: crate::feed_server::Hub::default(),
            keys: Arc::new(keys),
            hasher: Arc::new(hasher),
            issuance,
            access_verifier: Verifier::new(access),
            refresh_verifier: Verifier::new(refresh),
            backend,
            revoked_keys_read: Arc::default(),
            openapi: crate::routes::openapi::document_json(&settings.accounts.password_policy)
                .into(),
            settings: Arc::new(settings),
        };
        crate::services::keys::refuse_revoked(&state).await?;
        crate::services::users::bootstrap_admin(&state).await?;
        crate::services::clients::bootstrap(&state).await?;
        Ok(state)
    }

    /// A copy for one HTTP worker, with store connections of its own that open on the worker's
    /// runtime: a request's PostgreSQL and Redis I/O then never hops to another thread (measured:
    /// that hop cost ~10% of a refresh's CPU in context switches; see BENCHMARKS.md).
    pub fn for_worker(&self) -> anyhow::Result<AppState> {
        let Backend::Shared { pg, redis } = &self.backend else {
            return Ok(self.clone());
        };
        let per_worker = self
            .settings
            .stores
            .database_pool_size
            .div_ceil(self.settings.server.workers)
            .max(2);
        let pg = Arc::new(pg.replica(per_worker)?);
        let redis = Arc::new(redis.replica()?);
        let stores = Stores::shared(Arc::clone(&pg), Arc::clone(&redis));
        Ok(AppState {
            users: stores.users,
            clients: stores.clients,
            consents: stores.consents,
            key_store: stores.keys,
            sessions: stores.sessions,
            revocations: stores.revocations,
            feed: stores.feed,
            throttle: self.throttle.with_store(Arc::clone(&stores.rate_limits)),
            rate_limits: stores.rate_limits,
            audit_store: stores.audit,
            backend: Backend::Shared { pg, redis },
            ..self.clone()
        })
    }

    /// The Prometheus text of this process's metrics.
    pub async fn render_metrics(&self) -> String {
        let now = shared::unix_now();
        let keys = self
            .key_store
            .load()
            .await
            .map(|keys| {
                keys.into_iter()
                    .map(|k| (k.kid, k.state.to_string(), now - k.times.created_at))
                    .collect()
            })
            .unwrap_or_default();
        self.metrics.render(&crate::metrics::Gauges {
            argon2_queue: self.hasher.queue_depth(),
            argon2_verifications: self.hasher.verifications(),
            keys,
            feed_connections: self.hub.connections(),
            audit_dropped: self.audit_writer.dropped(),
        })
    }

    /// True on the embedded (SQLite) store.
    pub fn embedded(&self) -> bool {
        matches!(self.backend, Backend::Embedded)
    }

    /// Schedules a plain rotation, or (`immediately`) runs the compromise response; see
    /// [`crate::services::keys`]. `None` if a plain rotation is pending.
    pub async fn rotate_keys(&self, immediately: bool) -> anyhow::Result<Option<(String, i64)>> {
        use crate::services::{keys, users::Actor};
        if immediately {
            let (kid, _) = keys::replace_compromised(self, Actor::Cli).await?;
            return Ok(Some((kid, shared::unix_now())));
        }
        Ok(keys::rotate(self, Actor::Cli)
            .await?
            .map(|r| (r.kid, r.activates_at)))
    }
}

async fn check_redis(redis: &RedisStore, production: bool) -> anyhow::Result<()> {
    match redis.eviction_policy().await.as_deref() {
        Some("noeviction") => {}
        Some(other) if production => anyhow::bail!(
            "Redis maxmemory-policy is {other}: revocation entries could be evicted; set maxmemory-policy noeviction"
        ),
        Some(other) => tracing::warn!(
            policy = other,
            "Redis maxmemory-policy is not noeviction: revocations could be evicted (refused in production)"
        ),
        None => tracing::warn!(
            "could not read Redis maxmemory-policy (CONFIG disabled?); make sure it is noeviction"
        ),
    }
    if redis.append_only().await.as_deref() == Some("no") {
        tracing::warn!(
            "Redis runs without AOF: a Redis restart loses sessions and revocations (use appendonly yes, appendfsync everysec)"
        );
    }
    Ok(())
}
