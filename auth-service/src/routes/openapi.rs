//! The OpenAPI 3.1 document (generated from the handlers' annotations by utoipa) at
//! `/openapi.json`, and Swagger UI at `/docs`, served from assets compiled into the binary (no
//! network needed), with the Authorize dialog logging in through `/v1/login` (OAuth2 password
//! flow form).
//!
//! The schemas below describe the wire formats; the handlers parse into their own types (with
//! secrets wrapped), so these exist for the document only.
#![allow(
    dead_code,
    reason = "schema types are read by the OpenAPI derive, never built"
)]

use utoipa::openapi::security::{
    AuthorizationCode, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme,
};
use utoipa::{Modify, OpenApi, ToSchema};

/// A scope or audience value: an RFC 6749 §3.3 scope token of at most 128 characters.
#[derive(ToSchema)]
#[schema(pattern = r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$")]
pub struct ScopeToken(String);

/// Space-separated scope tokens (RFC 6749 §3.3).
#[derive(ToSchema)]
#[schema(pattern = r"^[\x21\x23-\x5b\x5d-\x7e ]*$")]
pub struct ScopeList(String);

/// A role: 1–64 characters of `a-z`, `0-9`, `_`, `:`, `.`, `-`.
#[derive(ToSchema)]
#[schema(pattern = "^[a-z0-9_:.-]{1,64}$")]
pub struct RoleName(String);

/// A grant type a client may use.
#[derive(ToSchema)]
#[allow(dead_code, non_camel_case_types)]
pub enum GrantType {
    /// The code flow with PKCE (signs users in).
    authorization_code,
    /// Rotating refresh tokens (comes with `authorization_code`).
    refresh_token,
    /// A confidential client's own tokens.
    client_credentials,
}

/// A redirect or logout URI: https, http on loopback (outside production), or a native app's
/// private-use scheme (`com.example.app:/callback`); absolute, without fragment or userinfo,
/// in canonical form (lowercase scheme and host, no default port, no dot segments).
#[derive(ToSchema)]
#[schema(min_length = 1, max_length = 2000)]
pub struct RegisteredUri(String);

/// `POST /v1/login` form (or JSON).
#[derive(ToSchema)]
pub struct LoginForm {
    /// Username (case-insensitive).
    username: String,
    /// Password (at most `AUTH_PASSWORD_MAX_BYTES` bytes, 1024 by default).
    #[schema(format = Password, max_length = 1024)]
    password: String,
    /// Requested scopes, space-separated (granted as the roles allow).
    #[schema(value_type = Option<ScopeList>)]
    scope: Option<String>,
    /// A configured client id.
    client_id: Option<String>,
    /// `cookie` (browser mode): the refresh token is set as an `HttpOnly; Secure;
    /// SameSite=Strict` cookie (`Path=/v1`) and left out of the body; the request must carry an
    /// allowed `Origin` and an `X-Requested-With` header. `body` (the default): both in the body.
    #[schema(pattern = "^(body|cookie)$")]
    token_delivery: Option<String>,
}

/// `POST /v1/users` body (JSON or form).
#[derive(ToSchema)]
#[schema(as = Registration)]
pub struct RegistrationDoc {
    /// 3–64 ASCII characters: letters, digits, `.`, `_`, `-`, `@`, `+`, starting with a letter
    /// or digit (unique case-insensitively).
    #[schema(
        min_length = 3,
        max_length = 64,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._@+-]*$"
    )]
    username: String,
    /// At least `AUTH_PASSWORD_MIN_LENGTH` characters (15 by default) after NFKC normalisation
    /// and at most `AUTH_PASSWORD_MAX_BYTES` bytes (1024 by default; `maxLength` here counts
    /// characters, so bytes may run out first). Beyond what a schema can say (NIST SP 800-63B):
    /// not a common or breached password, not built from one, from the username or email, or
    /// from a repeated, sequential or keyboard pattern (422 `password_too_common`), and not
    /// the username (422 `password_equals_username`).
    #[schema(format = Password, min_length = 15, max_length = 1024)]
    password: String,
    /// Optional email: one `@`, a non-empty local part, a dotted domain that neither starts nor
    /// ends with a dot, no spaces or control characters, at most 254 bytes.
    #[schema(
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f.][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s\x00-\x1f\x7f-\x9f.]$"
    )]
    email: Option<String>,
}

