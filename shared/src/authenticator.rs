//! Authentication for a downstream service, for any framework: verify the bearer token locally
//! with the issuer's cached keys (the gateway's rules), or, when explicitly configured, trust the
//! identity headers the gateway forwards.
//!
//! Revocation: with [`Authenticator::with_revocations`], a local replica of the revocation list,
//! kept current by the issuer's feed ([`crate::replica`]), is checked on every request, as the
//! gateway does: a revoked token (logout, password change, disabled user, a compromised signing
//! key) is refused within about a millisecond of its revocation. Without it, a revoked token
//! stays valid here until it expires (15 minutes by default), except for a compromised key's,
//! which the issuer also withdraws from its JWKS.

use std::sync::Arc;

use crate::claims::AccessClaims;
use crate::identity::{Identity, IdentityError, bearer_token};
use crate::keys::KeyCache;
use crate::replica::{Check, RevocationReplica};
use crate::verifier::{Validation, Verifier, VerifyError};

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No bearer token (401 with a bare `Bearer` challenge).
    #[error("a bearer access token is required")]
    Missing,
    /// More than one `Authorization` header (400 `invalid_request`).
    #[error("send exactly one Authorization header")]
    InvalidRequest,
    /// The token does not verify (401 `invalid_token`).
    #[error("invalid token: {0}")]
    InvalidToken(VerifyError),
    /// Header-trust mode: the gateway's identity headers are absent or invalid (401).
    #[error("no identity from the gateway: {0}")]
    NoGatewayIdentity(IdentityError),
    /// The token verifies, but it, its session, its user or its signing key has been revoked
    /// (401 `invalid_token`).
    #[error("the token has been revoked")]
    Revoked,
    /// No usable keys yet, or only keys older than the maximum staleness (503).
    #[error("token verification keys are not available yet")]
    KeysUnavailable,
    /// The revocation list has not loaded yet, or is older than the allowed staleness (503).
    #[error("{0}")]
    RevocationsUnavailable(&'static str),
    /// A programming error (500): claims asked of an authenticator that trusts the gateway's
    /// headers and never sees a token, or no authenticator where the framework looks for one.
    #[error("misconfigured: {0}")]
    Misconfigured(&'static str),
}

impl AuthError {
    /// Short stable label for logs and metrics (`missing`, a [`VerifyError::reason`], …).
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::InvalidRequest => "invalid_request",
            AuthError::InvalidToken(e) => e.reason(),
            AuthError::Revoked => "revoked",
            AuthError::NoGatewayIdentity(_) => "no_gateway_identity",
            AuthError::KeysUnavailable => "keys_unavailable",
            AuthError::RevocationsUnavailable(_) => "revocations_unavailable",
            AuthError::Misconfigured(_) => "misconfigured",
        }
    }

    /// The HTTP status this failure answers with.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing
            | AuthError::InvalidToken(_)
            | AuthError::Revoked
            | AuthError::NoGatewayIdentity(_) => 401,
            AuthError::InvalidRequest => 400,
            AuthError::KeysUnavailable | AuthError::RevocationsUnavailable(_) => 503,
            AuthError::Misconfigured(_) => 500,
        }
    }

    /// What the client is told (no more than the gateway tells it).
    pub fn detail(&self) -> &'static str {
        match self {
            AuthError::Missing => {
                "a bearer access token is required: send Authorization: Bearer <access token>"
            }
            AuthError::InvalidRequest => "send exactly one Authorization header",
            AuthError::InvalidToken(e) => crate::verifier::reason_detail(e.reason()),
            AuthError::Revoked => "the token has been revoked",
            AuthError::NoGatewayIdentity(_) => "the request carries no authenticated identity",
            AuthError::KeysUnavailable => "token verification keys are not available yet",
            AuthError::RevocationsUnavailable(why) => why,
            AuthError::Misconfigured(_) => "the service is misconfigured",
        }
    }

    /// The problem body's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing | AuthError::NoGatewayIdentity(_) => "unauthorized",
            AuthError::InvalidRequest => "invalid_request",
            AuthError::InvalidToken(_) | AuthError::Revoked => "invalid_token",
            AuthError::KeysUnavailable => "keys_unavailable",
            AuthError::RevocationsUnavailable(_) => "revocations_unavailable",
            AuthError::Misconfigured(_) => "internal",
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3) for a 401 or 400; `None` otherwise.
    pub fn challenge(&self) -> Option<String> {
        match self {
            AuthError::Missing | AuthError::NoGatewayIdentity(_) => Some("Bearer".to_owned()),
            AuthError::InvalidRequest => Some("Bearer error=\"invalid_request\"".to_owned()),
            AuthError::InvalidToken(_) | AuthError::Revoked => Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                self.detail()
            )),
            AuthError::KeysUnavailable
            | AuthError::RevocationsUnavailable(_)
            | AuthError::Misconfigured(_) => None,
        }
    }

    /// The RFC 9457 problem body.
    pub fn problem(&self) -> String {
        let status = self.status();
        let title = match status {
            400 => "Bad Request",
            401 => "Unauthorized",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        };
        crate::problem::body(status, title, self.detail(), Some(self.code()))
    }
}

