//! Who is calling: the bearer token, verified locally with the shared verifier against the cached
//! keys. A bounded per-worker cache of verified tokens skips the signature check for tokens seen
//! before; expiry is still checked on every request, and a change of keys empties it.

use std::sync::Arc;

use shared::{AccessClaims, Validation, Verifier, VerifyError};

use crate::forwarding::ForwardedIdentity;
use crate::metrics::{CacheEvent, Metrics};
use crate::server::RawHeaders;

use crate::keys::KeyCache;
use shared::replica::{Check, RevocationReplica};

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No bearer token.
    Missing,
    /// An `Authorization` header, but not a bearer token: `true` when it has no scheme at all
    /// (a token sent bare), `false` for another scheme (`Basic`, `Token`…).
    NotBearer(bool),
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
    match shared::identity::bearer_token(value) {
        Ok(Some(token)) => Ok(Some(token)),
        // Not a bearer token: say how to send one (RFC 6750: no error code, as for none).
        Ok(None) => Err(AuthFailure::NotBearer(!value.contains(&b' '))),
        Err(_) => Err(AuthFailure::Invalid("malformed")),
    }
}

struct Entry {
    /// The whole token: a hit is a token equal to this one, compared in constant time.
    token: Box<[u8]>,
    identity: Arc<ForwardedIdentity>,
    /// The key generation it was verified under: it hits only while that generation holds.
    generation: u64,
}

/// Hashes the cache's keys: they are already random (a signature's tail), so one
/// multiplication and a fold spread them over the bits the shards and the table read.
#[derive(Clone, Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Multiply, then fold the high half down: the shard (low bits) and the slot then depend
        // on every byte of the key.
        let x = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

/// Counts evictions into the gateway's metrics.
#[derive(Clone)]
struct CountEvictions(Arc<Metrics>);

impl quick_cache::Lifecycle<u64, Arc<Entry>> for CountEvictions {
    type RequestState = ();
    fn on_evict(&self, _: &mut (), _: u64, _: Arc<Entry>) {
        self.0.token_cache(CacheEvent::Eviction);
    }
}

type Table = quick_cache::sync::Cache<
    u64,
    Arc<Entry>,
    quick_cache::UnitWeighter,
    std::hash::BuildHasherDefault<KeyHasher>,
    CountEvictions,
>;

