//! Logout of apps that signed users in: checking an `id_token_hint` (RP-Initiated Logout 1.0),
//! and telling each app whose sessions ended, with a signed logout token POSTed to its
//! back-channel logout URI (Back-Channel Logout 1.0), retried off the request path.

use std::time::Duration;

use serde_json::json;

use crate::state::AppState;
use crate::storage::{SessionInfo, StoreError};

/// The `typ` of logout tokens (Back-Channel Logout 1.0 §2.4 recommends explicit typing).
pub const LOGOUT_TOKEN_TYPE: &str = "logout+jwt";
/// The event a logout token carries.
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// When deliveries are tried, from the session's end: at once, then after these delays.
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(60),
];
/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What an `id_token_hint` says, once its signature is checked (it may have expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// The user.
    pub sub: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The browser session it was issued in.
    pub sid: Option<String>,
}

/// Checks an ID token this service issued: its `typ`, a key this service holds (the key decides
/// the algorithm), the signature and the issuer. Its expiry does not matter (RP-Initiated
/// Logout 1.0 §2: an expired ID token is a fine hint).
pub fn verify_hint(state: &AppState, token: &str) -> Option<Hint> {
    let parts = shared::jws::split(token).ok()?;
    if !parts
        .header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(crate::services::authorize::ID_TOKEN_TYPE))
    {
        return None;
    }
    let ring = state.keys.ring();
    let key = ring.refresh_verifying().get(parts.header.kid.as_deref()?)?;
    if parts.header.alg != key.algorithm().name()
        || !key.verify_signature(parts.signing_input.as_bytes(), &parts.signature)
    {
        return None;
    }
    let payload = shared::jws::b64_decode(parts.payload_b64)?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    if claims["iss"] != state.issuance.issuer.as_str() {
        return None;
    }
    Some(Hint {
        sub: claims["sub"].as_str()?.to_owned(),
        client_id: claims["aud"].as_str()?.to_owned(),
        sid: claims["sid"].as_str().map(str::to_owned),
    })
}

/// The sessions of `sub` that ending `sid` ends: it, and those issued through it (`None`: every
/// session of the user).
pub async fn ending(
    state: &AppState,
    sub: &str,
    sid: Option<&str>,
    now: i64,
) -> Result<Vec<SessionInfo>, StoreError> {
    let all = state.sessions.list(sub, now).await?;
    Ok(match sid {
        None => all,
        Some(sid) => all
            .into_iter()
            .filter(|s| s.sid == sid || s.parent == sid)
            .collect(),
    })
}

/// Tells the apps of sessions that have ended: for each session issued through a browser
/// session to a client with a back-channel logout URI, a logout token (`sub`, and `sid`: the
/// browser session its ID tokens named) is POSTed, retried in the background.
pub async fn notify(state: &AppState, sub: &str, ended: &[SessionInfo]) {
    for session in ended.iter().filter(|s| !s.parent.is_empty()) {
        let client = match state.clients.find_client(&session.client_id).await {
            Ok(Some((c, _))) => c,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, client_id = %session.client_id, "back-channel logout: the client could not be read");
                continue;
            }
        };
        let Some(uri) = client.profile.backchannel_logout_uri.clone() else {
            continue;
        };
        let token = match logout_token(state, sub, &session.parent, &client.client_id).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "back-channel logout: the token could not be signed");
                continue;
            }
        };
        let http = state.http.clone();
        let client_id = client.client_id.clone();
        tokio::spawn(deliver(http, uri, token, client_id));
    }
}

/// A signed logout token for `client_id` (Back-Channel Logout 1.0 §2.4).
async fn logout_token(
    state: &AppState,
    sub: &str,
    sid: &str,
    client_id: &str,
) -> Result<String, StoreError> {
    let now = shared::unix_now();
    let claims = json!({
        "iss": state.issuance.issuer,
        "sub": sub,
        "aud": client_id,
        "iat": now,
        "exp": now + 120,
        "jti": crate::crypto::random_id(),
        "sid": sid,
        "events": { BACKCHANNEL_EVENT: {} },
    });
    state
        .keys
        .signing_ring()
        .await?
        .signing()
        .sign(LOGOUT_TOKEN_TYPE, &claims)
        .map_err(StoreError::Other)
}

/// POSTs `logout_token` until the client answers 2xx, or refuses it (4xx other than 408 and
/// 429), or the retries run out.
async fn deliver(http: shared::http_client::Client, uri: String, token: String, client_id: String) {
    let form = serde_urlencoded::to_string([("logout_token", token.as_str())]).unwrap_or_default();
    let mut delays = RETRY_DELAYS.iter();
    loop {
        let outcome =
            shared::http_client::post_form(&http, &uri, form.clone(), DELIVERY_TIMEOUT).await;
        let retry = match &outcome {
            Ok(status) if status.is_success() => {
                tracing::info!(%client_id, "back-channel logout delivered");
                return;
            }
            Ok(status) => {
                let code = status.as_u16();
                code >= 500 || code == 408 || code == 429
            }
            Err(_) => true,
        };
        match (retry, delays.next()) {
            (true, Some(delay)) => {
                tracing::warn!(%client_id, outcome = ?outcome.as_ref().map(|s| s.as_u16()).map_err(|e| e.to_string()), "back-channel logout failed; retrying");
                tokio::time::sleep(*delay).await;
            }
            _ => {
                tracing::warn!(%client_id, outcome = ?outcome.as_ref().map(|s| s.as_u16()).map_err(|e| e.to_string()), "back-channel logout given up");
                return;
            }
        }
    }
}
