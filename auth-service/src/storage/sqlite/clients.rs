//! Registered clients in the embedded store.

use super::*;

pub(super) const CLIENT_COLUMNS: &str = "client_id, name, scopes, audiences, disabled, tokens_not_before, created_at, updated_at, previous_secret_expires_at, secret_hash, previous_secret_hash, profile";

pub(super) fn client_from_row(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(RegisteredClient, ClientSecrets)> {
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
            profile: {
                let text: String = row.get(11)?;
                serde_json::from_str(&text).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        11,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?
            },
        },
        ClientSecrets {
            current: row.get(9)?,
            previous: row.get(10)?,
        },
    ))
}

pub(super) fn get_client(
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

pub(super) fn json_list(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

fn profile_json(profile: &crate::storage::ClientProfile) -> Result<String, StoreError> {
    serde_json::to_string(profile).map_err(other)
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn create_client(
        &self,
        c: NewClient,
        now: i64,
    ) -> Result<RegisteredClient, CreateClientError> {
        let profile = profile_json(&c.profile)?;
        let created = self
            .tx(move |tx| {
                // A tombstone of the id is taken over, keeping the larger `tokens_not_before`.
                let inserted = tx
                    .execute(
                        "INSERT INTO clients (client_id, name, secret_hash, scopes, audiences, tokens_not_before, created_at, updated_at, profile)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6 + 1, ?6, ?6, ?7)
                         ON CONFLICT (client_id) DO UPDATE SET name = excluded.name, profile = excluded.profile,
                           secret_hash = excluded.secret_hash, previous_secret_hash = NULL,
                           previous_secret_expires_at = NULL, scopes = excluded.scopes,
                           audiences = excluded.audiences, disabled = 0, deleted = 0,
                           tokens_not_before = MAX(excluded.tokens_not_before, clients.tokens_not_before),
                           created_at = excluded.created_at, updated_at = excluded.updated_at
                         WHERE clients.deleted = 1",
                        params![c.client_id, c.name, c.secret_hash, json_list(&c.scopes), json_list(&c.audiences), now, profile],
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
        let profile = u.profile.as_ref().map(profile_json).transpose()?;
        self.tx(move |tx| {
            tx.execute(
                "UPDATE clients SET name = COALESCE(?2, name), scopes = COALESCE(?3, scopes),
                 profile = COALESCE(?8, profile),
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
                    now,
                    profile
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
impl crate::storage::ConsentStore for SqliteStore {
    async fn find_consent(
        &self,
        sub: &str,
        client_id: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let (sub, client_id) = (sub.to_owned(), client_id.to_owned());
        self.tx(move |tx| {
            let text: Option<String> = tx
                .query_row(
                    "SELECT scopes FROM consents WHERE user_id = ?1 AND client_id = ?2",
                    params![sub, client_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            text.map(|t| serde_json::from_str(&t).map_err(other))
                .transpose()
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
        let (sub, client_id, scopes) = (sub.to_owned(), client_id.to_owned(), scopes.to_vec());
        self.tx(move |tx| {
            let old: Vec<String> = tx
                .query_row(
                    "SELECT scopes FROM consents WHERE user_id = ?1 AND client_id = ?2",
                    params![sub, client_id],
                    |r| r.get::<_, String>(0),
                )
                .optional()
                .map_err(db)?
                .map(|t| serde_json::from_str(&t).map_err(other))
                .transpose()?
                .unwrap_or_default();
            let mut all: Vec<String> = old.into_iter().chain(scopes).collect();
            all.sort();
            all.dedup();
            tx.execute(
                "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
                params![sub, client_id, json_list(&all), now],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn list_consents(&self, sub: &str) -> Result<Vec<crate::storage::Consent>, StoreError> {
        let sub = sub.to_owned();
        self.tx(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT client_id, scopes, granted_at FROM consents WHERE user_id = ?1 ORDER BY client_id",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([sub], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
                })
                .map_err(db)?;
            let mut out = Vec::new();
            for row in rows {
                let (client_id, scopes, granted_at) = row.map_err(db)?;
                out.push(crate::storage::Consent {
                    client_id,
                    scopes: serde_json::from_str(&scopes).map_err(other)?,
                    granted_at,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn revoke_consent(&self, sub: &str, client_id: &str) -> Result<bool, StoreError> {
        let (sub, client_id) = (sub.to_owned(), client_id.to_owned());
        self.tx(move |tx| {
            Ok(tx
                .execute(
                    "DELETE FROM consents WHERE user_id = ?1 AND client_id = ?2",
                    params![sub, client_id],
                )
                .map_err(db)?
                == 1)
        })
        .await
    }
}
