//! Signing keys (RSA for RS256, P-256 for ES256, Ed25519 for EdDSA): generated and used through
//! aws-lc (one crypto backend, no `rsa` crate and so no RUSTSEC-2023-0071), stored as PKCS#8 with
//! a format version, published as a JWKS.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use secrecy::{ExposeSecret, SecretSlice};
use serde::Serialize;
use shared::jws::{self, Header};
use shared::{Algorithm, Jwk, JwkSet, KeySet, VerifyingKey};

use crate::crypto::kek::KeyEncryption;
use crate::storage::{KeyState, KeyStore, StoreError, StoredKey};

/// Storage format 1: the private key as plain PKCS#8 DER (written by earlier versions; read only
/// to be sealed at the next start).
pub const FORMAT_PKCS8_PLAIN: i32 = 1;
/// Storage format 2: PKCS#8 DER sealed with AES-256-GCM under the key-encryption key, the `kid`
/// bound as associated data (see [`crate::crypto::kek`]).
pub const FORMAT_PKCS8_SEALED: i32 = 2;

/// What kind of key to generate: `AUTH_SIGNING_ALG` (and, for RSA, `AUTH_RSA_KEY_BITS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// RS256 with a modulus of this many bits (2048, 3072 or 4096).
    Rsa(usize),
    /// ES256: ECDSA on P-256.
    P256,
    /// EdDSA: Ed25519.
    Ed25519,
}

impl KeySpec {
    /// The JWS algorithm keys of this kind sign with.
    pub fn algorithm(self) -> Algorithm {
        match self {
            KeySpec::Rsa(_) => Algorithm::RS256,
            KeySpec::P256 => Algorithm::ES256,
            KeySpec::Ed25519 => Algorithm::EdDSA,
        }
    }
}

/// The parsed private key.
enum Pair {
    Rsa(KeyPair),
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key ready to sign, parsed once.
pub struct SigningKey {
    kid: String,
    pair: Pair,
    jwk: Jwk,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A freshly generated key: what the store keeps.
pub struct NewKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// Storage format of `private`.
    pub format_version: i32,
    /// Private key bytes in that format.
    pub private: SecretSlice<u8>,
    /// Public JWK.
    pub public_jwk: Jwk,
}

impl NewKey {
    /// The JWS algorithm the key signs with, as its JWK says (what the stores record).
    pub fn algorithm_name(&self) -> &str {
        self.public_jwk.alg.as_deref().unwrap_or("RS256")
    }
}

impl SigningKey {
    /// Generates a key. RSA is slow (tens to hundreds of ms): call it off the async workers.
    pub fn generate(spec: KeySpec) -> anyhow::Result<NewKey> {
        let (der, pair): (Vec<u8>, Pair) = match spec {
            KeySpec::Rsa(bits) => {
                let size = match bits {
                    2048 => KeySize::Rsa2048,
                    3072 => KeySize::Rsa3072,
                    4096 => KeySize::Rsa4096,
                    _ => anyhow::bail!("unsupported RSA key size {bits}"),
                };
                let pair = KeyPair::generate(size)
                    .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
                let der = AsDer::<Pkcs8V1Der>::as_der(&pair)
                    .map_err(|_| anyhow::anyhow!("PKCS#8 encoding failed"))?;
                (der.as_ref().to_vec(), Pair::Rsa(pair))
            }
            KeySpec::P256 => {
                let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
                let doc = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new())
                    .map_err(|_| anyhow::anyhow!("P-256 key generation failed"))?;
                let pair = EcdsaKeyPair::from_pkcs8(alg, doc.as_ref())
                    .map_err(|e| anyhow::anyhow!("P-256 key does not parse: {e}"))?;
                (doc.as_ref().to_vec(), Pair::P256(pair))
            }
            KeySpec::Ed25519 => {
                let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?;
                let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
                    .map_err(|e| anyhow::anyhow!("Ed25519 key does not parse: {e}"))?;
                (doc.as_ref().to_vec(), Pair::Ed25519(pair))
            }
        };
        let jwk = public_jwk(&pair, None);
        Ok(NewKey {
            kid: jwk.kid.clone().unwrap_or_default(),
            format_version: FORMAT_PKCS8_PLAIN,
            private: der.into(),
            public_jwk: jwk,
        })
    }

