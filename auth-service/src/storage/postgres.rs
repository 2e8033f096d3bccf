//! PostgreSQL backend: users and signing keys, through a deadpool connection pool. Migrations are
//! embedded and applied at start under an advisory lock (replicas may start together).

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::{
    ClientSecrets, ClientStore, ClientUpdate, CreateClientError, CreateUserError, KeyState,
    KeyStore, KeyTimes, NewClient, NewUser, RegisteredClient, StoreError, StoredKey, User,
    UserCursor, UserStore,
};
use crate::crypto::keys::NewKey;
use crate::domain::Role;

/// Advisory-lock ids (`'auth'` in the high bytes, then a purpose).
const LOCK_MIGRATIONS: i64 = 0x6175_7468_0000_0001;
const LOCK_KEYS: i64 = 0x6175_7468_0000_0002;
const LOCK_BOOTSTRAP: i64 = 0x6175_7468_0000_0003;

/// Embedded migrations: (version, name, SQL). Append only.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "key_lifecycle",
        include_str!("../../migrations/postgres/0002_key_lifecycle.sql"),
    ),
    (
        3,
        "clients",
        include_str!("../../migrations/postgres/0003_clients.sql"),
    ),
    (
        4,
        "client_profiles",
        include_str!("../../migrations/postgres/0004_client_profiles.sql"),
    ),
    (
        5,
        "consents",
        include_str!("../../migrations/postgres/0005_consents.sql"),
    ),
];

const CLIENT_COLUMNS: &str = "client_id, name, scopes, audiences, disabled, tokens_not_before, created_at, updated_at, previous_secret_expires_at, profile";

const USER_COLUMNS: &str =
    "id, username, email, roles, disabled, tokens_not_before, created_at, updated_at";

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    timeout: Duration,
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

fn classify_pg(e: tokio_postgres::Error) -> StoreError {
    let io = || {
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            if s.is::<std::io::Error>() {
                return true;
            }
            source = s.source();
        }
        false
    };
    let unavailable = match e.code() {
        // No answer from the server: closed connection or I/O failure. (Encoding errors also
        // have no code, but they are bugs, not outages.)
        None => e.is_closed() || io(),
        Some(code) => matches!(
            code,
            &SqlState::ADMIN_SHUTDOWN
                | &SqlState::CRASH_SHUTDOWN
                | &SqlState::CANNOT_CONNECT_NOW
                | &SqlState::TOO_MANY_CONNECTIONS
                | &SqlState::CONNECTION_FAILURE
                | &SqlState::CONNECTION_EXCEPTION
                | &SqlState::READ_ONLY_SQL_TRANSACTION
        ),
    };
    if unavailable {
        StoreError::Unavailable(e.into())
    } else {
        StoreError::Other(e.into())
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        classify_pg(e)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => classify_pg(e),
            other => StoreError::Unavailable(anyhow::anyhow!("postgres pool: {other}")),
        }
    }
}

fn user_from_row(row: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        roles: row.try_get("roles")?,
        disabled: row.try_get("disabled")?,
        tokens_not_before: row.try_get("tokens_not_before")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn client_from_row(row: &Row) -> Result<RegisteredClient, StoreError> {
    Ok(RegisteredClient {
        client_id: row.try_get("client_id")?,
        name: row.try_get("name")?,
        scopes: row.try_get("scopes")?,
        audiences: row.try_get("audiences")?,
        disabled: row.try_get("disabled")?,
        tokens_not_before: row.try_get("tokens_not_before")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        previous_secret_expires_at: row.try_get("previous_secret_expires_at")?,
        profile: serde_json::from_value(row.try_get("profile")?)
            .map_err(|e| StoreError::Other(anyhow::Error::new(e).context("a client's profile")))?,
    })
}

fn profile_json(profile: &crate::storage::ClientProfile) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(profile).map_err(|e| StoreError::Other(e.into()))
}

fn role_names(roles: &[Role]) -> Vec<&str> {
    roles.iter().map(Role::as_str).collect()
}

