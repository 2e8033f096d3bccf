//! Login does the same work for every username: the store operations a failed password sign-in
//! performs on its request path, recorded by wrapping the real stores (PostgreSQL and Redis),
//! are the same list for an existing account with a wrong password, a disabled account, and an
//! unknown account. (What they cost is measured by `scripts/bench/login_timing.py`; no timing is
//! asserted here.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use auth_service::configuration::Settings;
use auth_service::domain::{Role, Username};
use auth_service::error::OAuthError;
use auth_service::services::login::{BAD_CREDENTIALS, check_password};
use auth_service::state::AppState;
use auth_service::storage::postgres::PgStore;
use auth_service::storage::redis::RedisStore;
use auth_service::storage::{
    AuditEvent, AuditStore, Backoff, BrowserSession, CodeGrant, CodeIssue, CodeTake,
    CreateUserError, NewSession, NewUser, RateLimitStore, RefreshRecord, RevocationStore, Rotation,
    SessionInfo, SessionStore, StoreError, Stores, User, UserCursor, UserStore,
};
use secrecy::SecretString;
use shared::{AccessClaims, RevocationEvent};
use uuid::Uuid;

use crate::helpers::{PASSWORD, redis_url, url_for_db};

/// Which task did what: a store operation's name, and the task it ran in.
#[derive(Default)]
struct Log(Mutex<Vec<(Option<tokio::task::Id>, &'static str)>>);

impl Log {
    fn note(&self, op: &'static str) {
        self.0.lock().unwrap().push((tokio::task::try_id(), op));
    }

    fn of(&self, task: tokio::task::Id) -> Vec<&'static str> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t == Some(task))
            .map(|(_, op)| *op)
            .collect()
    }
}

/// A store that notes every operation before passing it on.
struct Recording<T: ?Sized> {
    log: Arc<Log>,
    inner: Arc<T>,
}

#[async_trait]
impl UserStore for Recording<dyn UserStore> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.log.note("users.ping");
        self.inner.ping().await
    }
    async fn create(&self, user: NewUser) -> Result<User, CreateUserError> {
        self.log.note("users.create");
        self.inner.create(user).await
    }
    async fn create_bootstrap_admin(&self, user: NewUser) -> Result<Option<User>, CreateUserError> {
        self.log.note("users.create_bootstrap_admin");
        self.inner.create_bootstrap_admin(user).await
    }
    async fn find_by_username(&self, username: &str) -> Result<Option<(User, String)>, StoreError> {
        self.log.note("users.find_by_username");
        self.inner.find_by_username(username).await
    }
    async fn find_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.log.note("users.find_by_id");
        self.inner.find_by_id(id).await
    }
    async fn password_hash(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        self.log.note("users.password_hash");
        self.inner.password_hash(id).await
    }
    async fn bump_tokens_not_before(&self, id: Uuid, now: i64) -> Result<Option<i64>, StoreError> {
        self.log.note("users.bump_tokens_not_before");
        self.inner.bump_tokens_not_before(id, now).await
    }
    async fn set_password(
        &self,
        id: Uuid,
        hash: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.log.note("users.set_password");
        self.inner.set_password(id, hash, now).await
    }
    async fn upgrade_hash(&self, id: Uuid, old: &str, new: &str) -> Result<(), StoreError> {
        self.log.note("users.upgrade_hash");
        self.inner.upgrade_hash(id, old, new).await
    }
    async fn set_roles(
        &self,
        id: Uuid,
        roles: &[Role],
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        self.log.note("users.set_roles");
        self.inner.set_roles(id, roles, now).await
    }
    async fn set_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        self.log.note("users.set_disabled");
        self.inner.set_disabled(id, disabled, now).await
    }
    async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        self.log.note("users.delete");
        self.inner.delete(id).await
    }
    async fn list(&self, cursor: Option<UserCursor>, limit: i64) -> Result<Vec<User>, StoreError> {
        self.log.note("users.list");
        self.inner.list(cursor, limit).await
    }
}

