//! Token issuance rules: claims, lifetimes, scopes, and the RFC 6749 §5.1 response.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::HttpResponse;
use actix_web::http::header;
use serde::Serialize;
use shared::{AccessClaims, Audience};

use crate::domain::valid_scope_token;
use crate::storage::User;

/// A freshly issued pair, as sent to the client.
#[derive(Debug, Serialize)]
pub struct TokenPair {
    /// RS256 access token (`at+jwt`).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque refresh token (`agrt_…`, see `crypto::refresh`); every use rotates it.
    pub refresh_token: String,
    /// Seconds until the refresh token expires if unused (the idle timeout).
    pub refresh_expires_in: i64,
    /// Scopes granted, always (RFC 6749 §5.1: required when they differ from the request's; an
    /// empty grant says so with `""`).
    pub scope: String,
}

/// What a browser receives: the pair without its refresh token, which is in the cookie.
#[derive(Serialize)]
struct BrowserTokens<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    refresh_expires_in: i64,
    scope: &'a str,
}

impl TokenPair {
    /// 200 with `Cache-Control: no-store` (RFC 6749 §5.1).
    pub fn response(&self) -> HttpResponse {
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(self)
    }

    /// Browser mode: the refresh token in the `HttpOnly` cookie, the rest in the body.
    pub fn browser_response(&self) -> HttpResponse {
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .insert_header((
                header::SET_COOKIE,
                crate::browser::set_cookie(&self.refresh_token, self.refresh_expires_in),
            ))
            .json(BrowserTokens {
                access_token: &self.access_token,
                token_type: self.token_type,
                expires_in: self.expires_in,
                refresh_expires_in: self.refresh_expires_in,
                scope: &self.scope,
            })
    }
}

/// The scopes a user's roles allow, given the configured role → scopes map.
pub fn allowed_scopes<'a>(
    role_scopes: &'a BTreeMap<String, Vec<String>>,
    roles: &[String],
) -> BTreeSet<&'a str> {
    roles
        .iter()
        .filter_map(|r| role_scopes.get(r))
        .flat_map(|s| s.iter().map(String::as_str))
        .collect()
}

/// The scopes a user's roles allow, and OpenID Connect's own (`openid`, `profile`, `email`,
/// `offline_access`), which every user may grant a client that may ask for them.
pub fn allowed_scopes_with_openid<'a>(
    role_scopes: &'a BTreeMap<String, Vec<String>>,
    roles: &[String],
) -> BTreeSet<&'a str> {
    let mut set = allowed_scopes(role_scopes, roles);
    set.extend(crate::services::authorize::OPENID_SCOPES);
    set
}

/// Decides the scope of a token: the requested scopes (or, with none requested, the `ceiling`,
/// or everything allowed) that the user's roles allow. Requesting beyond the `ceiling` (the
/// scope of the original grant, on refresh) is an error; requesting beyond the roles just yields
/// a narrower scope, which the response reports.
pub fn grant_scope(
    allowed: &BTreeSet<&str>,
    requested: Option<&str>,
    ceiling: Option<&str>,
) -> Result<String, String> {
    let ceiling: Option<BTreeSet<&str>> =
        ceiling.map(|c| c.split(' ').filter(|s| !s.is_empty()).collect());
    let wanted: BTreeSet<&str> = match requested.map(str::trim).filter(|r| !r.is_empty()) {
        None => match &ceiling {
            Some(c) => c.clone(),
            None => allowed.clone(),
        },
        Some(r) => {
            let set: BTreeSet<&str> = r.split(' ').filter(|s| !s.is_empty()).collect();
            if let Some(bad) = set.iter().find(|s| !valid_scope_token(s)) {
                return Err(format!("invalid scope token {bad:?}"));
            }
            if let Some(c) = &ceiling
                && let Some(extra) = set.iter().find(|s| !c.contains(*s))
            {
                return Err(format!("scope {extra:?} exceeds the original grant"));
            }
            set
        }
    };
    Ok(wanted
        .intersection(allowed)
        .copied()
        .collect::<Vec<_>>()
        .join(" "))
}

/// Lifetimes and names that go into every token.
#[derive(Debug, Clone)]
pub struct Issuance {
    /// `iss`.
    pub issuer: String,
    /// `aud` of access tokens.
    pub audience: String,
    /// Access-token lifetime.
    pub access_ttl: i64,
}

impl Issuance {
    /// Access-token claims. `iat` is never earlier than the user's `tokens_not_before`, so a
    /// token issued after a revoking change is never covered by that change's `iat_before`; the
    /// token never outlives its session. `scope` may be narrower than the session's grant.
    pub fn access_claims(
        &self,
        user: &User,
        grant: &Grant<'_>,
        scope: String,
        now: i64,
        abs_exp: i64,
    ) -> AccessClaims {
        AccessClaims {
            iss: self.issuer.clone(),
            sub: user.id.to_string(),
            aud: Audience::One(self.audience.clone()),
            client_id: grant.client_id.to_owned(),
            exp: (now + self.access_ttl).min(abs_exp),
            iat: now.max(user.tokens_not_before),
            nbf: now,
            jti: crate::crypto::random_id(),
            sid: Some(grant.sid.to_owned()),
            roles: user.roles.clone(),
            scope,
        }
    }
}

/// What a session was granted at login: every token of the session carries it.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    /// Session id.
    pub sid: &'a str,
    /// Client the session belongs to.
    pub client_id: &'a str,
    /// Scope granted at login (the ceiling for refreshes).
    pub scope: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([
            ("user".into(), vec!["profile".into(), "orders:read".into()]),
            ("admin".into(), vec!["users:write".into(), "profile".into()]),
        ])
    }

    #[test]
    fn roles_decide_what_a_request_can_get() {
        let m = map();
        let user = allowed_scopes(&m, &["user".into()]);
        assert_eq!(
            grant_scope(&user, None, None).unwrap(),
            "orders:read profile"
        );
        assert_eq!(
            grant_scope(&user, Some("profile users:write"), None).unwrap(),
            "profile"
        );
        assert_eq!(
            grant_scope(&user, Some("  "), None).unwrap(),
            "orders:read profile"
        );
        assert!(grant_scope(&user, Some("bad\"scope"), None).is_err());
        let both = allowed_scopes(&m, &["user".into(), "admin".into(), "ghost".into()]);
        assert_eq!(both.len(), 3);
    }

    #[test]
    fn refresh_can_narrow_but_never_widen() {
        let m = map();
        let allowed = allowed_scopes(&m, &["user".into(), "admin".into()]);
        assert_eq!(
            grant_scope(&allowed, None, Some("profile")).unwrap(),
            "profile"
        );
        assert_eq!(
            grant_scope(&allowed, Some("profile"), Some("profile orders:read")).unwrap(),
            "profile"
        );
        assert!(grant_scope(&allowed, Some("users:write"), Some("profile")).is_err());
        // Roles lost since login narrow the ceiling silently.
        let now_user = allowed_scopes(&m, &["user".into()]);
        assert_eq!(
            grant_scope(&now_user, None, Some("profile users:write")).unwrap(),
            "profile"
        );
    }
}
