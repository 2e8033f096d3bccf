//! Who is calling: the bearer token, verified locally with the shared verifier against the cached
//! keys. A bounded per-worker cache of verified tokens skips the signature check for tokens seen
//! before; expiry is still checked on every request, and a change of keys empties it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use shared::{AccessClaims, Validation, Verifier, VerifyError};

use crate::forwarding::ForwardedIdentity;
use crate::server::RawHeaders;

use crate::keys::KeyCache;
use shared::replica::{Check, RevocationReplica};

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No bearer token.
    Missing,
    /// A token that does not verify (the reason is a `VerifyError::reason`).
    Invalid(&'static str),
    /// More than one `Authorization` header, or not readable.
    BadRequest,
    /// No usable keys (never fetched, or older than the maximum staleness).
    KeysUnavailable,
    /// A valid token that the revocation list covers.
    Revoked,
    /// A token signed by a key the issuer revoked (compromised): refused whatever it claims.
    RevokedKey,
    /// The revocation list has not loaded yet, or is older than the allowed staleness.
    RevocationsUnavailable(&'static str),
}

/// The bearer token of a request, if it carries one.
pub fn bearer(headers: &RawHeaders) -> Result<Option<&str>, AuthFailure> {
    let mut values = headers.get_all("authorization");
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthFailure::BadRequest);
    }
    // Bytes, not `to_str`: tokens are ~1 KiB and UTF-8 validation is vectorised. The same
    // rules as a downstream service's (`shared::identity::bearer_token`).
    shared::identity::bearer_token(value).map_err(|_| AuthFailure::Invalid("malformed"))
}

struct Entry {
    /// The whole token: a hit is a token equal to this one, compared in constant time.
    token: Box<[u8]>,
    identity: Arc<ForwardedIdentity>,
    generation: u64,
}

/// Verified tokens of one worker.
///
/// Found by a 64-bit key taken from the token's last eight bytes (its signature's tail, which
/// is random for every token this cache can hold: only verified tokens go in) and confirmed by
/// comparing the whole token in constant time. A presented token is never trusted for its key:
/// one made to share a cached token's key is a miss unless it is that token, byte for byte.
/// This costs a copy of each cached token (~1 KiB) and no hashing of the ~1 KiB presented (a
/// SHA-256 of it was ~4% of the gateway's CPU per request).
pub struct VerifiedCache {
    map: RefCell<HashMap<u64, Entry>>,
    capacity: usize,
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> Self {
        VerifiedCache {
            map: RefCell::new(HashMap::new()),
            capacity,
        }
    }

    fn key(token: &str) -> u64 {
        let b = token.as_bytes();
        let mut tail = [0u8; 8];
        let n = b.len().min(8);
        tail[8 - n..].copy_from_slice(&b[b.len() - n..]);
        u64::from_le_bytes(tail) ^ (b.len() as u64).rotate_left(48)
    }

    fn get(&self, token: &str, generation: u64) -> Option<Arc<ForwardedIdentity>> {
        let map = self.map.borrow();
        map.get(&Self::key(token))
            .filter(|e| {
                e.generation == generation
                    && aws_lc_rs::constant_time::verify_slices_are_equal(&e.token, token.as_bytes())
                        .is_ok()
            })
            .map(|e| Arc::clone(&e.identity))
    }

    fn put(&self, token: &str, identity: Arc<ForwardedIdentity>, generation: u64, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.map.borrow_mut();
        if map.len() >= self.capacity {
            // Drop what expired or belongs to old keys; if that is not enough, start over.
            map.retain(|_, e| e.generation == generation && e.identity.claims.exp > now);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        // Another token with the same key (never seen in practice) is replaced: a miss for it
        // later costs a verification, never a wrong identity.
        map.insert(
            Self::key(token),
            Entry {
                token: token.as_bytes().into(),
                identity,
                generation,
            },
        );
    }
}

/// Verifies access tokens for one worker.
pub struct WorkerAuthenticator {
    verifier: Verifier,
    keys: Arc<KeyCache>,
    revocations: Option<Arc<RevocationReplica>>,
    cache: VerifiedCache,
}

impl WorkerAuthenticator {
    /// An authenticator with its own cache.
    pub fn new(
        validation: Validation,
        keys: Arc<KeyCache>,
        revocations: Option<Arc<RevocationReplica>>,
        cache_capacity: usize,
    ) -> Self {
        WorkerAuthenticator {
            verifier: Verifier::new(validation),
            keys,
            revocations,
            cache: VerifiedCache::new(cache_capacity),
        }
    }

    /// Verifies `token` at `now` (seconds since the epoch; `at`, the same moment on the
    /// monotonic clock, ages the keys), then checks the revocation replica (on every request,
    /// cached token or not).
    pub async fn verify(
        &self,
        token: &str,
        now: i64,
        at: std::time::Instant,
    ) -> Result<Arc<ForwardedIdentity>, AuthFailure> {
        let identity = self.verify_signed(token, now, at).await?;
        if let Some(r) = &self.revocations {
            match r.check(&identity.claims) {
                Check::Pass => {}
                Check::Revoked => return Err(AuthFailure::Revoked),
                Check::NotLoaded => {
                    return Err(AuthFailure::RevocationsUnavailable(
                        "the revocation list has not loaded yet",
                    ));
                }
                Check::Stale => {
                    return Err(AuthFailure::RevocationsUnavailable(
                        "the revocation list is out of date",
                    ));
                }
            }
        }
        Ok(identity)
    }