#[async_trait]
impl RateLimitStore for Recording<dyn RateLimitStore> {
    async fn hit(&self, key: &str, window: Duration) -> Result<(u64, Duration), StoreError> {
        self.log.note("rate_limits.hit");
        self.inner.hit(key, window).await
    }
    async fn peek(&self, key: &str) -> Result<(u64, Duration), StoreError> {
        self.log.note("rate_limits.peek");
        self.inner.peek(key).await
    }
    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        self.log.note("rate_limits.clear");
        self.inner.clear(key).await
    }
    async fn gate(
        &self,
        key: &str,
        policy: &Backoff,
        failed: bool,
    ) -> Result<(u64, Duration), StoreError> {
        self.log.note(if failed {
            "rate_limits.gate(failed)"
        } else {
            "rate_limits.gate"
        });
        self.inner.gate(key, policy, failed).await
    }
}

#[async_trait]
impl AuditStore for Recording<dyn AuditStore> {
    async fn record(&self, user: &str, event: &AuditEvent) -> Result<(), StoreError> {
        self.log.note("audit.record");
        self.inner.record(user, event).await
    }
    async fn recent(&self, user: &str, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        self.log.note("audit.recent");
        self.inner.recent(user, limit).await
    }
}

#[async_trait]
impl SessionStore for Recording<dyn SessionStore> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.log.note("sessions.ping");
        self.inner.ping().await
    }
    async fn create(&self, session: &NewSession, now: i64) -> Result<bool, StoreError> {
        self.log.note("sessions.create");
        self.inner.create(session, now).await
    }
    async fn browser_session(
        &self,
        browser: &str,
        now: i64,
        idle_ttl: i64,
    ) -> Result<Option<BrowserSession>, StoreError> {
        self.log.note("sessions.browser_session");
        self.inner.browser_session(browser, now, idle_ttl).await
    }
    async fn reauthenticate(
        &self,
        sid: &str,
        new_browser: &str,
        auth_time: i64,
        amr: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.log.note("sessions.reauthenticate");
        self.inner
            .reauthenticate(sid, new_browser, auth_time, amr, now)
            .await
    }
    async fn put_code(&self, digest: &str, grant: &CodeGrant, now: i64) -> Result<(), StoreError> {
        self.log.note("sessions.put_code");
        self.inner.put_code(digest, grant, now).await
    }
    async fn take_code(
        &self,
        digest: &str,
        issue: &CodeIssue,
        now: i64,
        keep_until: i64,
    ) -> Result<CodeTake, StoreError> {
        self.log.note("sessions.take_code");
        self.inner.take_code(digest, issue, now, keep_until).await
    }
    async fn rotate(
        &self,
        old_jti: &str,
        new_jti: &str,
        now: i64,
        grace: i64,
        idle_ttl: i64,
        revoke_until: i64,
    ) -> Result<Rotation, StoreError> {
        self.log.note("sessions.rotate");
        self.inner
            .rotate(old_jti, new_jti, now, grace, idle_ttl, revoke_until)
            .await
    }
    async fn refresh_record(
        &self,
        jti: &str,
        now: i64,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        self.log.note("sessions.refresh_record");
        self.inner.refresh_record(jti, now).await
    }
    async fn list(&self, sub: &str, now: i64) -> Result<Vec<SessionInfo>, StoreError> {
        self.log.note("sessions.list");
        self.inner.list(sub, now).await
    }
    async fn end(
        &self,
        sub: &str,
        sid: &str,
        now: i64,
        revoke_until: i64,
    ) -> Result<bool, StoreError> {
        self.log.note("sessions.end");
        self.inner.end(sub, sid, now, revoke_until).await
    }
    async fn end_all(
        &self,
        sub: &str,
        now: i64,
        iat_before: i64,
        revoke_until: i64,
    ) -> Result<u64, StoreError> {
        self.log.note("sessions.end_all");
        self.inner.end_all(sub, now, iat_before, revoke_until).await
    }
}