/// `POST /v1/token` form: `grant_type=authorization_code` (RFC 6749 §4.1.3, with PKCE),
/// `refresh_token` (RFC 6749 §6) or `client_credentials` (RFC 6749 §4.4). A confidential client
/// authenticates with HTTP Basic, or with `client_id` and `client_secret` here, not both.
#[derive(ToSchema)]
pub struct TokenForm {
    /// `authorization_code`, `refresh_token` or `client_credentials`.
    #[schema(
        example = "refresh_token",
        pattern = "^(authorization_code|refresh_token|client_credentials)$"
    )]
    grant_type: String,
    /// Code: the authorization code (single use, 60 seconds).
    code: Option<String>,
    /// Code: the redirect URI the code was sent to.
    redirect_uri: Option<String>,
    /// Code: the PKCE verifier (RFC 7636: 43–128 characters of `A-Z a-z 0-9 - . _ ~`).
    #[schema(pattern = "^[A-Za-z0-9._~-]{43,128}$")]
    code_verifier: Option<String>,
    /// Refresh: the refresh token (spent by this call). Browser mode: omitted, and read from the
    /// `auth_refresh` cookie (with an allowed `Origin` and an `X-Requested-With` header).
    refresh_token: Option<String>,
    /// Refresh: a narrower scope. Client credentials: requested scopes, each allowed for the
    /// client (default: all of them).
    #[schema(value_type = Option<ScopeList>)]
    scope: Option<String>,
    /// Client credentials: requested audiences, space-separated, each allowed for the client
    /// (default: all of them).
    audience: Option<String>,
    /// Client credentials (form authentication): the client id.
    client_id: Option<String>,
    /// Client credentials (form authentication): the secret.
    #[schema(format = Password)]
    client_secret: Option<String>,
}

/// `POST /v1/introspect` form (RFC 7662 §2.1).
#[derive(ToSchema)]
pub struct IntrospectForm {
    /// The token to examine.
    #[schema(min_length = 1)]
    token: String,
    /// `access_token` or `refresh_token` (a hint; only access tokens can be active).
    token_type_hint: Option<String>,
    /// Client id (form authentication).
    client_id: Option<String>,
    /// Client secret (form authentication).
    #[schema(format = Password)]
    client_secret: Option<String>,
}

/// RFC 7662 §2.2: `active`, and for an active token its claims.
#[derive(ToSchema)]
pub struct Introspection {
    /// True for an access token we signed, unexpired and not revoked.
    active: bool,
    /// Granted scopes, space-separated.
    scope: Option<String>,
    /// The client the token was issued to.
    client_id: Option<String>,
    /// A user id, or the client id for a client's own token.
    sub: Option<String>,
    /// Audience(s).
    #[schema(value_type = Option<Object>)]
    aud: Option<String>,
    /// Issuer.
    iss: Option<String>,
    /// Expiry (Unix seconds).
    exp: Option<i64>,
    /// Issued at (Unix seconds).
    iat: Option<i64>,
    /// Not before (Unix seconds).
    nbf: Option<i64>,
    /// Token id.
    jti: Option<String>,
    /// Session id (user tokens).
    sid: Option<String>,
    /// Roles (user tokens).
    roles: Option<Vec<String>>,
    /// `Bearer`.
    token_type: Option<String>,
    /// `user` or `client`.
    principal: Option<String>,
}

