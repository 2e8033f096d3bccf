//! Each user's recent audit events in the embedded store.

use super::*;

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