    /// Seals a freshly generated key for storage (format 2).
    pub fn seal(new: NewKey, kek: &KeyEncryption) -> anyhow::Result<NewKey> {
        anyhow::ensure!(new.format_version == FORMAT_PKCS8_PLAIN, "already sealed");
        let sealed = kek.seal(&new.kid, new.private.expose_secret())?;
        Ok(NewKey {
            format_version: FORMAT_PKCS8_SEALED,
            private: sealed.into(),
            ..new
        })
    }

    /// The PKCS#8 DER of a stored key, whatever its storage format.
    fn plaintext(key: &StoredKey, kek: &KeyEncryption) -> anyhow::Result<SecretSlice<u8>> {
        match key.format_version {
            FORMAT_PKCS8_PLAIN => Ok(key.private.expose_secret().to_vec().into()),
            FORMAT_PKCS8_SEALED => kek
                .open(&key.kid, key.private.expose_secret())
                .map(Into::into)
                .map_err(|e| anyhow::anyhow!("key {}: {e}", key.kid)),
            other => anyhow::bail!(
                "key {} has storage format {other}, which this version cannot read",
                key.kid
            ),
        }
    }

    /// Loads a stored key.
    pub fn from_stored(key: &StoredKey, kek: &KeyEncryption) -> anyhow::Result<Self> {
        let der = Self::plaintext(key, kek)?;
        let der = der.expose_secret();
        // PKCS#8 names the key's type: RSA, EC P-256 or Ed25519, tried in that order.
        let pair = if let Ok(pair) = KeyPair::from_pkcs8(der) {
            if pair.public_modulus_len() * 8 < 2048 {
                anyhow::bail!("key {} is shorter than 2048 bits", key.kid);
            }
            Pair::Rsa(pair)
        } else if let Ok(pair) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
        {
            Pair::P256(pair)
        } else {
            Pair::Ed25519(Ed25519KeyPair::from_pkcs8(der).map_err(|e| {
                anyhow::anyhow!(
                    "key {} does not parse as RSA, P-256 or Ed25519: {e}",
                    key.kid
                )
            })?)
        };
        let jwk = public_jwk(&pair, Some(&key.kid));
        Ok(SigningKey {
            kid: key.kid.clone(),
            pair,
            jwk,
            rng: SystemRandom::new(),
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self.pair {
            Pair::Rsa(_) => Algorithm::RS256,
            Pair::P256(_) => Algorithm::ES256,
            Pair::Ed25519(_) => Algorithm::EdDSA,
        }
    }

    /// Signs `claims` as a compact JWS with header `{"alg":…,"typ":typ,"kid":…}`, the key's
    /// algorithm.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> anyhow::Result<String> {
        let header = Header {
            alg: self.algorithm().name().into(),
            typ: Some(typ.into()),
            kid: Some(self.kid.clone()),
            crit: None,
        };
        let mut token = jws::b64_encode(serde_json::to_vec(&header)?);
        token.push('.');
        token.push_str(&jws::b64_encode(serde_json::to_vec(claims)?));
        let sig = match &self.pair {
            Pair::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    token.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
                sig
            }
            // `r ‖ s`, 64 bytes (the FIXED signing algorithm), as JWS wants (RFC 7518 §3.4).
            Pair::P256(pair) => pair
                .sign(&self.rng, token.as_bytes())
                .map_err(|_| anyhow::anyhow!("ECDSA signing failed"))?
                .as_ref()
                .to_vec(),
            Pair::Ed25519(pair) => pair.sign(token.as_bytes()).as_ref().to_vec(),
        };
        token.push('.');
        token.push_str(&jws::b64_encode(sig));
        Ok(token)
    }
}

