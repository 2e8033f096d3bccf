//! Who is calling, as a downstream service sees it: built from verified access-token claims, or
//! read from the identity headers the gateway forwards; plus the bearer-token parsing and the
//! role/scope/principal checks every framework needs. No I/O, no framework.

use crate::claims::{AccessClaims, Principal};
use crate::headers;
use crate::verifier::VerifyError;

/// Longest identity header value accepted (a token's ids are at most 128 bytes; roles and scopes
/// lists are longer).
const MAX_HEADER_VALUE: usize = 4096;
/// Longest id (`sub`, `sid`, `client_id`) accepted from a header.
const MAX_ID: usize = 256;

/// The token in an `Authorization` header value: `Ok(None)` when the header uses another scheme,
/// an error when it says `Bearer` but carries no readable token. The scheme is case-insensitive.
pub fn bearer_token(authorization: &[u8]) -> Result<Option<&str>, VerifyError> {
    let malformed = VerifyError::Malformed("authorization header");
    let Some(space) = authorization.iter().position(|b| *b == b' ') else {
        return if authorization.eq_ignore_ascii_case(b"bearer") {
            Err(malformed)
        } else {
            Ok(None)
        };
    };
    if !authorization[..space].eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let token = std::str::from_utf8(authorization[space + 1..].trim_ascii())
        .map_err(|_| malformed.clone())?;
    if token.is_empty() {
        return Err(malformed);
    }
    Ok(Some(token))
}

