//! Sessions and the token pairs they issue: opening one (a login, a password change), signing
//! a pair, and ending every session of a user. A session's id is the `sid` of its tokens; its
//! refresh token rotates in the store (see `storage::SessionStore`). Refresh tokens are opaque
//! (`crypto::refresh`): the store knows each by its digest; signed ones issued by earlier
//! versions are still accepted until they expire, and rotate into opaque ones.

use shared::AccessClaims;

use crate::configuration::secs;
use crate::crypto::refresh::Presented;
use crate::error::OAuthError;
use crate::state::AppState;
use crate::storage::{BrowserSession, NewSession, RefreshSession, Rotation, StoreError, User};
use crate::tokens::{Grant, TokenPair, grant_scope};

/// The `client_id` to put in tokens: the requested one if configured, else the default.
pub fn client_id(state: &AppState, requested: Option<&str>) -> String {
    requested
        .filter(|c| state.settings.tokens.client_ids.iter().any(|k| k == c))
        .unwrap_or(state.settings.default_client_id())
        .to_owned()
}

/// When revocation entries for tokens issued up to now can be dropped.
pub fn revoke_until(state: &AppState, now: i64) -> i64 {
    now + secs(state.settings.tokens.access_ttl)
}

/// A new opaque refresh token and the handle the store keeps it under.
pub fn new_refresh_token() -> Result<(String, String), StoreError> {
    crate::crypto::refresh::mint().map_err(StoreError::Other)
}

/// Signs the access token and pairs it with the (opaque) refresh token. On the worker,
/// deliberately: one RS256 signature through a pre-parsed aws-lc key is ~0.25 ms of bounded
/// CPU, less than what handing it to the blocking pool and back costs in context switches
/// (measured: +5% refreshes/s, kernel time 20% → 13%; see BENCHMARKS.md). Argon2 (~13 ms)
/// stays off the workers.
pub async fn sign_pair(
    state: &AppState,
    access: AccessClaims,
    refresh_token: String,
    refresh_exp: i64,
    now: i64,
) -> Result<TokenPair, StoreError> {
    let key = state.keys.signing_ring().await?;
    let key = key.signing();
    let expires_in = access.exp - now;
    let scope = access.scope.clone();
    let access_token = key
        .sign(shared::claims::ACCESS_TOKEN_TYPE, &access)
        .map_err(StoreError::Other)?;
    state.metrics.issued_pair();
    Ok(TokenPair {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token,
        refresh_expires_in: refresh_exp - now,
        scope,
    })
}

/// Opens a session for `user` (after a login or a password change) and issues its first pair.
#[tracing::instrument(level = "debug", skip(state, user, user_agent), fields(sub = %user.id))]
pub async fn open(
    state: &AppState,
    user: &User,
    client_id: &str,
    scope: String,
    user_agent: &str,
    now: i64,
) -> Result<TokenPair, StoreError> {
    let s = &state.settings;
    let sid = crate::crypto::random_id();
    let (refresh_token, handle) = new_refresh_token()?;
    let abs_exp = now + secs(s.tokens.session_max_ttl);
    let refresh_exp = (now + secs(s.tokens.refresh_ttl)).min(abs_exp);
    let session = NewSession {
        sid: sid.clone(),
        sub: user.id.to_string(),
        refresh_jti: Some(handle),
        parent: None,
        browser: None,
        amr: "pwd".into(),
        auth_time: now,
        abs_exp,
        refresh_exp,
        client_id: client_id.to_owned(),
        scope: scope.clone(),
        user_agent: user_agent.chars().take(200).collect(),
    };
    state.sessions.create(&session, now).await?;
    let grant = Grant {
        sid: &sid,
        client_id,
        scope: &scope,
    };
    let access = state
        .issuance
        .access_claims(user, &grant, scope.clone(), now, abs_exp);
    sign_pair(state, access, refresh_token, refresh_exp, now).await
}