impl PgStore {
    /// Builds the pool (connections open lazily) from a `postgres://` URL. `sslmode` follows
    /// libpq: `disable`; `allow`/`prefer` (default)/`require` encrypt without authenticating the
    /// server; `verify-ca`/`verify-full` verify it against the system roots or `sslrootcert`.
    pub fn new(url: &SecretString, pool_size: usize, timeout: Duration) -> anyhow::Result<Self> {
        let (url, tls) = tls::from_url(url.expose_secret())?;
        let mut cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| anyhow::anyhow!("AUTH_DATABASE_URL: {e}"))?;
        cfg.connect_timeout(timeout);
        if cfg.get_application_name().is_none() {
            cfg.application_name("auth-service");
        }
        Self::with_config(cfg, tls, pool_size, timeout)
    }

    fn with_config(
        config: tokio_postgres::Config,
        tls: tokio_postgres_rustls::MakeRustlsConnect,
        pool_size: usize,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mgr = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()?;
        Ok(PgStore {
            pool,
            timeout,
            config,
            tls,
        })
    }

    /// Another pool to the same database. Connections open lazily on the runtime that first uses
    /// them: a pool per HTTP worker keeps each request's I/O on its worker's thread.
    pub fn replica(&self, pool_size: usize) -> anyhow::Result<PgStore> {
        Self::with_config(
            self.config.clone(),
            self.tls.clone(),
            pool_size,
            self.timeout,
        )
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Runs `f` with a deadline, so a stalled connection becomes a 503, not a hung request.
    async fn timed<T>(
        &self,
        f: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, f)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(anyhow::anyhow!(
                    "postgres timed out"
                )))
            })
    }

    /// Applies the embedded migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_MIGRATIONS])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM schema_migrations", &[])
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let known = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
        if let Some(v) = applied.iter().find(|v| **v > known) {
            return Err(StoreError::Other(anyhow::anyhow!(
                "the database has migration {v}, newer than this binary knows ({known}): refusing to run an old version"
            )));
        }
        for (version, name, sql) in MIGRATIONS {
            if !applied.contains(version) {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    &[version, name],
                )
                .await?;
                tracing::info!(version, name, "applied migration");
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn query_user(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<User>, StoreError> {
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(sql).await?;
            let row = client.query_opt(&stmt, params).await?;
            row.as_ref().map(user_from_row).transpose()
        })
        .await
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.timed(async {
            self.client().await?.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }

    async fn create(&self, user: NewUser) -> Result<User, CreateUserError> {
        let sql = format!(
            "INSERT INTO users (id, username, email, password_hash, roles) VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLUMNS}"
        );
        match self
            .timed(async {
                let client = self.client().await?;
                let row = client
                    .query_one(
                        &sql,
                        &[
                            &Uuid::new_v4(),
                            &user.username.as_str(),
                            &user.email.as_ref().map(|e| e.as_str()),
                            &user.password_hash,
                            &role_names(&user.roles),
                        ],
                    )
                    .await;
                match row {
                    Ok(row) => Ok(Ok(user_from_row(&row)?)),
                    Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                        Ok(Err(CreateUserError::UsernameTaken))
                    }
                    Err(e) => Err(StoreError::from(e)),
                }
            })
            .await
        {
            Ok(result) => result,
            Err(e) => Err(e.into()),
        }
    }

    async fn create_bootstrap_admin(&self, user: NewUser) -> Result<Option<User>, CreateUserError> {
        let mut client = self.client().await.map_err(CreateUserError::Store)?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_BOOTSTRAP])
            .await
            .map_err(StoreError::from)?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM service_state WHERE key = 'bootstrap_admin_created'",
                &[],
            )
            .await
            .map_err(StoreError::from)?
            .is_some();
        let empty = tx
            .query_opt("SELECT 1 FROM users LIMIT 1", &[])
            .await
            .map_err(StoreError::from)?
            .is_none();
        if done || !empty {
            return Ok(None);
        }
        let sql = format!(
            "INSERT INTO users (id, username, email, password_hash, roles) VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLUMNS}"
        );
        let row = tx
            .query_one(
                &sql,
                &[
                    &Uuid::new_v4(),
                    &user.username.as_str(),
                    &user.email.as_ref().map(|e| e.as_str()),
                    &user.password_hash,
                    &role_names(&user.roles),
                ],
            )
            .await
            .map_err(StoreError::from)?;
        tx.execute(
            "INSERT INTO service_state (key, value) VALUES ('bootstrap_admin_created', $1)",
            &[&user.username.as_str()],
        )
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Some(user_from_row(&row)?))
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<(User, String)>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(username) = lower($1)"
        );
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(&sql).await?;
            let row = client.query_opt(&stmt, &[&username]).await?;
            match row {
                Some(r) => Ok(Some((user_from_row(&r)?, r.try_get("password_hash")?))),
                None => Ok(None),
            }
        })
        .await
    }

    async fn find_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.query_user(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
            &[&id],
        )
        .await
    }

    async fn password_hash(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        self.timed(async {
            let row = self
                .client()
                .await?
                .query_opt("SELECT password_hash FROM users WHERE id = $1", &[&id])
                .await?;
            Ok(row.map(|r| r.try_get(0)).transpose()?)
        })
        .await
    }

    async fn bump_tokens_not_before(&self, id: Uuid, now: i64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .query_user(
                &format!(
                    "UPDATE users SET tokens_not_before = GREATEST($2::bigint + 1, tokens_not_before + 1), updated_at = now()
                     WHERE id = $1 RETURNING {USER_COLUMNS}"
                ),
                &[&id, &now],
            )
            .await?
            .map(|u| u.tokens_not_before))
    }

    async fn set_password(
        &self,
        id: Uuid,
        hash: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        Ok(self
            .query_user(
                &format!(
                    "UPDATE users SET password_hash = $2, tokens_not_before = GREATEST($3::bigint + 1, tokens_not_before + 1),
                     updated_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}"
                ),
                &[&id, &hash, &now],
            )
            .await?
            .map(|u| u.tokens_not_before))
    }

    async fn upgrade_hash(&self, id: Uuid, old: &str, new: &str) -> Result<(), StoreError> {
        self.timed(async {
            self.client()
                .await?
                .execute(
                    "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
                    &[&id, &old, &new],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn set_roles(
        &self,
        id: Uuid,
        roles: &[Role],
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        self.query_user(
            &format!(
                "UPDATE users SET roles = $2, tokens_not_before = GREATEST($3::bigint + 1, tokens_not_before + 1),
                 updated_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}"
            ),
            &[&id, &role_names(roles), &now],
        )
        .await
    }

    async fn set_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        self.query_user(
            &format!(
                "UPDATE users SET disabled = $2,
                 tokens_not_before = CASE WHEN $2 THEN GREATEST($3::bigint + 1, tokens_not_before + 1) ELSE tokens_not_before END,
                 updated_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}"
            ),
            &[&id, &disabled, &now],
        )
        .await
    }

    async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        self.timed(async {
            Ok(self
                .client()
                .await?
                .execute("DELETE FROM users WHERE id = $1", &[&id])
                .await?
                == 1)
        })
        .await
    }

    async fn list(&self, cursor: Option<UserCursor>, limit: i64) -> Result<Vec<User>, StoreError> {
        self.timed(async {
            let client = self.client().await?;
            let rows = match cursor {
                None => {
                    client
                        .query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id LIMIT $1"), &[&limit])
                        .await?
                }
                Some((at, id)) => {
                    client
                        .query(
                            &format!(
                                "SELECT {USER_COLUMNS} FROM users WHERE (created_at, id) > ($1, $2) ORDER BY created_at, id LIMIT $3"
                            ),
                            &[&at, &id, &limit],
                        )
                        .await?
                }
            };
            rows.iter().map(user_from_row).collect()
        })
        .await
    }
}

