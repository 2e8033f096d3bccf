//! Users in the embedded store: accounts, credentials, roles, the bootstrap admin.

use super::*;

pub(super) const USER_COLUMNS: &str =
    "id, username, email, roles, disabled, tokens_not_before, created_at_us, updated_at_us";

pub(super) fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
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

pub(super) fn roles_json(roles: &[Role]) -> String {
    serde_json::to_string(&roles.iter().map(Role::as_str).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

pub(super) fn get_user(tx: &Connection, id: Uuid) -> rusqlite::Result<Option<User>> {
    tx.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
        [id.to_string()],
        user_from_row,
    )
    .optional()
}

pub(super) fn insert_user(tx: &Connection, user: &NewUser) -> Result<User, CreateUserError> {
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
pub(super) const BUMP: &str =
    "tokens_not_before = MAX(?2 + 1, tokens_not_before + 1), updated_at_us = ?3";

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
            tx.execute("DELETE FROM consents WHERE user_id = ?1", [id.to_string()])
                .map_err(db)?;
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