fn public_jwk(pair: &Pair, kid: Option<&str>) -> Jwk {
    let mut jwk = match pair {
        Pair::Rsa(pair) => {
            let c: PublicKeyComponents<Vec<u8>> = pair.public_key().into();
            Jwk::rsa("", Algorithm::RS256, &c.n, &c.e)
        }
        Pair::P256(pair) => {
            // Uncompressed SEC1 point: 04 ‖ x ‖ y.
            let point = pair.public_key().as_ref();
            Jwk::ec_p256("", &point[1..33], &point[33..65])
        }
        Pair::Ed25519(pair) => Jwk::ed25519("", pair.public_key().as_ref()),
    };
    jwk.kid = Some(kid.map_or_else(|| jwk.thumbprint(), str::to_owned));
    jwk
}

/// The keys in use at one moment: the signing key, every published key, and the JWKS document.
#[derive(Debug)]
pub struct KeyRing {
    signing: Arc<SigningKey>,
    verifying: KeySet,
    refresh_verifying: KeySet,
    jwks: Vec<u8>,
    etag: String,
    parsed: HashMap<String, Arc<SigningKey>>,
}

impl KeyRing {
    /// The key new tokens are signed with.
    pub fn signing(&self) -> &Arc<SigningKey> {
        &self.signing
    }

    /// Every published key, for verifying our own access tokens.
    pub fn verifying(&self) -> &KeySet {
        &self.verifying
    }

    /// Every key held, published or not: a retired key leaves the JWKS once the access tokens
    /// it signed have expired, but verifies the refresh tokens it signed (which only this
    /// service reads) until they have expired too.
    pub fn refresh_verifying(&self) -> &KeySet {
        &self.refresh_verifying
    }

    /// The serialised JWKS.
    pub fn jwks(&self) -> &[u8] {
        &self.jwks
    }

    /// Strong ETag of the JWKS.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// The same ring without key `kid` (it still signs if it was the signing key: see
    /// [`KeyManager::signing_ring`]).
    fn without(&self, kid: &str) -> anyhow::Result<KeyRing> {
        let mut verifying = self.verifying.clone();
        verifying.remove(kid);
        let mut refresh_verifying = self.refresh_verifying.clone();
        refresh_verifying.remove(kid);
        let mut set: JwkSet = serde_json::from_slice(&self.jwks)?;
        set.keys.retain(|k| k.kid.as_deref() != Some(kid));
        let jwks = serde_json::to_vec(&set)?;
        let mut parsed = self.parsed.clone();
        parsed.remove(kid);
        Ok(KeyRing {
            signing: Arc::clone(&self.signing),
            verifying,
            refresh_verifying,
            etag: etag(&jwks),
            jwks,
            parsed,
        })
    }

    /// The ring of the stored keys less the revoked ones. A retired key is published (and
    /// verifies access tokens) for `published_after_retirement` seconds after it retired (`None`:
    /// as long as it is stored), and verifies refresh tokens as long as it is stored.
    fn build(
        stored: &[StoredKey],
        previous: Option<&KeyRing>,
        kek: &KeyEncryption,
        revoked: &HashMap<String, i64>,
        published_after_retirement: Option<i64>,
    ) -> anyhow::Result<KeyRing> {
        let now = shared::unix_now();
        // A revoked key (a compromise) neither signs, verifies nor is published, whatever the
        // store still says (another replica's compromise rotation may not be visible yet).
        let stored: Vec<&StoredKey> = stored
            .iter()
            .filter(|k| !revoked.contains_key(&k.kid))
            .collect();
        let mut parsed = HashMap::new();
        for key in stored.iter().copied() {
            let sk = match previous.and_then(|p| p.parsed.get(&key.kid)) {
                Some(k) => Arc::clone(k),
                None => Arc::new(SigningKey::from_stored(key, kek)?),
            };
            parsed.insert(key.kid.clone(), sk);
        }
        // Newest current key signs; `stored` comes newest first.
        let signing = stored
            .iter()
            .find(|k| k.state == KeyState::Current)
            .and_then(|k| parsed.get(&k.kid))
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no current signing key in the store"))?;
        let mut verifying = KeySet::default();
        let mut refresh_verifying = KeySet::default();
        let mut set = JwkSet::default();
        for key in stored.iter().copied() {
            if let Some(sk) = parsed.get(&key.kid) {
                let vk = || {
                    VerifyingKey::from_jwk(sk.jwk())
                        .map_err(|e| anyhow::anyhow!("key {}: {e}", key.kid))
                };
                refresh_verifying.insert(vk()?);
                if published(key, now, published_after_retirement) {
                    verifying.insert(vk()?);
                    set.keys.push(sk.jwk().clone());
                }
            }
        }
        let jwks = serde_json::to_vec(&set)?;
        Ok(KeyRing {
            signing,
            verifying,
            refresh_verifying,
            etag: etag(&jwks),
            jwks,
            parsed,
        })
    }
}