/// Ends every session of a user and revokes every token issued so far. `not_before` must be
/// the user's new `tokens_not_before` (tokens issued from now on carry `iat ≥` it).
#[tracing::instrument(skip(state))]
pub async fn end_all(
    state: &AppState,
    sub: &str,
    not_before: i64,
    now: i64,
) -> Result<u64, StoreError> {
    let ending = crate::services::logout::ending(state, sub, None, now).await?;
    let n = state
        .sessions
        .end_all(sub, now, not_before, revoke_until(state, now))
        .await?;
    crate::services::logout::notify(state, sub, &ending).await;
    Ok(n)
}

/// Why a refresh is refused, as its `invalid_grant` says (never more: which check failed stays
/// in the logs and metrics).
const INVALID: &str = "the refresh token is invalid, expired or revoked";

/// Rotates a refresh token (RFC 6749 §6): the presented one is spent and a new pair issued,
/// re-reading the user's roles and disabled flag; `requested_scope` may narrow the session's
/// scope, never widen it; a `client_id` given must be the token's. A spent token presented again
/// revokes the whole session (unless within `AUTH_REFRESH_REUSE_GRACE`), which is an audit
/// event. Of concurrent uses of one token exactly one rotates (the store's atomic step).
#[tracing::instrument(level = "debug", skip(state, token))]
pub async fn refresh(
    state: &AppState,
    token: &str,
    requested_scope: Option<&str>,
    client_id: Option<&str>,
    credentials: Option<crate::services::clients::Credentials>,
) -> Result<TokenPair, OAuthError> {
    // Everything that can refuse the request without spending the token comes first.
    let now = shared::unix_now();
    let Some(presented) = present(state, token, now).await? else {
        return Err(OAuthError::InvalidGrant(INVALID));
    };
    let s = &state.settings;
    let Some(grant) = presented.session else {
        // The session has ended: nothing can be issued, but a spent token is still reuse.
        let rotation = state
            .sessions
            .rotate(
                &presented.jti,
                &new_refresh_token()?.1,
                now,
                secs(s.tokens.refresh_reuse_grace),
                secs(s.tokens.refresh_ttl),
                revoke_until(state, now),
            )
            .await?;
        return Err(refused(state, rotation, &presented.sub));
    };
    if client_id.is_some_and(|c| c != grant.client_id) {
        return Err(OAuthError::InvalidGrant(
            "the refresh token was issued to another client",
        ));
    }
    // A registered client's refresh token (the code flow's): a confidential client
    // authenticates (RFC 6749 §6), and a disabled or deleted client's tokens stop working.
    if !state.settings.tokens.client_ids.contains(&grant.client_id) {
        let registered = state.clients.find_client(&grant.client_id).await?;
        match registered {
            Some((c, _)) if !c.disabled => {
                if c.profile.client_type == crate::storage::ClientType::Confidential {
                    let creds = credentials.ok_or(OAuthError::BadClientAuth(
                        "this refresh token belongs to a confidential client: authenticate it (HTTP Basic or client_secret)",
                    ))?;
                    let authenticated =
                        crate::services::clients::authenticate(state, &creds).await?;
                    if authenticated.client_id != c.client_id {
                        return Err(OAuthError::InvalidGrant(
                            "the refresh token was issued to another client",
                        ));
                    }
                }
            }
            _ => return Err(OAuthError::InvalidGrant(INVALID)),
        }
    } else if credentials.is_some() {
        return Err(OAuthError::InvalidRequest(
            "this refresh token needs no client authentication".into(),
        ));
    }
    let user_id: uuid::Uuid = presented
        .sub
        .parse()
        .map_err(|_| OAuthError::InvalidGrant(INVALID))?;
    let user = match state.users.find_by_id(user_id).await? {
        Some(u) if !u.disabled => u,
        _ => return Err(OAuthError::InvalidGrant(INVALID)),
    };
    // The OpenID scopes of a code-flow session stay within its grant (the ceiling), as any.
    let allowed =
        crate::tokens::allowed_scopes_with_openid(&state.settings.tokens.role_scopes, &user.roles);
    let scope = grant_scope(&allowed, requested_scope, Some(&grant.scope))
        .map_err(OAuthError::InvalidScope)?;

    let (refresh_token, new_handle) = new_refresh_token()?;
    match state
        .sessions
        .rotate(
            &presented.jti,
            &new_handle,
            now,
            secs(s.tokens.refresh_reuse_grace),
            secs(s.tokens.refresh_ttl),
            revoke_until(state, now),
        )
        .await?
    {
        Rotation::Rotated {
            sid,
            refresh_exp,
            abs_exp,
        } => {
            state.metrics.refresh("rotated");
            let grant = Grant {
                sid: &sid,
                client_id: &grant.client_id,
                scope: &grant.scope,
            };
            let access = state
                .issuance
                .access_claims(&user, &grant, scope, now, abs_exp);
            Ok(sign_pair(state, access, refresh_token, refresh_exp, now).await?)
        }
        other => Err(refused(state, other, &presented.sub)),
    }
}

