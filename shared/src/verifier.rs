//! The token verifier both services use. The algorithm comes from the key, never from the token
//! header; claims are decoded only after the signature checks out.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents};

use crate::claims::TokenClaims;
use crate::jwk::{Jwk, JwkSet};
use crate::jws::{self, Algorithm, MAX_KID_LEN};

/// Why a token was rejected. `reason()` is a short stable label for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a well-formed compact JWS, or a claim set that does not parse.
    #[error("malformed token ({0})")]
    Malformed(&'static str),
    /// The header names an algorithm other than the key's, or the key's is not accepted.
    #[error("algorithm not accepted")]
    Algorithm,
    /// No `kid` header.
    #[error("token has no key id")]
    MissingKid,
    /// A `kid` we do not hold; the caller may refetch keys (rate-limited) and retry.
    #[error("unknown key id")]
    UnknownKid(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The `typ` header is not the expected token type.
    #[error("wrong token type")]
    WrongType,
    /// `exp` is past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` holds none of the accepted audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// A required claim is empty or out of bounds.
    #[error("invalid claim {0}")]
    InvalidClaim(&'static str),
}

impl VerifyError {
    /// Short stable label (`expired`, `bad_signature`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "malformed",
            VerifyError::Algorithm => "algorithm",
            VerifyError::MissingKid => "missing_kid",
            VerifyError::UnknownKid(_) => "unknown_kid",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::WrongType => "wrong_type",
            VerifyError::Expired => "expired",
            VerifyError::NotYetValid => "not_yet_valid",
            VerifyError::WrongIssuer => "wrong_issuer",
            VerifyError::WrongAudience => "wrong_audience",
            VerifyError::InvalidClaim(_) => "invalid_claim",
        }
    }
}

/// What a client is told about a refused token, by [`VerifyError::reason`] (and `revoked`): what
/// went wrong and, where the client can fix it, how. The gateway and [`crate::Authenticator`]
/// say the same.
pub fn reason_detail(reason: &str) -> &'static str {
    match reason {
        "expired" => "the token has expired",
        "not_yet_valid" => "the token is not valid yet",
        "wrong_type" => {
            "this is not an access token (a refresh token or an ID token?): send the access_token"
        }
        "wrong_issuer" => "the token was issued by another issuer",
        "wrong_audience" => "the token is not meant for this audience",
        "malformed" => "the token is malformed: a JWS compact token is expected",
        "algorithm" => "the token's algorithm is not accepted",
        "unknown_kid" => "the token's signing key is unknown",
        "bad_signature" => "the token's signature does not verify",
        "revoked" | "revoked_key" => "the token has been revoked",
        _ => "the token is not valid",
    }
}

/// Every [`VerifyError::reason`], in a fixed order (metrics label values), then `revoked`, the
/// reason services add when a valid token is on the revocation list, and `revoked_key`, when it
/// was signed by a key the issuer revoked.
pub const FAILURE_REASONS: [&str; 13] = [
    "malformed",
    "algorithm",
    "missing_kid",
    "unknown_kid",
    "bad_signature",
    "wrong_type",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "invalid_claim",
    "revoked",
    "revoked_key",
];

/// Why a JWK could not become a verifying key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not an RSA, EC P-256 or OKP Ed25519 key.
    #[error("unsupported key type {0:?}")]
    KeyType(String),
    /// `use` other than `sig`.
    #[error("key is not for signatures")]
    Use,
    /// No `kid`, or an unusable one.
    #[error("key has no usable kid")]
    Kid,
    /// `alg` names an algorithm we do not support.
    #[error("unsupported algorithm {0:?}")]
    Algorithm(String),
    /// `n`/`e` missing, badly encoded, or not a valid public key (including < 2048 bits).
    #[error("invalid key material")]
    Material,
}

