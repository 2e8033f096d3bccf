//! Storage behind traits, so handlers never know which backend holds the data: users and signing
//! keys (PostgreSQL), sessions, refresh tokens and revocations (Redis).

pub mod postgres;
pub mod redis;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretSlice;
use shared::feed::{Position, StreamId};
use shared::{AccessClaims, RevocationEvent};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto::keys::NewKey;
use crate::domain::{Email, Role, Username};

/// Every store the service uses, as one deployment shape provides them: the one constructor of
/// each shape, used by the service, its workers and the tests.
#[derive(Clone)]
pub struct Stores {
    /// Signing keys.
    pub keys: std::sync::Arc<dyn KeyStore>,
    /// Users.
    pub users: std::sync::Arc<dyn UserStore>,
    /// Registered clients.
    pub clients: std::sync::Arc<dyn ClientStore>,
    /// Sessions and refresh tokens.
    pub sessions: std::sync::Arc<dyn SessionStore>,
    /// The revocation list.
    pub revocations: std::sync::Arc<dyn RevocationStore>,
    /// The revocation event stream.
    pub feed: std::sync::Arc<dyn RevocationFeed>,
    /// Rate-limit counters.
    pub rate_limits: std::sync::Arc<dyn RateLimitStore>,
    /// Recent audit events per user.
    pub audit: std::sync::Arc<dyn AuditStore>,
    /// Users' consents to clients.
    pub consents: std::sync::Arc<dyn ConsentStore>,
}

impl Stores {
    /// The embedded shape: one SQLite file holds everything.
    pub fn embedded(store: std::sync::Arc<sqlite::SqliteStore>) -> Stores {
        Stores {
            keys: store.clone(),
            users: store.clone(),
            clients: store.clone(),
            sessions: store.clone(),
            revocations: store.clone(),
            feed: store.clone(),
            rate_limits: store.clone(),
            audit: store.clone(),
            consents: store,
        }
    }

    /// The production shape: PostgreSQL holds users, clients, consents and keys; Redis sessions,
    /// revocations with the feed's stream, rate limits and recent audit events.
    pub fn shared(
        pg: std::sync::Arc<postgres::PgStore>,
        redis: std::sync::Arc<redis::RedisStore>,
    ) -> Stores {
        Stores {
            keys: pg.clone(),
            users: pg.clone(),
            clients: pg.clone(),
            consents: pg,
            sessions: redis.clone(),
            revocations: redis.clone(),
            feed: redis.clone(),
            rate_limits: redis.clone(),
            audit: redis,
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached (down, timed out, connection cut): answer 503, retry later.
    #[error("store unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// Anything else: a bug or an unexpected state.
    #[error(transparent)]
    Other(anyhow::Error),
}

/// A user as stored (without the password hash).
#[derive(Debug, Clone)]
pub struct User {
    /// Server-chosen id.
    pub id: Uuid,
    /// Username as chosen.
    pub username: String,
    /// Optional email.
    pub email: Option<String>,
    /// Roles.
    pub roles: Vec<String>,
    /// A disabled user cannot log in or refresh.
    pub disabled: bool,
    /// New tokens for this user carry `iat ≥` this (seconds).
    pub tokens_not_before: i64,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

/// A user to create.
#[derive(Debug)]
pub struct NewUser {
    /// Username.
    pub username: Username,
    /// Email.
    pub email: Option<Email>,
    /// PHC Argon2id hash.
    pub password_hash: String,
    /// Roles.
    pub roles: Vec<Role>,
}

/// Why a user was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Another user has this username (compared case-insensitively).
    #[error("username taken")]
    UsernameTaken,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Keyset-pagination position: the last user of the previous page.
pub type UserCursor = (OffsetDateTime, Uuid);

/// Users and their credentials.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Reachability, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Creates a user.
    async fn create(&self, user: NewUser) -> Result<User, CreateUserError>;
    /// Creates the bootstrap admin only into an empty user table, and only once ever.
    async fn create_bootstrap_admin(&self, user: NewUser) -> Result<Option<User>, CreateUserError>;
    /// A user and password hash by username (case-insensitive).
    async fn find_by_username(&self, username: &str) -> Result<Option<(User, String)>, StoreError>;
    /// A user by id.
    async fn find_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    /// The password hash of a user.
    async fn password_hash(&self, id: Uuid) -> Result<Option<String>, StoreError>;
    /// Raises `tokens_not_before` past `now` (log out everywhere); returns the new value.
    async fn bump_tokens_not_before(&self, id: Uuid, now: i64) -> Result<Option<i64>, StoreError>;
    /// Sets a new password and raises `tokens_not_before`; returns the new value.
    async fn set_password(&self, id: Uuid, hash: &str, now: i64)
    -> Result<Option<i64>, StoreError>;
    /// Replaces a hash with one at current parameters, unless the password changed meanwhile.
    async fn upgrade_hash(&self, id: Uuid, old: &str, new: &str) -> Result<(), StoreError>;
    /// Sets roles and raises `tokens_not_before`.
    async fn set_roles(
        &self,
        id: Uuid,
        roles: &[Role],
        now: i64,
    ) -> Result<Option<User>, StoreError>;
    /// Disables (raising `tokens_not_before`) or enables a user.
    async fn set_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        now: i64,
    ) -> Result<Option<User>, StoreError>;
    /// Deletes a user; true if it existed.
    async fn delete(&self, id: Uuid) -> Result<bool, StoreError>;
    /// A page of users ordered by creation, after `cursor`.
    async fn list(&self, cursor: Option<UserCursor>, limit: i64) -> Result<Vec<User>, StoreError>;
}

/// A client's type (RFC 6749 §2.1): a confidential client holds a secret; a public one (a
/// single-page or native app) cannot, and proves itself with PKCE alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientType {
    /// Authenticates with its secret.
    #[default]
    Confidential,
    /// Has no secret.
    Public,
}