/// A refresh token as presented: the store's id for it, its user, and its session's grant
/// (none when the session has ended).
struct PresentedRefresh {
    jti: String,
    sid: String,
    sub: String,
    session: Option<RefreshSession>,
}

/// Reads a presented refresh token without spending it: an opaque one through its store record
/// (garbage, by its checksum, with no lookup at all), a signed one of an earlier version by its
/// signature and claims. `None`: not a refresh token of ours (counted).
async fn present(
    state: &AppState,
    token: &str,
    now: i64,
) -> Result<Option<PresentedRefresh>, StoreError> {
    match crate::crypto::refresh::parse(token) {
        Presented::Opaque(handle) => match state.sessions.refresh_record(&handle, now).await? {
            Some(r) => Ok(Some(PresentedRefresh {
                jti: handle,
                sid: r.sid,
                sub: r.sub,
                session: r.session,
            })),
            None => {
                state.metrics.refresh("invalid");
                Ok(None)
            }
        },
        Presented::Garbage => {
            state.metrics.refresh("malformed");
            Ok(None)
        }
        Presented::Other => match crate::services::tokens::verify_refresh(state, token).await {
            Ok(claims) => Ok(Some(PresentedRefresh {
                jti: claims.jti,
                sid: claims.sid,
                sub: claims.sub,
                session: Some(RefreshSession {
                    client_id: claims.client_id,
                    scope: claims.scope,
                }),
            })),
            Err(e) => {
                let malformed = matches!(e, shared::VerifyError::Malformed(_));
                state
                    .metrics
                    .refresh(if malformed { "malformed" } else { "invalid" });
                Ok(None)
            }
        },
    }
}

/// What a refresh that did not rotate answers (and counts, and audits).
fn refused(state: &AppState, rotation: Rotation, sub: &str) -> OAuthError {
    match rotation {
        Rotation::Grace => {
            state.metrics.refresh("grace");
            OAuthError::InvalidGrant("the refresh token was already used")
        }
        Rotation::Reused { sid } => {
            state.metrics.refresh("reuse_detected");
            tracing::warn!(user_id = %sub, sid = %sid, "refresh token reuse: session revoked");
            state.audit_writer.event(
                Some(sub),
                "refresh_reuse",
                None,
                serde_json::json!({"sid": sid}),
            );
            OAuthError::InvalidGrant(INVALID)
        }
        Rotation::Invalid | Rotation::Rotated { .. } => {
            state.metrics.refresh("invalid");
            OAuthError::InvalidGrant(INVALID)
        }
    }
}

/// Whose refresh token this is, for revoking it or logging out with it: (user, session, client).
/// `None`: not a live refresh token of ours.
pub async fn refresh_token_owner(
    state: &AppState,
    token: &str,
) -> Result<Option<(String, String, String)>, StoreError> {
    Ok(present(state, token, shared::unix_now())
        .await?
        .and_then(|p| p.session.map(|g| (p.sub, p.sid, g.client_id))))
}

