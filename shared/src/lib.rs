//! What the auth-service and the gateway must agree on byte for byte: token claims, JWKS types,
//! the JWS verifier, revocation events and the identity header names; and, behind features, the
//! verification library downstream Rust services use.
//!
//! # Features
//!
//! - default: pure code only (claims, [`Verifier`], [`Identity`], header names); no async
//!   runtime, no HTTP stack.
//! - `jwks-client`: `keys::KeyCache`, the issuer's keys over HTTP (metadata discovery, JWKS
//!   fetched and refreshed within `Cache-Control` bounds, unknown-`kid` refetch single-flight
//!   once per cool-down, last good keys kept up to a maximum age), the very code the gateway
//!   runs; `replica`, the gateway's revocation replica and its feed follower; and
//!   `authenticator::Authenticator`, which applies the gateway's rules in any framework. Adds
//!   tokio and hyper with rustls (aws-lc), as the gateway uses them.
//! - `actix`: actix-web extractors ([`Identity`], `actix::Verified`) on top of `jwks-client`.
//!
//! # Verifying tokens in a downstream service
//!
//! Two modes; pick one per service.
//!
//! 1. **Verify the bearer token** (`Authenticator::new`): RS256 only (the algorithm comes from
//!    the key), `iss`, an accepted `aud`, `exp`/`nbf` with a leeway, `typ` `at+jwt` (so refresh
//!    tokens are refused), a known `kid` (an unknown one refetches the JWKS at most once per
//!    cool-down); `jku`, `x5u` and `jwk` headers are never followed. Failures answer 401 with
//!    `WWW-Authenticate: Bearer error="invalid_token"` and a problem body; before the first keys
//!    arrive, 503.
//! 2. **Trust the gateway's headers** (`Authenticator::trust_gateway_headers`): the identity comes
//!    from `X-User-Id`, `X-User-Roles`, `X-User-Scopes`, `X-Session-Id`, `X-Auth-Principal` and
//!    `X-Auth-Client-Id`; requests without them get 401. Only for a service that nothing but the
//!    gateway can reach (network policy, a private listener): the gateway strips these headers
//!    from clients, but a client that reaches the service directly can write any identity.
//!
//! **Revocation.** A service verifying tokens itself can hold the gateway's own replica of the
//! revocation list (`replica::RevocationReplica`, kept current from the auth-service's feed by a
//! `replica::ReplicaFollower`, which needs a feed token) and check it on every request
//! (`Authenticator::with_revocations`): tokens revoked at the auth-service (logout, password
//! change, disabled user) and keys revoked by a compromise rotation are refused within about a
//! millisecond. Without a replica, a revoked token stays valid until it expires: sit behind the
//! gateway (mode 2 then inherits its replica) or ask the auth-service's `POST /v1/introspect`.
//!
//! With actix-web (`features = ["actix"]`), the whole service side is:
//!
//! ```text
//! let keys = Arc::new(KeyCache::new(KeyCacheConfig::new(&issuer)));
//! let _refresher = keys.spawn_refresher();
//! let auth = web::Data::new(Authenticator::new(keys, Validation::new(&issuer, vec!["api".into()])));
//! App::new().app_data(auth.clone()).route("/me", web::get().to(me))
//!
//! async fn me(who: Identity) -> Result<HttpResponse, Denied> {
//!     who.require_scopes(&["profile"])?;
//!     Ok(HttpResponse::Ok().body(who.user_id))
//! }
//! ```
//!
//! `examples/downstream.rs` is a complete service
//! (`cargo run -p shared --features actix --example downstream`). Other frameworks call
//! `Authenticator::verify_bearer(authorization_header)` or `Authenticator::identify_http(headers)`.

pub mod claims;
pub mod feed;
pub mod headers;
pub mod identity;
pub mod jwk;
pub mod jws;
pub mod net;
pub mod probe;
pub mod problem;
pub mod revocation;
pub mod verifier;

#[cfg(feature = "actix")]
pub mod actix;
#[cfg(feature = "jwks-client")]
pub mod authenticator;
#[cfg(feature = "jwks-client")]
pub mod http_client;
#[cfg(feature = "jwks-client")]
pub mod keys;
#[cfg(feature = "jwks-client")]
pub mod replica;

pub use claims::{AccessClaims, Audience, Principal, RefreshClaims, TokenClaims};
pub use identity::{Denied, Identity, IdentityError};
pub use jwk::{Jwk, JwkSet};
pub use jws::Algorithm;
pub use revocation::RevocationEvent;
pub use verifier::{KeySet, Validation, Verifier, VerifyError, VerifyingKey};

#[cfg(feature = "jwks-client")]
pub use authenticator::{AuthError, Authenticator};
#[cfg(feature = "jwks-client")]
pub use keys::{KeyCache, KeyCacheConfig};
#[cfg(feature = "jwks-client")]
pub use replica::{ReplicaConfig, ReplicaFollower, RevocationReplica};

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