/// Verified tokens, one cache shared by every worker (sharded locks, `quick_cache::sync`).
///
/// Shared rather than one per worker: requests reach the workers spread evenly (a load
/// balancer's pooled connections carry every user's tokens), so a cache per worker holds the
/// same hot tokens N times and verifies each token up to N times, where one shared cache holds
/// N times more distinct tokens in the same memory. Measured (`gateway/examples/cache_sharing.rs`,
/// Zipf over 100,000 tokens): with 4 workers 90% hits shared against 78% per worker at the same
/// memory, for ~15 ns more per hit (~60 ns with two cores reading the same entries), against
/// ~20 µs for a verification a miss costs.
///
/// Bounded, and it keeps what is hot: when full, quick_cache's CLOCK-Pro variant (close to
/// S3-FIFO) evicts tokens seen once before tokens seen again, so a working set larger than the
/// cache still hits on its frequent tokens instead of starting over. Expiry and `nbf` are
/// checked on every hit, and entries of older keys never hit (each entry carries the key
/// generation it was verified under; a newer generation also empties the table).
///
/// Found by a 64-bit key taken from the token's last eight bytes (its signature's tail, which
/// is random for every token this cache can hold: only verified tokens go in) and confirmed by
/// comparing the whole token in constant time. A presented token is never trusted for its key:
/// one made to share a cached token's key is a miss unless it is that token, byte for byte.
/// This costs a copy of each cached token (~1 KiB) and no hashing of the ~1 KiB presented (a
/// SHA-256 of it was ~4% of the gateway's CPU per request).
pub struct VerifiedCache {
    table: Table,
    /// The newest key generation a token was stored under (0: none yet).
    generation: std::sync::atomic::AtomicU64,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("capacity", &self.capacity)
            .field("len", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens (0 disables it), counting into `metrics`.
    pub fn new(capacity: usize, metrics: Arc<Metrics>) -> Self {
        VerifiedCache {
            table: Table::with(
                capacity,
                capacity.max(1) as u64,
                quick_cache::UnitWeighter,
                Default::default(),
                CountEvictions(Arc::clone(&metrics)),
            ),
            generation: std::sync::atomic::AtomicU64::new(0),
            capacity,
            metrics,
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
        if self.capacity == 0 {
            return None;
        }
        let found = self
            .table
            .get(&Self::key(token))
            .filter(|e| {
                e.generation == generation
                    && aws_lc_rs::constant_time::verify_slices_are_equal(&e.token, token.as_bytes())
                        .is_ok()
            })
            .map(|e| Arc::clone(&e.identity));
        self.metrics.token_cache(if found.is_some() {
            CacheEvent::Hit
        } else {
            CacheEvent::Miss
        });
        found
    }

    fn put(&self, token: &str, identity: Arc<ForwardedIdentity>, generation: u64) {
        if self.capacity == 0 {
            return;
        }
        // Tokens verified with older keys are of no use now: the first worker to store under a
        // newer generation empties the table (an entry of an older generation that another
        // worker stores meanwhile never hits: each entry carries its generation).
        let previous = self
            .generation
            .fetch_max(generation, std::sync::atomic::Ordering::AcqRel);
        if previous < generation {
            self.table.clear();
        }
        // Another token with the same key (never seen in practice) is replaced: a miss for it
        // later costs a verification, never a wrong identity.
        self.table.insert(
            Self::key(token),
            Arc::new(Entry {
                token: token.as_bytes().into(),
                identity,
                generation,
            }),
        );
    }
}

/// Verifies access tokens for one worker.
pub struct WorkerAuthenticator {
    verifier: Verifier,
    keys: Arc<KeyCache>,
    revocations: Option<Arc<RevocationReplica>>,
    cache: Arc<VerifiedCache>,
}

impl WorkerAuthenticator {
    /// An authenticator using the gateway's shared cache of verified tokens.
    pub fn new(
        validation: Validation,
        keys: Arc<KeyCache>,
        revocations: Option<Arc<RevocationReplica>>,
        cache: Arc<VerifiedCache>,
    ) -> Self {
        WorkerAuthenticator {
            verifier: Verifier::new(validation),
            keys,
            revocations,
            cache,
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
                self.cache.put(token, Arc::clone(&identity), generation);
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

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new(vec![]))
    }

    /// Only the very token that was verified hits: one forged to share its key (same length, same
    /// last eight bytes) is a miss, and so is any token after the keys changed.
    #[test]
    fn a_hit_is_the_same_token_byte_for_byte() {
        let cache = VerifiedCache::new(10, metrics());
        let victim = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ2aWN0aW0ifQ.c2lnbmF0dXJlLXRhaWw";
        let forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhdHRhY2sifQ.c2lnbmF0dXJlLXRhaWw";
        assert_eq!(VerifiedCache::key(victim), VerifiedCache::key(forged));
        cache.put(victim, identity("victim"), 1);
        assert_eq!(
            cache.get(victim, 1).map(|i| i.claims.sub.clone()),
            Some("victim".to_owned())
        );
        assert!(cache.get(forged, 1).is_none(), "same key, other token");
        assert!(cache.get(&victim[1..], 1).is_none(), "a suffix");
        assert!(cache.get(victim, 2).is_none(), "keys changed since");
        // A second verified token with the same key takes the slot; neither is ever confused.
        cache.put(forged, identity("other"), 1);
        assert!(cache.get(victim, 1).is_none());
        assert_eq!(
            cache.get(forged, 1).map(|i| i.claims.sub.clone()),
            Some("other".to_owned())
        );
        assert!(cache.get("", 1).is_none() && cache.get("x", 1).is_none());
        // New keys: a token verified with them starts a table of its own.
        cache.put(victim, identity("victim"), 2);
        assert!(cache.get(victim, 2).is_some());
        assert!(cache.get(forged, 1).is_none() && cache.get(forged, 2).is_none());
    }

    fn token(i: usize) -> String {
        format!("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.sig-{i:016x}")
    }

    /// When the tokens in use outnumber the cache, the ones used again stay and the ones seen
    /// once go: a stream of new tokens does not flush the hot ones (the old cache emptied itself
    /// when full, so its hit rate fell to nothing).
    #[test]
    fn a_full_cache_keeps_the_tokens_used_again_and_counts_what_it_does() {
        let m = metrics();
        let cache = VerifiedCache::new(1000, Arc::clone(&m));
        let hot: Vec<String> = (0..500).map(token).collect();
        for t in &hot {
            cache.put(t, identity("hot"), 1);
        }
        for round in 0..20 {
            for t in &hot {
                if cache.get(t, 1).is_none() {
                    cache.put(t, identity("hot"), 1);
                }
            }
            // Ten times the capacity of tokens seen once.
            for i in 0..500 {
                let t = token(1_000_000 + round * 500 + i);
                assert!(cache.get(&t, 1).is_none());
                cache.put(&t, identity("once"), 1);
            }
        }
        let kept = hot.iter().filter(|t| cache.get(t, 1).is_some()).count();
        assert!(kept >= 450, "only {kept} of 500 hot tokens kept");
        let text = m.render(None);
        let value = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} not in {text}"))
        };
        assert!(value("gateway_token_cache_evictions_total") >= 9_000);
        assert!(value("gateway_token_cache_lookups_total{result=\"miss\"}") >= 10_000);
        assert!(value("gateway_token_cache_lookups_total{result=\"hit\"}") >= 9_000);
    }

    /// One cache for every worker: a token one worker verified hits on another; an entry a
    /// slower worker stores under an older key generation, after a newer one arrived, never hits.
    #[test]
    fn workers_share_one_cache_and_an_older_generation_never_hits() {
        let cache = Arc::new(VerifiedCache::new(100, metrics()));
        let t = token(1);
        let other = Arc::clone(&cache);
        let t2 = t.clone();
        std::thread::spawn(move || other.put(&t2, identity("shared"), 1))
            .join()
            .unwrap();
        assert_eq!(
            cache.get(&t, 1).map(|i| i.claims.sub.clone()),
            Some("shared".to_owned())
        );
        // Generation 2 arrives (the table empties); a late store under generation 1 follows.
        cache.put(&token(2), identity("new"), 2);
        cache.put(&t, identity("late"), 1);
        assert!(cache.get(&t, 2).is_none(), "an entry of older keys hit");
        assert!(cache.get(&token(2), 2).is_some());
    }

    #[test]
    fn a_zero_capacity_holds_nothing() {
        let none = VerifiedCache::new(0, metrics());
        none.put("token-a.x.aaaaaaaaaa", identity("a"), 1);
        assert!(none.get("token-a.x.aaaaaaaaaa", 1).is_none());
    }
}