/// Revokes a token (RFC 7009): an access token by its `jti`, a refresh token by ending its whole
/// session; `hint` says which to try first. Only the token's own user (`caller`, when the request
/// carried a bearer credential) and client (`client_id`, when named) may revoke it. `Ok(false)`:
/// not one of ours (answered 200 all the same, RFC 7009 §2.2).
#[tracing::instrument(level = "debug", skip(state, token))]
pub async fn revoke_token(
    state: &AppState,
    token: &str,
    hint: Option<&str>,
    caller: Option<&str>,
    client_id: Option<&str>,
) -> Result<bool, OAuthError> {
    let now = shared::unix_now();
    let owned = |sub: &str, client: &str| {
        if caller.is_some_and(|c| c != sub) {
            return Err(OAuthError::UnauthorizedClient(
                "the token belongs to another user",
            ));
        }
        if client_id.is_some_and(|c| c != client) {
            return Err(OAuthError::UnauthorizedClient(
                "the token was issued to another client",
            ));
        }
        Ok(())
    };
    let refresh_first = hint == Some("refresh_token");
    for kind in if refresh_first {
        ["refresh", "access"]
    } else {
        ["access", "refresh"]
    } {
        if kind == "access" {
            if let Ok(claims) = crate::services::tokens::verify_access(state, token).await {
                owned(&claims.sub, &claims.client_id)?;
                state
                    .revocations
                    .revoke(
                        &shared::RevocationEvent::Jti {
                            value: claims.jti.clone(),
                            exp: claims.exp,
                        },
                        now,
                    )
                    .await?;
                tracing::info!(user_id = %claims.sub, "access token revoked");
                return Ok(true);
            }
        } else if let Some((sub, sid, client)) = refresh_token_owner(state, token).await? {
            owned(&sub, &client)?;
            state
                .sessions
                .end(&sub, &sid, now, revoke_until(state, now))
                .await?;
            tracing::info!(user_id = %sub, sid = %sid, "session revoked by refresh token");
            return Ok(true);
        }
    }
    Ok(false)
}

/// Ends the session `sid` of `sub` (logout): its refresh token stops working and every access
/// token of the session is revoked, also when the session record is already gone (ended
/// elsewhere).
#[tracing::instrument(skip(state))]
pub async fn logout(state: &AppState, sub: &str, sid: &str) -> Result<(), StoreError> {
    let now = shared::unix_now();
    if !state
        .sessions
        .end(sub, sid, now, revoke_until(state, now))
        .await?
    {
        state
            .revocations
            .revoke(
                &shared::RevocationEvent::Sid {
                    value: sid.to_owned(),
                    exp: revoke_until(state, now),
                },
                now,
            )
            .await?;
    }
    Ok(())
}

/// Logs the user out everywhere (`POST /v1/logout?everywhere=true`): every session ended, every
/// token issued so far revoked. Returns how many sessions ended.
#[tracing::instrument(skip(state))]
pub async fn logout_everywhere(state: &AppState, user: uuid::Uuid) -> Result<u64, StoreError> {
    let now = shared::unix_now();
    let nb = state
        .users
        .bump_tokens_not_before(user, now)
        .await?
        .unwrap_or(now + 1);
    let sub = user.to_string();
    let n = end_all(state, &sub, nb, now).await?;
    tracing::info!(user_id = %sub, sessions = n, "logged out everywhere");
    Ok(n)
}

/// Ends one of the user's own sessions (`DELETE /v1/users/me/sessions/{sid}`); false if the user
/// has no such session.
#[tracing::instrument(skip(state))]
pub async fn end_own(state: &AppState, sub: &str, sid: &str) -> Result<bool, StoreError> {
    let now = shared::unix_now();
    if sid.len() > 64 {
        return Ok(false);
    }
    end_notifying(state, sub, sid, now).await
}

/// Ends a session (and those issued through it), revoking their tokens, then tells their apps
/// (back-channel logout).
async fn end_notifying(
    state: &AppState,
    sub: &str,
    sid: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let ending = crate::services::logout::ending(state, sub, Some(sid), now).await?;
    let ended = state
        .sessions
        .end(sub, sid, now, revoke_until(state, now))
        .await?;
    if ended {
        crate::services::logout::notify(state, sub, &ending).await;
    }
    Ok(ended)
}