/// Whether a stored key is published at `now`: `next` and `current` keys always, a `retired`
/// one until `published_after_retirement` seconds after it retired (`None`: always).
pub fn published(key: &StoredKey, now: i64, published_after_retirement: Option<i64>) -> bool {
    match (key.state, key.times.retired_at, published_after_retirement) {
        (KeyState::Retired, Some(at), Some(window)) => now < at.saturating_add(window),
        _ => true,
    }
}

/// Strong ETag of a JWKS document.
fn etag(jwks: &[u8]) -> String {
    format!(
        "\"{}\"",
        &jws::b64_encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, jwks))[..27]
    )
}

/// Holds the current key ring and keeps it in step with the store.
pub struct KeyManager {
    store: Arc<dyn KeyStore>,
    kek: Arc<KeyEncryption>,
    ring: RwLock<Arc<KeyRing>>,
    /// Revoked (compromised) key ids and until when they stay refused (Unix seconds).
    revoked: RwLock<HashMap<String, i64>>,
    /// How long a retired key stays published (seconds after it retired).
    published_after_retirement: Option<i64>,
    refetch: tokio::sync::Mutex<Option<Instant>>,
    cooldown: Duration,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager").finish_non_exhaustive()
    }
}

impl KeyManager {
    /// Makes sure a signing key exists (generating one under the store's lock if not) and loads
    /// the keys; a retired key is published for `published_after_retirement` seconds after it
    /// retired ([`crate::configuration::Settings::key_published_after_retirement`]).
    pub async fn start(
        store: Arc<dyn KeyStore>,
        spec: KeySpec,
        kek: Arc<KeyEncryption>,
        published_after_retirement: i64,
    ) -> anyhow::Result<Self> {
        if !store.has_current().await? {
            let new = tokio::task::spawn_blocking(move || SigningKey::generate(spec)).await??;
            if store
                .insert_if_no_current(SigningKey::seal(new, &kek)?)
                .await?
            {
                tracing::info!("generated the first signing key");
            }
        }
        Self::seal_at_rest(store.as_ref(), &kek).await?;
        let stored = store.load().await?;
        let window = Some(published_after_retirement);
        let ring = KeyRing::build(&stored, None, &kek, &HashMap::new(), window)?;
        Ok(KeyManager {
            store,
            kek,
            published_after_retirement: window,
            ring: RwLock::new(Arc::new(ring)),
            revoked: RwLock::new(HashMap::new()),
            refetch: tokio::sync::Mutex::new(None),
            cooldown: Duration::from_secs(5),
        })
    }

    /// Seals keys stored in plaintext by earlier versions, and re-seals keys sealed under an
    /// older key-encryption key under the current one. Each update is compare-and-set on the
    /// stored bytes, so replicas starting together do not trip over each other.
    pub async fn seal_at_rest(store: &dyn KeyStore, kek: &KeyEncryption) -> anyhow::Result<usize> {
        let mut changed = 0;
        for key in store.load().await? {
            let current = key.format_version == FORMAT_PKCS8_SEALED
                && kek.sealed_by_current(key.private.expose_secret());
            if current {
                continue;
            }
            let der = SigningKey::plaintext(&key, kek)?;
            let sealed = kek.seal(&key.kid, der.expose_secret())?;
            if store
                .reseal(
                    &key.kid,
                    key.private.expose_secret(),
                    FORMAT_PKCS8_SEALED,
                    &sealed,
                )
                .await?
            {
                changed += 1;
                tracing::info!(
                    kid = %key.kid,
                    from_format = key.format_version,
                    "signing key sealed under the current key-encryption key"
                );
            }
        }
        Ok(changed)
    }

    /// The key-encryption keys the signing keys are sealed with.
    pub fn kek(&self) -> &KeyEncryption {
        &self.kek
    }

