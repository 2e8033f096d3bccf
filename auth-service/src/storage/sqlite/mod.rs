//! The embedded backend: one SQLite file (WAL, `synchronous = FULL`) holds users, signing keys,
//! sessions and refresh tokens, revocations with the feed's event log, and rate-limit counters.
//! For one machine: development, demos, small deployments. Nothing to install.
//!
//! One thread owns the connection and runs every operation, each in its own transaction, in the
//! order they arrive: the async workers never block on SQLite, and every operation is atomic and
//! serialised (of concurrent rotations of one refresh token exactly one wins, as with Redis).
//! Expiring records carry an `expires_at` and are ignored once past it, then deleted by a sweep.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use secrecy::ExposeSecret;
use shared::feed::StreamId;
use shared::{AccessClaims, RevocationEvent};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    AUDIT_KEEP, AuditEvent, AuditStore, Backoff, BrowserSession, ClientSecrets, ClientStore,
    ClientUpdate, CodeGrant, CodeIssue, CodeTake, CreateClientError, CreateUserError, FeedFollower,
    FeedState, KeyState, KeyStore, KeyTimes, NewClient, NewSession, NewUser, RateLimitStore,
    RefreshRecord, RefreshSession, RegisteredClient, RevocationFeed, RevocationStore, Rotation,
    SessionInfo, SessionStore, StoreError, StoredKey, User, UserCursor, UserStore,
};
use crate::crypto::keys::NewKey;
use crate::domain::Role;

mod audit;
mod clients;
mod keys;
mod limits;
mod revocations;
mod schema;
mod sessions;
mod users;

use self::revocations::revoke;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The SQLite store. Clones share the connection's thread.
#[derive(Clone)]
pub struct SqliteStore {
    jobs: std::sync::mpsc::Sender<Job>,
    /// Bumped after every committed revocation event (followers wait on it).
    events: Arc<tokio::sync::watch::Sender<u64>>,
    leeway: i64,
    retention: i64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

pub(super) fn other(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Other(e.into())
}

pub(super) fn db(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::SystemIoFailure
            ) =>
        {
            StoreError::Unavailable(e.into())
        }
        _ => StoreError::Other(e.into()),
    }
}

pub(super) fn now_us() -> i64 {
    let t = OffsetDateTime::now_utc();
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

pub(super) fn time_us(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(super) fn state_get(tx: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    tx.query_row(
        "SELECT value FROM service_state WHERE key = ?1",
        [key],
        |r| r.get(0),
    )
    .optional()
}

pub(super) fn state_set(tx: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO service_state (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
    .map(|_| ())
}

pub(super) fn epoch(tx: &Connection) -> rusqlite::Result<String> {
    if let Some(e) = state_get(tx, "feed_epoch")? {
        return Ok(e);
    }
    let e = format!("s{}", Uuid::new_v4().simple());
    state_set(tx, "feed_epoch", &e)?;
    Ok(e)
}

impl SqliteStore {
    /// Opens (creating) the database file, applies the schema, and starts its thread.
    pub fn open(path: &Path, leeway: i64, retention: u64) -> anyhow::Result<SqliteStore> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        }
        let mut conn = Connection::open(path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&mut conn)?;
        // The file holds password hashes and private keys: owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite".into())
            .spawn(move || {
                let mut last_sweep = std::time::Instant::now();
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                    if last_sweep.elapsed() > Duration::from_secs(60) {
                        last_sweep = std::time::Instant::now();
                        if let Err(e) = sweep(&conn) {
                            tracing::warn!(error = %e, "sweeping expired records failed");
                        }
                    }
                }
            })?;
        Ok(SqliteStore {
            jobs,
            events: Arc::new(tokio::sync::watch::Sender::new(0)),
            leeway,
            retention: i64::try_from(retention).unwrap_or(i64::MAX),
        })
    }

    /// Runs `f` in a transaction on the database thread.
    async fn tx<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn: &mut Connection| {
            let r = (|| {
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(db)?;
                let v = f(&tx)?;
                tx.commit().map_err(db)?;
                Ok(v)
            })();
            let _ = done.send(r);
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable(anyhow::anyhow!("the database thread stopped")))?;
        result
            .await
            .map_err(|_| StoreError::Unavailable(anyhow::anyhow!("the database thread stopped")))?
    }

    fn notify_events(&self) {
        self.events.send_modify(|n| *n += 1);
    }
}

pub(super) fn sweep(conn: &Connection) -> rusqlite::Result<()> {
    let now = shared::unix_now();
    conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
    conn.execute("DELETE FROM refresh_tokens WHERE expires_at <= ?1", [now])?;
    conn.execute(
        "DELETE FROM authorization_codes WHERE expires_at <= ?1",
        [now],
    )?;
    conn.execute("DELETE FROM revocations WHERE expires_at < ?1", [now])?;
    conn.execute(
        "DELETE FROM rate_limits WHERE ends_ms <= ?1",
        [shared::unix_now_ms()],
    )?;
    conn.execute(
        "DELETE FROM gates WHERE ends_ms <= ?1",
        [shared::unix_now_ms()],
    )?;
    Ok(())
}
