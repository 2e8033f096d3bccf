//! Rate-limit counters and the growing-delay gates in the embedded store.

use super::*;

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