#[async_trait]
impl RevocationStore for Recording<dyn RevocationStore> {
    async fn revoke(&self, event: &RevocationEvent, now: i64) -> Result<(), StoreError> {
        self.log.note("revocations.revoke");
        self.inner.revoke(event, now).await
    }
    async fn is_revoked(&self, claims: &AccessClaims) -> Result<bool, StoreError> {
        self.log.note("revocations.is_revoked");
        self.inner.is_revoked(claims).await
    }
}

fn recording<T: ?Sized>(log: &Arc<Log>, inner: Arc<T>) -> Arc<Recording<T>> {
    Arc::new(Recording {
        log: Arc::clone(log),
        inner,
    })
}

/// The production shape's stores, each wrapped to note what it is asked.
async fn recorded_state() -> (AppState, Arc<Log>, Arc<testkit::stores::Resources>) {
    let resources = testkit::stores::Resources::create().await;
    let env = std::collections::HashMap::from([
        ("AUTH_DATABASE_URL", url_for_db(&resources.db)),
        ("AUTH_REDIS_URL", redis_url()),
        ("AUTH_REDIS_PREFIX", resources.prefix.clone()),
        ("AUTH_KEY_ENCRYPTION_KEY", testkit::KEK.to_owned()),
    ]);
    let settings = Settings::from_lookup(&|k| env.get(k).cloned()).unwrap();
    let pg = PgStore::new(
        &SecretString::from(url_for_db(&resources.db)),
        4,
        Duration::from_secs(5),
    )
    .unwrap();
    pg.migrate().await.unwrap();
    let pg = Arc::new(pg);
    let redis = Arc::new(
        RedisStore::connect(
            &SecretString::from(redis_url()),
            &resources.prefix,
            30,
            30 * 86_400,
            1000,
            Duration::from_secs(5),
        )
        .await
        .unwrap(),
    );
    let log = Arc::new(Log::default());
    let real = Stores::shared(pg, redis);
    let stores = Stores {
        audit: recording(&log, real.audit),
        users: recording(&log, real.users),
        sessions: recording(&log, real.sessions),
        revocations: recording(&log, real.revocations),
        rate_limits: recording(&log, real.rate_limits),
        ..real
    };
    let state = AppState::from_stores(settings, stores).await.unwrap();
    (state, log, resources)
}

async fn create_user(state: &AppState, name: &str) -> User {
    let hash = state
        .hasher
        .hash(&SecretString::from(PASSWORD.to_owned()))
        .await
        .unwrap();
    state
        .users
        .create(NewUser {
            username: Username::parse(name).unwrap(),
            email: None,
            password_hash: hash,
            roles: vec![Role::parse("user").unwrap()],
        })
        .await
        .unwrap()
}

/// Signs in on a task of its own; the store operations that task performed, and the outcome.
async fn attempt(
    state: &AppState,
    log: &Log,
    username: &str,
    password: &str,
) -> (Vec<&'static str>, Result<(), String>) {
    let state = state.clone();
    let (username, password) = (username.to_owned(), SecretString::from(password.to_owned()));
    let task = tokio::spawn(async move {
        check_password(&state, &username, &password, "203.0.113.9", "203.0.113.9")
            .await
            .map(|_| ())
            .map_err(|e| match e {
                OAuthError::InvalidGrant(d) => d.to_owned(),
                other => format!("{other:?}"),
            })
    });
    let id = task.id();
    let outcome = task.await.unwrap();
    (log.of(id), outcome)
}