/// Why the gateway's identity headers were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// A header the gateway always sets on authenticated routes is absent: the request did not
    /// come through the gateway, or came through a public route.
    #[error("the {0} header is missing")]
    Missing(&'static str),
    /// A header appears more than once.
    #[error("the {0} header is repeated")]
    Repeated(&'static str),
    /// A header's value is empty, too long, not text, or contradicts another header.
    #[error("the {0} header is not valid")]
    Invalid(&'static str),
}

/// A role, scope or principal check failed: the caller is authenticated but not allowed (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// None of the required roles.
    #[error("the token lacks a role this resource requires")]
    Role,
    /// A required scope is missing.
    #[error("the token lacks a scope this resource requires")]
    Scope,
    /// The token speaks for the other kind of principal.
    #[error("this resource is for {} tokens only", .0.as_str())]
    Principal(Principal),
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id (`sub`); for a client's own token, the client id.
    pub user_id: String,
    /// Roles at issue time.
    pub roles: Vec<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The session (`sid`), for user tokens.
    pub session_id: Option<String>,
    /// A user (through a session) or a client acting for itself.
    pub principal: Principal,
    /// The client the token was issued to.
    pub client_id: String,
}

impl Identity {
    /// The identity verified claims carry.
    pub fn from_claims(claims: &AccessClaims) -> Self {
        Identity {
            user_id: claims.sub.clone(),
            roles: claims.roles.clone(),
            scopes: claims.scopes().map(str::to_owned).collect(),
            session_id: claims.sid.clone(),
            principal: claims.principal(),
            client_id: claims.client_id.clone(),
        }
    }

    /// Reads the identity the gateway forwards (`X-User-Id`, `X-User-Roles`, `X-User-Scopes`,
    /// `X-Session-Id`, `X-Auth-Principal`, `X-Auth-Client-Id`). `get_all(name)` yields every value
    /// of the header `name` (lowercase) in the request, e.g.
    /// `|n| headers.get_all(n).iter().map(|v| v.as_bytes())` for an `http::HeaderMap`.
    ///
    /// Only for a service that nothing but the gateway can reach: the gateway removes these
    /// headers from what clients send, but a client that reaches the service directly can write
    /// them. Roles and scopes may be absent (none); the rest must be present, once each, and
    /// agree with each other as a token's claims would.
    pub fn from_gateway_headers<'h, F, I>(mut get_all: F) -> Result<Identity, IdentityError>
    where
        F: FnMut(&'static str) -> I,
        I: IntoIterator<Item = &'h [u8]>,
    {
        let mut one = |name: &'static str| -> Result<Option<&'h str>, IdentityError> {
            let mut values = get_all(name).into_iter();
            let Some(first) = values.next() else {
                return Ok(None);
            };
            if values.next().is_some() {
                return Err(IdentityError::Repeated(name));
            }
            let text = std::str::from_utf8(first).map_err(|_| IdentityError::Invalid(name))?;
            if text.len() > MAX_HEADER_VALUE || text.chars().any(char::is_control) {
                return Err(IdentityError::Invalid(name));
            }
            Ok(Some(text))
        };
        let user_id = one(headers::USER_ID)?.ok_or(IdentityError::Missing(headers::USER_ID))?;
        let principal = match one(headers::PRINCIPAL)? {
            None => return Err(IdentityError::Missing(headers::PRINCIPAL)),
            Some("user") => Principal::User,
            Some("client") => Principal::Client,
            Some(_) => return Err(IdentityError::Invalid(headers::PRINCIPAL)),
        };
        let client_id =
            one(headers::CLIENT_ID)?.ok_or(IdentityError::Missing(headers::CLIENT_ID))?;
        let session_id = one(headers::SESSION_ID)?;
        let roles = list(one(headers::USER_ROLES)?);
        let scopes = list(one(headers::USER_SCOPES)?);
        let id = |v: &str, name| {
            if v.is_empty() || v.len() > MAX_ID || v.contains(char::is_whitespace) {
                Err(IdentityError::Invalid(name))
            } else {
                Ok(())
            }
        };
        id(user_id, headers::USER_ID)?;
        id(client_id, headers::CLIENT_ID)?;
        match (principal, session_id) {
            (Principal::User, Some(sid)) => id(sid, headers::SESSION_ID)?,
            (Principal::User, None) => return Err(IdentityError::Missing(headers::SESSION_ID)),
            // A client's own token has no session, and its subject is the client.
            (Principal::Client, Some(_)) => {
                return Err(IdentityError::Invalid(headers::SESSION_ID));
            }
            (Principal::Client, None) if user_id != client_id => {
                return Err(IdentityError::Invalid(headers::CLIENT_ID));
            }
            (Principal::Client, None) => {}
        }
        Ok(Identity {
            user_id: user_id.to_owned(),
            roles,
            scopes,
            session_id: session_id.map(str::to_owned),
            principal,
            client_id: client_id.to_owned(),
        })
    }

    /// True when the caller holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// True when the caller was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// At least one of `roles` (the gateway's `roles` rule); an empty list allows everyone.
    pub fn require_any_role(&self, roles: &[&str]) -> Result<(), Denied> {
        if roles.is_empty() || roles.iter().any(|r| self.has_role(r)) {
            Ok(())
        } else {
            Err(Denied::Role)
        }
    }

    /// Every one of `scopes` (the gateway's `scopes` rule).
    pub fn require_scopes(&self, scopes: &[&str]) -> Result<(), Denied> {
        if scopes.iter().all(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(Denied::Scope)
        }
    }

    /// A user's token, or a client's own, as `principal` says.
    pub fn require_principal(&self, principal: Principal) -> Result<(), Denied> {
        if self.principal == principal {
            Ok(())
        } else {
            Err(Denied::Principal(principal))
        }
    }
}

/// A comma-separated header value as a list (absent or empty: none).
fn list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Audience;

    fn from(pairs: &[(&str, &str)]) -> Result<Identity, IdentityError> {
        Identity::from_gateway_headers(|name| {
            pairs
                .iter()
                .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
        })
    }

    const USER: [(&str, &str); 6] = [
        ("x-user-id", "5c0f0000-0000-4000-8000-000000000001"),
        ("x-user-roles", "user,admin"),
        ("x-user-scopes", "profile,orders:read"),
        ("x-session-id", "s1"),
        ("x-auth-principal", "user"),
        ("x-auth-client-id", "app"),
    ];

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        USER.iter().copied().filter(|(n, _)| *n != name).collect()
    }

    fn with(name: &str, value: &'static str) -> Vec<(&'static str, &'static str)> {
        USER.iter()
            .copied()
            .map(|(n, v)| (n, if n == name { value } else { v }))
            .collect()
    }

    #[test]
    fn bearer_tokens_are_read_like_the_gateway_reads_them() {
        assert_eq!(bearer_token(b"Bearer abc"), Ok(Some("abc")));
        assert_eq!(bearer_token(b"bEaReR   abc  "), Ok(Some("abc")));
        assert_eq!(bearer_token(b"Basic dXNlcjpwdw=="), Ok(None));
        assert_eq!(bearer_token(b"Token"), Ok(None));
        assert_eq!(bearer_token(b""), Ok(None));
        for bad in [
            &b"Bearer"[..],
            b"bearer ",
            b"Bearer    ",
            b"Bearer \xff\xfe",
        ] {
            assert_eq!(
                bearer_token(bad).map_err(|e| e.reason()),
                Err("malformed"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_gateways_headers_make_an_identity() {
        let id = from(&USER).unwrap();
        assert_eq!(id.user_id, "5c0f0000-0000-4000-8000-000000000001");
        assert_eq!(id.roles, ["user", "admin"]);
        assert_eq!(id.scopes, ["profile", "orders:read"]);
        assert_eq!(id.session_id.as_deref(), Some("s1"));
        assert_eq!(id.principal, Principal::User);
        assert_eq!(id.client_id, "app");
        // No roles or scopes: the gateway sends them empty, or a hop may drop empty headers.
        let id = from(&with("x-user-roles", "")).unwrap();
        assert!(id.roles.is_empty());
        let id = from(&without("x-user-scopes")).unwrap();
        assert!(id.scopes.is_empty());
        // Header names arrive in any case.
        let upper: Vec<(String, &str)> = USER
            .iter()
            .map(|(n, v)| (n.to_ascii_uppercase(), *v))
            .collect();
        let upper: Vec<(&str, &str)> = upper.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        assert!(from(&upper).is_ok());
        let client = [
            ("x-user-id", "billing"),
            ("x-user-roles", ""),
            ("x-user-scopes", "invoices:write"),
            ("x-auth-principal", "client"),
            ("x-auth-client-id", "billing"),
        ];
        let id = from(&client).unwrap();
        assert_eq!(id.principal, Principal::Client);
        assert_eq!(id.session_id, None);
    }

    #[test]
    fn missing_repeated_or_inconsistent_headers_are_refused() {
        assert_eq!(from(&[]), Err(IdentityError::Missing("x-user-id")));
        for name in [
            "x-user-id",
            "x-auth-principal",
            "x-auth-client-id",
            "x-session-id",
        ] {
            assert_eq!(from(&without(name)), Err(IdentityError::Missing(name)));
        }
        let mut twice = USER.to_vec();
        twice.push(("X-User-Id", "someone-else"));
        assert_eq!(from(&twice), Err(IdentityError::Repeated("x-user-id")));
        for (name, value) in [
            ("x-user-id", ""),
            ("x-user-id", "a b"),
            ("x-user-id", "a\tb"),
            ("x-auth-principal", "admin"),
            ("x-auth-principal", "User"),
            ("x-auth-client-id", ""),
            ("x-session-id", ""),
        ] {
            assert_eq!(
                from(&with(name, value)),
                Err(IdentityError::Invalid(name)),
                "{name}: {value:?}"
            );
        }
        let long: &'static str = Box::leak("x".repeat(MAX_ID + 1).into_boxed_str());
        assert_eq!(
            from(&with("x-user-id", long)),
            Err(IdentityError::Invalid("x-user-id"))
        );
        let not_utf8 = Identity::from_gateway_headers(|name| {
            let v: &'static [u8] = if name == "x-user-id" { b"\xff" } else { b"x" };
            std::iter::once(v)
        });
        assert_eq!(not_utf8, Err(IdentityError::Invalid("x-user-id")));
        // A client token has no session and speaks for the client itself.
        let client_with_session = with("x-auth-principal", "client");
        assert_eq!(
            from(&client_with_session),
            Err(IdentityError::Invalid("x-session-id"))
        );
        let mut client_as_user: Vec<_> = without("x-session-id");
        client_as_user.retain(|(n, _)| *n != "x-auth-principal");
        client_as_user.push(("x-auth-principal", "client"));
        assert_eq!(
            from(&client_as_user),
            Err(IdentityError::Invalid("x-auth-client-id"))
        );
    }

    #[test]
    fn claims_and_headers_give_the_same_identity() {
        let claims = AccessClaims {
            iss: "https://issuer".into(),
            sub: "5c0f0000-0000-4000-8000-000000000001".into(),
            aud: Audience::One("api".into()),
            client_id: "app".into(),
            exp: 2,
            iat: 1,
            nbf: 1,
            jti: "j".into(),
            sid: Some("s1".into()),
            roles: vec!["user".into(), "admin".into()],
            scope: "profile orders:read".into(),
        };
        assert_eq!(Identity::from_claims(&claims), from(&USER).unwrap());
    }

    #[test]
    fn roles_scopes_and_principals_are_required_like_the_gateways_rules() {
        let id = from(&USER).unwrap();
        assert_eq!(id.require_any_role(&[]), Ok(()));
        assert_eq!(id.require_any_role(&["admin", "ops"]), Ok(()));
        assert_eq!(id.require_any_role(&["ops"]), Err(Denied::Role));
        assert_eq!(id.require_scopes(&[]), Ok(()));
        assert_eq!(id.require_scopes(&["profile", "orders:read"]), Ok(()));
        assert_eq!(id.require_scopes(&["profile", "x"]), Err(Denied::Scope));
        assert_eq!(id.require_principal(Principal::User), Ok(()));
        let denied = id.require_principal(Principal::Client).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "this resource is for client tokens only"
        );
    }
}
