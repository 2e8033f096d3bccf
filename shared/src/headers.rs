//! Header names the gateway sets for upstreams and both services use for tracing.

/// The verified user id (the token's `sub`).
pub const USER_ID: &str = "x-user-id";
/// The verified roles, comma-separated.
pub const USER_ROLES: &str = "x-user-roles";
/// The verified scopes, comma-separated.
pub const USER_SCOPES: &str = "x-user-scopes";
/// The verified session id (the token's `sid`).
pub const SESSION_ID: &str = "x-session-id";
/// Who the token speaks for: `user` or `client` (a client's own token, client credentials).
pub const PRINCIPAL: &str = "x-auth-principal";
/// The client the token was issued to (`client_id`); for a client's own token, also `X-User-Id`.
pub const CLIENT_ID: &str = "x-auth-client-id";
/// Request id, propagated from the gateway to upstreams and echoed in responses.
pub const REQUEST_ID: &str = "x-request-id";

/// True for a request id worth keeping from a client or proxy: 1 to 128 characters of
/// `[A-Za-z0-9._:-]` (anything else is replaced, so logs and upstreams never see junk).
pub fn acceptable_request_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}
