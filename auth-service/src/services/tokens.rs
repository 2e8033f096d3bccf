//! Access and refresh tokens as this service reads them: verified with its own key ring (the
//! published keys for access tokens, every held key for refresh tokens; a revoked key refused
//! without a reload), then, for access tokens, checked against the revocation list.

use shared::{AccessClaims, KeySet, RefreshClaims, TokenClaims, Verifier, VerifyError};

use crate::crypto::keys::KeyRing;
use crate::error::{ApiError, BearerError};
use crate::state::AppState;

/// Verifies a token with the keys `keys` picks from the ring (the published ones for access
/// tokens, every held one for refresh tokens), reloading keys once (rate-limited) when its
/// `kid` is unknown: another replica may have rotated.
async fn verify<C: TokenClaims>(
    state: &AppState,
    verifier: &Verifier,
    token: &str,
    keys: fn(&KeyRing) -> &KeySet,
) -> Result<C, VerifyError> {
    let now = shared::unix_now();
    match verifier.verify::<C>(keys(&state.keys.ring()), token, now) {
        Err(VerifyError::UnknownKid(kid)) if state.keys.reload_for_unknown_kid(&kid).await => {
            verifier.verify::<C>(keys(&state.keys.ring()), token, now)
        }
        other => other,
    }
}

/// Verifies an access token and checks the revocation list.
pub async fn authenticate(state: &AppState, token: &str) -> Result<AccessClaims, ApiError> {
    let claims: AccessClaims = verify(state, &state.access_verifier, token, KeyRing::verifying)
        .await
        .map_err(|e| match e {
            VerifyError::UnknownKid(kid) if state.keys.is_revoked(&kid) => {
                state.metrics.verify_failure("revoked_key");
                ApiError::Unauthorized(BearerError::InvalidToken("the token has been revoked"))
            }
            VerifyError::WrongType if is_refresh_token(token) => {
                state.metrics.verify_failure("wrong_type");
                ApiError::Unauthorized(BearerError::InvalidToken(
                    "this is a refresh token: send the access token (a refresh token only goes to POST /v1/token, for a new pair)",
                ))
            }
            e => {
                state.metrics.verify_failure(e.reason());
                ApiError::Unauthorized(BearerError::InvalidToken(describe(&e)))
            }
        })?;
    if state.revocations.is_revoked(&claims).await? {
        state.metrics.verify_failure("revoked");
        return Err(ApiError::Unauthorized(BearerError::InvalidToken(
            "the token has been revoked",
        )));
    }
    Ok(claims)
}

/// True when a token is an opaque refresh token, or its header says it is a signed one (read
/// without trusting it: only to word the refusal).
fn is_refresh_token(token: &str) -> bool {
    token.starts_with(shared::claims::REFRESH_TOKEN_PREFIX)
        || shared::jws::split(token).is_ok_and(|p| {
            p.header
                .typ
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(shared::claims::REFRESH_TOKEN_TYPE))
        })
}

/// Verifies an access token's signature and claims only (no revocation check).
pub async fn verify_access(state: &AppState, token: &str) -> Result<AccessClaims, VerifyError> {
    verify(state, &state.access_verifier, token, KeyRing::verifying).await
}

/// Verifies a refresh token's signature and claims (its store record is checked on rotation).
pub async fn verify_refresh(state: &AppState, token: &str) -> Result<RefreshClaims, VerifyError> {
    verify(
        state,
        &state.refresh_verifier,
        token,
        KeyRing::refresh_verifying,
    )
    .await
}

/// A client-facing description of a verification failure (no internals).
pub fn describe(e: &VerifyError) -> &'static str {
    match e {
        VerifyError::Expired => "the token has expired",
        VerifyError::NotYetValid => "the token is not valid yet",
        VerifyError::WrongType => "wrong token type",
        VerifyError::WrongIssuer => "the token was issued by someone else",
        VerifyError::WrongAudience => "the token is not meant for this service",
        VerifyError::UnknownKid(_) | VerifyError::MissingKid => {
            "the token was signed by an unknown key"
        }
        VerifyError::BadSignature | VerifyError::Algorithm => "the token signature is invalid",
        VerifyError::Malformed(_) | VerifyError::InvalidClaim(_) => "the token is malformed",
    }
}
