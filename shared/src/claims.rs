//! Token claim sets (RFC 7519, RFC 9068 shape) for access and refresh tokens.

use serde::{Deserialize, Serialize};

/// `typ` header of access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// `typ` header of the signed refresh tokens issued before refresh tokens became opaque (still
/// accepted by the issuer until they expire; never accepted where an access token is expected).
pub const REFRESH_TOKEN_TYPE: &str = "rt+jwt";
/// How every refresh token issued now begins: `agrt_` then 256 random bits and a 32-bit
/// checksum, base64url. Only the issuer reads them; a verifier that meets one says it is a
/// refresh token rather than a malformed JWT.
pub const REFRESH_TOKEN_PREFIX: &str = "agrt_";

/// The `aud` claim: RFC 7519 allows a single string or an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience, serialised as a plain string.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// True when any of `accepted` is among this token's audiences.
    pub fn contains_any(&self, accepted: &[String]) -> bool {
        match self {
            Audience::One(a) => accepted.iter().any(|x| x == a),
            Audience::Many(list) => list.iter().any(|a| accepted.iter().any(|x| x == a)),
        }
    }
}

/// The registered claims the verifier checks, and the `typ` a claim set must arrive under.
pub trait TokenClaims: serde::de::DeserializeOwned {
    /// The JWS `typ` header value this kind of token carries.
    const TYPE: &'static str;
    /// `iss`.
    fn issuer(&self) -> &str;
    /// `aud`.
    fn audience(&self) -> &Audience;
    /// `exp`.
    fn expires_at(&self) -> i64;
    /// `nbf`, when the token has one.
    fn not_before(&self) -> Option<i64>;
    /// Structural checks beyond types (non-empty identifiers); `Err` names the offending claim.
    fn check_shape(&self) -> Result<(), &'static str>;
}

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer URL.
    pub iss: String,
    /// User id (UUID).
    pub sub: String,
    /// Audience(s) the token is for.
    pub aud: Audience,
    /// The client the token was issued to.
    pub client_id: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id (revocable one by one).
    pub jti: String,
    /// Session id: the refresh-token family a user's token belongs to. Absent from a client's
    /// own tokens (client credentials), which belong to no session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Roles at issue time.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Space-separated scopes granted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

/// Who an access token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Principal {
    /// A user, through a session (the token has a `sid`).
    User,
    /// A registered client acting for itself (client credentials: no `sid`, `sub` = `client_id`).
    Client,
}

impl Principal {
    /// `user` or `client`, as in the gateway's identity headers and route rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Principal::User => "user",
            Principal::Client => "client",
        }
    }
}

impl AccessClaims {
    /// A user's token or a client's own.
    pub fn principal(&self) -> Principal {
        if self.sid.is_some() {
            Principal::User
        } else {
            Principal::Client
        }
    }

    /// The granted scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }
}

impl TokenClaims for AccessClaims {
    const TYPE: &'static str = ACCESS_TOKEN_TYPE;
    fn issuer(&self) -> &str {
        &self.iss
    }
    fn audience(&self) -> &Audience {
        &self.aud
    }
    fn expires_at(&self) -> i64 {
        self.exp
    }
    fn not_before(&self) -> Option<i64> {
        Some(self.nbf)
    }
    fn check_shape(&self) -> Result<(), &'static str> {
        non_empty(&self.sub, "sub")?;
        non_empty(&self.jti, "jti")?;
        match &self.sid {
            Some(sid) => non_empty(sid, "sid"),
            // A token without a session is a client's own: its subject is the client.
            None if self.sub == self.client_id => Ok(()),
            None => Err("sid"),
        }
    }
}

/// Claims of a refresh token; its `aud` is the issuer itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshClaims {
    /// Issuer URL.
    pub iss: String,
    /// User id.
    pub sub: String,
    /// The issuer itself.
    pub aud: Audience,
    /// Expiry (the idle timeout, capped by the session's absolute limit).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// The id of this token's record in the store.
    pub jti: String,
    /// Session id.
    pub sid: String,
    /// The client the session belongs to (a refresh by another client is refused).
    #[serde(default)]
    pub client_id: String,
    /// Scope granted at login: a refresh may narrow it, never widen it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

impl TokenClaims for RefreshClaims {
    const TYPE: &'static str = REFRESH_TOKEN_TYPE;
    fn issuer(&self) -> &str {
        &self.iss
    }
    fn audience(&self) -> &Audience {
        &self.aud
    }
    fn expires_at(&self) -> i64 {
        self.exp
    }
    fn not_before(&self) -> Option<i64> {
        None
    }
    fn check_shape(&self) -> Result<(), &'static str> {
        non_empty(&self.sub, "sub")?;
        non_empty(&self.jti, "jti")?;
        non_empty(&self.sid, "sid")
    }
}

fn non_empty(v: &str, name: &'static str) -> Result<(), &'static str> {
    if v.is_empty() || v.len() > 128 {
        Err(name)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, client_id: &str, sid: Option<&str>) -> AccessClaims {
        AccessClaims {
            iss: "https://issuer".into(),
            sub: sub.into(),
            aud: Audience::One("api".into()),
            client_id: client_id.into(),
            exp: 2,
            iat: 1,
            nbf: 1,
            jti: "j".into(),
            sid: sid.map(str::to_owned),
            roles: vec![],
            scope: String::new(),
        }
    }

    #[test]
    fn a_session_makes_a_user_token_and_its_absence_a_client_token() {
        let user = claims("5c0f", "app", Some("s1"));
        assert_eq!(user.principal(), Principal::User);
        assert_eq!(user.check_shape(), Ok(()));
        let client = claims("billing", "billing", None);
        assert_eq!(client.principal(), Principal::Client);
        assert_eq!(client.check_shape(), Ok(()));
        // The wire form of a client token has no `sid` at all.
        let json = serde_json::to_value(&client).expect("serialises");
        assert!(json.get("sid").is_none());
        // No session and a subject other than the client: neither shape, refused.
        assert_eq!(claims("5c0f", "app", None).check_shape(), Err("sid"));
        assert_eq!(claims("5c0f", "app", Some("")).check_shape(), Err("sid"));
    }
}