    /// The key ring now.
    pub fn ring(&self) -> Arc<KeyRing> {
        Arc::clone(
            &self
                .ring
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Refuses the key `kid` until `until` (Unix seconds): it no longer verifies at once, and
    /// the next [`KeyManager::reload`] leaves it out of the ring whatever the store says.
    pub fn revoke(&self, kid: &str, until: i64) {
        let mut revoked = self
            .revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = shared::unix_now();
        revoked.retain(|_, u| *u >= now);
        let entry = revoked.entry(kid.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
        drop(revoked);
        // Out of the ring at once: it verifies nothing and is no longer published, before any
        // reload from the store.
        let mut ring = self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ring.verifying.get(kid).is_some() {
            match ring.without(kid) {
                Ok(r) => *ring = Arc::new(r),
                Err(e) => tracing::error!(error = %e, kid, "could not drop a revoked key"),
            }
        }
    }

    /// True while `kid` is revoked.
    pub fn is_revoked(&self, kid: &str) -> bool {
        let revoked = self
            .revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !revoked.is_empty() && revoked.get(kid).is_some_and(|u| *u >= shared::unix_now())
    }

    /// The key ring to sign with: if its signing key was revoked meanwhile (another replica's
    /// compromise rotation, heard through the revocation stream), the keys are reloaded first,
    /// so that nothing is signed with a revoked key.
    pub async fn signing_ring(&self) -> Result<Arc<KeyRing>, StoreError> {
        let ring = self.ring();
        if !self.is_revoked(ring.signing().kid()) {
            return Ok(ring);
        }
        self.reload().await?;
        let ring = self.ring();
        if self.is_revoked(ring.signing().kid()) {
            return Err(StoreError::Other(anyhow::anyhow!(
                "the signing key {} is revoked and the store holds no other",
                ring.signing().kid()
            )));
        }
        Ok(ring)
    }

    /// Re-reads the keys from the store.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let stored = self.store.load().await?;
        let previous = self.ring();
        let revoked = self
            .revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let ring = KeyRing::build(
            &stored,
            Some(&previous),
            &self.kek,
            &revoked,
            self.published_after_retirement,
        )
        .map_err(StoreError::Other)?;
        if ring.etag != previous.etag || ring.signing.kid != previous.signing.kid {
            tracing::info!(
                signing_kid = ring.signing.kid(),
                keys = ring.verifying.len(),
                "signing keys changed"
            );
        }
        *self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ring);
        Ok(())
    }

    /// A token named a kid we do not hold: another replica may have rotated. Reloads at most once
    /// per cool-down; concurrent callers wait for the one reload instead of starting their own.
    pub async fn reload_for_unknown_kid(&self, kid: &str) -> bool {
        if self.is_revoked(kid) {
            return false;
        }
        let mut last = self.refetch.lock().await;
        if self.ring().verifying.get(kid).is_some() {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < self.cooldown) {
            return false;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "reloading signing keys failed");
        }
        self.ring().verifying.get(kid).is_some()
    }

    /// Schedules a rotation: a new key is published now as `next` and becomes the signing key
    /// at `activate_after` (publish-before-use). `None` if a rotation is already pending.
    pub async fn rotate(
        store: &dyn KeyStore,
        spec: KeySpec,
        kek: &KeyEncryption,
        activate_after: i64,
    ) -> anyhow::Result<Option<String>> {
        let new = tokio::task::spawn_blocking(move || SigningKey::generate(spec)).await??;
        let kid = new.kid.clone();
        Ok(store
            .add_next(SigningKey::seal(new, kek)?, activate_after)
            .await?
            .then_some(kid))
    }

    /// Moves the lifecycle on (a due `next` key becomes current; retired keys past their time
    /// are removed) and reloads when something changed.
    pub async fn advance(&self, now: i64, retire_for: i64) -> Result<bool, StoreError> {
        let changed = self.store.advance(now, retire_for).await?;
        if changed {
            self.reload().await?;
        }
        Ok(changed)
    }

    /// The store the keys live in.
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::AccessClaims;
    use shared::{Validation, Verifier};