/// `POST /v1/admin/clients` body.
#[derive(ToSchema)]
#[schema(as = ClientRegistration)]
pub struct ClientRegistrationDoc {
    /// 2–64 characters of `a-z`, `0-9`, `.`, `_`, `-`, starting with a letter or digit; not a
    /// UUID (user ids are).
    #[schema(min_length = 2, max_length = 64, pattern = "^[a-z0-9][a-z0-9._-]*$")]
    client_id: String,
    /// For people (at most 200 characters, no control characters).
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    name: Option<String>,
    /// Scopes the client may be granted (default none; at most 64).
    #[schema(max_items = 64)]
    scopes: Option<Vec<ScopeToken>>,
    /// Audiences its tokens may name (default: the configured access-token audience; at most 64).
    #[schema(max_items = 64)]
    audiences: Option<Vec<ScopeToken>>,
    /// `confidential` (default: has a secret) or `public` (a single-page or native app: no
    /// secret, PKCE alone). Cannot change later.
    #[schema(rename = "type")]
    r#type: Option<ClientTypeDoc>,
    /// Signs users in without a consent page (default false).
    first_party: Option<bool>,
    /// `authorization_code`, `refresh_token`, `client_credentials` (default: the first two
    /// for a public client or when redirect URIs are given, otherwise `client_credentials`).
    /// The profile must hold together (422 otherwise): at least one grant; a public client
    /// has `authorization_code` and not `client_credentials`; `authorization_code` needs
    /// redirect URIs, and redirect URIs, `refresh_token` and logout URIs need
    /// `authorization_code`.
    #[schema(min_items = 1)]
    grant_types: Option<Vec<GrantType>>,
    /// Redirect URIs (at most 32), compared as exact strings (loopback IP literals over http
    /// may vary the port, RFC 8252 §7.3).
    #[schema(max_items = 32)]
    redirect_uris: Option<Vec<RegisteredUri>>,
    /// Where RP-initiated logout may return to (exact strings; at most 32).
    #[schema(max_items = 32)]
    post_logout_redirect_uris: Option<Vec<RegisteredUri>>,
    /// Where a logout token is POSTed when a session the client took part in ends (https, or
    /// http on loopback outside production; `""`: none).
    #[schema(max_length = 2000)]
    backchannel_logout_uri: Option<String>,
}

/// A client's type (RFC 6749 §2.1).
#[derive(ToSchema)]
#[schema(as = ClientType)]
#[allow(dead_code)]
pub enum ClientTypeDoc {
    /// Has a secret.
    #[schema(rename = "confidential")]
    Confidential,
    /// Has none.
    #[schema(rename = "public")]
    Public,
}

/// `PATCH /v1/admin/clients/{id}` body: at least one of these (none may be `null`; unknown
/// fields are ignored). Disabling, or changing scopes or audiences, revokes the client's
/// tokens. The client's profile after the change must hold together as at registration (422
/// otherwise).
#[derive(ToSchema)]
#[schema(as = ClientUpdate)]
pub struct ClientUpdateDoc {
    /// Name (at most 200 characters, no control characters).
    #[schema(
        nullable = false,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: Option<String>,
    /// Allowed scopes (at most 64).
    #[schema(nullable = false, max_items = 64)]
    scopes: Option<Vec<ScopeToken>>,
    /// Allowed audiences (at most 64).
    #[schema(nullable = false, max_items = 64)]
    audiences: Option<Vec<ScopeToken>>,
    /// Disable or enable.
    #[schema(nullable = false)]
    disabled: Option<bool>,
    /// The type cannot change: sending another one is refused (422 `type_fixed`).
    #[schema(rename = "type", nullable = false)]
    r#type: Option<ClientTypeDoc>,
    /// Skip the consent page.
    #[schema(nullable = false)]
    first_party: Option<bool>,
    /// Grant types (replaces the list; removing one revokes the client's tokens).
    #[schema(nullable = false, min_items = 1)]
    grant_types: Option<Vec<GrantType>>,
    /// Redirect URIs (replaces the list; removing one revokes the client's tokens; at most 32).
    #[schema(nullable = false, max_items = 32)]
    redirect_uris: Option<Vec<RegisteredUri>>,
    /// Post-logout redirect URIs (replaces the list; at most 32).
    #[schema(nullable = false, max_items = 32)]
    post_logout_redirect_uris: Option<Vec<RegisteredUri>>,
    /// Back-channel logout URI (`""` removes it).
    #[schema(nullable = false, max_length = 2000)]
    backchannel_logout_uri: Option<String>,
}

