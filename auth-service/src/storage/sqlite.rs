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
    AUDIT_KEEP, AuditEvent, AuditStore, Backoff, ClientSecrets, ClientStore, ClientUpdate,
    CreateClientError, CreateUserError, FeedFollower, FeedState, KeyStore, KeyTimes, NewClient,
    NewSession, NewUser, RateLimitStore, RegisteredClient, RevocationFeed, RevocationStore,
    Rotation, SessionInfo, SessionStore, StoreError, StoredKey, User, UserCursor, UserStore,
};
use crate::crypto::keys::NewKey;
use crate::domain::Role;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS users (
    id                 TEXT PRIMARY KEY,
    username           TEXT    NOT NULL,
    username_key       TEXT    NOT NULL UNIQUE,
    email              TEXT,
    password_hash      TEXT    NOT NULL,
    roles              TEXT    NOT NULL,
    disabled           INTEGER NOT NULL DEFAULT 0,
    tokens_not_before  INTEGER NOT NULL DEFAULT 0,
    created_at_us      INTEGER NOT NULL,
    updated_at_us      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS users_created ON users (created_at_us, id);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT    NOT NULL DEFAULT 'RS256',
    format_version  INTEGER NOT NULL,
    private_key     BLOB    NOT NULL,
    public_jwk      TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    created_at_us   INTEGER NOT NULL,
    activated_at_us INTEGER,
    retired_at_us   INTEGER,
    activate_after  INTEGER,
    remove_after    INTEGER
);
CREATE TABLE IF NOT EXISTS service_state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    sid         TEXT PRIMARY KEY,
    sub         TEXT    NOT NULL,
    rt          TEXT    NOT NULL,
    auth_time   INTEGER NOT NULL,
    abs_exp     INTEGER NOT NULL,
    last_used   INTEGER NOT NULL,
    client_id   TEXT    NOT NULL,
    scope       TEXT    NOT NULL,
    ua          TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_sub ON sessions (sub);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    jti         TEXT PRIMARY KEY,
    sid         TEXT    NOT NULL,
    sub         TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    spent_at    INTEGER,
    expires_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS revocations (
    type        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    exp         INTEGER NOT NULL,
    iat_before  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (type, value)
);
CREATE TABLE IF NOT EXISTS revocation_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ms          INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    exp         INTEGER NOT NULL,
    iat_before  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT    NOT NULL,
    event       TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_user ON audit (user_id, id);
CREATE TABLE IF NOT EXISTS rate_limits (
    key         TEXT PRIMARY KEY,
    count       INTEGER NOT NULL,
    ends_ms     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS clients (
    client_id                   TEXT PRIMARY KEY,
    name                        TEXT    NOT NULL,
    secret_hash                 BLOB    NOT NULL,
    previous_secret_hash        BLOB,
    previous_secret_expires_at  INTEGER,
    scopes                      TEXT    NOT NULL,
    audiences                   TEXT    NOT NULL,
    disabled                    INTEGER NOT NULL DEFAULT 0,
    deleted                     INTEGER NOT NULL DEFAULT 0,
    tokens_not_before           INTEGER NOT NULL,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS gates (
    key         TEXT PRIMARY KEY,
    failures    INTEGER NOT NULL,
    next_ms     INTEGER NOT NULL,
    ends_ms     INTEGER NOT NULL
);
"#;

/// Columns added after the first embedded schema: files made before them gain them here.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("signing_keys", "activated_at_us", "INTEGER"),
    ("signing_keys", "activate_after", "INTEGER"),
    ("signing_keys", "remove_after", "INTEGER"),
];

fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, kind) in ADDED_COLUMNS {
        let exists = conn
            .prepare(&format!(
                "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
            ))?
            .exists([column])?;
        if !exists {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
        }
    }
    Ok(())
}

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

fn other(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Other(e.into())
}