/// A public key ready to verify signatures: parsed once, used for every token.
pub struct VerifyingKey {
    kid: String,
    alg: Algorithm,
    key: ParsedPublicKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

impl VerifyingKey {
    /// Builds a key from a JWK. A JWK without `alg` is taken as `RS256`, the only algorithm the
    /// issuer signs with, so a key can never be used with an algorithm it was not published for.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        // The key type decides the family; `alg`, when present, must belong to it.
        let default_alg = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("RSA", _) => Algorithm::RS256,
            ("EC", Some("P-256")) => Algorithm::ES256,
            ("OKP", Some("Ed25519")) => Algorithm::EdDSA,
            ("EC" | "OKP", crv) => {
                return Err(KeyError::KeyType(format!(
                    "{} {}",
                    jwk.kty,
                    crv.unwrap_or("without crv")
                )));
            }
            _ => return Err(KeyError::KeyType(jwk.kty.clone())),
        };
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(KeyError::Use);
        }
        let kid = jwk
            .kid
            .as_deref()
            .filter(|k| valid_kid(k))
            .ok_or(KeyError::Kid)?;
        let alg = match jwk.alg.as_deref() {
            None => default_alg,
            Some(name) => {
                Algorithm::from_name(name).ok_or_else(|| KeyError::Algorithm(name.to_owned()))?
            }
        };
        if alg.key_type() != jwk.kty {
            return Err(KeyError::Algorithm(alg.name().to_owned()));
        }
        let b64 = |v: &Option<String>| v.as_deref().and_then(jws::b64_decode);
        match alg {
            Algorithm::ES256 => {
                let (x, y) = (b64(&jwk.x), b64(&jwk.y));
                let (Some(x), Some(y)) = (x, y) else {
                    return Err(KeyError::Material);
                };
                if x.len() != 32 || y.len() != 32 {
                    return Err(KeyError::Material);
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                return Self::from_public_bytes(kid, alg, &point);
            }
            Algorithm::EdDSA => {
                let x = b64(&jwk.x).filter(|x| x.len() == 32);
                return Self::from_public_bytes(kid, alg, &x.ok_or(KeyError::Material)?);
            }
            _ => {}
        }
        let n = jwk
            .n
            .as_deref()
            .and_then(jws::b64_decode)
            .ok_or(KeyError::Material)?;
        let e = jwk
            .e
            .as_deref()
            .and_then(jws::b64_decode)
            .ok_or(KeyError::Material)?;
        Self::from_components(kid, alg, &n, &e)
    }

    /// Builds an ES256 key from its uncompressed P-256 point (`04 ‖ x ‖ y`; the point must be on
    /// the curve) or an EdDSA key from its 32 Ed25519 public bytes.
    pub fn from_public_bytes(kid: &str, alg: Algorithm, public: &[u8]) -> Result<Self, KeyError> {
        let verification: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match alg {
            Algorithm::ES256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::EdDSA => &aws_lc_rs::signature::ED25519,
            other => return Err(KeyError::Algorithm(other.name().to_owned())),
        };
        let key = ParsedPublicKey::new(verification, public).map_err(|_| KeyError::Material)?;
        Ok(VerifyingKey {
            kid: kid.to_owned(),
            alg,
            key,
        })
    }

    /// Builds an RSA key from the big-endian modulus and exponent.
    pub fn from_components(
        kid: &str,
        alg: Algorithm,
        n: &[u8],
        e: &[u8],
    ) -> Result<Self, KeyError> {
        // aws-lc defers the size check to verification; enforce ≥ 2048 bits here so a weak key
        // never even enters a key set.
        let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
        if !(2048..=8192).contains(&bits) {
            return Err(KeyError::Material);
        }
        let params = alg
            .rsa_parameters()
            .ok_or_else(|| KeyError::Algorithm(alg.name().to_owned()))?;
        let key = RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(params)
            .map_err(|_| KeyError::Material)?;
        Ok(VerifyingKey {
            kid: kid.to_owned(),
            alg,
            key,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// True when `signature` is a valid signature of `message` under this key and algorithm.
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

fn valid_kid(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= MAX_KID_LEN && kid.bytes().all(|b| b.is_ascii_graphic())
}

/// Verifying keys by `kid`. Cheap to clone (keys are shared).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
}

impl KeySet {
    /// Builds a key set from a JWKS, skipping keys we cannot use. Returns the skipped ones
    /// (kid, reason) so callers can report them; a JWKS with one exotic key still works.
    pub fn from_jwks(set: &JwkSet) -> (KeySet, Vec<(Option<String>, KeyError)>) {
        let mut keys = KeySet::default();
        let mut skipped = Vec::new();
        for jwk in &set.keys {
            match VerifyingKey::from_jwk(jwk) {
                Ok(k) => keys.insert(k),
                Err(e) => skipped.push((jwk.kid.clone(), e)),
            }
        }
        (keys, skipped)
    }

    /// Adds or replaces a key.
    pub fn insert(&mut self, key: VerifyingKey) {
        self.keys.insert(key.kid.clone(), Arc::new(key));
    }

    /// Removes the key with this id; true if it was there.
    pub fn remove(&mut self, kid: &str) -> bool {
        self.keys.remove(kid).is_some()
    }

    /// The key with this id.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid).map(|k| k.as_ref())
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// What a verifier expects of a token.
#[derive(Debug, Clone)]
pub struct Validation {
    /// Exact `iss`.
    pub issuer: String,
    /// Accepted audiences: a token must name at least one.
    pub audiences: Vec<String>,
    /// Clock-skew allowance for `exp` and `nbf`, seconds.
    pub leeway: i64,
    /// Algorithms accepted; `RS256` only by default.
    pub algorithms: Vec<Algorithm>,
}

impl Validation {
    /// RS256 only, 30 s leeway.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Validation {
            issuer: issuer.into(),
            audiences,
            leeway: 30,
            algorithms: vec![Algorithm::RS256],
        }
    }
}

/// Verifies compact JWS tokens against a key set and a [`Validation`].
#[derive(Debug, Clone)]
pub struct Verifier {
    validation: Validation,
}

impl Verifier {
    /// A verifier for the given expectations.
    pub fn new(validation: Validation) -> Self {
        Verifier { validation }
    }

    /// The expectations.
    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    /// Verifies `token` as a `C` (access or refresh claims) at time `now` (seconds).
    pub fn verify<C: TokenClaims>(
        &self,
        keys: &KeySet,
        token: &str,
        now: i64,
    ) -> Result<C, VerifyError> {
        if token.starts_with(crate::claims::REFRESH_TOKEN_PREFIX) {
            // An opaque refresh token: no JWS, and not for a verifier.
            return Err(VerifyError::WrongType);
        }
        let parts = jws::split(token).map_err(VerifyError::Malformed)?;
        let header = &parts.header;
        if header.crit.is_some() {
            return Err(VerifyError::Malformed("crit"));
        }
        if !type_matches(header.typ.as_deref(), C::TYPE) {
            return Err(VerifyError::WrongType);
        }
        let kid = header.kid.as_deref().ok_or(VerifyError::MissingKid)?;
        if !valid_kid(kid) {
            return Err(VerifyError::Malformed("kid"));
        }
        let key = keys
            .get(kid)
            .ok_or_else(|| VerifyError::UnknownKid(kid.to_owned()))?;
        // The key decides the algorithm; the header may only agree with it.
        if !self.validation.algorithms.contains(&key.alg) || header.alg != key.alg.name() {
            return Err(VerifyError::Algorithm);
        }
        if !key.verify_signature(parts.signing_input.as_bytes(), &parts.signature) {
            return Err(VerifyError::BadSignature);
        }
        let payload =
            jws::b64_decode(parts.payload_b64).ok_or(VerifyError::Malformed("payload encoding"))?;
        // UTF-8 throughout, skipped members included (RFC 7519 §7.2).
        let payload =
            std::str::from_utf8(&payload).map_err(|_| VerifyError::Malformed("claims"))?;
        let claims: C =
            serde_json::from_str(payload).map_err(|_| VerifyError::Malformed("claims"))?;
        claims.check_shape().map_err(VerifyError::InvalidClaim)?;
        self.check_claims(&claims, now)?;
        Ok(claims)
    }

    fn check_claims<C: TokenClaims>(&self, claims: &C, now: i64) -> Result<(), VerifyError> {
        let v = &self.validation;
        if claims.issuer() != v.issuer {
            return Err(VerifyError::WrongIssuer);
        }
        if !claims.audience().contains_any(&v.audiences) {
            return Err(VerifyError::WrongAudience);
        }
        if now >= claims.expires_at().saturating_add(v.leeway) {
            return Err(VerifyError::Expired);
        }
        if claims
            .not_before()
            .is_some_and(|nbf| now.saturating_add(v.leeway) < nbf)
        {
            return Err(VerifyError::NotYetValid);
        }
        Ok(())
    }
}

/// `typ` is a media type: compared case-insensitively, with or without `application/`.
fn type_matches(typ: Option<&str>, expected: &str) -> bool {
    let Some(typ) = typ else { return false };
    // `get` rather than slicing: byte 12 may fall inside a multi-byte character (a panic the
    // token_raw fuzz target found).
    let bare = match (typ.get(..12), typ.get(12..)) {
        (Some(media), Some(rest)) if media.eq_ignore_ascii_case("application/") => rest,
        _ => typ,
    };
    bare.eq_ignore_ascii_case(expected)
}

#[cfg(test)]
mod reason_tests {
    use super::*;

    #[test]
    fn token_types_are_media_types_of_any_spelling() {
        assert!(type_matches(Some("at+jwt"), "at+jwt"));
        assert!(type_matches(Some("AT+JWT"), "at+jwt"));
        assert!(type_matches(Some("Application/at+jwt"), "at+jwt"));
        assert!(!type_matches(Some("application/"), "at+jwt"));
        assert!(!type_matches(Some("application/rt+jwt"), "at+jwt"));
        assert!(!type_matches(None, "at+jwt"));
        // Multi-byte characters around byte 12 are compared, not sliced through.
        assert!(!type_matches(Some("applicationé/at+jwt"), "at+jwt"));
        assert!(!type_matches(Some("ay+jwt../etɏpasswd"), "at+jwt"));
        assert!(!type_matches(Some("éééééééé"), "at+jwt"));
    }

    #[test]
    fn every_failure_reason_is_listed() {
        for e in [
            VerifyError::Malformed("x"),
            VerifyError::Algorithm,
            VerifyError::MissingKid,
            VerifyError::UnknownKid("k".into()),
            VerifyError::BadSignature,
            VerifyError::WrongType,
            VerifyError::Expired,
            VerifyError::NotYetValid,
            VerifyError::WrongIssuer,
            VerifyError::WrongAudience,
            VerifyError::InvalidClaim("c"),
        ] {
            assert!(FAILURE_REASONS.contains(&e.reason()), "{}", e.reason());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{AccessClaims, Audience, RefreshClaims};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
    use aws_lc_rs::signature::{self, KeyPair as _};
    use serde_json::json;

    const ISS: &str = "https://issuer.test";
    const NOW: i64 = 1_800_000_000;

    /// Every reason a token is refused for is told as itself, and a refresh or ID token sent as
    /// an access token is told to send the access token.
    #[test]
    fn each_refusal_says_what_went_wrong() {
        let generic = reason_detail("something else");
        for reason in FAILURE_REASONS {
            let detail = reason_detail(reason);
            if !matches!(reason, "missing_kid" | "invalid_claim") {
                assert_ne!(detail, generic, "{reason}");
            }
        }
        assert!(reason_detail(VerifyError::WrongType.reason()).contains("send the access_token"));
    }

    struct Signer {
        kp: KeyPair,
        kid: String,
    }

    impl Signer {
        fn new(kid: &str) -> Self {
            Signer {
                kp: KeyPair::generate(KeySize::Rsa2048).unwrap(),
                kid: kid.into(),
            }
        }
        fn jwk(&self) -> Jwk {
            let c: PublicKeyComponents<Vec<u8>> = self.kp.public_key().into();
            Jwk::rsa(&self.kid, Algorithm::RS256, &c.n, &c.e)
        }
        fn sign_raw(&self, header: &serde_json::Value, payload: &serde_json::Value) -> String {
            self.sign_bytes(
                header.to_string().as_bytes(),
                payload.to_string().as_bytes(),
            )
        }
        fn sign_bytes(&self, header: &[u8], payload: &[u8]) -> String {
            let input = format!("{}.{}", jws::b64_encode(header), jws::b64_encode(payload));
            let mut sig = vec![0; self.kp.public_modulus_len()];
            self.kp
                .sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
            format!("{input}.{}", jws::b64_encode(sig))
        }
        fn access(&self, payload: &serde_json::Value) -> String {
            self.sign_raw(
                &json!({"alg":"RS256","typ":"at+jwt","kid":self.kid}),
                payload,
            )
        }
    }

    fn claims() -> serde_json::Value {
        json!({"iss":ISS,"sub":"u1","aud":"api","client_id":"app","exp":NOW+900,"iat":NOW,
               "nbf":NOW,"jti":"j1","sid":"s1","roles":["user"],"scope":"read"})
    }

    fn setup() -> (Signer, KeySet, Verifier) {
        let s = Signer::new("k1");
        let mut keys = KeySet::default();
        keys.insert(VerifyingKey::from_jwk(&s.jwk()).unwrap());
        let v = Verifier::new(Validation::new(ISS, vec!["api".into()]));
        (s, keys, v)
    }

    fn check(v: &Verifier, keys: &KeySet, t: &str) -> Result<AccessClaims, VerifyError> {
        v.verify::<AccessClaims>(keys, t, NOW)
    }

    #[test]
    fn signed_headers_and_claims_must_be_utf8_throughout() {
        let (s, keys, v) = setup();
        let header = br#"{"alg":"RS256","typ":"at+jwt","kid":"k1"}"#;
        let good = claims().to_string();
        assert!(check(&v, &keys, &s.sign_bytes(header, good.as_bytes())).is_ok());
        // An invalid byte in a claim nobody reads, under a valid signature: refused.
        let mut bad = good.into_bytes();
        bad.pop();
        bad.extend_from_slice(b",\"x\":\"\xa2\"}");
        assert_eq!(
            check(&v, &keys, &s.sign_bytes(header, &bad)).err(),
            Some(VerifyError::Malformed("claims"))
        );
        let bad_header = b"{\"alg\":\"RS256\",\"typ\":\"at+jwt\",\"kid\":\"k1\",\"jwk\":\"\xa2\"}";
        assert_eq!(
            check(
                &v,
                &keys,
                &s.sign_bytes(bad_header, claims().to_string().as_bytes())
            )
            .err(),
            Some(VerifyError::Malformed("header json"))
        );
    }

    #[test]
    fn valid_token_verifies_and_yields_claims() {
        let (s, keys, v) = setup();
        let c = check(&v, &keys, &s.access(&claims())).unwrap();
        assert_eq!(c.sub, "u1");
        assert_eq!(c.roles, vec!["user"]);
        assert_eq!(c.scopes().collect::<Vec<_>>(), vec!["read"]);
        assert_eq!(c.aud, Audience::One("api".into()));
    }

    #[test]
    fn alg_none_in_any_spelling_is_rejected() {
        let (s, keys, v) = setup();
        for alg in ["none", "None", "NONE", "nOnE"] {
            let h = jws::b64_encode(json!({"alg":alg,"typ":"at+jwt","kid":"k1"}).to_string());
            let p = jws::b64_encode(claims().to_string());
            assert_eq!(
                check(&v, &keys, &format!("{h}.{p}.")),
                Err(VerifyError::Malformed("empty part"))
            );
            // With the real signature attached but alg rewritten: still refused.
            let real = s.access(&claims());
            let sig = real.rsplit('.').next().unwrap();
            assert_eq!(
                check(&v, &keys, &format!("{h}.{p}.{sig}")),
                Err(VerifyError::Algorithm)
            );
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_rejected() {
        let (s, keys, v) = setup();
        let h = jws::b64_encode(json!({"alg":"HS256","typ":"at+jwt","kid":"k1"}).to_string());
        let p = jws::b64_encode(claims().to_string());
        let input = format!("{h}.{p}");
        let n = s.jwk().n.unwrap();
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, n.as_bytes()),
            input.as_bytes(),
        );
        let t = format!("{input}.{}", jws::b64_encode(tag.as_ref()));
        assert_eq!(check(&v, &keys, &t), Err(VerifyError::Algorithm));
    }

    #[test]
    fn other_rsa_alg_in_header_is_rejected_even_if_configured() {
        let (s, keys, _) = setup();
        let mut val = Validation::new(ISS, vec!["api".into()]);
        val.algorithms = vec![Algorithm::RS256, Algorithm::RS384, Algorithm::PS256];
        let v = Verifier::new(val);
        let t = s.sign_raw(&json!({"alg":"PS256","typ":"at+jwt","kid":"k1"}), &claims());
        assert_eq!(check(&v, &keys, &t), Err(VerifyError::Algorithm));
    }

    #[test]
    fn tampered_payload_or_signature_is_rejected() {
        let (s, keys, v) = setup();
        let t = s.access(&claims());
        let mut parts: Vec<String> = t.split('.').map(String::from).collect();
        let mut evil = claims();
        evil["roles"] = json!(["admin"]);
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            jws::b64_encode(evil.to_string()),
            parts[2]
        );
        assert_eq!(check(&v, &keys, &tampered), Err(VerifyError::BadSignature));
        let mut sig = jws::b64_decode(&parts[2]).unwrap();
        sig[10] ^= 1;
        parts[2] = jws::b64_encode(sig);
        assert_eq!(
            check(&v, &keys, &parts.join(".")),
            Err(VerifyError::BadSignature)
        );
        // Truncated signature.
        let short = &t[..t.len() - 4];
        assert!(matches!(
            check(&v, &keys, short),
            Err(VerifyError::BadSignature | VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn signature_spellings_are_canonical() {
        // A 256-byte signature ends in a base64url character with 4 unused bits. Setting them
        // must not yield a second valid spelling of the same token.
        let (s, keys, v) = setup();
        let t = s.access(&claims());
        let (head, sig) = t.rsplit_once('.').unwrap();
        let last = sig.chars().last().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.find(last).unwrap();
        for low in 1..16 {
            let other = alphabet.as_bytes()[(idx & !15) | low] as char;
            let spelled = format!("{head}.{}{other}", &sig[..sig.len() - 1]);
            assert!(check(&v, &keys, &spelled).is_err(), "{other}");
        }
        assert!(check(&v, &keys, &t).is_ok());
    }

    #[test]
    fn wrong_iss_aud_and_type_are_rejected() {
        let (s, keys, v) = setup();
        let mut c = claims();
        c["iss"] = json!("https://evil.test");
        assert_eq!(
            check(&v, &keys, &s.access(&c)),
            Err(VerifyError::WrongIssuer)
        );
        let mut c = claims();
        c["aud"] = json!(["other", "another"]);
        assert_eq!(
            check(&v, &keys, &s.access(&c)),
            Err(VerifyError::WrongAudience)
        );
        let mut c = claims();
        c["aud"] = json!(["other", "api"]);
        assert!(check(&v, &keys, &s.access(&c)).is_ok());
        for typ in [json!("JWT"), json!("rt+jwt"), json!(null)] {
            let t = s.sign_raw(&json!({"alg":"RS256","typ":typ,"kid":"k1"}), &claims());
            assert_eq!(check(&v, &keys, &t), Err(VerifyError::WrongType));
        }
        let t = s.sign_raw(
            &json!({"alg":"RS256","typ":"application/AT+JWT","kid":"k1"}),
            &claims(),
        );
        assert!(check(&v, &keys, &t).is_ok());
    }

    #[test]
    fn expiry_and_not_before_honour_the_leeway() {
        let (s, keys, v) = setup();
        let mut c = claims();
        c["exp"] = json!(NOW - 29);
        assert!(check(&v, &keys, &s.access(&c)).is_ok());
        c["exp"] = json!(NOW - 30);
        assert_eq!(check(&v, &keys, &s.access(&c)), Err(VerifyError::Expired));
        let mut c = claims();
        c["nbf"] = json!(NOW + 30);
        assert!(check(&v, &keys, &s.access(&c)).is_ok());
        c["nbf"] = json!(NOW + 31);
        assert_eq!(
            check(&v, &keys, &s.access(&c)),
            Err(VerifyError::NotYetValid)
        );
    }

    #[test]
    fn refresh_and_access_tokens_are_not_interchangeable() {
        let (s, keys, v) = setup();
        let rt = s.sign_raw(
            &json!({"alg":"RS256","typ":"rt+jwt","kid":"k1"}),
            &json!({"iss":ISS,"sub":"u1","aud":ISS,"exp":NOW+900,"iat":NOW,"jti":"r1","sid":"s1"}),
        );
        assert_eq!(check(&v, &keys, &rt), Err(VerifyError::WrongType));
        let rv = Verifier::new(Validation::new(ISS, vec![ISS.into()]));
        assert!(rv.verify::<RefreshClaims>(&keys, &rt, NOW).is_ok());
        assert_eq!(
            rv.verify::<RefreshClaims>(&keys, &s.access(&claims()), NOW),
            Err(VerifyError::WrongType)
        );
    }

    /// EC and OKP keys: the key type decides the algorithm family, so a JWK whose `alg`
    /// belongs to another family, an unsupported curve, a point off the curve or public bytes of
    /// the wrong length never become a key; well-formed P-256 and Ed25519 keys do.
    #[test]
    fn ec_and_okp_jwks_are_accepted_only_when_type_curve_alg_and_material_agree() {
        let rng = SystemRandom::new();
        let ec = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let ec = signature::EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            ec.as_ref(),
        )
        .unwrap();
        let point = ec.public_key().as_ref().to_vec();
        let good_ec = Jwk::ec_p256("ec", &point[1..33], &point[33..65]);
        assert_eq!(
            VerifyingKey::from_jwk(&good_ec).unwrap().algorithm(),
            Algorithm::ES256
        );
        let mut no_alg = good_ec.clone();
        no_alg.alg = None;
        assert_eq!(
            VerifyingKey::from_jwk(&no_alg).unwrap().algorithm(),
            Algorithm::ES256
        );
        let ed = signature::Ed25519KeyPair::generate().unwrap();
        let good_ed = Jwk::ed25519("ed", ed.public_key().as_ref());
        assert_eq!(
            VerifyingKey::from_jwk(&good_ed).unwrap().algorithm(),
            Algorithm::EdDSA
        );

        let with = |base: &Jwk, f: &dyn Fn(&mut Jwk)| {
            let mut j = base.clone();
            f(&mut j);
            VerifyingKey::from_jwk(&j).map(|k| k.algorithm())
        };
        // Another family's algorithm on the key.
        for alg in ["RS256", "PS256", "EdDSA"] {
            assert!(
                matches!(
                    with(&good_ec, &|j| j.alg = Some(alg.into())),
                    Err(KeyError::Algorithm(_))
                ),
                "EC + {alg}"
            );
        }
        for alg in ["RS256", "ES256"] {
            assert!(
                matches!(
                    with(&good_ed, &|j| j.alg = Some(alg.into())),
                    Err(KeyError::Algorithm(_))
                ),
                "OKP + {alg}"
            );
        }
        // Curves we do not take, or none.
        for crv in [Some("P-384"), Some("secp256k1"), None] {
            assert!(
                matches!(
                    with(&good_ec, &|j| j.crv = crv.map(Into::into)),
                    Err(KeyError::KeyType(_))
                ),
                "{crv:?}"
            );
        }
        assert!(matches!(
            with(&good_ed, &|j| j.crv = Some("Ed448".into())),
            Err(KeyError::KeyType(_))
        ));
        // Material: a point off the curve, coordinates of the wrong length, missing ones.
        let mut off = point.clone();
        off[64] ^= 1;
        let off_curve = Jwk::ec_p256("ec", &off[1..33], &off[33..65]);
        assert_eq!(
            VerifyingKey::from_jwk(&off_curve).err(),
            Some(KeyError::Material)
        );
        assert_eq!(
            with(&good_ec, &|j| j.y =
                Some(crate::jws::b64_encode(&point[33..64])))
            .err(),
            Some(KeyError::Material)
        );
        assert_eq!(
            with(&good_ec, &|j| j.y = None).err(),
            Some(KeyError::Material)
        );
        assert_eq!(
            with(&good_ed, &|j| j.x = Some(crate::jws::b64_encode([0u8; 31]))).err(),
            Some(KeyError::Material)
        );
        assert_eq!(
            with(&good_ed, &|j| j.x = None).err(),
            Some(KeyError::Material)
        );
    }

    #[test]
    fn an_opaque_refresh_token_is_named_as_a_refresh_token() {
        let (_, keys, v) = setup();
        let opaque = format!(
            "{}AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIj",
            crate::claims::REFRESH_TOKEN_PREFIX
        );
        assert_eq!(check(&v, &keys, &opaque), Err(VerifyError::WrongType));
        assert!(reason_detail(VerifyError::WrongType.reason()).contains("refresh token"));
        // The same letters without the prefix are only a malformed token.
        assert!(matches!(
            check(
                &v,
                &keys,
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIj"
            ),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn embedded_key_headers_are_never_trusted() {
        let (_, keys, v) = setup();
        // An attacker signs with their own key and points at it every way JOSE allows.
        let evil = Signer::new("k1");
        let jwk = serde_json::to_value(evil.jwk()).unwrap();
        let h = json!({"alg":"RS256","typ":"at+jwt","kid":"k1","jwk":jwk,
                       "jku":"http://127.0.0.1:1/jwks","x5u":"http://127.0.0.1:1/x5u"});
        assert_eq!(
            check(&v, &keys, &evil.sign_raw(&h, &claims())),
            Err(VerifyError::BadSignature)
        );
        let h = json!({"alg":"RS256","typ":"at+jwt","kid":"evil","jwk":jwk});
        assert_eq!(
            check(&v, &keys, &evil.sign_raw(&h, &claims())),
            Err(VerifyError::UnknownKid("evil".into()))
        );
    }

    #[test]
    fn hostile_kids_and_headers_are_rejected() {
        let (s, keys, v) = setup();
        let with_header = |h: serde_json::Value| s.sign_raw(&h, &claims());
        assert_eq!(
            check(
                &v,
                &keys,
                &with_header(json!({"alg":"RS256","typ":"at+jwt"}))
            ),
            Err(VerifyError::MissingKid)
        );
        for kid in [
            "",
            "a\nb",
            "k1\u{0}",
            &"x".repeat(129),
            "ключ",
            "' OR 1=1 --",
            "k1 ",
        ] {
            let t = with_header(json!({"alg":"RS256","typ":"at+jwt","kid":kid}));
            assert_eq!(
                check(&v, &keys, &t),
                Err(VerifyError::Malformed("kid")),
                "kid {kid:?}"
            );
        }
        for kid in ["../../etc/passwd", "'OR'1'='1", "${jndi:ldap://x}"] {
            let t = with_header(json!({"alg":"RS256","typ":"at+jwt","kid":kid}));
            assert_eq!(
                check(&v, &keys, &t),
                Err(VerifyError::UnknownKid(kid.into()))
            );
        }
        let t = with_header(json!({"alg":"RS256","typ":"at+jwt","kid":"k1","crit":["exp"]}));
        assert_eq!(check(&v, &keys, &t), Err(VerifyError::Malformed("crit")));
        let t = with_header(json!({"alg":"RS256","typ":"at+jwt","kid":["k1"]}));
        assert_eq!(
            check(&v, &keys, &t),
            Err(VerifyError::Malformed("header json"))
        );
        // Duplicate members are a parser-differential risk: refused.
        let dup = r#"{"alg":"RS256","typ":"at+jwt","kid":"k1","kid":"k2"}"#;
        let input = format!(
            "{}.{}",
            jws::b64_encode(dup),
            jws::b64_encode(claims().to_string())
        );
        let t = format!("{input}.{}", jws::b64_encode([1u8; 256]));
        assert_eq!(
            check(&v, &keys, &t),
            Err(VerifyError::Malformed("header json"))
        );
    }

    #[test]
    fn malformed_and_oversized_tokens_are_rejected() {
        let (s, keys, v) = setup();
        let good = s.access(&claims());
        let cases = [
            String::new(),
            "abc".into(),
            "a.b".into(),
            "a.b.c.d".into(),
            format!("{good}.x"),
            "....".into(),
            "!!!.@@@.###".into(),
            "x".repeat(9000),
            format!("{}=", good),
            format!("{}.{}", good.split('.').next().unwrap(), "e30.sig"),
        ];
        for t in &cases {
            assert!(check(&v, &keys, t).is_err(), "accepted {t:?}");
        }
        // A claim set that is not JSON, signed properly, is malformed only after the signature.
        let input = format!(
            "{}.{}",
            jws::b64_encode(json!({"alg":"RS256","typ":"at+jwt","kid":"k1"}).to_string()),
            jws::b64_encode("not json")
        );
        let mut sig = vec![0; s.kp.public_modulus_len()];
        s.kp.sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .unwrap();
        let t = format!("{input}.{}", jws::b64_encode(sig));
        assert_eq!(check(&v, &keys, &t), Err(VerifyError::Malformed("claims")));
        // Float or string dates are not our NumericDate.
        let mut c = claims();
        c["exp"] = json!("tomorrow");
        assert_eq!(
            check(&v, &keys, &s.access(&c)),
            Err(VerifyError::Malformed("claims"))
        );
        let mut c = claims();
        c["sub"] = json!("");
        assert_eq!(
            check(&v, &keys, &s.access(&c)),
            Err(VerifyError::InvalidClaim("sub"))
        );
    }

    #[test]
    fn unusable_jwks_entries_are_skipped_not_fatal() {
        let s = Signer::new("good");
        let mut enc = s.jwk();
        enc.kid = Some("enc".into());
        enc.use_ = Some("enc".into());
        let mut hs = s.jwk();
        hs.kid = Some("hs".into());
        hs.alg = Some("HS256".into());
        let ec = Jwk {
            kty: "EC".into(),
            kid: Some("ec".into()),
            use_: None,
            alg: None,
            n: None,
            e: None,
            crv: Some("P-384".into()),
            x: None,
            y: None,
        };
        let weak = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let c: PublicKeyComponents<Vec<u8>> = weak.public_key().into();
        let mut small = Jwk::rsa("small", Algorithm::RS256, &c.n[..128], &c.e);
        small.kid = Some("small".into());
        let set = JwkSet {
            keys: vec![s.jwk(), enc, hs, ec, small],
        };
        let (keys, skipped) = KeySet::from_jwks(&set);
        assert_eq!(keys.kids().collect::<Vec<_>>(), vec!["good"]);
        assert_eq!(skipped.len(), 4);
        assert!(
            skipped
                .iter()
                .any(|(k, e)| k.as_deref() == Some("small") && *e == KeyError::Material)
        );
    }

    #[test]
    fn jwks_round_trips_without_private_members() {
        let s = Signer::new("k1");
        let doc = serde_json::to_value(JwkSet {
            keys: vec![s.jwk()],
        })
        .unwrap();
        let key = &doc["keys"][0];
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["e"], "AQAB");
        assert!(key.get("d").is_none());
        let back: JwkSet = serde_json::from_value(doc).unwrap();
        assert!(VerifyingKey::from_jwk(&back.keys[0]).is_ok());
    }
}