const NOT_VERIFYING: &str = "this authenticator trusts gateway headers and verifies no tokens";

#[derive(Debug)]
enum Mode {
    Verify {
        keys: Arc<KeyCache>,
        verifier: Verifier,
        revocations: Option<Arc<RevocationReplica>>,
    },
    TrustGateway,
}

/// Authenticates requests. Build one per service and share it (it is `Send + Sync`).
#[derive(Debug)]
pub struct Authenticator {
    mode: Mode,
}

impl Authenticator {
    /// Verifies bearer tokens with `keys` against `validation` (RS256 only unless it says
    /// otherwise; `iss`, accepted `aud`, `exp`/`nbf` with its leeway, `typ` `at+jwt`). Keep the
    /// keys fresh with [`KeyCache::spawn_refresher`].
    pub fn new(keys: Arc<KeyCache>, validation: Validation) -> Self {
        Authenticator {
            mode: Mode::Verify {
                keys,
                verifier: Verifier::new(validation),
                revocations: None,
            },
        }
    }

    /// Also checks every verified token against `replica` (keep it current with a
    /// [`crate::ReplicaFollower`] sharing this authenticator's key cache): revoked tokens get
    /// 401, and until the first snapshot has loaded (or once the list is older than its
    /// `max_staleness`) every token gets 503, never a pass. No effect in header-trust mode.
    ///
    /// ```text
    /// let replica = Arc::new(RevocationReplica::new(ReplicaConfig::default()));
    /// ReplicaFollower::new(Arc::clone(&replica), Arc::clone(&keys), feed_token).spawn();
    /// let auth = Authenticator::new(keys, validation).with_revocations(replica);
    /// ```
    pub fn with_revocations(mut self, replica: Arc<RevocationReplica>) -> Self {
        if let Mode::Verify { revocations, .. } = &mut self.mode {
            *revocations = Some(replica);
        }
        self
    }

    /// The revocation replica, when one is checked.
    pub fn revocations(&self) -> Option<&Arc<RevocationReplica>> {
        match &self.mode {
            Mode::Verify { revocations, .. } => revocations.as_ref(),
            Mode::TrustGateway => None,
        }
    }

    /// Trusts the identity headers the gateway forwards and verifies no token. Only for a service
    /// that nothing but the gateway can reach (network policy, a private listener): anyone who
    /// reaches it directly can claim any identity.
    pub fn trust_gateway_headers() -> Self {
        Authenticator {
            mode: Mode::TrustGateway,
        }
    }

    /// True in header-trust mode.
    pub fn trusts_gateway_headers(&self) -> bool {
        matches!(self.mode, Mode::TrustGateway)
    }

    /// The key cache, when verifying tokens (readiness: `keys().and_then(|k| k.current())`).
    pub fn keys(&self) -> Option<&Arc<KeyCache>> {
        match &self.mode {
            Mode::Verify { keys, .. } => Some(keys),
            Mode::TrustGateway => None,
        }
    }

