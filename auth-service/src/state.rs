//! The application's shared state and the operations several routes share: authenticating a
//! bearer token, verifying refresh tokens, opening sessions and signing token pairs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::{AccessClaims, KeySet, RefreshClaims, TokenClaims, Validation, Verifier, VerifyError};

use crate::configuration::Settings;
use crate::crypto::kek::KeyEncryption;
use crate::crypto::keys::{KeyManager, KeyRing};
use crate::crypto::password::Hasher;
use crate::error::{ApiError, BearerError};
use crate::storage::postgres::PgStore;
use crate::storage::redis::RedisStore;
use crate::storage::sqlite::SqliteStore;
use crate::storage::{
    AuditEvent, AuditStore, ClientStore, KeyStore, NewSession, RateLimitStore, RevocationFeed,
    RevocationStore, SessionStore, StoreError, User, UserStore,
};
use crate::tokens::{Grant, Issuance, TokenPair};

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
    /// Stores audit events off the request path, in order.
    pub audit_writer: crate::audit::AuditWriter,
    access_verifier: Verifier,
    refresh_verifier: Verifier,
    backend: Backend,
    /// Whether the live key revocations have been read since the start.
    pub(crate) revoked_keys_read: Arc<std::sync::atomic::AtomicBool>,
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

/// The stores other than the key store, as one backend provides them.
pub struct Stores {
    /// Recent audit events per user.
    pub audit: Arc<dyn AuditStore>,
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Registered clients.
    pub clients: Arc<dyn ClientStore>,
    /// Sessions and refresh tokens.
    pub sessions: Arc<dyn SessionStore>,
    /// The revocation list.
    pub revocations: Arc<dyn RevocationStore>,
    /// The revocation event stream.
    pub feed: Arc<dyn RevocationFeed>,
    /// Rate-limit counters.
    pub rate_limits: Arc<dyn RateLimitStore>,
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
        .database_url
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("AUTH_DATABASE_URL is not set"))?;
    let pg = PgStore::new(url, settings.database_pool_size, settings.store_timeout)?;
    wait_for("PostgreSQL", settings.startup_timeout, || async {
        pg.migrate().await.map_err(anyhow::Error::from)
    })
    .await?;
    Ok(pg)
}