fn db(e: rusqlite::Error) -> StoreError {
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

fn now_us() -> i64 {
    let t = OffsetDateTime::now_utc();
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

fn time_us(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

const USER_COLUMNS: &str =
    "id, username, email, roles, disabled, tokens_not_before, created_at_us, updated_at_us";

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let id: String = r.get(0)?;
    let roles: String = r.get(3)?;
    Ok(User {
        id: Uuid::parse_str(&id).unwrap_or_default(),
        username: r.get(1)?,
        email: r.get(2)?,
        roles: serde_json::from_str(&roles).unwrap_or_default(),
        disabled: r.get(4)?,
        tokens_not_before: r.get(5)?,
        created_at: time_us(r.get(6)?),
        updated_at: time_us(r.get(7)?),
    })
}

fn roles_json(roles: &[Role]) -> String {
    serde_json::to_string(&roles.iter().map(Role::as_str).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

fn get_user(tx: &Connection, id: Uuid) -> rusqlite::Result<Option<User>> {
    tx.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
        [id.to_string()],
        user_from_row,
    )
    .optional()
}

fn insert_user(tx: &Connection, user: &NewUser) -> Result<User, CreateUserError> {
    let id = Uuid::new_v4();
    let now = now_us();
    let inserted = tx.execute(
        "INSERT INTO users (id, username, username_key, email, password_hash, roles, created_at_us, updated_at_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            id.to_string(),
            user.username.as_str(),
            user.username.as_str().to_lowercase(),
            user.email.as_ref().map(|e| e.as_str()),
            user.password_hash,
            roles_json(&user.roles),
            now
        ],
    );
    match inserted {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            return Err(CreateUserError::UsernameTaken);
        }
        Err(e) => return Err(db(e).into()),
    }
    get_user(tx, id)
        .map_err(db)?
        .ok_or_else(|| other(anyhow::anyhow!("inserted user vanished")).into())
}

/// Raises `tokens_not_before` past `now` (as the PostgreSQL backend does).
const BUMP: &str = "tokens_not_before = MAX(?2 + 1, tokens_not_before + 1), updated_at_us = ?3";

fn state_get(tx: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    tx.query_row(
        "SELECT value FROM service_state WHERE key = ?1",
        [key],
        |r| r.get(0),
    )
    .optional()
}

fn state_set(tx: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO service_state (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
    .map(|_| ())
}

fn epoch(tx: &Connection) -> rusqlite::Result<String> {
    if let Some(e) = state_get(tx, "feed_epoch")? {
        return Ok(e);
    }
    let e = format!("s{}", Uuid::new_v4().simple());
    state_set(tx, "feed_epoch", &e)?;
    Ok(e)
}

/// The store's `revoke`: merge with an existing entry (later `exp`, later `iat_before`), append
/// the event, trim the log to about `retention` events.
fn revoke(
    tx: &Transaction<'_>,
    event: &RevocationEvent,
    leeway: i64,
    retention: i64,
) -> rusqlite::Result<()> {
    let (typ, value, exp, iat_before) = event.parts();
    tx.execute(
        "INSERT INTO revocations (type, value, exp, iat_before, expires_at) VALUES (?1, ?2, ?3, ?4, ?3 + ?5)
         ON CONFLICT (type, value) DO UPDATE SET exp = MAX(exp, excluded.exp),
           iat_before = MAX(iat_before, excluded.iat_before), expires_at = MAX(exp, excluded.exp) + ?5",
        params![typ, value, exp, iat_before, leeway],
    )?;
    let (exp, iat_before): (i64, i64) = tx.query_row(
        "SELECT exp, iat_before FROM revocations WHERE type = ?1 AND value = ?2",
        params![typ, value],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    epoch(tx)?;
    // Ids and times both only grow, so (ms, id) orders events as ids do.
    let last_ms: i64 = tx
        .query_row("SELECT MAX(ms) FROM revocation_events", [], |r| {
            r.get::<_, Option<i64>>(0)
        })?
        .unwrap_or(0);
    tx.execute(
        "INSERT INTO revocation_events (ms, type, value, exp, iat_before) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![shared::unix_now_ms().max(last_ms), typ, value, exp, iat_before],
    )?;
    let id = tx.last_insert_rowid();
    if id > retention && id % 64 == 0 {
        let cut = id - retention;
        let trimmed: Option<(i64, i64)> = tx
            .query_row(
                "SELECT ms, id FROM revocation_events WHERE id <= ?1 ORDER BY id DESC LIMIT 1",
                [cut],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((ms, tid)) = trimmed {
            tx.execute("DELETE FROM revocation_events WHERE id <= ?1", [cut])?;
            state_set(tx, "feed_trimmed_through", &format!("{ms}-{tid}"))?;
        }
    }
    Ok(())
}

fn end_session(tx: &Connection, sid: &str) -> rusqlite::Result<Option<String>> {
    let row: Option<(String, String)> = tx
        .query_row("SELECT sub, rt FROM sessions WHERE sid = ?1", [sid], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    if let Some((_, rt)) = &row {
        tx.execute("DELETE FROM refresh_tokens WHERE jti = ?1", [rt])?;
    }
    tx.execute("DELETE FROM sessions WHERE sid = ?1", [sid])?;
    Ok(row.map(|(sub, _)| sub))
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
        conn.execute_batch(SCHEMA)?;
        add_missing_columns(&conn)?;
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

fn sweep(conn: &Connection) -> rusqlite::Result<()> {
    let now = shared::unix_now();
    conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
    conn.execute("DELETE FROM refresh_tokens WHERE expires_at <= ?1", [now])?;
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

const CLIENT_COLUMNS: &str = "client_id, name, scopes, audiences, disabled, tokens_not_before, created_at, updated_at, previous_secret_expires_at, secret_hash, previous_secret_hash";

fn client_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(RegisteredClient, ClientSecrets)> {
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        let text: String = row.get(i)?;
        serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    Ok((
        RegisteredClient {
            client_id: row.get(0)?,
            name: row.get(1)?,
            scopes: list(2)?,
            audiences: list(3)?,
            disabled: row.get(4)?,
            tokens_not_before: row.get(5)?,
            created_at: row.get(6)?,
            updated_at: row.get(7)?,
            previous_secret_expires_at: row.get(8)?,
        },
        ClientSecrets {
            current: row.get(9)?,
            previous: row.get(10)?,
        },
    ))
}

fn get_client(
    tx: &Transaction<'_>,
    id: &str,
) -> rusqlite::Result<Option<(RegisteredClient, ClientSecrets)>> {
    tx.query_row(
        &format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = ?1 AND deleted = 0"),
        [id],
        client_from_row,
    )
    .optional()
}

fn json_list(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn create_client(
        &self,
        c: NewClient,
        now: i64,
    ) -> Result<RegisteredClient, CreateClientError> {
        let created = self
            .tx(move |tx| {
                // A tombstone of the id is taken over, keeping the larger `tokens_not_before`.
                let inserted = tx
                    .execute(
                        "INSERT INTO clients (client_id, name, secret_hash, scopes, audiences, tokens_not_before, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6 + 1, ?6, ?6)
                         ON CONFLICT (client_id) DO UPDATE SET name = excluded.name,
                           secret_hash = excluded.secret_hash, previous_secret_hash = NULL,
                           previous_secret_expires_at = NULL, scopes = excluded.scopes,
                           audiences = excluded.audiences, disabled = 0, deleted = 0,
                           tokens_not_before = MAX(excluded.tokens_not_before, clients.tokens_not_before),
                           created_at = excluded.created_at, updated_at = excluded.updated_at
                         WHERE clients.deleted = 1",
                        params![c.client_id, c.name, c.secret_hash, json_list(&c.scopes), json_list(&c.audiences), now],
                    )
                    .map_err(db)?;
                if inserted == 0 {
                    return Ok(None);
                }
                get_client(tx, &c.client_id).map_err(db)
            })
            .await?;
        match created {
            Some((client, _)) => Ok(client),
            None => Err(CreateClientError::Taken),
        }
    }

    async fn find_client(
        &self,
        id: &str,
    ) -> Result<Option<(RegisteredClient, ClientSecrets)>, StoreError> {
        let id = id.to_owned();
        self.tx(move |tx| get_client(tx, &id).map_err(db)).await
    }

    async fn list_clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        self.tx(|tx| {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {CLIENT_COLUMNS} FROM clients WHERE deleted = 0 ORDER BY client_id"
                ))
                .map_err(db)?;
            let rows = stmt
                .query_map([], |row| client_from_row(row).map(|(c, _)| c))
                .map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn update_client(
        &self,
        id: &str,
        u: &ClientUpdate,
        now: i64,
    ) -> Result<Option<RegisteredClient>, StoreError> {
        let (id, u) = (id.to_owned(), u.clone());
        self.tx(move |tx| {
            tx.execute(
                "UPDATE clients SET name = COALESCE(?2, name), scopes = COALESCE(?3, scopes),
                 audiences = COALESCE(?4, audiences), disabled = COALESCE(?5, disabled),
                 tokens_not_before = CASE WHEN ?6 THEN MAX(?7 + 1, tokens_not_before + 1) ELSE tokens_not_before END,
                 updated_at = ?7 WHERE client_id = ?1 AND deleted = 0",
                params![
                    id,
                    u.name,
                    u.scopes.as_deref().map(json_list),
                    u.audiences.as_deref().map(json_list),
                    u.disabled,
                    u.revoke_tokens,
                    now
                ],
            )
            .map_err(db)?;
            Ok(get_client(tx, &id).map_err(db)?.map(|(c, _)| c))
        })
        .await
    }

    async fn rotate_client_secret(
        &self,
        id: &str,
        secret_hash: &[u8],
        previous_until: i64,
        now: i64,
    ) -> Result<Option<RegisteredClient>, StoreError> {
        let (id, hash) = (id.to_owned(), secret_hash.to_vec());
        self.tx(move |tx| {
            tx.execute(
                "UPDATE clients SET
                 previous_secret_hash = CASE WHEN ?3 > ?4 THEN secret_hash END,
                 previous_secret_expires_at = CASE WHEN ?3 > ?4 THEN ?3 END,
                 secret_hash = ?2, updated_at = ?4 WHERE client_id = ?1 AND deleted = 0",
                params![id, hash, previous_until, now],
            )
            .map_err(db)?;
            Ok(get_client(tx, &id).map_err(db)?.map(|(c, _)| c))
        })
        .await
    }

    async fn delete_client(&self, id: &str, now: i64) -> Result<Option<i64>, StoreError> {
        let id = id.to_owned();
        self.tx(move |tx| {
            tx.query_row(
                "UPDATE clients SET deleted = 1, disabled = 1, secret_hash = X'',
                 previous_secret_hash = NULL, previous_secret_expires_at = NULL,
                 tokens_not_before = MAX(?2 + 1, tokens_not_before + 1), updated_at = ?2
                 WHERE client_id = ?1 AND deleted = 0 RETURNING tokens_not_before",
                params![id, now],
                |row| row.get(0),
            )
            .optional()
            .map_err(db)
        })
        .await
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.tx(|tx| tx.query_row("SELECT 1", [], |_| Ok(())).map_err(db))
            .await
    }

    async fn create(&self, user: NewUser) -> Result<User, CreateUserError> {
        match self.tx(move |tx| Ok(insert_user(tx, &user))).await {
            Ok(r) => r,
            Err(e) => Err(e.into()),
        }
    }

    async fn create_bootstrap_admin(&self, user: NewUser) -> Result<Option<User>, CreateUserError> {
        let r = self
            .tx(move |tx| {
                let done = state_get(tx, "bootstrap_admin_created")
                    .map_err(db)?
                    .is_some();
                let empty = tx
                    .query_row("SELECT 1 FROM users LIMIT 1", [], |_| Ok(()))
                    .optional()
                    .map_err(db)?
                    .is_none();
                if done || !empty {
                    return Ok(Ok(None));
                }
                match insert_user(tx, &user) {
                    Ok(u) => {
                        state_set(tx, "bootstrap_admin_created", user.username.as_str())
                            .map_err(db)?;
                        Ok(Ok(Some(u)))
                    }
                    Err(e) => Ok(Err(e)),
                }
            })
            .await;
        match r {
            Ok(r) => r,
            Err(e) => Err(e.into()),
        }
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<(User, String)>, StoreError> {
        let key = username.to_lowercase();
        self.tx(move |tx| {
            tx.query_row(
                &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE username_key = ?1"),
                [key],
                |r| Ok((user_from_row(r)?, r.get(8)?)),
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn find_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.tx(move |tx| get_user(tx, id).map_err(db)).await
    }

    async fn password_hash(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        self.tx(move |tx| {
            tx.query_row(
                "SELECT password_hash FROM users WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn bump_tokens_not_before(&self, id: Uuid, now: i64) -> Result<Option<i64>, StoreError> {
        self.tx(move |tx| {
            tx.execute(
                &format!("UPDATE users SET {BUMP} WHERE id = ?1"),
                params![id.to_string(), now, now_us()],
            )
            .map_err(db)?;
            Ok(get_user(tx, id).map_err(db)?.map(|u| u.tokens_not_before))
        })
        .await
    }

    async fn set_password(
        &self,
        id: Uuid,
        hash: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let hash = hash.to_owned();
        self.tx(move |tx| {
            tx.execute(
                &format!("UPDATE users SET password_hash = ?4, {BUMP} WHERE id = ?1"),
                params![id.to_string(), now, now_us(), hash],
            )
            .map_err(db)?;
            Ok(get_user(tx, id).map_err(db)?.map(|u| u.tokens_not_before))
        })
        .await
    }

    async fn upgrade_hash(&self, id: Uuid, old: &str, new: &str) -> Result<(), StoreError> {
        let (old, new) = (old.to_owned(), new.to_owned());
        self.tx(move |tx| {
            tx.execute(
                "UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2",
                params![id.to_string(), old, new],
            )
            .map(|_| ())
            .map_err(db)
        })
        .await
    }

    async fn set_roles(
        &self,
        id: Uuid,
        roles: &[Role],
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        let roles = roles_json(roles);
        self.tx(move |tx| {
            tx.execute(
                &format!("UPDATE users SET roles = ?4, {BUMP} WHERE id = ?1"),
                params![id.to_string(), now, now_us(), roles],
            )
            .map_err(db)?;
            get_user(tx, id).map_err(db)
        })
        .await
    }

    async fn set_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        self.tx(move |tx| {
            if disabled {
                tx.execute(
                    &format!("UPDATE users SET disabled = 1, {BUMP} WHERE id = ?1"),
                    params![id.to_string(), now, now_us()],
                )
            } else {
                tx.execute(
                    "UPDATE users SET disabled = 0, updated_at_us = ?2 WHERE id = ?1",
                    params![id.to_string(), now_us()],
                )
            }
            .map_err(db)?;
            get_user(tx, id).map_err(db)
        })
        .await
    }

    async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        self.tx(move |tx| {
            Ok(tx
                .execute("DELETE FROM users WHERE id = ?1", [id.to_string()])
                .map_err(db)?
                == 1)
        })
        .await
    }

    async fn list(&self, cursor: Option<UserCursor>, limit: i64) -> Result<Vec<User>, StoreError> {
        self.tx(move |tx| {
            let (at, id) = match cursor {
                Some((at, id)) => (
                    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX),
                    id.to_string(),
                ),
                None => (i64::MIN, String::new()),
            };
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE (created_at_us, id) > (?1, ?2)
                     ORDER BY created_at_us, id LIMIT ?3"
                ))
                .map_err(db)?;
            let rows = stmt
                .query_map(params![at, id, limit], user_from_row)
                .map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn has_current(&self) -> Result<bool, StoreError> {
        self.tx(|tx| {
            Ok(tx
                .query_row(
                    "SELECT 1 FROM signing_keys WHERE state = 'current' LIMIT 1",
                    [],
                    |_| Ok(()),
                )
                .optional()
                .map_err(db)?
                .is_some())
        })
        .await
    }

    async fn insert_if_no_current(&self, key: NewKey) -> Result<bool, StoreError> {
        self.tx(move |tx| {
            let exists = tx
                .query_row(
                    "SELECT 1 FROM signing_keys WHERE state = 'current' LIMIT 1",
                    [],
                    |_| Ok(()),
                )
                .optional()
                .map_err(db)?
                .is_some();
            if exists {
                return Ok(false);
            }
            insert_key(tx, &key, "current")?;
            Ok(true)
        })
        .await
    }

    async fn load(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.tx(|tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT kid, format_version, private_key, state, created_at_us, activated_at_us,
                       activate_after, remove_after, retired_at_us
                     FROM signing_keys ORDER BY created_at_us DESC, kid",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(StoredKey {
                        kid: r.get(0)?,
                        format_version: r.get(1)?,
                        private: r.get::<_, Vec<u8>>(2)?.into(),
                        state: r.get(3)?,
                        times: KeyTimes {
                            created_at: r.get::<_, i64>(4)? / 1_000_000,
                            activated_at: r.get::<_, Option<i64>>(5)?.map(|us| us / 1_000_000),
                            activate_after: r.get(6)?,
                            retired_at: r.get::<_, Option<i64>>(8)?.map(|us| us / 1_000_000),
                            remove_after: r.get(7)?,
                        },
                    })
                })
                .map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn add_next(&self, key: NewKey, activate_after: i64) -> Result<bool, StoreError> {
        self.tx(move |tx| {
            let pending = tx
                .query_row("SELECT 1 FROM signing_keys WHERE state = 'next'", [], |_| {
                    Ok(())
                })
                .optional()
                .map_err(db)?
                .is_some();
            if pending {
                return Ok(false);
            }
            insert_key(tx, &key, "next")?;
            tx.execute(
                "UPDATE signing_keys SET activate_after = ?2, activated_at_us = NULL WHERE kid = ?1",
                params![key.kid, activate_after],
            )
            .map_err(db)?;
            Ok(true)
        })
        .await
    }

    async fn advance(&self, now: i64, retire_for: i64) -> Result<bool, StoreError> {
        self.tx(move |tx| {
            let due: Option<String> = tx
                .query_row(
                    "SELECT kid FROM signing_keys WHERE state = 'next' AND activate_after <= ?1",
                    [now],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            let mut changed = false;
            if let Some(kid) = due {
                tx.execute(
                    "UPDATE signing_keys SET state = 'retired', retired_at_us = ?1, remove_after = ?2
                     WHERE state = 'current'",
                    params![now_us(), now + retire_for],
                )
                .map_err(db)?;
                tx.execute(
                    "UPDATE signing_keys SET state = 'current', activated_at_us = ?2 WHERE kid = ?1",
                    params![kid, now_us()],
                )
                .map_err(db)?;
                changed = true;
            }
            let removed = tx
                .execute(
                    "DELETE FROM signing_keys WHERE state = 'retired' AND remove_after IS NOT NULL AND remove_after <= ?1",
                    [now],
                )
                .map_err(db)?;
            Ok(changed || removed > 0)
        })
        .await
    }

    async fn replace_all(&self, key: NewKey) -> Result<Vec<String>, StoreError> {
        self.tx(move |tx| {
            let removed = {
                let mut stmt = tx
                    .prepare("DELETE FROM signing_keys RETURNING kid")
                    .map_err(db)?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(db)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)?
            };
            insert_key(tx, &key, "current")?;
            Ok(removed)
        })
        .await
    }

    async fn reseal(
        &self,
        kid: &str,
        old: &[u8],
        format_version: i32,
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let (kid, old, new) = (kid.to_owned(), old.to_vec(), new.to_vec());
        self.tx(move |tx| {
            Ok(tx
                .execute(
                    "UPDATE signing_keys SET private_key = ?3, format_version = ?4
                     WHERE kid = ?1 AND private_key = ?2",
                    params![kid, old, new, format_version],
                )
                .map_err(db)?
                == 1)
        })
        .await
    }
}

fn insert_key(tx: &Connection, key: &NewKey, state: &str) -> Result<(), StoreError> {
    let jwk = serde_json::to_string(&key.public_jwk).map_err(other)?;
    let now = now_us();
    let activated = (state == "current").then_some(now);
    tx.execute(
        "INSERT INTO signing_keys (kid, format_version, private_key, public_jwk, state, created_at_us, activated_at_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            key.kid,
            key.format_version,
            key.private.expose_secret(),
            jwk,
            state,
            now,
            activated
        ],
    )
    .map_err(db)?;
    Ok(())
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        UserStore::ping(self).await
    }

    async fn create(&self, s: &NewSession, now: i64) -> Result<(), StoreError> {
        let s = s.clone();
        let leeway = self.leeway;
        self.tx(move |tx| {
            let until = s.refresh_exp + leeway;
            tx.execute(
                "INSERT OR REPLACE INTO sessions (sid, sub, rt, auth_time, abs_exp, last_used, client_id, scope, ua, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?6, ?7, ?8, ?9)",
                params![s.sid, s.sub, s.refresh_jti, now, s.abs_exp, s.client_id, s.scope, s.user_agent, until],
            )
            .map_err(db)?;
            tx.execute(
                "INSERT OR REPLACE INTO refresh_tokens (jti, sid, sub, state, spent_at, expires_at)
                 VALUES (?1, ?2, ?3, 'live', NULL, ?4)",
                params![s.refresh_jti, s.sid, s.sub, until],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
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
        let (old, new) = (old_jti.to_owned(), new_jti.to_owned());
        let (leeway, retention) = (self.leeway, self.retention);
        let (rotation, revoked) = self
            .tx(move |tx| {
                let r: Option<(String, String, String, Option<i64>)> = tx
                    .query_row(
                        "SELECT sid, sub, state, spent_at FROM refresh_tokens WHERE jti = ?1 AND expires_at > ?2",
                        params![old, now],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()
                    .map_err(db)?;
                let Some((sid, sub, state, spent_at)) = r else {
                    return Ok((Rotation::Invalid, false));
                };
                if state == "spent" {
                    if grace > 0 && now - spent_at.unwrap_or(0) <= grace {
                        return Ok((Rotation::Grace, false));
                    }
                    end_session(tx, &sid).map_err(db)?;
                    let e = RevocationEvent::Sid { value: sid.clone(), exp: revoke_until };
                    revoke(tx, &e, leeway, retention).map_err(db)?;
                    return Ok((Rotation::Reused { sid }, true));
                }
                let s: Option<(i64, String)> = tx
                    .query_row(
                        "SELECT abs_exp, rt FROM sessions WHERE sid = ?1 AND expires_at > ?2",
                        params![sid, now],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(db)?;
                let Some((abs, rt)) = s.filter(|(_, rt)| *rt == old) else {
                    tx.execute("DELETE FROM refresh_tokens WHERE jti = ?1", [&old]).map_err(db)?;
                    return Ok((Rotation::Invalid, false));
                };
                let _ = rt;
                if now >= abs {
                    end_session(tx, &sid).map_err(db)?;
                    return Ok((Rotation::Invalid, false));
                }
                let exp = (now + idle_ttl).min(abs);
                tx.execute(
                    "UPDATE refresh_tokens SET state = 'spent', spent_at = ?2 WHERE jti = ?1",
                    params![old, now],
                )
                .map_err(db)?;
                tx.execute(
                    "INSERT OR REPLACE INTO refresh_tokens (jti, sid, sub, state, spent_at, expires_at)
                     VALUES (?1, ?2, ?3, 'live', NULL, ?4)",
                    params![new, sid, sub, exp + leeway],
                )
                .map_err(db)?;
                tx.execute(
                    "UPDATE sessions SET rt = ?2, last_used = ?3, expires_at = ?4 WHERE sid = ?1",
                    params![sid, new, now, exp + leeway],
                )
                .map_err(db)?;
                Ok((
                    Rotation::Rotated {
                        sid,
                        refresh_exp: exp,
                        abs_exp: abs,
                    },
                    false,
                ))
            })
            .await?;
        if revoked {
            self.notify_events();
        }
        Ok(rotation)
    }

    async fn list(&self, sub: &str, now: i64) -> Result<Vec<SessionInfo>, StoreError> {
        let sub = sub.to_owned();
        self.tx(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT sid, auth_time, last_used, abs_exp, client_id, ua FROM sessions
                     WHERE sub = ?1 AND expires_at > ?2 ORDER BY last_used DESC, sid",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![sub, now], |r| {
                    Ok(SessionInfo {
                        sid: r.get(0)?,
                        created_at: r.get(1)?,
                        last_used_at: r.get(2)?,
                        expires_at: r.get(3)?,
                        client_id: r.get(4)?,
                        user_agent: r.get(5)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn end(
        &self,
        sub: &str,
        sid: &str,
        now: i64,
        revoke_until: i64,
    ) -> Result<bool, StoreError> {
        let (sub, sid) = (sub.to_owned(), sid.to_owned());
        let (leeway, retention) = (self.leeway, self.retention);
        let ended = self
            .tx(move |tx| {
                let owner: Option<String> = tx
                    .query_row(
                        "SELECT sub FROM sessions WHERE sid = ?1 AND expires_at > ?2",
                        params![sid, now],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db)?;
                if owner.as_deref() != Some(sub.as_str()) {
                    return Ok(false);
                }
                end_session(tx, &sid).map_err(db)?;
                let e = RevocationEvent::Sid {
                    value: sid,
                    exp: revoke_until,
                };
                revoke(tx, &e, leeway, retention).map_err(db)?;
                Ok(true)
            })
            .await?;
        if ended {
            self.notify_events();
        }
        Ok(ended)
    }

    async fn end_all(
        &self,
        sub: &str,
        now: i64,
        iat_before: i64,
        revoke_until: i64,
    ) -> Result<u64, StoreError> {
        let sub = sub.to_owned();
        let (leeway, retention) = (self.leeway, self.retention);
        let n = self
            .tx(move |tx| {
                let sids: Vec<String> = {
                    let mut stmt = tx
                        .prepare_cached(
                            "SELECT sid FROM sessions WHERE sub = ?1 AND expires_at > ?2",
                        )
                        .map_err(db)?;
                    let rows = stmt
                        .query_map(params![sub, now], |r| r.get(0))
                        .map_err(db)?;
                    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)?
                };
                for sid in &sids {
                    end_session(tx, sid).map_err(db)?;
                }
                tx.execute("DELETE FROM sessions WHERE sub = ?1", [&sub])
                    .map_err(db)?;
                let e = RevocationEvent::Sub {
                    value: sub,
                    iat_before,
                    exp: revoke_until,
                };
                revoke(tx, &e, leeway, retention).map_err(db)?;
                Ok(sids.len() as u64)
            })
            .await?;
        self.notify_events();
        Ok(n)
    }
}

#[async_trait]
impl RevocationStore for SqliteStore {
    async fn revoke(&self, event: &RevocationEvent, _now: i64) -> Result<(), StoreError> {
        let event = event.clone();
        let (leeway, retention) = (self.leeway, self.retention);
        self.tx(move |tx| revoke(tx, &event, leeway, retention).map_err(db))
            .await?;
        self.notify_events();
        Ok(())
    }

    async fn is_revoked(&self, c: &AccessClaims) -> Result<bool, StoreError> {
        let (jti, sid, sub, iat) = (c.jti.clone(), c.sid.clone(), c.sub.clone(), c.iat);
        self.tx(move |tx| {
            let now = shared::unix_now();
            let hit = tx
                .query_row(
                    "SELECT 1 FROM revocations WHERE expires_at >= ?5 AND (
                       (type = 'jti' AND value = ?1) OR (type = 'sid' AND value = ?2)
                       OR (type = 'sub' AND value = ?3 AND ?4 < iat_before)) LIMIT 1",
                    params![jti, sid, sub, iat, now],
                    |_| Ok(()),
                )
                .optional()
                .map_err(db)?;
            Ok(hit.is_some())
        })
        .await
    }
}

fn stream_id(s: &str) -> Option<StreamId> {
    s.parse().ok()
}

#[async_trait]
impl RevocationFeed for SqliteStore {
    async fn feed_state(&self) -> Result<FeedState, StoreError> {
        self.tx(|tx| {
            let epoch = epoch(tx).map_err(db)?;
            let row = |sql: &str| {
                tx.query_row(sql, [], |r| {
                    Ok(StreamId {
                        ms: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                        seq: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    })
                })
                .optional()
                .map_err(db)
            };
            let last = row("SELECT ms, id FROM revocation_events ORDER BY id DESC LIMIT 1")?;
            let first = row("SELECT ms, id FROM revocation_events ORDER BY id ASC LIMIT 1")?;
            let trimmed = state_get(tx, "feed_trimmed_through")
                .map_err(db)?
                .and_then(|s| stream_id(&s));
            Ok(FeedState {
                epoch,
                last: last.or(trimmed).unwrap_or_default(),
                first,
                complete: trimmed.is_none(),
                trimmed_through: trimmed,
            })
        })
        .await
    }

    async fn live_entries(&self, now: i64) -> Result<Vec<RevocationEvent>, StoreError> {
        self.tx(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT type, value, exp, iat_before FROM revocations WHERE expires_at >= ?1",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([now], |r| {
                    Ok(RevocationEvent::from_parts(
                        &r.get::<_, String>(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                    ))
                })
                .map_err(db)?;
            Ok(rows
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)?
                .into_iter()
                .flatten()
                .collect())
        })
        .await
    }

    async fn events_after(
        &self,
        after: StreamId,
        limit: usize,
    ) -> Result<Vec<(StreamId, RevocationEvent)>, StoreError> {
        read_after(self, after, limit).await
    }

    async fn follower(&self) -> Result<Box<dyn FeedFollower>, StoreError> {
        Ok(Box::new(SqliteFollower {
            store: self.clone(),
            changes: self.events.subscribe(),
        }))
    }
}

async fn read_after(
    store: &SqliteStore,
    after: StreamId,
    limit: usize,
) -> Result<Vec<(StreamId, RevocationEvent)>, StoreError> {
    let ms = i64::try_from(after.ms).unwrap_or(i64::MAX);
    let seq = i64::try_from(after.seq).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    store
        .tx(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT ms, id, type, value, exp, iat_before FROM revocation_events
                     WHERE ms > ?1 OR (ms = ?1 AND id > ?2) ORDER BY id LIMIT ?3",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![ms, seq, limit], |r| {
                    let id = StreamId {
                        ms: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                        seq: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    };
                    Ok(RevocationEvent::from_parts(
                        &r.get::<_, String>(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    )
                    .map(|e| (id, e)))
                })
                .map_err(db)?;
            Ok(rows
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)?
                .into_iter()
                .flatten()
                .collect())
        })
        .await
}

/// How often a follower looks for events another process wrote (the CLI's revocations and
/// key rotations, which this process is not told of).
const OTHER_WRITERS_POLL: Duration = Duration::from_millis(250);

/// Waits for new events: those this process writes are signalled at each commit; those another
/// process writes (the CLI) are found by reading again every [`OTHER_WRITERS_POLL`].
struct SqliteFollower {
    store: SqliteStore,
    changes: tokio::sync::watch::Receiver<u64>,
}

#[async_trait]
impl FeedFollower for SqliteFollower {
    async fn wait_after(
        &mut self,
        after: StreamId,
        block: Duration,
        limit: usize,
    ) -> Result<Vec<(StreamId, RevocationEvent)>, StoreError> {
        let deadline = tokio::time::Instant::now() + block;
        loop {
            self.changes.borrow_and_update();
            let events = read_after(&self.store, after, limit).await?;
            if !events.is_empty() {
                return Ok(events);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wake = (now + OTHER_WRITERS_POLL).min(deadline);
            match tokio::time::timeout_at(wake, self.changes.changed()).await {
                Ok(Ok(())) | Err(_) => continue,
                Ok(Err(_)) => return Ok(Vec::new()),
            }
        }
    }
}

#[async_trait]
impl RateLimitStore for SqliteStore {
    async fn hit(&self, key: &str, window: Duration) -> Result<(u64, Duration), StoreError> {
        let key = key.to_owned();
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        self.tx(move |tx| {
            let now = shared::unix_now_ms();
            tx.execute(
                "INSERT INTO rate_limits (key, count, ends_ms) VALUES (?1, 1, ?2 + ?3)
                 ON CONFLICT (key) DO UPDATE SET
                   count = CASE WHEN ends_ms <= ?2 THEN 1 ELSE count + 1 END,
                   ends_ms = CASE WHEN ends_ms <= ?2 THEN ?2 + ?3 ELSE ends_ms END",
                params![key, now, window_ms],
            )
            .map_err(db)?;
            let (count, ends): (i64, i64) = tx
                .query_row(
                    "SELECT count, ends_ms FROM rate_limits WHERE key = ?1",
                    [&key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(db)?;
            Ok((
                u64::try_from(count).unwrap_or(0),
                Duration::from_millis(u64::try_from(ends - now).unwrap_or(0)),
            ))
        })
        .await
    }

    async fn peek(&self, key: &str) -> Result<(u64, Duration), StoreError> {
        let key = key.to_owned();
        self.tx(move |tx| {
            let now = shared::unix_now_ms();
            let row: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT count, ends_ms FROM rate_limits WHERE key = ?1 AND ends_ms > ?2",
                    params![key, now],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db)?;
            Ok(row.map_or((0, Duration::ZERO), |(count, ends)| {
                (
                    u64::try_from(count).unwrap_or(0),
                    Duration::from_millis(u64::try_from(ends - now).unwrap_or(0)),
                )
            }))
        })
        .await
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.tx(move |tx| {
            tx.execute("DELETE FROM rate_limits WHERE key = ?1", [key])
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn gate(
        &self,
        key: &str,
        policy: &Backoff,
        failed: bool,
    ) -> Result<(u64, Duration), StoreError> {
        let key = key.to_owned();
        let policy = *policy;
        self.tx(move |tx| {
            let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4);
            let now = shared::unix_now_ms();
            let (mut failures, mut next): (i64, i64) = tx
                .query_row(
                    "SELECT failures, next_ms FROM gates WHERE key = ?1 AND ends_ms > ?2",
                    params![key, now],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db)?
                .unwrap_or((0, 0));
            let delay = |f: i64| ms(policy.delay(u64::try_from(f).unwrap_or(0)));
            let count = |f: i64| u64::try_from(f).unwrap_or(0);
            let write = |f: i64, next: i64| {
                tx.execute(
                    "INSERT INTO gates (key, failures, next_ms, ends_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key) DO UPDATE SET
                       failures = excluded.failures, next_ms = excluded.next_ms,
                       ends_ms = excluded.ends_ms",
                    params![key, f, next, now + ms(policy.window) + ms(policy.max)],
                )
                .map(|_| ())
                .map_err(db)
            };
            if failed {
                failures += 1;
                next = next.max(now + delay(failures));
                write(failures, next)?;
                return Ok((count(failures), Duration::ZERO));
            }
            if now < next {
                return Ok((
                    count(failures),
                    Duration::from_millis(u64::try_from(next - now).unwrap_or(0)),
                ));
            }
            let d = delay(failures);
            if d > 0 {
                write(failures, now + d)?;
            }
            Ok((count(failures), Duration::ZERO))
        })
        .await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record(&self, user: &str, event: &AuditEvent) -> Result<(), StoreError> {
        let user = user.to_owned();
        let json = serde_json::to_string(event).map_err(other)?;
        self.tx(move |tx| {
            tx.execute(
                "INSERT INTO audit (user_id, event) VALUES (?1, ?2)",
                params![user, json],
            )
            .map_err(db)?;
            tx.execute(
                "DELETE FROM audit WHERE user_id = ?1 AND id NOT IN
                   (SELECT id FROM audit WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2)",
                params![user, i64::try_from(AUDIT_KEEP).unwrap_or(100)],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn recent(&self, user: &str, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let user = user.to_owned();
        let limit = i64::try_from(limit.clamp(1, AUDIT_KEEP)).unwrap_or(100);
        self.tx(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT event FROM audit WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![user, limit], |r| r.get::<_, String>(0))
                .map_err(db)?;
            Ok(rows
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)?
                .iter()
                .filter_map(|r| serde_json::from_str(r).ok())
                .collect())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_made_before_the_key_lifecycle_gain_its_columns() {
        let dir = std::env::temp_dir().join(format!("sqlite-old-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("auth.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE signing_keys (kid TEXT PRIMARY KEY, alg TEXT NOT NULL DEFAULT 'RS256',
                 format_version INTEGER NOT NULL, private_key BLOB NOT NULL, public_jwk TEXT NOT NULL,
                 state TEXT NOT NULL, created_at_us INTEGER NOT NULL, retired_at_us INTEGER);",
            )
            .unwrap();
        let store = SqliteStore::open(&path, 30, 100).unwrap();
        drop(store);
        let conn = Connection::open(&path).unwrap();
        for (_, column, _) in ADDED_COLUMNS {
            let exists = conn
                .prepare("SELECT 1 FROM pragma_table_info('signing_keys') WHERE name = ?1")
                .unwrap()
                .exists([column])
                .unwrap();
            assert!(exists, "{column}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
