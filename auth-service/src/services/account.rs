//! What a signed-in user sees and changes on the account page: their sessions and the
//! consents they gave; withdrawing a consent also ends that app's sessions.

use serde_json::json;

use crate::state::AppState;
use crate::storage::{Consent, RegisteredClient, SessionInfo, StoreError};

/// A user's sessions and consents.
#[derive(Debug)]
pub struct Overview {
    /// Live sessions, most recently used first.
    pub sessions: Vec<SessionInfo>,
    /// Consents, by client.
    pub consents: Vec<Consent>,
}

/// The user's sessions and consents.
pub async fn overview(state: &AppState, sub: &str) -> Result<Overview, StoreError> {
    let now = shared::unix_now();
    Ok(Overview {
        sessions: state.sessions.list(sub, now).await?,
        consents: state.consents.list_consents(sub).await?,
    })
}

/// A client's name for people (its id when it has none); `None` if it is not registered.
pub async fn client_name(state: &AppState, client_id: &str) -> Option<String> {
    if client_id.len() > crate::services::clients::MAX_ID_LEN {
        return None;
    }
    match state.clients.find_client(client_id).await {
        Ok(Some((RegisteredClient { name, .. }, _))) if !name.is_empty() => Some(name),
        Ok(Some((c, _))) => Some(c.client_id),
        _ => None,
    }
}

/// Withdraws the user's consent to a client and ends the sessions that client holds for the
/// user (its tokens revoked): the next sign-in asks again. False if there was no consent.
#[tracing::instrument(skip(state))]
pub async fn withdraw_consent(
    state: &AppState,
    sub: &str,
    client_id: &str,
) -> Result<bool, StoreError> {
    if !state.consents.revoke_consent(sub, client_id).await? {
        return Ok(false);
    }
    let now = shared::unix_now();
    for s in state.sessions.list(sub, now).await? {
        if s.client_id == client_id {
            crate::services::sessions::end_own(state, sub, &s.sid).await?;
        }
    }
    state.audit_writer.event(
        Some(sub),
        "consent_withdrawn",
        None,
        json!({"client_id": client_id}),
    );
    Ok(true)
}
