//! JSON Web Key types (RFC 7517), public parts only: a `Jwk` cannot carry a private member.

use serde::{Deserialize, Serialize};

/// One public key as published in a JWKS. Members we do not use (`x5c`, `crv`, …) are ignored
/// on input; private members (`d`, `p`, …) have no field here, so they can never be re-published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type (`RSA` for every key we issue).
    pub kty: String,
    /// Key id, matched against the JWS `kid` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended use (`sig`).
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Algorithm the key is for (`RS256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// RSA modulus, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

impl Jwk {
    /// An RSA signing key from its big-endian modulus and exponent.
    pub fn rsa(kid: &str, alg: crate::Algorithm, n: &[u8], e: &[u8]) -> Self {
        Jwk {
            kty: "RSA".to_owned(),
            kid: Some(kid.to_owned()),
            use_: Some("sig".to_owned()),
            alg: Some(alg.name().to_owned()),
            n: Some(crate::jws::b64_encode(strip_leading_zeros(n))),
            e: Some(crate::jws::b64_encode(strip_leading_zeros(e))),
        }
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// A JWK Set document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}