fn user_uuid(sub: &str) -> Option<Uuid> {
    Uuid::parse_str(sub).ok()
}

fn merged(old: &[String], new: &[String]) -> Vec<String> {
    let mut all: Vec<String> = old.iter().chain(new).cloned().collect();
    all.sort();
    all.dedup();
    all
}

#[async_trait]
impl crate::storage::ConsentStore for PgStore {
    async fn find_consent(
        &self,
        sub: &str,
        client_id: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let Some(id) = user_uuid(sub) else {
            return Ok(None);
        };
        self.timed(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2",
                    &[&id, &client_id],
                )
                .await?;
            Ok(row.map(|r| r.try_get("scopes")).transpose()?)
        })
        .await
    }

    async fn grant_consent(
        &self,
        sub: &str,
        client_id: &str,
        scopes: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let Some(id) = user_uuid(sub) else {
            return Ok(());
        };
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let old: Vec<String> = tx
                .query_opt(
                    "SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2 FOR UPDATE",
                    &[&id, &client_id],
                )
                .await?
                .map(|r| r.try_get("scopes"))
                .transpose()?
                .unwrap_or_default();
            let all = merged(&old, scopes);
            tx.execute(
                "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = EXCLUDED.scopes, granted_at = EXCLUDED.granted_at",
                &[&id, &client_id, &all, &now],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn list_consents(&self, sub: &str) -> Result<Vec<crate::storage::Consent>, StoreError> {
        let Some(id) = user_uuid(sub) else {
            return Ok(vec![]);
        };
        self.timed(async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT client_id, scopes, granted_at FROM consents WHERE user_id = $1 ORDER BY client_id",
                    &[&id],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(crate::storage::Consent {
                        client_id: r.try_get("client_id")?,
                        scopes: r.try_get("scopes")?,
                        granted_at: r.try_get("granted_at")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn revoke_consent(&self, sub: &str, client_id: &str) -> Result<bool, StoreError> {
        let Some(id) = user_uuid(sub) else {
            return Ok(false);
        };
        self.timed(async {
            Ok(self
                .client()
                .await?
                .execute(
                    "DELETE FROM consents WHERE user_id = $1 AND client_id = $2",
                    &[&id, &client_id],
                )
                .await?
                == 1)
        })
        .await
    }
}

#[async_trait]
impl ClientStore for PgStore {
    async fn create_client(
        &self,
        c: NewClient,
        now: i64,
    ) -> Result<RegisteredClient, CreateClientError> {
        // A tombstone of the id is taken over, keeping the larger `tokens_not_before`.
        let sql = format!(
            "INSERT INTO clients (client_id, name, secret_hash, scopes, audiences, tokens_not_before, created_at, updated_at, profile)
             VALUES ($1, $2, $3, $4, $5, $6::bigint + 1, $6::bigint, $6::bigint, $7)
             ON CONFLICT (client_id) DO UPDATE SET name = EXCLUDED.name, profile = EXCLUDED.profile,
               secret_hash = EXCLUDED.secret_hash, previous_secret_hash = NULL,
               previous_secret_expires_at = NULL, scopes = EXCLUDED.scopes,
               audiences = EXCLUDED.audiences, disabled = false, deleted = false,
               tokens_not_before = GREATEST(EXCLUDED.tokens_not_before, clients.tokens_not_before),
               created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at
             WHERE clients.deleted
             RETURNING {CLIENT_COLUMNS}"
        );
        let profile = profile_json(&c.profile)?;
        let row = self
            .timed(async {
                let client = self.client().await?;
                Ok(client
                    .query_opt(
                        &sql,
                        &[
                            &c.client_id,
                            &c.name,
                            &c.secret_hash,
                            &c.scopes,
                            &c.audiences,
                            &now,
                            &profile,
                        ],
                    )
                    .await?)
            })
            .await?;
        match row {
            Some(row) => Ok(client_from_row(&row)?),
            None => Err(CreateClientError::Taken),
        }
    }

    async fn find_client(
        &self,
        id: &str,
    ) -> Result<Option<(RegisteredClient, ClientSecrets)>, StoreError> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS}, secret_hash, previous_secret_hash FROM clients WHERE client_id = $1 AND NOT deleted"
        );
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(&sql).await?;
            let Some(row) = client.query_opt(&stmt, &[&id]).await? else {
                return Ok(None);
            };
            let secrets = ClientSecrets {
                current: row.try_get("secret_hash")?,
                previous: row.try_get("previous_secret_hash")?,
            };
            Ok(Some((client_from_row(&row)?, secrets)))
        })
        .await
    }

    async fn list_clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        let sql =
            format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE NOT deleted ORDER BY client_id");
        self.timed(async {
            let rows = self.client().await?.query(&sql, &[]).await?;
            rows.iter().map(client_from_row).collect()
        })
        .await
    }

    async fn update_client(
        &self,
        id: &str,
        u: &ClientUpdate,
        now: i64,
    ) -> Result<Option<RegisteredClient>, StoreError> {
        let sql = format!(
            "UPDATE clients SET name = COALESCE($2::text, name), scopes = COALESCE($3::text[], scopes),
             audiences = COALESCE($4::text[], audiences), disabled = COALESCE($5::boolean, disabled),
             tokens_not_before = CASE WHEN $6::boolean THEN GREATEST($7::bigint + 1, tokens_not_before + 1) ELSE tokens_not_before END,
             profile = COALESCE($8::jsonb, profile),
             updated_at = $7::bigint WHERE client_id = $1 AND NOT deleted RETURNING {CLIENT_COLUMNS}"
        );
        let profile = u.profile.as_ref().map(profile_json).transpose()?;
        self.timed(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    &sql,
                    &[
                        &id,
                        &u.name,
                        &u.scopes,
                        &u.audiences,
                        &u.disabled,
                        &u.revoke_tokens,
                        &now,
                        &profile,
                    ],
                )
                .await?;
            row.as_ref().map(client_from_row).transpose()
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
        let sql = format!(
            "UPDATE clients SET
             previous_secret_hash = CASE WHEN $3::bigint > $4::bigint THEN secret_hash END,
             previous_secret_expires_at = CASE WHEN $3::bigint > $4::bigint THEN $3::bigint END,
             secret_hash = $2, updated_at = $4 WHERE client_id = $1 AND NOT deleted RETURNING {CLIENT_COLUMNS}"
        );
        self.timed(async {
            let row = self
                .client()
                .await?
                .query_opt(&sql, &[&id, &secret_hash, &previous_until, &now])
                .await?;
            row.as_ref().map(client_from_row).transpose()
        })
        .await
    }

    async fn delete_client(&self, id: &str, now: i64) -> Result<Option<i64>, StoreError> {
        self.timed(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "UPDATE clients SET deleted = true, disabled = true, secret_hash = ''::bytea,
                     previous_secret_hash = NULL, previous_secret_expires_at = NULL,
                     tokens_not_before = GREATEST($2::bigint + 1, tokens_not_before + 1),
                     updated_at = $2::bigint WHERE client_id = $1 AND NOT deleted
                     RETURNING tokens_not_before",
                    &[&id, &now],
                )
                .await?;
            Ok(row.map(|r| r.try_get(0)).transpose()?)
        })
        .await
    }
}

