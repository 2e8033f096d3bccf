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

/// `POST /v1/login` form (or JSON).
#[derive(ToSchema)]
pub struct LoginForm {
    /// Username (case-insensitive).
    username: String,
    /// Password.
    #[schema(format = Password)]
    password: String,
    /// Requested scopes, space-separated (granted as the roles allow).
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
    /// 3–64 characters: letters, digits, `.`, `_`, `-`.
    username: String,
    /// 15–1024 bytes (NIST SP 800-63B, counted after NFKC).
    #[schema(format = Password)]
    password: String,
    /// Optional email.
    email: Option<String>,
}

/// `POST /v1/token` form: `grant_type=refresh_token` (RFC 6749 §6) or
/// `grant_type=client_credentials` (RFC 6749 §4.4; the client authenticates with HTTP Basic, or
/// with `client_id` and `client_secret` here, not both).
#[derive(ToSchema)]
pub struct TokenForm {
    /// `refresh_token` or `client_credentials`.
    #[schema(
        example = "refresh_token",
        pattern = "^(refresh_token|client_credentials)$"
    )]
    grant_type: String,
    /// Refresh: the refresh token (spent by this call). Browser mode: omitted, and read from the
    /// `auth_refresh` cookie (with an allowed `Origin` and an `X-Requested-With` header).
    refresh_token: Option<String>,
    /// Refresh: a narrower scope. Client credentials: requested scopes, each allowed for the
    /// client (default: all of them).
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
    /// UUID.
    client_id: String,
    /// For people (at most 200 characters).
    name: Option<String>,
    /// Scopes the client may be granted (default none).
    scopes: Option<Vec<String>>,
    /// Audiences its tokens may name (default: the configured access-token audience).
    audiences: Option<Vec<String>>,
    /// `confidential` (default: has a secret) or `public` (a single-page or native app: no
    /// secret, PKCE alone). Cannot change later.
    #[schema(rename = "type")]
    r#type: Option<ClientTypeDoc>,
    /// Signs users in without a consent page (default false).
    first_party: Option<bool>,
    /// `authorization_code`, `refresh_token`, `client_credentials` (default: the first two
    /// when redirect URIs are given, otherwise `client_credentials`).
    grant_types: Option<Vec<String>>,
    /// Redirect URIs, compared as exact strings (loopback IP literals over http may vary the
    /// port, RFC 8252 §7.3): https, http on loopback (anywhere outside production), or a native
    /// app's private-use scheme; no fragment, written in canonical form.
    redirect_uris: Option<Vec<String>>,
    /// Where RP-initiated logout may return to (exact strings).
    post_logout_redirect_uris: Option<Vec<String>>,
    /// Where a logout token is POSTed when a session the client took part in ends.
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

/// `PATCH /v1/admin/clients/{id}` body: any of these. Disabling, or changing scopes or
/// audiences, revokes the client's tokens.
#[derive(ToSchema)]
#[schema(as = ClientUpdate)]
pub struct ClientUpdateDoc {
    /// Name.
    name: Option<String>,
    /// Allowed scopes.
    scopes: Option<Vec<String>>,
    /// Allowed audiences.
    audiences: Option<Vec<String>>,
    /// Disable or enable.
    disabled: Option<bool>,
    /// Must be the current type if sent.
    #[schema(rename = "type")]
    r#type: Option<ClientTypeDoc>,
    /// Skip the consent page.
    first_party: Option<bool>,
    /// Grant types (replaces the list; removing one revokes the client's tokens).
    grant_types: Option<Vec<String>>,
    /// Redirect URIs (replaces the list; removing one revokes the client's tokens).
    redirect_uris: Option<Vec<String>>,
    /// Post-logout redirect URIs (replaces the list).
    post_logout_redirect_uris: Option<Vec<String>>,
    /// Back-channel logout URI (`""` removes it).
    backchannel_logout_uri: Option<String>,
}

/// `POST /v1/admin/clients/{id}/secret` body (optional).
#[derive(ToSchema)]
pub struct SecretRotation {
    /// Seconds the previous secret keeps working (0–2592000, default 0).
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
    token: String,
    /// `access_token` or `refresh_token`.
    token_type_hint: Option<String>,
}

/// `POST /v1/users/me/password` body.
#[derive(ToSchema)]
pub struct PasswordChange {
    /// The current password.
    #[schema(format = Password)]
    current_password: String,
    /// The new password.
    #[schema(format = Password)]
    new_password: String,
}

/// `PATCH /v1/admin/users/{id}` body: either or both.
#[derive(ToSchema)]
pub struct UserUpdate {
    /// The new roles (the user's access tokens are revoked).
    roles: Option<Vec<String>>,
    /// Disable (ends every session) or enable.
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
    /// RS256 refresh token (`typ` `rt+jwt`); every use rotates it. Absent for client
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

/// The document as served.
pub fn document_json() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        common_responses(&mut doc);
        serde_json::to_string(&doc).unwrap_or_else(|_| "{}".into())
    })
}

/// `GET /openapi.json`.
pub async fn document() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}