/// `POST /v1/admin/clients/{id}/secret` body (optional).
#[derive(ToSchema)]
pub struct SecretRotation {
    /// Seconds the previous secret keeps working (0–2592000, that is up to 30 days; default 0).
    #[schema(nullable = false, minimum = 0, maximum = 2592000)]
    previous_secret_ttl: Option<i64>,
}

/// A registered client (times in Unix seconds).
#[derive(ToSchema)]
#[schema(as = Client)]
pub struct ClientDoc {
    /// Client id.
    client_id: String,
    /// Name.
    name: String,
    /// Allowed scopes.
    scopes: Vec<String>,
    /// Allowed audiences.
    audiences: Vec<String>,
    /// Disabled clients cannot authenticate.
    disabled: bool,
    /// Tokens issued before this were revoked.
    tokens_not_before: i64,
    /// Registered.
    created_at: i64,
    /// Last changed.
    updated_at: i64,
    /// When the previous secret stops working, after a rotation with an overlap.
    previous_secret_expires_at: Option<i64>,
    /// Confidential or public.
    #[schema(rename = "type")]
    r#type: ClientTypeDoc,
    /// Skips the consent page.
    first_party: bool,
    /// Grant types it may use.
    grant_types: Vec<String>,
    /// Redirect URIs.
    redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    post_logout_redirect_uris: Vec<String>,
    /// Back-channel logout URI.
    backchannel_logout_uri: Option<String>,
}

/// A client with its new secret.
#[derive(ToSchema)]
pub struct ClientWithSecret {
    /// The client.
    #[serde(flatten)]
    client: ClientDoc,
    /// The secret: shown this once, stored only as a digest (absent for a public client).
    #[schema(format = Password)]
    client_secret: Option<String>,
}

/// Registered clients.
#[derive(ToSchema)]
pub struct ClientList {
    /// By id.
    clients: Vec<ClientDoc>,
}

/// `POST /v1/revoke` form (RFC 7009).
#[derive(ToSchema)]
pub struct RevokeForm {
    /// An access or refresh token.
    #[schema(min_length = 1)]
    token: String,
    /// `access_token` or `refresh_token`.
    token_type_hint: Option<String>,
}

/// `POST /v1/users/me/password` body.
#[derive(ToSchema)]
pub struct PasswordChange {
    /// The current password.
    #[schema(format = Password, max_length = 1024)]
    current_password: String,
    /// The new password: the rules of registration's `password`.
    #[schema(format = Password, min_length = 15, max_length = 1024)]
    new_password: String,
}

/// `PATCH /v1/admin/users/{id}` body: either or both (neither may be `null`; unknown fields
/// are ignored).
#[derive(ToSchema)]
pub struct UserUpdate {
    /// The new roles, at most 32 (the user's access tokens are revoked).
    #[schema(nullable = false, max_items = 32)]
    roles: Option<Vec<RoleName>>,
    /// Disable (ends every session) or enable.
    #[schema(nullable = false)]
    disabled: Option<bool>,
}

/// A token pair (RFC 6749 §5.1), `Cache-Control: no-store`. Client credentials: the access
/// token alone (no refresh token, RFC 6749 §4.4.3).
#[derive(ToSchema)]
pub struct TokenResponse {
    /// RS256 access token (`typ` `at+jwt`).
    access_token: String,
    /// `Bearer`.
    token_type: String,
    /// Seconds until the access token expires.
    expires_in: i64,
    /// Opaque refresh token (`agrt_` and 48 base64url characters; read only by this service);
    /// every use rotates it. Absent for client
    /// credentials, and in browser mode (where it is in the cookie).
    refresh_token: Option<String>,
    /// Seconds until the refresh token expires if unused (absent for client credentials).
    refresh_expires_in: Option<i64>,
    /// Granted scopes, space-separated (absent when none).
    scope: Option<String>,
}