/// The grant types a client may use (RFC 7591 §2 names).
pub const GRANT_TYPES: [&str; 3] = ["authorization_code", "client_credentials", "refresh_token"];

/// How a client takes part in browser sign-in: its type, grants and registered URIs. Stored as
/// one document beside the client's columns; a client registered before sign-in existed reads
/// as a confidential client-credentials client.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ClientProfile {
    /// Confidential or public.
    #[serde(rename = "type")]
    pub client_type: ClientType,
    /// A first-party app signs users in without a consent page.
    pub first_party: bool,
    /// The grant types it may use, sorted.
    pub grant_types: Vec<String>,
    /// Where authorization responses may go (compared as exact strings).
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to (exact strings).
    pub post_logout_redirect_uris: Vec<String>,
    /// Where a logout token is POSTed when a session it took part in ends.
    pub backchannel_logout_uri: Option<String>,
}

impl Default for ClientProfile {
    fn default() -> Self {
        ClientProfile {
            client_type: ClientType::Confidential,
            first_party: false,
            grant_types: vec!["client_credentials".into()],
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
        }
    }
}

impl ClientProfile {
    /// True when the client may use `grant`.
    pub fn allows(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

/// A registered client: a service that authenticates with a secret (client credentials,
/// introspection), or an app that signs users in (authorization code). Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegisteredClient {
    /// Chosen at registration; also the `sub` of the client's own tokens.
    pub client_id: String,
    /// What the client is, for people.
    pub name: String,
    /// Scopes the client may be granted.
    pub scopes: Vec<String>,
    /// Audiences the client's tokens may name.
    pub audiences: Vec<String>,
    /// A disabled client cannot authenticate.
    pub disabled: bool,
    /// New tokens for this client carry `iat ≥` this.
    pub tokens_not_before: i64,
    /// Registered.
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
    /// The previous secret keeps working until then, after a rotation with an overlap.
    pub previous_secret_expires_at: Option<i64>,
    /// Its part in browser sign-in.
    #[serde(flatten)]
    pub profile: ClientProfile,
}

/// The SHA-256 digests of a client's secrets.
#[derive(Debug, Clone)]
pub struct ClientSecrets {
    /// The current secret.
    pub current: Vec<u8>,
    /// The previous secret, until `Client::previous_secret_expires_at`.
    pub previous: Option<Vec<u8>>,
}

/// A client to register.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Client id.
    pub client_id: String,
    /// Name.
    pub name: String,
    /// Allowed scopes.
    pub scopes: Vec<String>,
    /// Allowed audiences.
    pub audiences: Vec<String>,
    /// SHA-256 of the secret (empty for a public client).
    pub secret_hash: Vec<u8>,
    /// Its part in browser sign-in.
    pub profile: ClientProfile,
}

