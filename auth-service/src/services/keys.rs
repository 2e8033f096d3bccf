//! Signing keys' lifecycle: the plain rotation (publish before use), the compromise response
//! (replace every key and revoke the old ones on the feed), the periodic work of every replica
//! (a scheduled rotation when due, the lifecycle moved on, a reload), and the key revocations a
//! replica applies at start. The timing rules are the configuration's
//! (`Settings::key_published_after_retirement`, `key_kept_after_retirement`); the key ring itself
//! is `crypto::keys::KeyManager`'s.

use std::sync::atomic::Ordering;

use anyhow::Context as _;
use serde_json::json;

use super::Actor;
use crate::configuration::secs;
use crate::crypto::keys::{KeyManager, SigningKey, published};
use crate::state::AppState;
use crate::storage::{KeyState, KeyTimes, StoredKey};

/// A plain rotation scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The new key, published now.
    pub kid: String,
    /// When it starts signing (Unix seconds).
    pub activates_at: i64,
}

/// A stored key as listed (no key material).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    /// Key id.
    pub kid: String,
    /// Where it is in its lifecycle.
    pub state: KeyState,
    /// In the JWKS now.
    pub published: bool,
    /// Storage format of the private key.
    pub format: i32,
    /// Lifecycle times.
    pub times: KeyTimes,
}

/// Every stored key, newest first.
#[tracing::instrument(skip(state))]
pub async fn list(state: &AppState) -> anyhow::Result<Vec<KeyInfo>> {
    let now = shared::unix_now();
    let window = Some(state.settings.key_published_after_retirement());
    Ok(state
        .key_store
        .load()
        .await?
        .into_iter()
        .map(|k: StoredKey| KeyInfo {
            published: published(&k, now, window),
            kid: k.kid,
            state: k.state,
            format: k.format_version,
            times: k.times,
        })
        .collect())
}

/// Publishes a new key now, to sign after `AUTH_KEY_ROTATION_LEAD` (longer than gateways'
/// JWKS cache and the replicas' reload interval, so every verifier has it first). `None` if a
/// rotation is already pending.
#[tracing::instrument(skip(state))]
pub async fn rotate(state: &AppState, actor: Actor<'_>) -> anyhow::Result<Option<Rotation>> {
    let now = shared::unix_now();
    let at = now + secs(state.settings.keys.rotation_lead);
    let kid = KeyManager::rotate(
        state.key_store.as_ref(),
        state.settings.keys.spec(),
        state.keys.kek(),
        at,
    )
    .await?;
    let Some(kid) = kid else {
        return Ok(None);
    };
    state
        .keys
        .advance(now, state.settings.key_kept_after_retirement())
        .await?;
    state.keys.reload().await?;
    state.audit_writer.event(
        None,
        "key_rotation",
        Some(actor.audit_name()),
        json!({"kid": kid, "activates_at": at}),
    );
    Ok(Some(Rotation {
        kid,
        activates_at: at,
    }))
}

/// Until when a compromised key stays revoked: until every token it could have signed
/// legitimately has expired (refresh tokens live longest), counting replicas that signed with it
/// until they heard of the revocation.
pub fn revocation_until(state: &AppState, now: i64) -> i64 {
    let s = &state.settings;
    let longest = s
        .tokens
        .access_ttl
        .max(s.tokens.refresh_ttl.min(s.tokens.session_max_ttl));
    now + secs(longest) + secs(s.keys.reload_interval)
}

/// The compromise response: a new key signs at once, and every key stored before it (current,
/// retired, a pending next one) is deleted and revoked. Each revocation is a `kid` entry on the
/// feed, so gateways, replicas and downstream verifiers following it refuse every token those
/// keys signed within a second, and no JWKS fetched later brings them back. Tokens of those keys,
/// refresh tokens included, are refused from then on: their signatures can no longer tell our
/// tokens from forged ones. Returns the new key's id and the revoked ones.
#[tracing::instrument(skip(state))]
pub async fn replace_compromised(
    state: &AppState,
    actor: Actor<'_>,
) -> anyhow::Result<(String, Vec<String>)> {
    let spec = state.settings.keys.spec();
    let new = tokio::task::spawn_blocking(move || SigningKey::generate(spec))
        .await
        .context("generating a key")??;
    let kid = new.kid.clone();
    let removed = state
        .key_store
        .replace_all(SigningKey::seal(new, state.keys.kek())?)
        .await
        .context("replacing the stored keys")?;
    let now = shared::unix_now();
    let until = revocation_until(state, now);
    // This process refuses them at once; the others through the revocation stream. (Should
    // writing a revocation fail, the keys are already gone from the store: replicas drop them at
    // their next reload and gateways at their next JWKS fetch.)
    for old in &removed {
        state
            .keys
            .revoke(old, until + secs(state.settings.tokens.leeway));
    }
    state.keys.reload().await?;
    for old in &removed {
        state
            .revocations
            .revoke(
                &shared::RevocationEvent::Kid {
                    value: old.clone(),
                    exp: until,
                },
                now,
            )
            .await
            .with_context(|| {
                format!(
                    "key {kid} signs and key {old} is withdrawn from the JWKS, but its revocation could not be published (gateways drop it at their next JWKS fetch)"
                )
            })?;
    }
    state.audit_writer.event(
        None,
        "key_compromise_rotation",
        Some(actor.audit_name()),
        json!({"kid": kid, "revoked": removed}),
    );
    Ok((kid, removed))
}