/// A user.
#[derive(ToSchema)]
#[schema(as = User)]
pub struct UserDoc {
    /// Server-chosen id.
    id: uuid::Uuid,
    /// Username.
    username: String,
    /// Email, if given.
    email: Option<String>,
    /// Roles.
    roles: Vec<String>,
    /// Disabled users cannot log in or refresh.
    disabled: bool,
    /// RFC 3339.
    #[schema(format = DateTime)]
    created_at: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    updated_at: String,
}

/// A page of users.
#[derive(ToSchema)]
pub struct UserPage {
    /// Users in creation order.
    users: Vec<UserDoc>,
    /// Pass as `cursor` for the next page; absent on the last.
    next_cursor: Option<String>,
}

/// A session.
#[derive(ToSchema)]
pub struct Session {
    /// Session id (the tokens' `sid`).
    sid: String,
    /// Login time (Unix seconds).
    created_at: i64,
    /// Last refresh (Unix seconds).
    last_used_at: i64,
    /// Absolute end (Unix seconds).
    expires_at: i64,
    /// Client.
    client_id: String,
    /// `User-Agent` at login.
    user_agent: String,
    /// True for the caller's own session (`/v1/users/me/sessions` only).
    current: Option<bool>,
    /// The browser sign-in session this one was issued through (an app's session in the code
    /// flow); ending that one ends this one.
    parent: Option<String>,
}

/// A consent the user gave a third-party app.
#[derive(ToSchema)]
pub struct ConsentDoc {
    /// The app.
    client_id: String,
    /// Its name, when it is still registered.
    name: Option<String>,
    /// The scopes consented to.
    scopes: Vec<String>,
    /// Last granted (Unix seconds).
    granted_at: i64,
}

/// The user's consents.
#[derive(ToSchema)]
pub struct Consents {
    /// By client.
    consents: Vec<ConsentDoc>,
}

/// Sessions.
#[derive(ToSchema)]
pub struct Sessions {
    /// Newest use first.
    sessions: Vec<Session>,
}