/// The key-encryption keys: configured, or (development only; production refuses to start
/// without them) a local one kept in the data directory.
pub fn key_encryption(settings: &Settings) -> anyhow::Result<Arc<KeyEncryption>> {
    if !settings.key_encryption_keys.is_empty() {
        return Ok(Arc::new(KeyEncryption::new(&settings.key_encryption_keys)?));
    }
    let (kek, path, created) = KeyEncryption::development(&settings.data_dir)?;
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
        if settings.database_url.is_none() {
            let path = settings.data_dir.join("auth.db");
            let store = Arc::new(SqliteStore::open(
                &path,
                settings.leeway,
                settings.feed_retention,
            )?);
            tracing::info!(path = %path.display(), "using the embedded store (SQLite)");
            return Self::assemble(
                settings,
                Arc::clone(&store) as Arc<dyn KeyStore>,
                Stores {
                    audit: Arc::clone(&store) as Arc<dyn AuditStore>,
                    users: Arc::clone(&store) as Arc<dyn UserStore>,
                    clients: Arc::clone(&store) as Arc<dyn ClientStore>,
                    sessions: Arc::clone(&store) as Arc<dyn SessionStore>,
                    revocations: Arc::clone(&store) as Arc<dyn RevocationStore>,
                    feed: Arc::clone(&store) as Arc<dyn RevocationFeed>,
                    rate_limits: store as Arc<dyn RateLimitStore>,
                },
                Backend::Embedded,
            )
            .await;
        }
        let pg = Arc::new(connect_postgres(&settings).await?);
        let redis_url = settings
            .redis_url
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("AUTH_REDIS_URL is not set"))?;
        let redis = Arc::new(
            wait_for("Redis", settings.startup_timeout, || {
                RedisStore::connect(
                    redis_url,
                    &settings.redis_prefix,
                    settings.leeway,
                    settings.session_max_ttl,
                    settings.feed_retention,
                    settings.store_timeout,
                )
            })
            .await?,
        );
        check_redis(&redis, settings.production).await?;
        let stores = Stores {
            audit: Arc::clone(&redis) as Arc<dyn AuditStore>,
            users: Arc::clone(&pg) as Arc<dyn UserStore>,
            clients: Arc::clone(&pg) as Arc<dyn ClientStore>,
            sessions: Arc::clone(&redis) as Arc<dyn SessionStore>,
            revocations: Arc::clone(&redis) as Arc<dyn RevocationStore>,
            feed: Arc::clone(&redis) as Arc<dyn RevocationFeed>,
            rate_limits: Arc::clone(&redis) as Arc<dyn RateLimitStore>,
        };
        Self::assemble(
            settings,
            Arc::clone(&pg) as Arc<dyn KeyStore>,
            stores,
            Backend::Shared { pg, redis },
        )
        .await
    }

    /// A state over stores the caller built (tests wrap the real ones to watch what a request
    /// does to them). Every worker shares them.
    pub async fn from_stores(
        settings: Settings,
        key_store: Arc<dyn KeyStore>,
        stores: Stores,
    ) -> anyhow::Result<AppState> {
        Self::assemble(settings, key_store, stores, Backend::Embedded).await
    }

    async fn assemble(
        settings: Settings,
        key_store: Arc<dyn KeyStore>,
        stores: Stores,
        backend: Backend,
    ) -> anyhow::Result<AppState> {
        let kek = key_encryption(&settings)?;
        let keys = KeyManager::start(
            Arc::clone(&key_store),
            settings.rsa_key_bits,
            kek,
            settings.key_published_after_retirement(),
        )
        .await?;
        let hasher = Hasher::new(&settings.hashing).await?;
        let issuance = Issuance {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            access_ttl: settings.access_ttl,
        };
        let mut access = Validation::new(settings.issuer.clone(), vec![settings.audience.clone()]);
        access.leeway = settings.leeway;
        let mut refresh = Validation::new(settings.issuer.clone(), vec![settings.issuer.clone()]);
        refresh.leeway = settings.leeway;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let state = AppState {
            users: stores.users,
            clients: stores.clients,
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
            settings: Arc::new(settings),
        };
        crate::services::keys::refuse_revoked(&state).await?;
        crate::services::users::bootstrap_admin(&state).await?;
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
            .database_pool_size
            .div_ceil(self.settings.workers)
            .max(2);
        let pg = Arc::new(pg.replica(per_worker)?);
        let redis = Arc::new(redis.replica()?);
        Ok(AppState {
            users: Arc::clone(&pg) as Arc<dyn UserStore>,
            clients: Arc::clone(&pg) as Arc<dyn ClientStore>,
            key_store: Arc::clone(&pg) as Arc<dyn KeyStore>,
            sessions: Arc::clone(&redis) as Arc<dyn SessionStore>,
            revocations: Arc::clone(&redis) as Arc<dyn RevocationStore>,
            feed: Arc::clone(&redis) as Arc<dyn RevocationFeed>,
            rate_limits: Arc::clone(&redis) as Arc<dyn RateLimitStore>,
            throttle: self
                .throttle
                .with_store(Arc::clone(&redis) as Arc<dyn RateLimitStore>),
            audit_store: Arc::clone(&redis) as Arc<dyn AuditStore>,
            backend: Backend::Shared { pg, redis },
            ..self.clone()
        })
    }

    /// Records an audit event: on the `audit` log target at once (the full trail), and queued for
    /// the user's recent events (stored off the request path; see [`crate::audit`]). The same
    /// work whether or not it concerns a user. A store failure is logged, not returned: the
    /// action it describes has already happened.
    pub async fn audit(
        &self,
        user: Option<&str>,
        kind: &str,
        actor: Option<&str>,
        detail: serde_json::Value,
    ) {
        tracing::info!(target: "audit", kind, user_id = user, actor, detail = %detail, "audit");
        self.audit_writer
            .record(user, audit_event(kind, actor, detail));
    }

    /// Records a failed login: as [`AppState::audit`], and stored for an unknown account too
    /// (as [`crate::audit::NO_USER`]'s), so that an unknown account costs what an existing one
    /// does.
    pub fn audit_failed_login(&self, user: Option<&str>, detail: serde_json::Value) {
        let kind = "login_failed";
        tracing::info!(target: "audit", kind, user_id = user, detail = %detail, "audit");
        self.audit_writer.record(
            Some(user.unwrap_or(crate::audit::NO_USER)),
            audit_event(kind, None, detail),
        );
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
                    .map(|k| (k.kid, k.state, now - k.times.created_at))
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

    /// Verifies a token with the keys `keys` picks from the ring (the published ones for access
    /// tokens, every held one for refresh tokens), reloading keys once (rate-limited) when its
    /// `kid` is unknown: another replica may have rotated.
    async fn verify<C: TokenClaims>(
        &self,
        verifier: &Verifier,
        token: &str,
        keys: fn(&KeyRing) -> &KeySet,
    ) -> Result<C, VerifyError> {
        let now = shared::unix_now();
        match verifier.verify::<C>(keys(&self.keys.ring()), token, now) {
            Err(VerifyError::UnknownKid(kid)) if self.keys.reload_for_unknown_kid(&kid).await => {
                verifier.verify::<C>(keys(&self.keys.ring()), token, now)
            }
            other => other,
        }
    }

    /// Verifies an access token and checks the revocation list.
    pub async fn authenticate(&self, token: &str) -> Result<AccessClaims, ApiError> {
        let claims: AccessClaims = self
            .verify(&self.access_verifier, token, KeyRing::verifying)
            .await
            .map_err(|e| match e {
                VerifyError::UnknownKid(kid) if self.keys.is_revoked(&kid) => {
                    self.metrics.verify_failure("revoked_key");
                    ApiError::Unauthorized(BearerError::InvalidToken("the token has been revoked"))
                }
                e => {
                    self.metrics.verify_failure(e.reason());
                    ApiError::Unauthorized(BearerError::InvalidToken(describe(&e)))
                }
            })?;
        if self.revocations.is_revoked(&claims).await? {
            self.metrics.verify_failure("revoked");
            return Err(ApiError::Unauthorized(BearerError::InvalidToken(
                "the token has been revoked",
            )));
        }
        Ok(claims)
    }

    /// Verifies an access token's signature and claims only (no revocation check).
    pub async fn verify_access(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        self.verify(&self.access_verifier, token, KeyRing::verifying)
            .await
    }

    /// Verifies a refresh token's signature and claims (its store record is checked on rotation).
    pub async fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, VerifyError> {
        self.verify(&self.refresh_verifier, token, KeyRing::refresh_verifying)
            .await
    }

    /// The `client_id` to put in tokens: the requested one if configured, else the default.
    pub fn client_id(&self, requested: Option<&str>) -> String {
        requested
            .filter(|c| self.settings.client_ids.iter().any(|k| k == c))
            .unwrap_or(self.settings.default_client_id())
            .to_owned()
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

    /// When revocation entries for tokens issued up to now can be dropped.
    pub fn revoke_until(&self, now: i64) -> i64 {
        now + self.settings.access_ttl
    }

    /// Signs both tokens. On the worker, deliberately: two RS256 signatures through a pre-parsed
    /// aws-lc key are ~0.5 ms of bounded CPU, less than what handing them to the blocking pool
    /// and back cost in context switches (measured: +5% refreshes/s, kernel time 20% → 13%; see
    /// BENCHMARKS.md). Argon2 (~13 ms) stays off the workers.
    pub async fn sign_pair(
        &self,
        access: AccessClaims,
        refresh: RefreshClaims,
        refresh_exp: i64,
        now: i64,
    ) -> Result<TokenPair, StoreError> {
        let key = self.keys.signing_ring().await?;
        let key = key.signing();
        let expires_in = access.exp - now;
        let scope = access.scope.clone();
        let access_token = key
            .sign(shared::claims::ACCESS_TOKEN_TYPE, &access)
            .map_err(StoreError::Other)?;
        let refresh_token = key
            .sign(shared::claims::REFRESH_TOKEN_TYPE, &refresh)
            .map_err(StoreError::Other)?;
        self.metrics.issued_pair();
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in,
            refresh_token,
            refresh_expires_in: refresh_exp - now,
            scope,
        })
    }

    /// Opens a session for `user` (after a login or a password change) and issues its first pair.
    pub async fn open_session(
        &self,
        user: &User,
        client_id: &str,
        scope: String,
        user_agent: &str,
        now: i64,
    ) -> Result<TokenPair, StoreError> {
        let s = &self.settings;
        let sid = crate::crypto::random_id();
        let jti = crate::crypto::random_id();
        let abs_exp = now + s.session_max_ttl;
        let refresh_exp = (now + s.refresh_ttl).min(abs_exp);
        let session = NewSession {
            sid: sid.clone(),
            sub: user.id.to_string(),
            refresh_jti: jti.clone(),
            auth_time: now,
            abs_exp,
            refresh_exp,
            client_id: client_id.to_owned(),
            scope: scope.clone(),
            user_agent: user_agent.chars().take(200).collect(),
        };
        self.sessions.create(&session, now).await?;
        let grant = Grant {
            sid: &sid,
            client_id,
            scope: &scope,
        };
        let refresh = self
            .issuance
            .refresh_claims(user, &grant, &jti, now, refresh_exp);
        let access = self
            .issuance
            .access_claims(user, &grant, scope.clone(), now, abs_exp);
        self.sign_pair(access, refresh, refresh_exp, now).await
    }

    /// Ends every session of a user and revokes every token issued so far. `not_before` must be
    /// the user's new `tokens_not_before` (tokens issued from now on carry `iat ≥` it).
    pub async fn revoke_user(
        &self,
        sub: &str,
        not_before: i64,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.sessions
            .end_all(sub, now, not_before, self.revoke_until(now))
            .await
    }
}

/// An audit event of now.
fn audit_event(kind: &str, actor: Option<&str>, detail: serde_json::Value) -> AuditEvent {
    AuditEvent {
        at_ms: shared::unix_now_ms(),
        kind: kind.to_owned(),
        actor: actor.map(str::to_owned),
        detail,
    }
}

/// A client-facing description of a verification failure (no internals).
pub fn describe(e: &VerifyError) -> &'static str {
    match e {
        VerifyError::Expired => "the token has expired",
        VerifyError::NotYetValid => "the token is not valid yet",
        VerifyError::WrongType => "wrong token type",
        VerifyError::WrongIssuer => "the token was issued by someone else",
        VerifyError::WrongAudience => "the token is not meant for this service",
        VerifyError::UnknownKid(_) | VerifyError::MissingKid => {
            "the token was signed by an unknown key"
        }
        VerifyError::BadSignature | VerifyError::Algorithm => "the token signature is invalid",
        VerifyError::Malformed(_) | VerifyError::InvalidClaim(_) => "the token is malformed",
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