/// Changes to a client; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ClientUpdate {
    /// New name.
    pub name: Option<String>,
    /// New allowed scopes.
    pub scopes: Option<Vec<String>>,
    /// New allowed audiences.
    pub audiences: Option<Vec<String>>,
    /// Disable or enable.
    pub disabled: Option<bool>,
    /// A new profile (grants, URIs, first party).
    pub profile: Option<ClientProfile>,
    /// Raise `tokens_not_before` past `now`: the change makes the client's live tokens wrong.
    pub revoke_tokens: bool,
}

/// Why a client was not registered.
#[derive(Debug, thiserror::Error)]
pub enum CreateClientError {
    /// The id is in use.
    #[error("client id taken")]
    Taken,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Registered clients.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Registers a client. Its `tokens_not_before` is at least `now + 1` and never below a
    /// deleted predecessor's, so the revocation that deletion left never covers its tokens.
    async fn create_client(
        &self,
        client: NewClient,
        now: i64,
    ) -> Result<RegisteredClient, CreateClientError>;
    /// A client and its secrets' digests.
    async fn find_client(
        &self,
        id: &str,
    ) -> Result<Option<(RegisteredClient, ClientSecrets)>, StoreError>;
    /// Every client, by id.
    async fn list_clients(&self) -> Result<Vec<RegisteredClient>, StoreError>;
    /// Applies `update`; `None` if there is no such client.
    async fn update_client(
        &self,
        id: &str,
        update: &ClientUpdate,
        now: i64,
    ) -> Result<Option<RegisteredClient>, StoreError>;
    /// Replaces the secret. The old one keeps working until `previous_until` (none if that is
    /// not after `now`).
    async fn rotate_client_secret(
        &self,
        id: &str,
        secret_hash: &[u8],
        previous_until: i64,
        now: i64,
    ) -> Result<Option<RegisteredClient>, StoreError>;
    /// Deletes a client (it stays as a tombstone without a secret) and raises its
    /// `tokens_not_before` past `now`; returns that value (`None`: no such client). Tokens
    /// issued before it must be revoked.
    async fn delete_client(&self, id: &str, now: i64) -> Result<Option<i64>, StoreError>;
}

/// A user's consent to a client.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Consent {
    /// The client.
    pub client_id: String,
    /// The scopes consented to, sorted.
    pub scopes: Vec<String>,
    /// Last granted (Unix seconds).
    pub granted_at: i64,
}

/// Users' consents to third-party clients.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// The scopes `sub` has consented to for `client_id`.
    async fn find_consent(
        &self,
        sub: &str,
        client_id: &str,
    ) -> Result<Option<Vec<String>>, StoreError>;
    /// Records consent to `scopes`, added to what was consented before.
    async fn grant_consent(
        &self,
        sub: &str,
        client_id: &str,
        scopes: &[String],
        now: i64,
    ) -> Result<(), StoreError>;
    /// Every consent of `sub`, by client.
    async fn list_consents(&self, sub: &str) -> Result<Vec<Consent>, StoreError>;
    /// Withdraws a consent; true if there was one.
    async fn revoke_consent(&self, sub: &str, client_id: &str) -> Result<bool, StoreError>;
}

/// When a key was made and moves on (Unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyTimes {
    /// Generated.
    pub created_at: i64,
    /// Became the signing key.
    pub activated_at: Option<i64>,
    /// A `next` key becomes `current` at (or after) this time.
    pub activate_after: Option<i64>,
    /// Stopped signing (became `retired`).
    pub retired_at: Option<i64>,
    /// A `retired` key is removed at (or after) this time.
    pub remove_after: Option<i64>,
}

/// Where a signing key is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not signing yet (publish-before-use).
    Next,
    /// Signing.
    Current,
    /// No longer signing: published while its access tokens may live, then kept unpublished to
    /// verify the refresh tokens it signed until they have expired.
    Retired,
}