/// One Server-Sent Event of the revocation feed (the stream is a sequence of these).
#[derive(ToSchema)]
pub struct FeedEvent {
    /// `snapshot` (the whole list, first), `revoke` (one entry), `key_revoked` (a signing key
    /// withdrawn), `heartbeat`, or `reset` (the position was lost: reconnect without
    /// `Last-Event-ID`).
    #[schema(pattern = "^(snapshot|revoke|key_revoked|heartbeat|reset)$")]
    event: String,
    /// The stream position (resume with `Last-Event-ID`); absent on heartbeats.
    #[schema(nullable = false)]
    id: Option<String>,
    /// A JSON object: `{position, time_ms, entries}` for a snapshot, an entry
    /// (`{type, value, exp}`) for a revocation, `{time_ms}` for a heartbeat.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// RFC 9457 problem details (`application/problem+json`).
#[derive(ToSchema)]
pub struct Problem {
    /// `about:blank`.
    r#type: String,
    /// The status's reason phrase.
    title: String,
    /// HTTP status.
    status: u16,
    /// What went wrong, for people.
    detail: String,
    /// What went wrong, for programs (e.g. `invalid_token`, `username_taken`).
    code: Option<String>,
}

/// RFC 6749 §5.2 error.
#[derive(ToSchema)]
#[schema(as = OAuthError)]
pub struct OAuthErrorDoc {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `invalid_scope`,
    /// `invalid_target`, `unsupported_grant_type`, `unauthorized_client`, `slow_down`,
    /// `access_denied`, `temporarily_unavailable`.
    error: String,
    /// For people.
    error_description: Option<String>,
}

/// Any JSON object (metadata, JWKS, health details, audit events, key lists).
#[derive(ToSchema)]
pub struct Object {
    #[schema(additional_properties)]
    _fields: Option<String>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "password",
            SecurityScheme::OAuth2(OAuth2::new([
                Flow::Password(Password::new("/v1/login", Scopes::new())),
                // The code flow with PKCE through the hosted sign-in page (Swagger UI's client
                // id is `docs`: a public client the dev stack registers).
                Flow::AuthorizationCode(AuthorizationCode::new(
                    "/v1/authorize",
                    "/v1/token",
                    Scopes::from_iter([
                        ("openid", "an ID token"),
                        ("profile", "the username"),
                        ("email", "the email address"),
                    ]),
                )),
            ])),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "auth-service",
        description = "Registers users, logs them in, issues and rotates RS256 access and refresh tokens, revokes, publishes its keys."
    ),
    modifiers(&Security),
    paths(super::users::register,
        super::login::login,
        super::token::token,
        super::revoke::revoke,
        super::introspect::introspect,
        super::revoke::logout,
        super::users::me,
        super::users::change_password,
        super::users::my_sessions,
        super::users::end_my_session,
        super::users::my_consents,
        super::users::withdraw_my_consent,
        super::admin::list_users,
        super::admin::get_user,
        super::admin::update_user,
        super::admin::delete_user,
        super::admin::user_sessions,
        super::admin::end_user_sessions,
        super::admin::user_audit,
        super::clients::create,
        super::clients::list,
        super::clients::get,
        super::clients::update,
        super::clients::rotate_secret,
        super::clients::delete,
        super::admin::list_keys,
        super::admin::rotate_keys,
        super::revocations::revocations,
        super::well_known::metadata_oauth,
        super::well_known::metadata_openid,
        super::well_known::jwks,
        super::authorize::authorize_get,
        super::authorize::authorize_post,
        super::end_session::end_session_get,
        super::end_session::end_session_post,
        super::userinfo::userinfo,
        super::userinfo::userinfo_post,
        super::health::healthz,
        super::health::readyz))]
pub struct ApiDoc;

/// The token endpoints answer errors as RFC 6749 JSON; every other endpoint as problem details.
const OAUTH_PATHS: [&str; 4] = ["/v1/login", "/v1/token", "/v1/revoke", "/v1/introspect"];

/// The answers every operation of a kind can give, written once here instead of on each handler:
/// problem bodies under `application/problem+json`; 413 and 415 wherever a body is read; 400 and
/// 401 wherever a bearer token is read.
fn common_responses(doc: &mut serde_json::Value) {
    use serde_json::{Value, json};
    let reference = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let oauth = OAUTH_PATHS.contains(&path.as_str());
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            let has_body = op.get("requestBody").is_some();
            let bearer = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            let mut add = |code: &str, description: &str| {
                responses.entry(code.to_owned()).or_insert_with(|| {
                    if oauth {
                        json!({"description": description,
                               "content": {"application/json": {"schema": reference("OAuthError")}}})
                    } else {
                        json!({"description": description,
                               "content": {"application/problem+json": {"schema": reference("Problem")}}})
                    }
                });
            };
            if has_body {
                add("400", "Malformed request");
                add("413", "Request body too large");
                add("415", "Unsupported media type");
            }
            if bearer || path == "/v1/revoke" {
                add("400", "Malformed request or credentials");
                add("401", "Not authenticated (RFC 6750 challenge)");
            }
            for response in responses.values_mut() {
                let Some(content) = response.get_mut("content").and_then(Value::as_object_mut)
                else {
                    continue;
                };
                let problem = content
                    .get("application/json")
                    .and_then(|c| c.pointer("/schema/$ref"))
                    .and_then(Value::as_str)
                    .is_some_and(|r| r.ends_with("/Problem"));
                if problem && let Some(c) = content.remove("application/json") {
                    content.insert(shared::problem::CONTENT_TYPE.to_owned(), c);
                }
            }
        }
    }
}

