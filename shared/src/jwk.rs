//! JSON Web Key types (RFC 7517), public parts only: a `Jwk` cannot carry a private member.

use serde::{Deserialize, Serialize};

/// One public key as published in a JWKS: RSA (`n`, `e`), EC P-256 (`crv`, `x`, `y`) or OKP
/// Ed25519 (`crv`, `x`). Members we do not use (`x5c`, …) are ignored on input; private members
/// (`d`, `p`, …) have no field here, so they can never be re-published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA`, `EC` or `OKP`.
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
    /// Curve of an EC or OKP key (`P-256`, `Ed25519`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate (32 bytes for P-256), or an OKP key's public bytes; base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate; base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
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
            crv: None,
            x: None,
            y: None,
        }
    }

    /// An ES256 key from its P-256 point's coordinates (32 bytes each, big-endian).
    pub fn ec_p256(kid: &str, x: &[u8], y: &[u8]) -> Self {
        Jwk {
            kty: "EC".to_owned(),
            kid: Some(kid.to_owned()),
            use_: Some("sig".to_owned()),
            alg: Some(crate::Algorithm::ES256.name().to_owned()),
            n: None,
            e: None,
            crv: Some("P-256".to_owned()),
            x: Some(crate::jws::b64_encode(x)),
            y: Some(crate::jws::b64_encode(y)),
        }
    }

    /// An EdDSA key from its 32 Ed25519 public bytes.
    pub fn ed25519(kid: &str, public: &[u8]) -> Self {
        Jwk {
            kty: "OKP".to_owned(),
            kid: Some(kid.to_owned()),
            use_: Some("sig".to_owned()),
            alg: Some(crate::Algorithm::EdDSA.name().to_owned()),
            n: None,
            e: None,
            crv: Some("Ed25519".to_owned()),
            x: Some(crate::jws::b64_encode(public)),
            y: None,
        }
    }

    /// The RFC 7638 thumbprint (SHA-256, base64url): the required members of the key's type in
    /// lexicographic order, a `kid` anyone can recompute.
    pub fn thumbprint(&self) -> String {
        let m = |v: &Option<String>| v.clone().unwrap_or_default();
        let canonical = match self.kty.as_str() {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                m(&self.crv),
                m(&self.x),
                m(&self.y)
            ),
            "OKP" => format!(
                r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
                m(&self.crv),
                m(&self.x)
            ),
            _ => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                m(&self.e),
                m(&self.n)
            ),
        };
        crate::jws::b64_encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            canonical.as_bytes(),
        ))
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