/// The periodic key work of every replica: a scheduled rotation when due (one replica wins it),
/// the lifecycle moved on, a reload to see what other replicas did, and the key revocations if
/// they could not be read at start.
#[tracing::instrument(skip(state))]
pub async fn tick(state: &AppState) -> anyhow::Result<()> {
    let now = shared::unix_now();
    if let Some(every) = state.settings.keys.rotation_interval {
        let stored = state.key_store.load().await?;
        let pending = stored.iter().any(|k| k.state == KeyState::Next);
        let due = stored
            .iter()
            .find(|k| k.state == KeyState::Current)
            .map(|k| k.times.activated_at.unwrap_or(k.times.created_at))
            .is_some_and(|since| now - since >= secs(every));
        if due
            && !pending
            && let Some(r) = rotate(state, Actor::Service).await?
        {
            tracing::info!(kid = %r.kid, activates_at = r.activates_at, "scheduled key rotation: new key published");
        }
    }
    follow_configured_algorithm(state).await?;
    state
        .keys
        .advance(now, state.settings.key_kept_after_retirement())
        .await?;
    state.keys.reload().await?;
    if !state.revoked_keys_read.load(Ordering::Relaxed) {
        refuse_revoked(state).await?;
    }
    Ok(())
}

/// Switching `AUTH_SIGNING_ALG` is a rotation: when the signing key's algorithm is not the
/// configured one and no rotation is pending, a key of the configured algorithm is published now
/// and signs after `AUTH_KEY_ROTATION_LEAD` (publish before use), as any rotation. Run at start
/// and at every key tick, so that it happens whichever replica runs the new setting first.
pub async fn follow_configured_algorithm(state: &AppState) -> anyhow::Result<()> {
    let configured = state.settings.keys.signing_alg;
    let signing = state.keys.ring().signing().algorithm();
    if signing == configured {
        return Ok(());
    }
    let stored = state.key_store.load().await?;
    if stored.iter().any(|k| k.state == KeyState::Next) {
        return Ok(());
    }
    if let Some(r) = rotate(state, Actor::Service).await? {
        tracing::info!(
            kid = %r.kid,
            activates_at = r.activates_at,
            from = %signing,
            to = %configured,
            "AUTH_SIGNING_ALG differs from the signing key's algorithm: a key of the configured one is published, and signs once every verifier has it"
        );
    }
    Ok(())
}

/// Applies the live key revocations (compromise rotations) to the loaded keys. The store no
/// longer holds a revoked key unless it was restored from before the compromise: then the
/// revoked key must not sign again, and the compromise response is run anew. When the revocation
/// list cannot be read (Redis refusing us: readiness says why), the service starts anyway and
/// [`tick`] tries again.
pub async fn refuse_revoked(state: &AppState) -> anyhow::Result<()> {
    let now = shared::unix_now();
    let leeway = secs(state.settings.tokens.leeway);
    let entries = match state.feed.live_entries(now).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the key revocations yet; trying again at the next key reload");
            return Ok(());
        }
    };
    state.revoked_keys_read.store(true, Ordering::Relaxed);
    for e in &entries {
        if let Some(kid) = e.kid() {
            state.keys.revoke(kid, e.exp().saturating_add(leeway));
        }
    }
    let signing = state.keys.ring().signing().kid().to_owned();
    if state.keys.is_revoked(&signing) {
        tracing::error!(
            kid = %signing,
            "the current signing key was revoked by a compromise rotation (a key store restored from before it?): replacing every key"
        );
        replace_compromised(state, Actor::Service).await?;
    } else if entries.iter().any(|e| e.kid().is_some()) {
        state.keys.reload().await?;
    }
    Ok(())
}
