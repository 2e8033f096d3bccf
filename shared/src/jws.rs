//! JWS compact serialisation (RFC 7515): algorithms we accept, base64url, and splitting a token.

use aws_lc_rs::signature::{self, RsaParameters};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Longest token we look at; anything longer is malformed before any parsing happens.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest JOSE header (base64url characters) we decode.
pub const MAX_HEADER_LEN: usize = 1024;
/// Longest `kid` we accept; also keeps hostile values out of logs and maps.
pub const MAX_KID_LEN: usize = 128;

/// Signature algorithms a verifier can be configured to accept: RSA (PKCS#1 v1.5 and PSS), ECDSA
/// on P-256 (`ES256`) and Ed25519 (`EdDSA`, RFC 8037). The issuer signs with `RS256` unless
/// `AUTH_SIGNING_ALG` says `ES256` or `EdDSA`; a verifier accepts only `RS256` unless configured
/// otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256, the signature as `r ‖ s` (RFC 7518 §3.4).
    ES256,
    /// Ed25519 (RFC 8037); the only `EdDSA` curve we accept.
    EdDSA,
}

impl Algorithm {
    /// The JOSE name (`RS256`, …).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE name, exactly (case matters: `rs256` is not an algorithm).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "EdDSA" => Algorithm::EdDSA,
            _ => return None,
        })
    }

    /// Every algorithm, in a fixed order.
    pub const ALL: [Algorithm; 8] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ];

    /// The JWK `kty` of this algorithm's keys: `RSA`, `EC` or `OKP`.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::ES256 => "EC",
            Algorithm::EdDSA => "OKP",
            _ => "RSA",
        }
    }

    /// aws-lc verification parameters of the RSA algorithms; each enforces a 2048..=8192-bit
    /// modulus. `None` for ES256 and EdDSA.
    pub fn rsa_parameters(self) -> Option<&'static RsaParameters> {
        Some(match self {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            Algorithm::ES256 | Algorithm::EdDSA => return None,
        })
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::from_name(s).ok_or_else(|| format!("unsupported algorithm {s:?}"))
    }
}

/// The JOSE header members we read. Everything else (`jku`, `x5u`, `jwk`, `x5c`, …) is ignored:
/// never fetched, never trusted. Duplicate members make the header malformed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// Algorithm the token claims; must equal the key's.
    pub alg: String,
    /// Token type (`at+jwt`, `rt+jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Critical extensions: we understand none, so any `crit` rejects the token (RFC 7515 §4.1.11).
    #[serde(default, skip_serializing)]
    pub crit: Option<serde_json::Value>,
}

/// base64url without padding.
pub fn b64_encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url decoding: no padding, no non-canonical trailing bits.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// A token split into its three parts, with the header decoded.
#[derive(Debug)]
pub struct Parts<'a> {
    /// The decoded JOSE header.
    pub header: Header,
    /// `base64url(header) "." base64url(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    /// base64url payload, not yet decoded (decoded only after the signature checks out).
    pub payload_b64: &'a str,
    /// The raw signature.
    pub signature: Vec<u8>,
}

/// Splits a compact JWS and decodes its header. `Err` says which part is malformed.
pub fn split(token: &str) -> Result<Parts<'_>, &'static str> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err("token length");
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err("not three parts");
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err("empty part");
    }
    if h.len() > MAX_HEADER_LEN {
        return Err("header length");
    }
    let header_bytes = b64_decode(h).ok_or("header encoding")?;
    // RFC 7515 §5.2: the whole header must be UTF-8 JSON. serde_json checks the UTF-8 of the
    // members it reads, not of the ones it skips (found by the token_signed fuzz target).
    let header_text = std::str::from_utf8(&header_bytes).map_err(|_| "header json")?;
    let header: Header = serde_json::from_str(header_text).map_err(|_| "header json")?;
    let signature = b64_decode(s).ok_or("signature encoding")?;
    Ok(Parts {
        header,
        signing_input: &token[..h.len() + 1 + p.len()],
        payload_b64: p,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_must_be_utf8_json_throughout() {
        let token = |header: &[u8]| format!("{}.e30.c2ln", b64_encode(header));
        let ok = token(br#"{"alg":"RS256","typ":"at+jwt","kid":"k","x":"\u00e9"}"#);
        assert!(split(&ok).is_ok());
        // An invalid byte inside a member we skip: refused all the same.
        let bad = token(b"{\"alg\":\"RS256\",\"kid\":\"k\",\"jwk\":{\"kty\":\"\xa2\"}}");
        assert_eq!(split(&bad).err(), Some("header json"));
    }
}