impl KeyState {
    /// As stored (`next`, `current`, `retired`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Retired => "retired",
        }
    }

    /// From its stored form.
    pub fn parse(s: &str) -> Result<KeyState, StoreError> {
        match s {
            "next" => Ok(KeyState::Next),
            "current" => Ok(KeyState::Current),
            "retired" => Ok(KeyState::Retired),
            other => Err(StoreError::Other(anyhow::anyhow!(
                "a signing key has the unknown state {other:?}"
            ))),
        }
    }
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored signing key.
#[derive(Debug)]
pub struct StoredKey {
    /// Key id.
    pub kid: String,
    /// Storage format of `private`.
    pub format_version: i32,
    /// Private key in that format.
    pub private: SecretSlice<u8>,
    /// Where it is in its lifecycle.
    pub state: KeyState,
    /// Its lifecycle times.
    pub times: KeyTimes,
}

/// Signing keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// True when a current signing key exists.
    async fn has_current(&self) -> Result<bool, StoreError>;
    /// Inserts `key` as current unless one exists, under a lock so that replicas starting
    /// together end up with one key. True if inserted.
    async fn insert_if_no_current(&self, key: NewKey) -> Result<bool, StoreError>;
    /// Every published key (`next`, `current`, `retired`), newest first.
    async fn load(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Adds `key` as the `next` key, to become current at `activate_after`, unless a next key is
    /// already pending (false).
    async fn add_next(&self, key: NewKey, activate_after: i64) -> Result<bool, StoreError>;
    /// Moves the lifecycle on, atomically and under the store's lock: a `next` key due at `now`
    /// becomes `current` and the current one `retired` until `now + retire_for`; retired keys
    /// past their time are deleted. True if anything changed.
    async fn advance(&self, now: i64, retire_for: i64) -> Result<bool, StoreError>;
    /// The compromise response, atomically and under the store's lock: every stored key (current,
    /// retired, and a pending next one) is deleted, and `key` becomes the only key, current at
    /// once. Returns the ids of the keys deleted.
    async fn replace_all(&self, key: NewKey) -> Result<Vec<String>, StoreError>;
    /// Replaces a key's stored private bytes (sealing it, or re-sealing it under another
    /// key-encryption key) if they are still `old`; true if replaced.
    async fn reseal(
        &self,
        kid: &str,
        old: &[u8],
        format_version: i32,
        new: &[u8],
    ) -> Result<bool, StoreError>;
}

/// A session being opened at login.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Session id (`sid`).
    pub sid: String,
    /// User id.
    pub sub: String,
    /// The first refresh token's `jti` (none: a browser's sign-in session, which the cookie
    /// stands for).
    pub refresh_jti: Option<String>,
    /// The browser sign-in session this one was issued through: ending that one ends this one.
    pub parent: Option<String>,
    /// A browser sign-in session: the SHA-256 of its cookie, hex.
    pub browser: Option<String>,
    /// How the user authenticated (`amr` values, space-separated).
    pub amr: String,
    /// Login time.
    pub auth_time: i64,
    /// Absolute end of the session.
    pub abs_exp: i64,
    /// Expiry of the first refresh token.
    pub refresh_exp: i64,
    /// Client the session belongs to.
    pub client_id: String,
    /// Scope granted at login; refreshes never widen it.
    pub scope: String,
    /// `User-Agent` at login (truncated), shown in session lists.
    pub user_agent: String,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is now spent and `new_jti` is live.
    Rotated {
        /// Session id.
        sid: String,
        /// Expiry of the new refresh token.
        refresh_exp: i64,
        /// Absolute end of the session.
        abs_exp: i64,
    },
    /// A spent token within the grace window: refused, session kept.
    Grace,
    /// A spent token outside the grace window: the session is revoked.
    Reused {
        /// The revoked session.
        sid: String,
    },
    /// Unknown, expired, or its session has ended.
    Invalid,
}

/// What the store holds for a refresh token, read without spending it (for the checks that
/// must come first: its client, its user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// Session id.
    pub sid: String,
    /// User id.
    pub sub: String,
    /// The session's grant; none when the session has ended (the token can then only be
    /// refused, or detected as reused).
    pub session: Option<RefreshSession>,
}

/// A live session's grant, as a refresh reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshSession {
    /// The client the session belongs to.
    pub client_id: String,
    /// The scope granted at login.
    pub scope: String,
}

