//! Who is calling: the bearer token, verified locally with the shared verifier against the cached
//! keys. A bounded per-worker cache of verified tokens skips the signature check for tokens seen
//! before; expiry is still checked on every request, and a change of keys empties it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use shared::{AccessClaims, Validation, Verifier, VerifyError};

use crate::forwarding::Identity;
use crate::server::RawHeaders;

use crate::keys::KeyManager;
use crate::revocation::{Check, Revocations};

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
    identity: Arc<Identity>,
    generation: u64,
}

/// Verified tokens of one worker, by SHA-256 of the token (a 64-bit hash could be made to collide
/// with a victim's token; SHA-256 cannot).
pub struct VerifiedCache {
    map: RefCell<HashMap<[u8; 32], Entry>>,
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

    fn key(token: &str) -> [u8; 32] {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut k = [0u8; 32];
        k.copy_from_slice(d.as_ref());
        k
    }

    fn get(&self, key: &[u8; 32], generation: u64) -> Option<Arc<Identity>> {
        let map = self.map.borrow();
        map.get(key)
            .filter(|e| e.generation == generation)
            .map(|e| Arc::clone(&e.identity))
    }

    fn put(&self, key: [u8; 32], identity: Arc<Identity>, generation: u64, now: i64) {
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
        map.insert(
            key,
            Entry {
                identity,
                generation,
            },
        );
    }
}

/// Verifies access tokens for one worker.
pub struct Authenticator {
    verifier: Verifier,
    keys: Arc<KeyManager>,
    revocations: Option<Arc<Revocations>>,
    cache: VerifiedCache,
}

impl Authenticator {
    /// An authenticator with its own cache.
    pub fn new(
        validation: Validation,
        keys: Arc<KeyManager>,
        revocations: Option<Arc<Revocations>>,
        cache_capacity: usize,
    ) -> Self {
        Authenticator {
            verifier: Verifier::new(validation),
            keys,
            revocations,
            cache: VerifiedCache::new(cache_capacity),
        }
    }

    /// Verifies `token` at `now`, then checks the revocation replica (on every request, cached
    /// token or not).
    pub async fn verify(&self, token: &str, now: i64) -> Result<Arc<Identity>, AuthFailure> {
        let identity = self.verify_signed(token, now).await?;
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
    async fn verify_signed(&self, token: &str, now: i64) -> Result<Arc<Identity>, AuthFailure> {
        let snapshot = self.keys.current().ok_or(AuthFailure::KeysUnavailable)?;
        let key = VerifiedCache::key(token);
        if let Some(identity) = self.cache.get(&key, snapshot.generation) {
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
        let result = match self
            .verifier
            .verify::<AccessClaims>(&snapshot.keys, token, now)
        {
            Err(VerifyError::UnknownKid(kid)) => {
                if self.keys.refetch_for_unknown_kid(&kid).await {
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
                let identity = Arc::new(Identity::new(claims));
                self.cache.put(key, Arc::clone(&identity), generation, now);
                Ok(identity)
            }
            Err(e) => Err(AuthFailure::Invalid(e.reason())),
        }
    }
}