/// What the served document says beyond the handlers' annotations, in one place:
/// - request bodies that may be left out;
/// - update bodies that must change at least one field (`minProperties` and one `required` per
///   field: unknown fields do not count);
/// - the forms of `POST /v1/authorize` and `POST /v1/end-session`, which take exactly the query
///   parameters of their `GET` (with the same constraints), written once there;
/// - the password policy as configured (`AUTH_PASSWORD_MIN_LENGTH`, `AUTH_PASSWORD_MAX_BYTES`).
fn refine(doc: &mut serde_json::Value, policy: &crate::domain::PasswordPolicy) {
    use serde_json::{Value, json};
    for (path, method) in [
        ("/v1/admin/clients/{id}/secret", "post"),
        ("/v1/end-session", "post"),
    ] {
        if let Some(body) = doc.pointer_mut(&format!(
            "/paths/{}/{method}/requestBody",
            path.replace('~', "~0").replace('/', "~1")
        )) {
            body["required"] = json!(false);
        }
    }
    for name in ["ClientUpdate", "UserUpdate"] {
        if let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) {
            let fields: Vec<Value> = schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().map(|k| json!({"required": [k]})).collect())
                .unwrap_or_default();
            schema["minProperties"] = json!(1);
            schema["anyOf"] = Value::Array(fields);
        }
    }
    let extra = json!({
        "confirm": {"type": "string", "pattern": "^yes$", "description": "The confirmation page's form: `yes`"},
        "csrf": {"type": "string", "description": "The confirmation page's form: its CSRF token"},
        "request": {"type": "string", "description": "The confirmation page's form: the original request, form-encoded"},
    });
    for (path, extra) in [("/v1/authorize", None), ("/v1/end-session", Some(&extra))] {
        let Some(item) = doc.pointer_mut(&format!("/paths/{}", path.replace('/', "~1"))) else {
            continue;
        };
        let params = item
            .pointer("/get/parameters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut properties = serde_json::Map::new();
        let mut required = Vec::new();
        for p in params {
            let (Some(name), Some(schema)) = (p["name"].as_str(), p.get("schema")) else {
                continue;
            };
            let mut schema = schema.clone();
            if let Some(d) = p.get("description") {
                schema["description"] = d.clone();
            }
            if p["required"] == json!(true) {
                required.push(json!(name));
            }
            properties.insert(name.to_owned(), schema);
        }
        if let Some(Value::Object(extra)) = extra {
            properties.extend(extra.clone());
        }
        if let Some(media) =
            item.pointer_mut("/post/requestBody/content/application~1x-www-form-urlencoded")
        {
            media["schema"] =
                json!({"type": "object", "properties": properties, "required": required});
        }
    }
    let bound = |schema: Option<&mut Value>, min: bool| {
        if let Some(s) = schema {
            if min {
                s["minLength"] = json!(policy.min_chars);
            }
            s["maxLength"] = json!(policy.max_bytes);
        }
    };
    bound(
        doc.pointer_mut("/components/schemas/Registration/properties/password"),
        true,
    );
    bound(
        doc.pointer_mut("/components/schemas/PasswordChange/properties/new_password"),
        true,
    );
    bound(
        doc.pointer_mut("/components/schemas/PasswordChange/properties/current_password"),
        false,
    );
    bound(
        doc.pointer_mut("/components/schemas/LoginForm/properties/password"),
        false,
    );
}

/// The document as served, for this configuration.
pub fn document_json(policy: &crate::domain::PasswordPolicy) -> String {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    common_responses(&mut doc);
    refine(&mut doc, policy);
    serde_json::to_string(&doc).unwrap_or_else(|_| "{}".into())
}

/// `GET /openapi.json` (built once, at the start).
pub async fn document(
    state: actix_web::web::Data<crate::state::AppState>,
) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}