/// A browser's sign-in session, as its cookie finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    /// Session id (`sid`).
    pub sid: String,
    /// User id.
    pub sub: String,
    /// When the user last authenticated.
    pub auth_time: i64,
    /// How (`amr` values, space-separated).
    pub amr: String,
    /// When the session ends regardless of activity.
    pub abs_exp: i64,
}

/// What an authorization code grants, stored under the code's digest until it is taken.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CodeGrant {
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the authorization request, exactly.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The request's `nonce`.
    pub nonce: Option<String>,
    /// The granted scope (space-separated).
    pub scope: String,
    /// The user.
    pub sub: String,
    /// The browser sign-in session it was issued in.
    pub sso_sid: String,
    /// When the user authenticated.
    pub auth_time: i64,
    /// How.
    pub amr: String,
    /// Unix seconds after which it is refused.
    pub expires_at: i64,
}

/// What the first exchange of a code issues under: its access token's `jti`, and the session
/// (`sid`) its refresh token opens. Recorded as the code is taken, so that a second use can
/// revoke them (RFC 6749 §4.1.2) however the two race.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeIssue {
    /// The access token's `jti`.
    pub jti: String,
    /// The session the exchange opens.
    pub sid: String,
}

/// What taking a code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeTake {
    /// The code was live and is now spent: its grant.
    Taken(CodeGrant),
    /// The code was taken before: what that exchange issued under, to revoke, and its grant.
    Reused(CodeIssue, CodeGrant),
    /// Unknown or expired.
    Invalid,
}

/// A session as listed to its owner.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionInfo {
    /// Session id.
    pub sid: String,
    /// Login time.
    pub created_at: i64,
    /// Last refresh (or login).
    pub last_used_at: i64,
    /// When the session ends regardless of activity.
    pub expires_at: i64,
    /// Client.
    pub client_id: String,
    /// `User-Agent` at login.
    pub user_agent: String,
    /// The browser sign-in session it was issued through (empty: none).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub parent: String,
}

/// Sessions and their refresh tokens, browsers' sign-in sessions, and authorization codes.
/// Operations that end sessions also record the matching revocation in the same atomic step;
/// ending a browser's sign-in session ends the sessions issued through it, revoking each.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Reachability, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Opens a session with its first refresh token; false (nothing created) when its parent
    /// session has ended.
    async fn create(&self, session: &NewSession, now: i64) -> Result<bool, StoreError>;
    /// Spends `old_jti` and makes `new_jti` live, atomically: of concurrent calls with one token
    /// exactly one rotates. A token past its expiry is `Invalid`. A spent token outside `grace` revokes the session (`sid` revocation
    /// until `revoke_until`).
    async fn rotate(
        &self,
        old_jti: &str,
        new_jti: &str,
        now: i64,
        grace: i64,
        idle_ttl: i64,
        revoke_until: i64,
    ) -> Result<Rotation, StoreError>;
    /// The refresh record `jti` (live or spent, not past its expiry), without changing it.
    async fn refresh_record(
        &self,
        jti: &str,
        now: i64,
    ) -> Result<Option<RefreshRecord>, StoreError>;
    /// The user's live sessions.
    async fn list(&self, sub: &str, now: i64) -> Result<Vec<SessionInfo>, StoreError>;
    /// Ends one of the user's sessions and revokes its tokens (`sid` until `revoke_until`);
    /// false if the user has no such session.
    async fn end(
        &self,
        sub: &str,
        sid: &str,
        now: i64,
        revoke_until: i64,
    ) -> Result<bool, StoreError>;
    /// The live browser sign-in session whose cookie has this digest; its idle expiry moves
    /// to `now + idle_ttl` (never past its absolute end).
    async fn browser_session(
        &self,
        browser: &str,
        now: i64,
        idle_ttl: i64,
    ) -> Result<Option<BrowserSession>, StoreError>;
    /// A fresh sign-in on a browser session (same user): new `auth_time` and `amr`, and the
    /// cookie rotated (the old digest stops working). False if the session has ended.
    async fn reauthenticate(
        &self,
        sid: &str,
        new_browser: &str,
        auth_time: i64,
        amr: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Stores an authorization code's grant under the code's digest until `grant.expires_at`.
    async fn put_code(&self, digest: &str, grant: &CodeGrant, now: i64) -> Result<(), StoreError>;
    /// Takes a code, atomically: of concurrent takes exactly one gets `Taken`, recording
    /// `issue`; later ones (until `keep_until`) get `Reused` with what the first recorded.
    async fn take_code(
        &self,
        digest: &str,
        issue: &CodeIssue,
        now: i64,
        keep_until: i64,
    ) -> Result<CodeTake, StoreError>;
    /// Ends every session of the user and revokes every token issued before `iat_before`.
    async fn end_all(
        &self,
        sub: &str,
        now: i64,
        iat_before: i64,
        revoke_until: i64,
    ) -> Result<u64, StoreError>;
}

