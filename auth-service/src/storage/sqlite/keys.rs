//! Signing keys in the embedded store, and their lifecycle.

use super::*;

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
            insert_key(tx, &key, KeyState::Current)?;
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
                        state: KeyState::parse(&r.get::<_, String>(3)?)
                            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?,
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
            insert_key(tx, &key, KeyState::Next)?;
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
            insert_key(tx, &key, KeyState::Current)?;
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

pub(super) fn insert_key(tx: &Connection, key: &NewKey, state: KeyState) -> Result<(), StoreError> {
    let jwk = serde_json::to_string(&key.public_jwk).map_err(other)?;
    let now = now_us();
    let activated = (state == KeyState::Current).then_some(now);
    tx.execute(
        "INSERT INTO signing_keys (kid, format_version, private_key, public_jwk, state, created_at_us, activated_at_us, alg)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            key.kid,
            key.format_version,
            key.private.expose_secret(),
            jwk,
            state.as_str(),
            now,
            activated,
            key.algorithm_name()
        ],
    )
    .map_err(db)?;
    Ok(())
}