#[async_trait]
impl KeyStore for PgStore {
    async fn has_current(&self) -> Result<bool, StoreError> {
        self.timed(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "SELECT 1 FROM signing_keys WHERE state = 'current' LIMIT 1",
                    &[],
                )
                .await?;
            Ok(row.is_some())
        })
        .await
    }

    async fn insert_if_no_current(&self, key: NewKey) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEYS])
            .await?;
        if tx
            .query_opt(
                "SELECT 1 FROM signing_keys WHERE state = 'current' LIMIT 1",
                &[],
            )
            .await?
            .is_some()
        {
            return Ok(false);
        }
        insert_key(&tx, &key, KeyState::Current).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn load(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.timed(async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT kid, format_version, private_key, state, activate_after, remove_after,
                       extract(epoch FROM created_at)::bigint AS created,
                       extract(epoch FROM activated_at)::bigint AS activated,
                       extract(epoch FROM retired_at)::bigint AS retired
                     FROM signing_keys ORDER BY created_at DESC, kid",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(StoredKey {
                        kid: r.try_get("kid")?,
                        format_version: r.try_get("format_version")?,
                        private: r.try_get::<_, Vec<u8>>("private_key")?.into(),
                        state: KeyState::parse(r.try_get("state")?)?,
                        times: KeyTimes {
                            created_at: r.try_get("created")?,
                            activated_at: r.try_get("activated")?,
                            activate_after: r.try_get("activate_after")?,
                            retired_at: r.try_get("retired")?,
                            remove_after: r.try_get("remove_after")?,
                        },
                    })
                })
                .collect()
        })
        .await
    }

    async fn add_next(&self, key: NewKey, activate_after: i64) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEYS])
            .await?;
        if tx
            .query_opt("SELECT 1 FROM signing_keys WHERE state = 'next'", &[])
            .await?
            .is_some()
        {
            return Ok(false);
        }
        insert_key(&tx, &key, KeyState::Next).await?;
        tx.execute(
            "UPDATE signing_keys SET activate_after = $2, activated_at = NULL WHERE kid = $1",
            &[&key.kid, &activate_after],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn advance(&self, now: i64, retire_for: i64) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEYS])
            .await?;
        let mut changed = false;
        let due = tx
            .query_opt(
                "SELECT kid FROM signing_keys WHERE state = 'next' AND activate_after <= $1",
                &[&now],
            )
            .await?;
        if let Some(row) = due {
            let kid: String = row.try_get(0)?;
            tx.execute(
                "UPDATE signing_keys SET state = 'retired', retired_at = now(), remove_after = $1
                 WHERE state = 'current'",
                &[&(now + retire_for)],
            )
            .await?;
            tx.execute(
                "UPDATE signing_keys SET state = 'current', activated_at = now() WHERE kid = $1",
                &[&kid],
            )
            .await?;
            changed = true;
        }
        let removed = tx
            .execute(
                "DELETE FROM signing_keys WHERE state = 'retired' AND remove_after IS NOT NULL AND remove_after <= $1",
                &[&now],
            )
            .await?;
        tx.commit().await?;
        Ok(changed || removed > 0)
    }

    async fn replace_all(&self, key: NewKey) -> Result<Vec<String>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEYS])
            .await?;
        let rows = tx
            .query("DELETE FROM signing_keys RETURNING kid", &[])
            .await?;
        let removed = rows
            .iter()
            .map(|r| r.try_get::<_, String>(0))
            .collect::<Result<Vec<_>, _>>()?;
        insert_key(&tx, &key, KeyState::Current).await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn reseal(
        &self,
        kid: &str,
        old: &[u8],
        format_version: i32,
        new: &[u8],
    ) -> Result<bool, StoreError> {
        self.reseal_key(kid, old, format_version, new).await
    }
}

