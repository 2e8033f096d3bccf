//! Sessions and refresh tokens in the embedded store: rotation, reuse detection, ending.

use super::*;

pub(super) fn end_session(tx: &Connection, sid: &str) -> rusqlite::Result<Option<String>> {
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