    /// Claims exist only in verifying mode.
    fn verifying(&self) -> Result<(), AuthError> {
        if self.trusts_gateway_headers() {
            Err(AuthError::Misconfigured(NOT_VERIFYING))
        } else {
            Ok(())
        }
    }

    /// Verifies the bearer token of an `Authorization` header value.
    pub async fn verify_bearer(
        &self,
        authorization_header: Option<&str>,
    ) -> Result<AccessClaims, AuthError> {
        self.verifying()?;
        let token = authorization_header
            .map(|h| bearer_token(h.as_bytes()))
            .transpose()
            .map_err(AuthError::InvalidToken)?
            .flatten()
            .ok_or(AuthError::Missing)?;
        self.verify_token(token).await
    }

    /// Verifies an access token: signature with a known key (an unknown `kid` refetches the JWKS
    /// at most once per cool-down, one fetch however many requests wait), then the claims.
    /// Refresh tokens are refused by their `typ`.
    /// A token signed by a key the issuer revoked is refused as revoked, without a refetch.
    /// With a revocation replica, the verified claims are then checked against it.
    pub async fn verify_token(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let Mode::Verify {
            keys,
            verifier,
            revocations,
        } = &self.mode
        else {
            return Err(AuthError::Misconfigured(NOT_VERIFYING));
        };
        let now = crate::unix_now();
        let snapshot = keys.current().ok_or(AuthError::KeysUnavailable)?;
        let claims = match verifier.verify::<AccessClaims>(&snapshot.keys, token, now) {
            Err(VerifyError::UnknownKid(kid)) if keys.is_revoked_key(&kid) => {
                Err(AuthError::Revoked)
            }
            Err(VerifyError::UnknownKid(kid)) => {
                if keys.refetch_for_unknown_kid(&kid).await {
                    let fresh = keys.current().ok_or(AuthError::KeysUnavailable)?;
                    verifier
                        .verify::<AccessClaims>(&fresh.keys, token, now)
                        .map_err(AuthError::InvalidToken)
                } else if keys.is_revoked_key(&kid) {
                    Err(AuthError::Revoked)
                } else {
                    Err(AuthError::InvalidToken(VerifyError::UnknownKid(kid)))
                }
            }
            other => other.map_err(AuthError::InvalidToken),
        }?;
        match revocations.as_ref().map(|r| r.check(&claims)) {
            None | Some(Check::Pass) => Ok(claims),
            Some(Check::Revoked) => Err(AuthError::Revoked),
            Some(Check::NotLoaded) => Err(AuthError::RevocationsUnavailable(
                "the revocation list has not loaded yet",
            )),
            Some(Check::Stale) => Err(AuthError::RevocationsUnavailable(
                "the revocation list is out of date",
            )),
        }
    }

    /// Authenticates a request from its headers, whichever the mode: `get_all(name)` yields every
    /// value of the header `name` (lowercase), as for [`Identity::from_gateway_headers`].
    pub async fn identify<'h, F, I>(&self, mut get_all: F) -> Result<Identity, AuthError>
    where
        F: FnMut(&'static str) -> I,
        I: IntoIterator<Item = &'h [u8]>,
    {
        match &self.mode {
            Mode::TrustGateway => {
                Identity::from_gateway_headers(get_all).map_err(AuthError::NoGatewayIdentity)
            }
            Mode::Verify { .. } => {
                let claims = self.verify_request(get_all("authorization")).await?;
                Ok(Identity::from_claims(&claims))
            }
        }
    }

    /// Verifies the bearer token among a request's `Authorization` header values (exactly one
    /// header, or none).
    pub async fn verify_request<'h>(
        &self,
        authorization: impl IntoIterator<Item = &'h [u8]>,
    ) -> Result<AccessClaims, AuthError> {
        self.verifying()?;
        let mut values = authorization.into_iter();
        let Some(value) = values.next() else {
            return Err(AuthError::Missing);
        };
        if values.next().is_some() {
            return Err(AuthError::InvalidRequest);
        }
        let token = bearer_token(value)
            .map_err(AuthError::InvalidToken)?
            .ok_or(AuthError::Missing)?;
        self.verify_token(token).await
    }

