//! Signing in with a password: the check every password sign-in path shares (`POST /v1/login`
//! today). It does the same work for every username: a throttle check keyed by the name as sent,
//! one lookup, one Argon2 verification (against a dummy hash when there is no such user), and on
//! failure one failure count, one audit log line and one queued audit event, whether the account
//! exists, is disabled, or the password is wrong (the event of an unknown account is stored too,
//! under a name of its own: [`crate::audit::NO_USER`]). Only a success does more: [`sign_in`]
//! upgrades an outdated hash, clears the throttle's count, grants the scope and opens the session.

use secrecy::SecretString;
use serde_json::json;

use crate::domain::Username;
use crate::error::OAuthError;
use crate::state::AppState;
use crate::storage::User;
use crate::tokens::{TokenPair, allowed_scopes, grant_scope};

/// The one answer to every failed sign-in, whatever failed.
pub const BAD_CREDENTIALS: &str = "invalid username or password";

/// A successful password check.
#[derive(Debug)]
pub struct SignedIn {
    /// The user.
    pub user: User,
    /// Their stored hash (to replace when it uses outdated parameters).
    pub stored_hash: String,
    /// The hash uses other parameters than the current ones.
    pub needs_rehash: bool,
}

/// Checks `password` for the account named `username` (as sent), for a caller at `client` (the
/// throttle's client key) and `peer` (for the audit trail). Unknown account, wrong password and
/// disabled account are one answer, [`BAD_CREDENTIALS`], after the same work.
#[tracing::instrument(level = "debug", skip(state, username, password))]
pub async fn check_password(
    state: &AppState,
    username: &str,
    password: &SecretString,
    client: &str,
    peer: &str,
) -> Result<SignedIn, OAuthError> {
    // Counted before the password is checked, keyed by the name as sent: unknown and existing
    // accounts are throttled alike, and concurrent guesses cannot slip past the count.
    state.throttle.before_login(username, client).await?;
    let found = match Username::parse(username) {
        Ok(u) => state.users.find_by_username(u.as_str()).await?,
        Err(_) => None,
    };
    let verified = state
        .hasher
        .verify(password, found.as_ref().map(|(_, h)| h.as_str()))
        .await?;
    let failure = match &found {
        None => Some((None, "unknown_user")),
        Some((user, _)) if user.disabled => Some((Some(user.id.to_string()), "disabled")),
        Some((user, _)) if !verified.ok => Some((Some(user.id.to_string()), "bad_password")),
        Some(_) => None,
    };
    if let Some((user, reason)) = failure {
        // From here on, the same steps for every kind of failure: whether the account exists
        // must not show in how long the answer takes.
        state.throttle.login_failed(username).await?;
        state
            .audit_writer
            .failed_login(user.as_deref(), json!({"reason": reason, "peer": peer}));
        return Err(OAuthError::InvalidGrant(BAD_CREDENTIALS));
    }
    let Some((user, stored_hash)) = found else {
        return Err(OAuthError::InvalidGrant(BAD_CREDENTIALS));
    };
    Ok(SignedIn {
        user,
        stored_hash,
        needs_rehash: verified.needs_rehash,
    })
}

/// A password sign-in, as a caller presented it.
#[derive(Debug)]
pub struct SignIn<'a> {
    /// The account's name, as sent.
    pub username: &'a str,
    /// The password (already checked against the policy's bounds).
    pub password: &'a SecretString,
    /// The throttle's key for the caller.
    pub client: &'a str,
    /// The caller's address, for the audit trail.
    pub peer: &'a str,
    /// The scope asked for (`None`: everything the user's roles allow).
    pub scope: Option<&'a str>,
    /// The `client_id` asked for.
    pub client_id: Option<&'a str>,
    /// The caller's `User-Agent`, shown in the user's session list.
    pub user_agent: &'a str,
}

/// Signs a user in with a password: [`check_password`], then an outdated hash upgraded off the
/// request path, the caller's failure count cleared, the scope granted, a session opened and the
/// success audited. The session's first token pair.
#[tracing::instrument(level = "debug", skip_all, fields(client = attempt.client))]
pub async fn sign_in(state: &AppState, attempt: SignIn<'_>) -> Result<TokenPair, OAuthError> {
    let now = shared::unix_now();
    let user = authenticate(
        state,
        attempt.username,
        attempt.password,
        attempt.client,
        attempt.peer,
    )
    .await?;
    let allowed = allowed_scopes(&state.settings.tokens.role_scopes, &user.roles);
    let scope = grant_scope(&allowed, attempt.scope, None).map_err(OAuthError::InvalidScope)?;
    let client_id = super::sessions::client_id(state, attempt.client_id);
    let pair =
        super::sessions::open(state, &user, &client_id, scope, attempt.user_agent, now).await?;
    state.audit_writer.event(
        Some(&user.id.to_string()),
        "login_succeeded",
        None,
        json!({"client_id": client_id, "peer": attempt.peer}),
    );
    Ok(pair)
}

/// [`check_password`], then a success's bookkeeping: an outdated hash upgraded off the request
/// path and the caller's failure count cleared. Every password sign-in (the API's and the
/// hosted page's) goes through here.
pub async fn authenticate(
    state: &AppState,
    username: &str,
    password: &SecretString,
    client: &str,
    peer: &str,
) -> Result<User, OAuthError> {
    let SignedIn {
        user,
        stored_hash,
        needs_rehash,
    } = check_password(state, username, password, client, peer).await?;
    if needs_rehash {
        let state = state.clone();
        let secret = password.clone();
        let id = user.id;
        tokio::spawn(async move {
            match state.hasher.hash(&secret).await {
                Ok(new) => {
                    if let Err(e) = state.users.upgrade_hash(id, &stored_hash, &new).await {
                        tracing::warn!(error = %e, "could not upgrade a password hash");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not rehash a password"),
            }
        });
    }
    state.throttle.login_succeeded(username, client).await?;
    Ok(user)
}