impl PgStore {
    async fn reseal_key(
        &self,
        kid: &str,
        old: &[u8],
        format_version: i32,
        new: &[u8],
    ) -> Result<bool, StoreError> {
        self.timed(async {
            Ok(self
                .client()
                .await?
                .execute(
                    "UPDATE signing_keys SET private_key = $4, format_version = $3
                     WHERE kid = $1 AND private_key = $2",
                    &[&kid, &old, &format_version, &new],
                )
                .await?
                == 1)
        })
        .await
    }
}

async fn insert_key(
    tx: &deadpool_postgres::Transaction<'_>,
    key: &NewKey,
    state: KeyState,
) -> Result<(), StoreError> {
    let jwk = serde_json::to_value(&key.public_jwk).map_err(|e| StoreError::Other(e.into()))?;
    let state = state.as_str();
    tx.execute(
        "INSERT INTO signing_keys (kid, alg, format_version, private_key, public_jwk, state, activated_at)
         VALUES ($1, $6, $2, $3, $4, $5, now())",
        &[&key.kid, &key.format_version, &key.private.expose_secret(), &jwk, &state, &key.algorithm_name()],
    )
    .await?;
    Ok(())
}

mod tls {
    //! libpq's `sslmode` on top of rustls.

    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use tokio_postgres_rustls::MakeRustlsConnect;

