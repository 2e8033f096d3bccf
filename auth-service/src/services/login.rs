//! Signing in with a password: the check every password sign-in path shares (`POST /v1/login`
//! today). It does the same work for every username: a throttle check keyed by the name as sent,
//! one lookup, one Argon2 verification (against a dummy hash when there is no such user), and on
//! failure one failure count, one audit log line and one queued audit event, whether the account
//! exists, is disabled, or the password is wrong (the event of an unknown account is stored too,
//! under a name of its own: [`crate::audit::NO_USER`]). Only a success does more.

use secrecy::SecretString;
use serde_json::json;

use crate::domain::Username;
use crate::error::OAuthError;
use crate::state::AppState;
use crate::storage::User;

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
#[tracing::instrument(skip(state, username, password))]
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
        state.audit_failed_login(user.as_deref(), json!({"reason": reason, "peer": peer}));
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