/// The browser's sign-in session cookie: `__Host-` (Secure, `Path=/`, no `Domain`), HttpOnly,
/// `SameSite=Lax` (sent on the top-level navigations that bring a user from an app).
pub const BROWSER_COOKIE: &str = "__Host-auth_session";

/// `Set-Cookie` for a browser session's cookie, a session cookie of the browser (the server
/// decides when the session ends).
pub fn browser_cookie(value: &str) -> String {
    format!("{BROWSER_COOKIE}={value}; Path=/; HttpOnly; Secure; SameSite=Lax")
}

/// `Set-Cookie` that removes the browser session's cookie.
pub fn clear_browser_cookie() -> String {
    format!("{BROWSER_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax")
}

/// Records a sign-in on a browser: the same user's live session is renewed (new `auth_time`,
/// the cookie rotated); another user's is ended first; otherwise a new session opens. Returns
/// the session and the new cookie's value.
#[tracing::instrument(level = "debug", skip_all, fields(sub = %user.id))]
pub async fn sign_in_browser(
    state: &AppState,
    user: &User,
    amr: &str,
    user_agent: &str,
    current: Option<&BrowserSession>,
    now: i64,
) -> Result<(BrowserSession, String), StoreError> {
    let s = &state.settings;
    let cookie = crate::services::authorize::random_secret()?;
    let digest = crate::services::authorize::digest_hex(&cookie);
    let sub = user.id.to_string();
    if let Some(cur) = current {
        if cur.sub == sub
            && state
                .sessions
                .reauthenticate(&cur.sid, &digest, now, amr, now)
                .await?
        {
            let renewed = BrowserSession {
                auth_time: now,
                amr: amr.to_owned(),
                ..cur.clone()
            };
            return Ok((renewed, cookie));
        }
        if cur.sub != sub {
            end_browser(state, cur, now).await?;
        }
    }
    let sid = crate::crypto::random_id();
    let abs_exp = now + secs(s.tokens.session_max_ttl);
    let session = NewSession {
        sid: sid.clone(),
        sub: sub.clone(),
        refresh_jti: None,
        parent: None,
        browser: Some(digest),
        amr: amr.to_owned(),
        auth_time: now,
        abs_exp,
        refresh_exp: (now + secs(s.tokens.refresh_ttl)).min(abs_exp),
        client_id: BROWSER_CLIENT.to_owned(),
        scope: String::new(),
        user_agent: user_agent.chars().take(200).collect(),
    };
    state.sessions.create(&session, now).await?;
    Ok((
        BrowserSession {
            sid,
            sub,
            auth_time: now,
            amr: amr.to_owned(),
            abs_exp,
        },
        cookie,
    ))
}

/// The `client_id` a browser sign-in session is listed under.
pub const BROWSER_CLIENT: &str = "browser";

/// The live browser session a cookie stands for, with its user (enabled); keeps it alive.
pub async fn browser_session(
    state: &AppState,
    cookie: &str,
    now: i64,
) -> Result<Option<(BrowserSession, User)>, StoreError> {
    if cookie.is_empty() || cookie.len() > 128 {
        return Ok(None);
    }
    let digest = crate::services::authorize::digest_hex(cookie);
    let Some(session) = state
        .sessions
        .browser_session(&digest, now, secs(state.settings.tokens.refresh_ttl))
        .await?
    else {
        return Ok(None);
    };
    let user = match session.sub.parse::<uuid::Uuid>() {
        Ok(id) => state.users.find_by_id(id).await?,
        Err(_) => None,
    };
    Ok(user.filter(|u| !u.disabled).map(|u| (session, u)))
}

/// Ends a browser session and every session issued through it, revoking their tokens.
#[tracing::instrument(level = "debug", skip_all, fields(sid = %session.sid))]
pub async fn end_browser(
    state: &AppState,
    session: &BrowserSession,
    now: i64,
) -> Result<bool, StoreError> {
    end_notifying(state, &session.sub, &session.sid, now).await
}