    fn kek() -> KeyEncryption {
        KeyEncryption::new(&[secrecy::SecretString::from(
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".to_owned(),
        )])
        .unwrap()
    }

    fn stored(new: &NewKey, state: KeyState) -> StoredKey {
        StoredKey {
            kid: new.kid.clone(),
            format_version: new.format_version,
            private: new.private.expose_secret().to_vec().into(),
            state,
            times: Default::default(),
        }
    }

    /// Each algorithm's key: generated, stored (sealed) and loaded back, signs tokens that the
    /// shared verifier accepts when it allows that algorithm, and only then; a changed byte of
    /// the signature fails; its JWK carries its type's public members only.
    #[test]
    fn every_signing_algorithm_round_trips_through_the_store_and_the_shared_verifier() {
        for (spec, kty, sig_len) in [
            (KeySpec::Rsa(2048), "RSA", 256),
            (KeySpec::P256, "EC", 64),
            (KeySpec::Ed25519, "OKP", 64),
        ] {
            let alg = spec.algorithm();
            let new = SigningKey::seal(SigningKey::generate(spec).unwrap(), &kek()).unwrap();
            assert_eq!(new.kid, new.public_jwk.thumbprint());
            let ring = KeyRing::build(
                &[stored(&new, KeyState::Current)],
                None,
                &kek(),
                &HashMap::new(),
                None,
            )
            .unwrap();
            assert_eq!(ring.signing().algorithm(), alg);
            let claims = serde_json::json!({"iss":"i","sub":"u","aud":"api","client_id":"c","exp":2_000_000_000i64,
                "iat":1,"nbf":1,"jti":"j","sid":"s","roles":["user"]});
            let token = ring.signing().sign("at+jwt", &claims).unwrap();
            let parts = shared::jws::split(&token).unwrap();
            assert_eq!(parts.header.alg, alg.name());
            assert_eq!(parts.signature.len(), sig_len, "{alg}");
            let mut validation = Validation::new("i", vec!["api".into()]);
            validation.algorithms = vec![alg];
            let v = Verifier::new(validation);
            let c: AccessClaims = v.verify(ring.verifying(), &token, 10).unwrap();
            assert_eq!(c.sub, "u");
            let mut tampered = token.clone().into_bytes();
            let at = tampered.len() - 3;
            tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
            assert!(
                v.verify::<AccessClaims>(
                    ring.verifying(),
                    std::str::from_utf8(&tampered).unwrap(),
                    10
                )
                .is_err()
            );
            // A verifier that does not allow the algorithm refuses the token.
            if alg != Algorithm::RS256 {
                let rs_only = Verifier::new(Validation::new("i", vec!["api".into()]));
                assert_eq!(
                    rs_only.verify::<AccessClaims>(ring.verifying(), &token, 10),
                    Err(shared::VerifyError::Algorithm)
                );
            }
            let jwks: serde_json::Value = serde_json::from_slice(ring.jwks()).unwrap();
            let key = &jwks["keys"][0];
            assert_eq!(key["kid"], new.kid.as_str());
            assert_eq!(
                (key["kty"].as_str(), key["alg"].as_str()),
                (Some(kty), Some(alg.name()))
            );
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(key.get(private).is_none(), "{alg}: {private}");
            }
        }
    }

    #[test]
    fn newest_current_key_signs_and_old_ones_stay_published() {
        let old = SigningKey::generate(KeySpec::Rsa(2048)).unwrap();
        let new = SigningKey::generate(KeySpec::Rsa(2048)).unwrap();
        let ring = KeyRing::build(
            &[
                stored(&new, KeyState::Current),
                stored(&old, KeyState::Retired),
            ],
            None,
            &kek(),
            &HashMap::new(),
            None,
        )
        .unwrap();
        assert_eq!(ring.signing().kid(), new.kid);
        assert_eq!(ring.verifying().len(), 2);
        assert!(
            KeyRing::build(
                &[stored(&old, KeyState::Retired)],
                None,
                &kek(),
                &HashMap::new(),
                None
            )
            .is_err()
        );
        // A next key is published but does not sign.
        let next = SigningKey::generate(KeySpec::Rsa(2048)).unwrap();
        let ring = KeyRing::build(
            &[
                stored(&next, KeyState::Next),
                stored(&new, KeyState::Current),
            ],
            None,
            &kek(),
            &HashMap::new(),
            None,
        )
        .unwrap();
        assert_eq!(ring.signing().kid(), new.kid);
        assert!(ring.verifying().get(&next.kid).is_some());
    }

    #[test]
    fn a_retired_key_leaves_the_jwks_after_its_access_tokens_but_verifies_refresh_tokens() {
        let old = SigningKey::generate(KeySpec::Rsa(2048)).unwrap();
        let new = SigningKey::generate(KeySpec::Rsa(2048)).unwrap();
        let now = shared::unix_now();
        let mut retired = stored(&old, KeyState::Retired);
        retired.times.retired_at = Some(now - 100);
        let keys = [stored(&new, KeyState::Current), retired];
        // Within the window: published, verifying both kinds.
        let ring = KeyRing::build(&keys, None, &kek(), &HashMap::new(), Some(101)).unwrap();
        assert!(ring.verifying().get(&old.kid).is_some());
        assert!(String::from_utf8_lossy(ring.jwks()).contains(&old.kid));
        // Past it: out of the JWKS and of access-token verification, still verifying refresh
        // tokens (which only this service reads) until the key is deleted.
        let ring = KeyRing::build(&keys, None, &kek(), &HashMap::new(), Some(100)).unwrap();
        assert!(ring.verifying().get(&old.kid).is_none());
        assert!(!String::from_utf8_lossy(ring.jwks()).contains(&old.kid));
        assert!(ring.refresh_verifying().get(&old.kid).is_some());
        assert!(ring.refresh_verifying().get(&new.kid).is_some());
        assert!(!published(&keys[1], now, Some(100)) && published(&keys[1], now, None));
        assert!(
            published(&keys[0], now, Some(0)),
            "a current key is always published"
        );
    }

    #[test]
    fn a_revoked_key_neither_signs_verifies_nor_is_published() {
        let old = SigningKey::generate(KeySpec::Rsa(2048)).unwrap();
        let new = SigningKey::generate(KeySpec::Rsa(2048)).unwrap();
        let both = [
            stored(&new, KeyState::Current),
            stored(&old, KeyState::Retired),
        ];
        let revoked = HashMap::from([(old.kid.clone(), i64::MAX)]);
        let ring = KeyRing::build(&both, None, &kek(), &revoked, None).unwrap();
        assert_eq!(ring.signing().kid(), new.kid);
        assert!(ring.verifying().get(&old.kid).is_none());
        assert!(!String::from_utf8_lossy(ring.jwks()).contains(&old.kid));
        // A revoked current key leaves no key to sign with: the ring is refused, not built.
        let revoked = HashMap::from([(new.kid.clone(), i64::MAX)]);
        assert!(KeyRing::build(&both, None, &kek(), &revoked, None).is_err());
    }

    #[test]
    fn unknown_format_versions_are_refused() {
        let new = SigningKey::generate(KeySpec::Rsa(2048)).unwrap();
        let mut s = stored(&new, KeyState::Current);
        s.format_version = 99;
        assert!(SigningKey::from_stored(&s, &kek()).is_err());
    }

    #[test]
    fn sealed_keys_load_and_plaintext_ones_still_read() {
        let k = kek();
        let new = SigningKey::generate(KeySpec::Rsa(2048)).unwrap();
        let plain = stored(&new, KeyState::Current);
        let sealed_new = SigningKey::seal(new, &k).unwrap();
        assert_eq!(sealed_new.format_version, FORMAT_PKCS8_SEALED);
        let sealed = stored(&sealed_new, KeyState::Current);
        assert_ne!(
            sealed.private.expose_secret(),
            plain.private.expose_secret()
        );
        let a = SigningKey::from_stored(&sealed, &k).unwrap();
        let b = SigningKey::from_stored(&plain, &k).unwrap();
        assert_eq!(a.jwk(), b.jwk());
        // Under another kid's row the sealed bytes do not open.
        let mut moved = stored(&sealed_new, KeyState::Current);
        moved.kid = "another".into();
        assert!(SigningKey::from_stored(&moved, &k).is_err());
    }
}