    /// Signature and claims. Expiry and `nbf` are checked even for cached tokens.
    async fn verify_signed(
        &self,
        token: &str,
        now: i64,
        at: std::time::Instant,
    ) -> Result<Arc<ForwardedIdentity>, AuthFailure> {
        let generation = self
            .keys
            .generation_at(at)
            .ok_or(AuthFailure::KeysUnavailable)?;
        if let Some(identity) = self.cache.get(token, generation) {
            let claims = &identity.claims;
            let leeway = self.verifier.validation().leeway;
            if now >= claims.exp.saturating_add(leeway) {
                return Err(AuthFailure::Invalid(VerifyError::Expired.reason()));
            }
            if now.saturating_add(leeway) < claims.nbf {
                return Err(AuthFailure::Invalid(VerifyError::NotYetValid.reason()));
            }
            return Ok(identity);
        }
        let snapshot = self.keys.current().ok_or(AuthFailure::KeysUnavailable)?;
        let result = match self
            .verifier
            .verify::<AccessClaims>(&snapshot.keys, token, now)
        {
            Err(VerifyError::UnknownKid(kid)) if self.keys.is_revoked_key(&kid) => {
                return Err(AuthFailure::RevokedKey);
            }
            Err(VerifyError::UnknownKid(kid)) => {
                // Boxed: the rare refetch keeps its state off every request's future.
                if Box::pin(self.keys.refetch_for_unknown_kid(&kid)).await {
                    let fresh = self.keys.current().ok_or(AuthFailure::KeysUnavailable)?;
                    self.verifier
                        .verify::<AccessClaims>(&fresh.keys, token, now)
                        .map(|c| (c, fresh.generation))
                } else {
                    Err(VerifyError::UnknownKid(kid))
                }
            }
            other => other.map(|c| (c, snapshot.generation)),
        };
        match result {
            Ok((claims, generation)) => {
                let identity = Arc::new(ForwardedIdentity::new(claims));
                self.cache
                    .put(token, Arc::clone(&identity), generation, now);
                Ok(identity)
            }
            Err(e) => Err(AuthFailure::Invalid(e.reason())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(sub: &str) -> Arc<ForwardedIdentity> {
        Arc::new(ForwardedIdentity::new(AccessClaims {
            iss: "i".into(),
            sub: sub.into(),
            aud: shared::Audience::One("api".into()),
            client_id: "app".into(),
            exp: 100,
            iat: 0,
            nbf: 0,
            jti: "j".into(),
            sid: None,
            roles: vec![],
            scope: String::new(),
        }))
    }

    /// Only the very token that was verified hits: one forged to share its key (same length, same
    /// last eight bytes) is a miss, and so is any token after the keys changed.
    #[test]
    fn a_hit_is_the_same_token_byte_for_byte() {
        let cache = VerifiedCache::new(10);
        let victim = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ2aWN0aW0ifQ.c2lnbmF0dXJlLXRhaWw";
        let forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhdHRhY2sifQ.c2lnbmF0dXJlLXRhaWw";
        assert_eq!(VerifiedCache::key(victim), VerifiedCache::key(forged));
        cache.put(victim, identity("victim"), 1, 0);
        assert_eq!(
            cache.get(victim, 1).map(|i| i.claims.sub.clone()),
            Some("victim".to_owned())
        );
        assert!(cache.get(forged, 1).is_none(), "same key, other token");
        assert!(cache.get(&victim[1..], 1).is_none(), "a suffix");
        assert!(cache.get(victim, 2).is_none(), "keys changed since");
        // A second verified token with the same key takes the slot; neither is ever confused.
        cache.put(forged, identity("other"), 1, 0);
        assert!(cache.get(victim, 1).is_none());
        assert_eq!(
            cache.get(forged, 1).map(|i| i.claims.sub.clone()),
            Some("other".to_owned())
        );
        assert!(cache.get("", 1).is_none() && cache.get("x", 1).is_none());
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first_and_a_zero_capacity_holds_nothing() {
        let cache = VerifiedCache::new(2);
        cache.put("token-a.x.aaaaaaaaaa", identity("a"), 1, 0);
        cache.put("token-b.x.bbbbbbbbbb", identity("b"), 1, 0);
        // At capacity and at a time when both have expired: they go, the new one stays.
        cache.put("token-c.x.cccccccccc", identity("c"), 1, 200);
        assert!(cache.get("token-a.x.aaaaaaaaaa", 1).is_none());
        assert!(cache.get("token-c.x.cccccccccc", 1).is_some());
        let none = VerifiedCache::new(0);
        none.put("token-a.x.aaaaaaaaaa", identity("a"), 1, 0);
        assert!(none.get("token-a.x.aaaaaaaaaa", 1).is_none());
    }
}