/// The revocation list.
#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Records a revocation (kept until its `exp` plus the leeway).
    async fn revoke(&self, event: &RevocationEvent, now: i64) -> Result<(), StoreError>;
    /// True when any live entry covers this token.
    async fn is_revoked(&self, claims: &AccessClaims) -> Result<bool, StoreError>;
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `login_succeeded`, `login_failed`, `refresh_reuse`, `roles_changed`, `disabled`,
    /// `enabled`, `sessions_revoked`, `user_deleted`, `key_rotation`.
    pub kind: String,
    /// Who acted (an admin's user id, `cli`), when not the user themself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What else there is to say (roles, session id, kid…).
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// The recent audit events of each user (the full trail is the `audit` log target).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event to `user`'s recent events (the oldest beyond a bound are dropped).
    async fn record(&self, user: &str, event: &AuditEvent) -> Result<(), StoreError>;
    /// Up to `limit` of `user`'s recent events, newest first.
    async fn recent(&self, user: &str, limit: usize) -> Result<Vec<AuditEvent>, StoreError>;
}

/// Events kept per user.
pub const AUDIT_KEEP: usize = 100;

/// Counters for rate limiting, shared by every replica (fixed windows).
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Counts one hit on `key` in the current window of length `window` (the window starts at
    /// the key's first hit); returns the hits so far in the window, this one included, and the
    /// time left until the window ends.
    async fn hit(&self, key: &str, window: Duration) -> Result<(u64, Duration), StoreError>;
    /// The hits on `key` in its current window and the time left, without counting one
    /// (`(0, 0)` when there is none).
    async fn peek(&self, key: &str) -> Result<(u64, Duration), StoreError>;
    /// Forgets `key`'s counter (a success ends a run of failures).
    async fn clear(&self, key: &str) -> Result<(), StoreError>;
    /// Growing delays, in one atomic step. With `failed`, records a failure: the count grows and
    /// the next attempt is held back by `policy.delay(count)`. Without, asks for an attempt:
    /// answers the wait left if one is due, otherwise admits it and (once delays apply) holds
    /// the next attempt back by the current delay, so that concurrent attempts cannot all slip
    /// through one opening. Returns the failures counted and the wait (zero: admitted). The
    /// state is forgotten `policy.window` plus `policy.max` after the last failure.
    async fn gate(
        &self,
        key: &str,
        policy: &Backoff,
        failed: bool,
    ) -> Result<(u64, Duration), StoreError>;
}

/// Growing delays after a number of free failures: `base`, doubling with every further failure,
/// up to `max`. Bounded on purpose: a delay, never a lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Failures allowed before delays begin.
    pub free: u64,
    /// The first delay.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
    /// How long failures are remembered after the last one.
    pub window: Duration,
}

impl Backoff {
    /// The delay after `failures` failures.
    pub fn delay(&self, failures: u64) -> Duration {
        if failures < self.free {
            return Duration::ZERO;
        }
        let doublings = u32::try_from(failures - self.free)
            .unwrap_or(u32::MAX)
            .min(40);
        self.base
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// Added to the store-outage grace on the acknowledging side (a store's wait for the feed's
/// readers) and taken off it on the promising side (the feed's `outage` event), so that a promise
/// reaching its follower late, or clocks ticking apart, cannot outlast the wait.
pub const OUTAGE_MARGIN: Duration = Duration::from_secs(1);

/// Where the revocation event stream stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedState {
    /// This life of the stream (a store that lost its data starts another).
    pub epoch: String,
    /// The newest entry's id (`0-0` when none was ever added).
    pub last: StreamId,
    /// The oldest retained entry.
    pub first: Option<StreamId>,
    /// True when no entry was ever trimmed away.
    pub complete: bool,
    /// Entries up to this id were trimmed, when the store reports it (`None`: unknown).
    pub trimmed_through: Option<StreamId>,
}

impl FeedState {
    /// Whether every event after `position` is still retained; if not, why (a `reset` reason).
    /// Trimming only ever removes the oldest entries.
    pub fn resume(&self, position: &Position) -> Result<(), &'static str> {
        if position.epoch != self.epoch {
            return Err("epoch");
        }
        let p = position.id;
        if p > self.last {
            return Err("invalid");
        }
        let retained = self.complete
            || p == self.last
            || self.first.is_some_and(|first| p >= first)
            || self.trimmed_through.is_some_and(|t| p >= t);
        if retained { Ok(()) } else { Err("trimmed") }
    }

