//! The revocation list and the feed's event log in the embedded store, and the follower that
//! waits for new events.

use super::*;

/// The store's `revoke`: merge with an existing entry (later `exp`, later `iat_before`), append
/// the event, trim the log to about `retention` events.
pub(super) fn revoke(
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

pub(super) fn stream_id(s: &str) -> Option<StreamId> {
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

pub(super) async fn read_after(
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
pub(super) const OTHER_WRITERS_POLL: Duration = Duration::from_millis(250);

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