    /// [`Authenticator::identify`] for an `http::HeaderMap` (hyper, axum, tower services).
    pub async fn identify_http(&self, headers: &http::HeaderMap) -> Result<Identity, AuthError> {
        self.identify(|name| {
            headers
                .get_all(name)
                .iter()
                .map(http::HeaderValue::as_bytes)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_a_status_a_body_and_a_challenge_where_needed() {
        let all = [
            AuthError::Missing,
            AuthError::InvalidRequest,
            AuthError::InvalidToken(VerifyError::Expired),
            AuthError::InvalidToken(VerifyError::BadSignature),
            AuthError::Revoked,
            AuthError::NoGatewayIdentity(IdentityError::Missing("x-user-id")),
            AuthError::KeysUnavailable,
            AuthError::RevocationsUnavailable("the revocation list has not loaded yet"),
            AuthError::Misconfigured(NOT_VERIFYING),
        ];
        for e in &all {
            let body: serde_json::Value = serde_json::from_str(&e.problem()).unwrap();
            assert_eq!(body["status"], e.status());
            assert_eq!(body["code"], e.code());
            assert_eq!(
                e.challenge().is_some(),
                matches!(e.status(), 400 | 401),
                "{e:?}"
            );
        }
        assert_eq!(
            AuthError::InvalidToken(VerifyError::Expired)
                .challenge()
                .unwrap(),
            "Bearer error=\"invalid_token\", error_description=\"the token has expired\""
        );
        // The reason a token failed stays in logs; the client learns no more than the gateway
        // tells it.
        let bad = AuthError::InvalidToken(VerifyError::UnknownKid("k9".into()));
        assert!(!bad.problem().contains("k9"));
        assert_eq!(bad.reason(), "unknown_kid");
    }

    #[tokio::test]
    async fn header_trust_mode_reads_headers_and_verifies_no_token() {
        let auth = Authenticator::trust_gateway_headers();
        assert!(auth.trusts_gateway_headers() && auth.keys().is_none());
        assert_eq!(
            auth.verify_bearer(Some("Bearer a.b.c")).await,
            Err(AuthError::Misconfigured(NOT_VERIFYING))
        );
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", http::HeaderValue::from_static("Bearer x"));
        assert_eq!(
            auth.identify_http(&headers).await,
            Err(AuthError::NoGatewayIdentity(IdentityError::Missing(
                "x-user-id"
            )))
        );
        for (k, v) in [
            ("x-user-id", "billing"),
            ("x-auth-principal", "client"),
            ("x-auth-client-id", "billing"),
            ("x-user-scopes", "invoices:write"),
        ] {
            headers.insert(k, http::HeaderValue::from_static(v));
        }
        let id = auth.identify_http(&headers).await.unwrap();
        assert_eq!(id.client_id, "billing");
        assert!(id.has_scope("invoices:write"));
    }

    #[tokio::test]
    async fn requests_without_usable_keys_or_tokens_are_told_apart() {
        // An issuer nobody answers for: no keys, ever.
        let keys = Arc::new(KeyCache::new(crate::keys::KeyCacheConfig::new(
            "http://127.0.0.1:9",
        )));
        let auth = Authenticator::new(keys, Validation::new("http://127.0.0.1:9", vec![]));
        assert_eq!(auth.verify_bearer(None).await, Err(AuthError::Missing));
        assert_eq!(
            auth.verify_bearer(Some("Basic dTpw")).await,
            Err(AuthError::Missing)
        );
        assert_eq!(
            auth.verify_bearer(Some("Bearer "))
                .await
                .map_err(|e| e.status()),
            Err(401)
        );
        assert_eq!(
            auth.verify_bearer(Some("Bearer a.b.c")).await,
            Err(AuthError::KeysUnavailable)
        );
        let two: [&[u8]; 2] = [b"Bearer a.b.c", b"Bearer d.e.f"];
        assert_eq!(
            auth.verify_request(two).await,
            Err(AuthError::InvalidRequest)
        );
        let none: [&[u8]; 0] = [];
        assert_eq!(auth.verify_request(none).await, Err(AuthError::Missing));
    }
}