    /// The position of the newest entry.
    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            id: self.last,
        }
    }
}

/// The revocation event stream behind the feed (`GET /v1/revocations`).
#[async_trait]
pub trait RevocationFeed: Send + Sync {
    /// The stream's epoch and bounds.
    async fn feed_state(&self) -> Result<FeedState, StoreError>;
    /// Every live entry (`exp` plus leeway not yet passed), for a snapshot. Entries that stay
    /// live during the call are all included; some may appear twice.
    async fn live_entries(&self, now: i64) -> Result<Vec<RevocationEvent>, StoreError>;
    /// Up to `limit` events after `after`, oldest first.
    async fn events_after(
        &self,
        after: StreamId,
        limit: usize,
    ) -> Result<Vec<(StreamId, RevocationEvent)>, StoreError>;
    /// A reader that blocks for new events on a connection of its own.
    async fn follower(&self) -> Result<Box<dyn FeedFollower>, StoreError>;
    /// Registers this process's feed reader `reader` as having read, and handed to its
    /// connections, everything up to `position`, serving the followers `serving` (`left`: those
    /// that went since the last call). False when the store keeps no readers: then the reader
    /// may promise no store-outage grace (the embedded store, or a grace of zero).
    async fn confirm_reader(
        &self,
        _reader: &str,
        _position: StreamId,
        _serving: &[String],
        _left: &[String],
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
}

/// Waits for new revocation events.
#[async_trait]
pub trait FeedFollower: Send {
    /// Up to `limit` events after `after`, waiting up to `block` for the first one (an empty
    /// answer means none came, and the store was reachable).
    async fn wait_after(
        &mut self,
        after: StreamId,
        block: Duration,
        limit: usize,
    ) -> Result<Vec<(StreamId, RevocationEvent)>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64) -> StreamId {
        StreamId { ms, seq: 0 }
    }

    fn pos(epoch: &str, ms: u64) -> Position {
        Position {
            epoch: epoch.into(),
            id: id(ms),
        }
    }

    #[test]
    fn resumption_needs_the_same_epoch_and_nothing_trimmed_after_the_position() {
        let state = FeedState {
            epoch: "e1".into(),
            last: id(50),
            first: Some(id(11)),
            complete: false,
            trimmed_through: None,
        };
        assert_eq!(state.resume(&pos("e1", 11)), Ok(()));
        assert_eq!(state.resume(&pos("e1", 30)), Ok(()));
        assert_eq!(state.resume(&pos("e1", 50)), Ok(()));
        assert_eq!(state.resume(&pos("e1", 10)), Err("trimmed"));
        assert_eq!(state.resume(&pos("e0", 20)), Err("epoch"));
        assert_eq!(state.resume(&pos("e1", 51)), Err("invalid"));
        // A trim mark from the store proves more positions safe.
        let marked = FeedState {
            trimmed_through: Some(id(10)),
            ..state.clone()
        };
        assert_eq!(marked.resume(&pos("e1", 10)), Ok(()));
        assert_eq!(marked.resume(&pos("e1", 9)), Err("trimmed"));
        // Never trimmed: any position of this epoch.
        let whole = FeedState {
            complete: true,
            ..state.clone()
        };
        assert_eq!(whole.resume(&pos("e1", 0)), Ok(()));
        // Trimmed to nothing: only the newest position.
        let empty = FeedState {
            first: None,
            ..state
        };
        assert_eq!(empty.resume(&pos("e1", 50)), Ok(()));
        assert_eq!(empty.resume(&pos("e1", 40)), Err("trimmed"));
    }
}