#[tokio::test]
async fn a_failed_login_does_the_same_store_operations_whether_or_not_the_account_exists() {
    let (state, log, _resources) = recorded_state().await;
    let alice = create_user(&state, "alice").await;
    let dave = create_user(&state, "dave").await;
    state
        .users
        .set_disabled(dave.id, true, shared::unix_now())
        .await
        .unwrap();

    let (wrong_password, r1) =
        attempt(&state, &log, "alice", "not the right password at all").await;
    let (disabled, r2) = attempt(&state, &log, "dave", PASSWORD).await;
    let (unknown, r3) = attempt(&state, &log, "nobody-here", PASSWORD).await;
    for r in [&r1, &r2, &r3] {
        assert_eq!(r, &Err(BAD_CREDENTIALS.to_owned()));
    }
    assert!(
        wrong_password.contains(&"users.find_by_username")
            && wrong_password.contains(&"rate_limits.gate(failed)"),
        "{wrong_password:?}"
    );
    assert_eq!(wrong_password, unknown, "existing account vs unknown");
    assert_eq!(disabled, unknown, "disabled account vs unknown");
    // Nothing about the account is written on the request path; the audit events are stored off
    // it, in order (the unknown account's among those of no user, at the same cost), and are
    // there once the writer has caught up.
    assert!(!unknown.contains(&"audit.record"), "{unknown:?}");
    state.audit_writer.flush().await;
    for (user, reason) in [(&alice, "bad_password"), (&dave, "disabled")] {
        let events = state
            .audit_store
            .recent(&user.id.to_string(), 10)
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind, "login_failed");
        assert_eq!(events[0].detail["reason"], reason);
    }
    let nobody = state
        .audit_store
        .recent(auth_service::audit::NO_USER, 10)
        .await
        .unwrap();
    assert_eq!(nobody.len(), 1, "{nobody:?}");
    assert_eq!(nobody[0].detail["reason"], "unknown_user");
    // A success does more (and may): it clears the failure counts.
    let (success, ok) = attempt(&state, &log, "alice", PASSWORD).await;
    assert_eq!(ok, Ok(()));
    assert_ne!(success, unknown);
}

/// Refreshes on a task of their own; the store operations that task performed.
async fn refresh_ops(state: &AppState, log: &Log, token: &str) -> (Vec<&'static str>, bool) {
    let state = state.clone();
    let token = token.to_owned();
    let task = tokio::spawn(async move {
        auth_service::services::sessions::refresh(&state, &token, None, None, None)
            .await
            .is_ok()
    });
    let id = task.id();
    let ok = task.await.unwrap();
    (log.of(id), ok)
}

/// A refresh token that is not one (a changed character, a cut, an invented body) is refused by
/// its checksum: no store is asked anything. A well-formed one is looked up, then spent.
#[tokio::test]
async fn a_garbage_refresh_token_is_refused_without_a_store_lookup() {
    let (state, log, _resources) = recorded_state().await;
    let user = create_user(&state, "rita").await;
    let pair = auth_service::services::sessions::open(
        &state,
        &user,
        state.settings.default_client_id(),
        String::new(),
        "test",
        shared::unix_now(),
    )
    .await
    .unwrap();
    let rt = pair.refresh_token;
    let prefix = shared::claims::REFRESH_TOKEN_PREFIX;
    let mut changed = rt.clone().into_bytes();
    changed[prefix.len()] = if changed[prefix.len()] == b'x' {
        b'y'
    } else {
        b'x'
    };
    let garbage = [
        String::from_utf8(changed).unwrap(),
        format!("{rt}x"),
        rt[..40].to_owned(),
        format!("{prefix}{}", "A".repeat(48)),
        format!("{prefix}{}", "*".repeat(48)),
    ];
    for g in &garbage {
        let (ops, ok) = refresh_ops(&state, &log, g).await;
        assert!(!ok, "{g}");
        assert!(ops.is_empty(), "{g}: {ops:?}");
    }
    let scraped = state.render_metrics().await;
    assert!(
        scraped.contains("auth_refreshes_total{outcome=\"malformed\"} 5"),
        "{scraped}"
    );
    // The real token: read, then spent (the user re-read between the two).
    let (ops, ok) = refresh_ops(&state, &log, &rt).await;
    assert!(ok);
    assert_eq!(
        ops.iter()
            .filter(|o| o.starts_with("sessions."))
            .copied()
            .collect::<Vec<_>>(),
        vec!["sessions.refresh_record", "sessions.rotate"],
        "{ops:?}"
    );
}