    /// Splits our `sslmode`/`sslrootcert` off the URL; returns the URL tokio-postgres understands
    /// and the TLS connector that implements the mode.
    pub fn from_url(url: &str) -> anyhow::Result<(String, MakeRustlsConnect)> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut mode = "prefer".to_owned();
        let mut root: Option<String> = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", v)) => mode = v.to_owned(),
                Some(("sslrootcert", v)) => root = Some(v.to_owned()),
                _ => kept.push(pair),
            }
        }
        let (pg_mode, verify) = match mode.as_str() {
            "disable" => ("disable", false),
            "allow" | "prefer" => ("prefer", false),
            "require" => ("require", false),
            "verify-ca" | "verify-full" => ("require", true),
            other => anyhow::bail!("AUTH_DATABASE_URL: unknown sslmode {other:?}"),
        };
        kept.push(match pg_mode {
            "disable" => "sslmode=disable",
            "prefer" => "sslmode=prefer",
            _ => "sslmode=require",
        });
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let config = if verify {
            let mut roots = rustls::RootCertStore::empty();
            match root {
                Some(path) => {
                    for cert in CertificateDer::pem_file_iter(&path)
                        .map_err(|e| anyhow::anyhow!("sslrootcert {path}: {e}"))?
                    {
                        roots.add(cert.map_err(|e| anyhow::anyhow!("sslrootcert {path}: {e}"))?)?;
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(cert);
                    }
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth()
        };
        Ok((
            format!("{base}?{}", kept.join("&")),
            MakeRustlsConnect::new(config),
        ))
    }

    /// libpq's `prefer`/`require`: the channel is encrypted and the handshake signature checked,
    /// but the certificate is not authenticated. Use `verify-full` to authenticate the server.
    #[derive(Debug)]
    struct EncryptOnly(Arc<CryptoProvider>);

    impl ServerCertVerifier for EncryptOnly {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
