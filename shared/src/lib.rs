//! What the auth-service and the gateway must agree on byte for byte: token claims, JWKS types,
//! the JWS verifier, revocation events and the identity header names.
//!
//! A downstream Rust service can depend on this crate to verify access tokens itself.

pub mod claims;
pub mod feed;
pub mod headers;
pub mod jwk;
pub mod jws;
pub mod net;
pub mod probe;
pub mod problem;
pub mod revocation;
pub mod verifier;

pub use claims::{AccessClaims, Audience, Principal, RefreshClaims, TokenClaims};
pub use jwk::{Jwk, JwkSet};
pub use jws::Algorithm;
pub use revocation::RevocationEvent;
pub use verifier::{KeySet, Validation, Verifier, VerifyError, VerifyingKey};

/// Milliseconds since the Unix epoch (feed times, lag).
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, the unit of every `NumericDate` in our tokens.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
