//! Sessions and refresh tokens in the embedded store: rotation, reuse detection, ending;
//! browsers' sign-in sessions and the sessions issued through them; authorization codes.

use super::*;

/// How a session's end revokes: `Some((revoke_until, leeway, retention))` revokes each session
/// issued through it; `None` (an expired session) revokes nothing.
type Revoking = Option<(i64, i64, i64)>;

/// Ends a session and, first, the sessions issued through it.
pub(super) fn end_session(
    tx: &Transaction<'_>,
    sid: &str,
    revoking: Revoking,
) -> rusqlite::Result<Option<String>> {
    let kids: Vec<String> = {
        let mut stmt = tx.prepare_cached("SELECT sid FROM sessions WHERE parent = ?1")?;
        let rows = stmt.query_map([sid], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for kid in &kids {
        end_session(tx, kid, revoking)?;
        if let Some((until, leeway, retention)) = revoking {
            let e = RevocationEvent::Sid {
                value: kid.clone(),
                exp: until,
            };
            revoke(tx, &e, leeway, retention)?;
        }
    }
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

fn live_session(tx: &Connection, sid: &str, now: i64) -> rusqlite::Result<bool> {
    tx.prepare_cached("SELECT 1 FROM sessions WHERE sid = ?1 AND expires_at > ?2")?
        .exists(params![sid, now])
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        UserStore::ping(self).await
    }

    async fn create(&self, s: &NewSession, now: i64) -> Result<bool, StoreError> {
        let s = s.clone();
        let leeway = self.leeway;
        self.tx(move |tx| {
            if let Some(parent) = &s.parent
                && !live_session(tx, parent, now).map_err(db)?
            {
                return Ok(false);
            }
            let until = s.refresh_exp + leeway;
            tx.execute(
                "INSERT OR REPLACE INTO sessions (sid, sub, rt, auth_time, abs_exp, last_used, client_id, scope, ua, expires_at, parent, browser, amr)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?10, ?6, ?7, ?8, ?9, ?11, ?12, ?13)",
                params![
                    s.sid,
                    s.sub,
                    s.refresh_jti.as_deref().unwrap_or(""),
                    s.auth_time,
                    s.abs_exp,
                    s.client_id,
                    s.scope,
                    s.user_agent,
                    until,
                    now,
                    s.parent.as_deref().unwrap_or(""),
                    s.browser.as_deref().unwrap_or(""),
                    s.amr
                ],
            )
            .map_err(db)?;
            if let Some(jti) = &s.refresh_jti {
                tx.execute(
                    "INSERT OR REPLACE INTO refresh_tokens (jti, sid, sub, state, spent_at, expires_at, exp)
                     VALUES (?1, ?2, ?3, 'live', NULL, ?4, ?5)",
                    params![jti, s.sid, s.sub, until, s.refresh_exp],
                )
                .map_err(db)?;
            }
            Ok(true)
        })
        .await
    }

    async fn refresh_record(
        &self,
        jti: &str,
        now: i64,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let jti = jti.to_owned();
        self.tx(move |tx| {
            tx.prepare_cached(
                "SELECT r.sid, r.sub, s.client_id, s.scope FROM refresh_tokens r
                 LEFT JOIN sessions s ON s.sid = r.sid AND s.expires_at > ?2
                 WHERE r.jti = ?1 AND r.expires_at > ?2 AND (r.exp IS NULL OR r.exp > ?2)",
            )
            .map_err(db)?
            .query_row(params![jti, now], |r| {
                let client_id: Option<String> = r.get(2)?;
                Ok(RefreshRecord {
                    sid: r.get(0)?,
                    sub: r.get(1)?,
                    session: match client_id {
                        Some(client_id) => Some(RefreshSession {
                            client_id,
                            scope: r.get(3)?,
                        }),
                        None => None,
                    },
                })
            })
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn browser_session(
        &self,
        browser: &str,
        now: i64,
        idle_ttl: i64,
    ) -> Result<Option<BrowserSession>, StoreError> {
        let browser = browser.to_owned();
        let leeway = self.leeway;
        self.tx(move |tx| {
            let found: Option<BrowserSession> = tx
                .query_row(
                    "SELECT sid, sub, auth_time, amr, abs_exp FROM sessions
                     WHERE browser = ?1 AND expires_at > ?2",
                    params![browser, now],
                    |r| {
                        Ok(BrowserSession {
                            sid: r.get(0)?,
                            sub: r.get(1)?,
                            auth_time: r.get(2)?,
                            amr: r.get(3)?,
                            abs_exp: r.get(4)?,
                        })
                    },
                )
                .optional()
                .map_err(db)?;
            let Some(found) = found else { return Ok(None) };
            if now >= found.abs_exp {
                end_session(tx, &found.sid, None).map_err(db)?;
                return Ok(None);
            }
            tx.execute(
                "UPDATE sessions SET last_used = ?2, expires_at = ?3 WHERE sid = ?1",
                params![found.sid, now, (now + idle_ttl).min(found.abs_exp) + leeway],
            )
            .map_err(db)?;
            Ok(Some(found))
        })
        .await
    }

    async fn reauthenticate(
        &self,
        sid: &str,
        new_browser: &str,
        auth_time: i64,
        amr: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (sid, new, amr) = (sid.to_owned(), new_browser.to_owned(), amr.to_owned());
        self.tx(move |tx| {
            let n = tx
                .execute(
                    "UPDATE sessions SET browser = ?2, auth_time = ?3, amr = ?4, last_used = ?5
                     WHERE sid = ?1 AND browser <> '' AND expires_at > ?5",
                    params![sid, new, auth_time, amr, now],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
        .await
    }

    async fn put_code(&self, digest: &str, grant: &CodeGrant, _now: i64) -> Result<(), StoreError> {
        let json = serde_json::to_string(grant).map_err(other)?;
        let (digest, exp, leeway) = (digest.to_owned(), grant.expires_at, self.leeway);
        self.tx(move |tx| {
            tx.execute(
                "INSERT INTO authorization_codes (digest, grant_json, code_exp, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![digest, json, exp, exp + leeway],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn take_code(
        &self,
        digest: &str,
        issue: &CodeIssue,
        now: i64,
        keep_until: i64,
    ) -> Result<CodeTake, StoreError> {
        let (digest, issue) = (digest.to_owned(), issue.clone());
        self.tx(move |tx| {
            let row: Option<(String, i64, bool, Option<String>, Option<String>)> = tx
                .query_row(
                    "SELECT grant_json, code_exp, used, jti, sid FROM authorization_codes
                     WHERE digest = ?1 AND expires_at > ?2",
                    params![digest, now],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()
                .map_err(db)?;
            let Some((json, code_exp, used, jti, sid)) = row else {
                return Ok(CodeTake::Invalid);
            };
            let grant: CodeGrant = serde_json::from_str(&json).map_err(other)?;
            if used {
                return Ok(CodeTake::Reused(
                    CodeIssue {
                        jti: jti.unwrap_or_default(),
                        sid: sid.unwrap_or_default(),
                    },
                    grant,
                ));
            }
            if now > code_exp {
                tx.execute("DELETE FROM authorization_codes WHERE digest = ?1", [&digest])
                    .map_err(db)?;
                return Ok(CodeTake::Invalid);
            }
            tx.execute(
                "UPDATE authorization_codes SET used = 1, jti = ?2, sid = ?3, expires_at = ?4 WHERE digest = ?1",
                params![digest, issue.jti, issue.sid, keep_until],
            )
            .map_err(db)?;
            Ok(CodeTake::Taken(grant))
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
                        "SELECT sid, sub, state, spent_at FROM refresh_tokens
                         WHERE jti = ?1 AND expires_at > ?2 AND (exp IS NULL OR exp > ?2)",
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
                    end_session(tx, &sid, Some((revoke_until, leeway, retention))).map_err(db)?;
                    let e = RevocationEvent::Sid { value: sid.clone(), exp: revoke_until };
                    revoke(tx, &e, leeway, retention).map_err(db)?;
                    return Ok((Rotation::Reused { sid }, true));
                }
                let s: Option<(i64, String, String)> = tx
                    .query_row(
                        "SELECT abs_exp, rt, parent FROM sessions WHERE sid = ?1 AND expires_at > ?2",
                        params![sid, now],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()
                    .map_err(db)?;
                let Some((abs, _, parent)) = s.filter(|(_, rt, _)| *rt == old) else {
                    tx.execute("DELETE FROM refresh_tokens WHERE jti = ?1", [&old]).map_err(db)?;
                    return Ok((Rotation::Invalid, false));
                };
                // A session issued through a browser's sign-in session lives no longer than it.
                let orphan = !parent.is_empty() && !live_session(tx, &parent, now).map_err(db)?;
                if now >= abs || orphan {
                    end_session(tx, &sid, None).map_err(db)?;
                    return Ok((Rotation::Invalid, false));
                }
                let exp = (now + idle_ttl).min(abs);
                tx.execute(
                    "UPDATE refresh_tokens SET state = 'spent', spent_at = ?2 WHERE jti = ?1",
                    params![old, now],
                )
                .map_err(db)?;
                tx.execute(
                    "INSERT OR REPLACE INTO refresh_tokens (jti, sid, sub, state, spent_at, expires_at, exp)
                     VALUES (?1, ?2, ?3, 'live', NULL, ?4, ?5)",
                    params![new, sid, sub, exp + leeway, exp],
                )
                .map_err(db)?;
                tx.execute(
                    "UPDATE sessions SET rt = ?2, last_used = ?3, expires_at = ?4 WHERE sid = ?1",
                    params![sid, new, now, exp + leeway],
                )
                .map_err(db)?;
                if !parent.is_empty() {
                    // Using an app keeps its browser session alive.
                    tx.execute(
                        "UPDATE sessions SET expires_at = MIN(?2 + ?3, abs_exp) + ?4 WHERE sid = ?1",
                        params![parent, now, idle_ttl, leeway],
                    )
                    .map_err(db)?;
                }
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
                    "SELECT sid, auth_time, last_used, abs_exp, client_id, ua, parent FROM sessions
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
                        parent: r.get(6)?,
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
                end_session(tx, &sid, Some((revoke_until, leeway, retention))).map_err(db)?;
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
                    end_session(tx, sid, None).map_err(db)?;
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
