//! The authorization code flow of the OpenID provider (OpenID Connect Core 1.0 §3.1, RFC 6749
//! §4.1, PKCE RFC 7636, RFC 9207): checking an authorization request, deciding what it still
//! needs (a sign-in, consent, or nothing), issuing a code, and exchanging the code for tokens
//! with an ID token.

use std::collections::BTreeSet;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use base64::Engine as _;
use serde_json::json;
use shared::RevocationEvent;

use crate::configuration::secs;
use crate::domain::redirect_uri;
use crate::error::OAuthError;
use crate::state::AppState;
use crate::storage::{
    BrowserSession, CodeGrant, CodeIssue, CodeTake, NewSession, RegisteredClient, StoreError, User,
};
use crate::tokens::Grant;

/// How long a code can be exchanged (seconds).
pub const CODE_TTL: i64 = 60;
/// The scopes of OpenID Connect itself: granted to any user a client may ask them for.
pub const OPENID_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
/// The `prompt` values this provider understands.
pub const PROMPT_VALUES: [&str; 4] = ["none", "login", "consent", "create"];
/// How a user authenticated with a password (RFC 8176).
pub const AMR_PASSWORD: &str = "pwd";

/// Where the authorization response goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// In the redirect URI's query (RFC 6749 §4.1.2).
    Query,
    /// POSTed by an auto-submitting form (OAuth 2.0 Form Post Response Mode).
    FormPost,
}

/// The `prompt` values of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// No page may be shown.
    pub none: bool,
    /// Authenticate again.
    pub login: bool,
    /// Ask for consent again.
    pub consent: bool,
    /// Show the sign-up page first.
    pub create: bool,
}

/// An authorization request as sent: every parameter once at most (RFC 6749 §3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationParams {
    pairs: Vec<(String, String)>,
}

impl AuthorizationParams {
    /// The parameters this service reads (authorization, end-session and the forms that carry
    /// them); others are ignored, as RFC 6749 §3.1 requires of unrecognised parameters.
    const KNOWN: [&'static str; 18] = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "prompt",
        "max_age",
        "login_hint",
        "response_mode",
        "request",
        "request_uri",
        "id_token_hint",
        "post_logout_redirect_uri",
        "confirm",
        "csrf",
    ];

    /// From the decoded query or form pairs. A parameter this service reads, sent twice, is
    /// refused (RFC 6749 §3.1); unrecognised ones are ignored, repeated or not.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, String> {
        let mut seen = BTreeSet::new();
        for (k, _) in &pairs {
            if Self::KNOWN.contains(&k.as_str()) && !seen.insert(k.as_str()) {
                return Err(format!("the parameter {k} is sent more than once"));
            }
        }
        Ok(AuthorizationParams { pairs })
    }

    /// From a URL query string (or a form body).
    pub fn parse(query: &str) -> Result<Self, String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| "the request's parameters are not valid form encoding".to_owned())?;
        Self::from_pairs(pairs)
    }

    /// The request again as a query string, to carry it through the sign-in and consent forms.
    pub fn encode(&self) -> String {
        serde_urlencoded::to_string(&self.pairs).unwrap_or_default()
    }

    /// A parameter; an empty value counts as absent (OpenID Connect Core §3.1.2.1 lets
    /// clients send empty values for optional parameters).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// A request that cannot be answered at its redirect URI: shown on an error page, never
/// redirected (RFC 6749 §4.1.2.1: an unknown client or an unregistered redirect URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError {
    /// What went wrong, for the person looking at the page.
    pub detail: String,
}

/// An authorization response (success or error) for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationResponse {
    /// The checked redirect URI.
    pub redirect_uri: String,
    /// How to send it.
    pub mode: ResponseMode,
    /// The parameters (`code` or `error`…, `state`, `iss`).
    pub params: Vec<(&'static str, String)>,
}

impl AuthorizationResponse {
    /// The redirect URI with the parameters in its query (kept after any query it has).
    pub fn location(&self) -> String {
        let query = serde_urlencoded::to_string(&self.params).unwrap_or_default();
        let sep = if self.redirect_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}{query}", self.redirect_uri)
    }

    /// The error code, if this is an error response.
    pub fn error(&self) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| *k == "error")
            .map(|(_, v)| v.as_str())
    }
}

/// A checked authorization request.
#[derive(Debug, Clone)]
pub struct ValidRequest {
    /// The request as sent, to carry through the pages.
    pub params: AuthorizationParams,
    /// The client.
    pub client: RegisteredClient,
    /// The redirect URI, as sent (it matched a registered one).
    pub redirect_uri: String,
    /// How to answer.
    pub mode: ResponseMode,
    /// Returned untouched.
    pub state: Option<String>,
    /// The scopes the client asked for and may have, sorted.
    pub scopes: Vec<String>,
    /// For the ID token.
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// `prompt`.
    pub prompt: Prompt,
    /// `max_age`, seconds.
    pub max_age: Option<i64>,
    /// `login_hint`: prefills the username.
    pub login_hint: Option<String>,
}

impl ValidRequest {
    /// An error response for this request.
    pub fn error(
        &self,
        state: &AppState,
        error: &'static str,
        description: &str,
    ) -> AuthorizationResponse {
        error_response(
            state,
            &self.redirect_uri,
            self.mode,
            self.state.as_deref(),
            error,
            description,
        )
    }

    /// True when the client asked for an ID token.
    pub fn openid(&self) -> bool {
        self.scopes.iter().any(|s| s == "openid")
    }
}

fn error_response(
    state: &AppState,
    redirect_uri: &str,
    mode: ResponseMode,
    client_state: Option<&str>,
    error: &'static str,
    description: &str,
) -> AuthorizationResponse {
    let mut params = vec![
        ("error", error.to_owned()),
        ("error_description", description.to_owned()),
    ];
    if let Some(s) = client_state {
        params.push(("state", s.to_owned()));
    }
    params.push(("iss", state.issuance.issuer.clone()));
    state.metrics.authorization(error);
    AuthorizationResponse {
        redirect_uri: redirect_uri.to_owned(),
        mode,
        params,
    }
}

/// Checks an authorization request. `Err(Ok(page))`: no redirect is safe (unknown client,
/// unregistered redirect URI); `Err(Err(response))`: an error for the client's redirect URI.
pub async fn check(
    state: &AppState,
    params: AuthorizationParams,
) -> Result<ValidRequest, Result<PageError, AuthorizationResponse>> {
    let page = |detail: &str| {
        state
            .metrics
            .authorization("invalid_client_or_redirect_uri");
        Err(Ok(PageError {
            detail: detail.to_owned(),
        }))
    };
    let Some(client_id) = params.get("client_id") else {
        return page("The request does not name its application (client_id is missing).");
    };
    let client = if client_id.len() <= crate::services::clients::MAX_ID_LEN {
        state.clients.find_client(client_id).await.ok().flatten()
    } else {
        None
    };
    let Some((client, _)) = client.filter(|(c, _)| !c.disabled) else {
        return page("The application that sent you here is not registered with this service.");
    };
    if !client.profile.allows("authorization_code") {
        return page("The application that sent you here may not sign users in.");
    }
    let Some(redirect) = params.get("redirect_uri") else {
        return page("The request does not say where to return to (redirect_uri is missing).");
    };
    if !client
        .profile
        .redirect_uris
        .iter()
        .any(|r| redirect_uri::matches(r, redirect))
    {
        return page(
            "The address the application asked to return to is not one it registered, so you were not sent back to it.",
        );
    }
    let redirect = redirect.to_owned();
    let client_state = params.get("state").map(str::to_owned);
    let mode = match params.get("response_mode") {
        None | Some("query") => ResponseMode::Query,
        Some("form_post") => ResponseMode::FormPost,
        Some(_) => ResponseMode::Query,
    };
    let fail = |error: &'static str, description: &str| {
        Err(Err(error_response(
            state,
            &redirect,
            mode,
            client_state.as_deref(),
            error,
            description,
        )))
    };
    if let Some(m) = params.get("response_mode")
        && m != "query"
        && m != "form_post"
    {
        return fail(
            "invalid_request",
            "response_mode must be query or form_post",
        );
    }
    if params.get("request").is_some() {
        return fail("request_not_supported", "request objects are not supported");
    }
    if params.get("request_uri").is_some() {
        return fail("request_uri_not_supported", "request_uri is not supported");
    }
    match params.get("response_type") {
        Some("code") => {}
        None => return fail("invalid_request", "response_type is required"),
        Some(_) => {
            return fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
    }
    let challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (Some(c), Some("S256")) if is_s256_challenge(c) => c.to_owned(),
        (Some(_), Some("S256")) => {
            return fail(
                "invalid_request",
                "code_challenge must be 43 characters of base64url (the SHA-256 of the verifier)",
            );
        }
        (Some(_), None | Some("plain")) => {
            return fail(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not accepted)",
            );
        }
        (Some(_), Some(_)) => {
            return fail("invalid_request", "code_challenge_method must be S256");
        }
        (None, _) => {
            return fail(
                "invalid_request",
                "PKCE is required: send code_challenge and code_challenge_method=S256",
            );
        }
    };
    let mut prompt = Prompt::default();
    for p in params
        .get("prompt")
        .unwrap_or_default()
        .split(' ')
        .filter(|p| !p.is_empty())
    {
        match p {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "create" => prompt.create = true,
            "select_account" => {}
            _ => return fail("invalid_request", "unknown prompt value"),
        }
    }
    if prompt.none && (prompt.login || prompt.consent || prompt.create) {
        return fail(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        );
    }
    let max_age = match params.get("max_age") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                return fail(
                    "invalid_request",
                    "max_age must be a whole number of seconds",
                );
            }
        },
    };
    let nonce = params.get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return fail("invalid_request", "nonce is longer than 512 characters");
    }
    if client_state.as_ref().is_some_and(|s| s.len() > 2048) {
        return fail("invalid_request", "state is longer than 2048 characters");
    }
    let mut scopes: Vec<String> = Vec::new();
    for s in params
        .get("scope")
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
    {
        if !crate::domain::valid_scope_token(s) {
            return fail("invalid_scope", "a scope value is malformed");
        }
        // Scopes the client may not have are left out (RFC 6749 §3.3); the token response
        // says what was granted.
        if client.scopes.iter().any(|c| c == s) && !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    scopes.sort();
    let login_hint = params
        .get("login_hint")
        .map(|h| h.chars().take(256).collect());
    Ok(ValidRequest {
        client,
        redirect_uri: redirect.clone(),
        mode,
        state: client_state.clone(),
        scopes,
        nonce,
        code_challenge: challenge,
        prompt,
        max_age,
        login_hint,
        params,
    })
}

/// A PKCE S256 challenge: base64url without padding of a SHA-256 digest (43 characters).
fn is_s256_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a checked request still needs.
#[derive(Debug)]
pub enum Next {
    /// The user must sign in (or, with `prompt=create`, may sign up).
    SignIn,
    /// The user must consent to the client.
    Consent,
    /// Nothing more: answer the client.
    Respond(AuthorizationResponse),
}

/// Decides what a request needs, given the browser's sign-in session (already checked to be
/// live and its user enabled) and whether the user has just authenticated in this request.
pub async fn next(
    state: &AppState,
    req: &ValidRequest,
    session: Option<&BrowserSession>,
    just_authenticated: bool,
    now: i64,
) -> Result<Next, StoreError> {
    let Some(session) = session else {
        return Ok(if req.prompt.none {
            Next::Respond(req.error(state, "login_required", "the user is not signed in"))
        } else {
            Next::SignIn
        });
    };
    let too_old = req.max_age.is_some_and(|m| now - session.auth_time > m);
    if !just_authenticated && (req.prompt.login || too_old) {
        return Ok(if req.prompt.none {
            Next::Respond(req.error(state, "login_required", "the sign-in is older than max_age"))
        } else {
            Next::SignIn
        });
    }
    if needs_consent(state, req, &session.sub).await? {
        return Ok(if req.prompt.none {
            Next::Respond(req.error(
                state,
                "consent_required",
                "the user has not consented to this application",
            ))
        } else {
            Next::Consent
        });
    }
    Ok(Next::Respond(issue_code(state, req, session, now).await?))
}

/// True when the user must be asked: a third-party client the user has not consented to for
/// these scopes, or `prompt=consent`. First-party clients never ask.
pub async fn needs_consent(
    state: &AppState,
    req: &ValidRequest,
    sub: &str,
) -> Result<bool, StoreError> {
    if req.client.profile.first_party {
        return Ok(false);
    }
    if req.prompt.consent {
        return Ok(true);
    }
    let granted = state
        .consents
        .find_consent(sub, &req.client.client_id)
        .await?;
    Ok(!req
        .scopes
        .iter()
        .all(|s| granted.as_ref().is_some_and(|g| g.iter().any(|x| x == s))))
}

/// The SHA-256 of a secret value, hex: how codes and cookies are stored.
pub fn digest_hex(value: &str) -> String {
    digest::digest(&digest::SHA256, value.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random secret value of 256 bits, base64url ([`crate::crypto::random_secret`]).
pub fn random_secret() -> Result<String, StoreError> {
    crate::crypto::random_secret().map_err(StoreError::Other)
}

/// Issues a code for the request in `session`: 256 random bits, stored as its digest for
/// [`CODE_TTL`] seconds, bound to the client, redirect URI, challenge, nonce, scopes and session.
pub async fn issue_code(
    state: &AppState,
    req: &ValidRequest,
    session: &BrowserSession,
    now: i64,
) -> Result<AuthorizationResponse, StoreError> {
    let code = random_secret()?;
    let grant = CodeGrant {
        client_id: req.client.client_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        code_challenge: req.code_challenge.clone(),
        nonce: req.nonce.clone(),
        scope: req.scopes.join(" "),
        sub: session.sub.clone(),
        sso_sid: session.sid.clone(),
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        expires_at: now + CODE_TTL,
    };
    state
        .sessions
        .put_code(&digest_hex(&code), &grant, now)
        .await?;
    state.metrics.authorization("code_issued");
    let mut params = vec![("code", code)];
    if let Some(s) = &req.state {
        params.push(("state", s.clone()));
    }
    params.push(("iss", state.issuance.issuer.clone()));
    Ok(AuthorizationResponse {
        redirect_uri: req.redirect_uri.clone(),
        mode: req.mode,
        params,
    })
}

/// The client of a code exchange: a confidential client authenticates; a public one names
/// itself with `client_id` and proves itself with the PKCE verifier alone.
pub async fn exchanging_client(
    state: &AppState,
    creds: Option<crate::services::clients::Credentials>,
    client_id: Option<&str>,
) -> Result<RegisteredClient, OAuthError> {
    if let Some(creds) = creds {
        return crate::services::clients::authenticate(state, &creds).await;
    }
    let id = client_id.ok_or(OAuthError::BadClientAuth(
        "client authentication is required: HTTP Basic, client_secret, or client_id for a public client",
    ))?;
    let found = if id.len() <= crate::services::clients::MAX_ID_LEN {
        state.clients.find_client(id).await?
    } else {
        None
    };
    match found {
        Some((c, _))
            if !c.disabled && c.profile.client_type == crate::storage::ClientType::Public =>
        {
            Ok(c)
        }
        Some((c, _)) if !c.disabled => Err(OAuthError::BadClientAuth(
            "a confidential client must authenticate: HTTP Basic or client_secret",
        )),
        _ => Err(OAuthError::BadClientAuth("client authentication failed")),
    }
}

/// Tokens from a code exchange.
#[derive(Debug, serde::Serialize)]
pub struct CodeTokens {
    /// The access token.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: i64,
    /// When the client may refresh (`offline_access` granted and the grant allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The refresh token's idle lifetime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<i64>,
    /// With the `openid` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Granted scope.
    pub scope: String,
}

/// The claims of an ID token (OpenID Connect Core §2), signed with `typ` `JWT`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct IdClaims {
    /// Issuer.
    pub iss: String,
    /// The user.
    pub sub: String,
    /// The client.
    pub aud: String,
    /// Expiry.
    pub exp: i64,
    /// Issued.
    pub iat: i64,
    /// When the user authenticated.
    pub auth_time: i64,
    /// The request's nonce.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Authorized party: the client.
    pub azp: String,
    /// The browser sign-in session (for logout).
    pub sid: String,
    /// How the user authenticated.
    pub amr: Vec<String>,
    /// Half the SHA-256 of the access token, base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// With `profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// With `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// With `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// `at_hash`: the left half of the hash of the access token's ASCII, base64url, with the hash of
/// the ID token's `alg` (OpenID Connect Core §3.1.3.6): SHA-256 for RS256 and ES256, SHA-512
/// for EdDSA on Ed25519 (the OpenID Connect working group's answer, connect issue 1125).
pub fn at_hash(access_token: &str, alg: shared::Algorithm) -> String {
    let hash = match alg {
        shared::Algorithm::EdDSA | shared::Algorithm::RS512 | shared::Algorithm::PS512 => {
            &digest::SHA512
        }
        shared::Algorithm::RS384 | shared::Algorithm::PS384 => &digest::SHA384,
        _ => &digest::SHA256,
    };
    let d = digest::digest(hash, access_token.as_bytes());
    let half = d.as_ref().len() / 2;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d.as_ref()[..half])
}

/// What the user's claims are under `scopes` (UserInfo and ID token alike).
pub fn user_claims(user: &User, scopes: &[&str]) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    out.insert("sub".into(), json!(user.id.to_string()));
    if scopes.contains(&"profile") {
        out.insert("preferred_username".into(), json!(user.username));
        out.insert("updated_at".into(), json!(user.updated_at.unix_timestamp()));
    }
    if scopes.contains(&"email")
        && let Some(e) = &user.email
    {
        out.insert("email".into(), json!(e));
        // Addresses are not verified yet (email recovery will verify them).
        out.insert("email_verified".into(), json!(false));
    }
    out
}

/// Exchanges a code (RFC 6749 §4.1.3): takes it once, checks its binding to the client,
/// redirect URI and PKCE verifier, and issues the tokens. A second use revokes what the first
/// issued (RFC 6749 §4.1.2).
#[tracing::instrument(level = "debug", skip_all, fields(client_id = client.client_id.as_str()))]
pub async fn exchange(
    state: &AppState,
    client: &RegisteredClient,
    code: &str,
    redirect: Option<&str>,
    verifier: Option<&str>,
) -> Result<CodeTokens, OAuthError> {
    const INVALID: &str = "the authorization code is invalid, expired or already used";
    let now = shared::unix_now();
    let s = &state.settings;
    if code.is_empty() || code.len() > 256 {
        return Err(OAuthError::InvalidGrant(INVALID));
    }
    let verifier = verifier
        .ok_or_else(|| OAuthError::InvalidRequest("code_verifier is required (PKCE)".into()))?;
    let redirect =
        redirect.ok_or_else(|| OAuthError::InvalidRequest("redirect_uri is required".into()))?;
    let issue = CodeIssue {
        jti: crate::crypto::random_id(),
        sid: crate::crypto::random_id(),
    };
    let access_ttl = secs(s.tokens.access_ttl);
    let session_max = secs(s.tokens.session_max_ttl);
    let grant = match state
        .sessions
        .take_code(&digest_hex(code), &issue, now, now + access_ttl + CODE_TTL)
        .await?
    {
        CodeTake::Taken(g) => g,
        CodeTake::Invalid => {
            state.metrics.authorization("code_invalid");
            return Err(OAuthError::InvalidGrant(INVALID));
        }
        CodeTake::Reused(first, g) => {
            // Whatever the first exchange issued dies: its access token, and the session it
            // opened (kept revoked for as long as that session could live).
            state.metrics.authorization("code_reused");
            tracing::warn!(client_id = %g.client_id, "authorization code reused: its tokens revoked");
            state
                .revocations
                .revoke(
                    &RevocationEvent::Jti {
                        value: first.jti.clone(),
                        exp: now + access_ttl,
                    },
                    now,
                )
                .await?;
            state
                .revocations
                .revoke(
                    &RevocationEvent::Sid {
                        value: first.sid.clone(),
                        exp: now + session_max,
                    },
                    now,
                )
                .await?;
            state
                .sessions
                .end(&g.sub, &first.sid, now, now + session_max)
                .await?;
            state.audit_writer.event(
                Some(&g.sub),
                "authorization_code_reused",
                None,
                json!({"client_id": g.client_id, "sid": first.sid}),
            );
            return Err(OAuthError::InvalidGrant(INVALID));
        }
    };
    if grant.client_id != client.client_id {
        return Err(OAuthError::InvalidGrant(
            "the authorization code was issued to another client",
        ));
    }
    if grant.redirect_uri != redirect {
        return Err(OAuthError::InvalidGrant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    if !pkce_matches(verifier, &grant.code_challenge) {
        return Err(OAuthError::InvalidGrant(
            "the code_verifier does not match the code_challenge",
        ));
    }
    let user = match grant.sub.parse::<uuid::Uuid>() {
        Ok(id) => state.users.find_by_id(id).await?,
        Err(_) => None,
    };
    let Some(user) = user.filter(|u| !u.disabled) else {
        return Err(OAuthError::InvalidGrant(INVALID));
    };
    let allowed = crate::tokens::allowed_scopes_with_openid(&s.tokens.role_scopes, &user.roles);
    let scope = crate::tokens::grant_scope(&allowed, None, Some(&grant.scope))
        .map_err(OAuthError::InvalidScope)?;
    let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    let refresh = client.profile.allows("refresh_token") && scopes.contains(&"offline_access");

    // Every exchange opens a session of its own under the browser session: it lists the app
    // among the user's sessions (and as a participant for back-channel logout), ends with the
    // browser session, and is what a reused code revokes. It holds a refresh token only when
    // one is issued; otherwise it lives as long as the browser session would stay idle.
    let abs_exp = now + session_max;
    let refresh_exp = (now + secs(s.tokens.refresh_ttl)).min(abs_exp);
    let refresh_token = match refresh {
        true => Some(crate::services::sessions::new_refresh_token()?),
        false => None,
    };
    let opened = state
        .sessions
        .create(
            &NewSession {
                sid: issue.sid.clone(),
                sub: grant.sub.clone(),
                refresh_jti: refresh_token.as_ref().map(|(_, handle)| handle.clone()),
                parent: Some(grant.sso_sid.clone()),
                browser: None,
                amr: grant.amr.clone(),
                auth_time: grant.auth_time,
                abs_exp,
                refresh_exp,
                client_id: client.client_id.clone(),
                scope: scope.clone(),
                user_agent: client.name.chars().take(200).collect(),
            },
            now,
        )
        .await?;
    if !opened {
        return Err(OAuthError::InvalidGrant("the sign-in session has ended"));
    }
    let sid = issue.sid.clone();
    let token_grant = Grant {
        sid: &sid,
        client_id: &client.client_id,
        scope: &scope,
    };
    let mut access = state
        .issuance
        .access_claims(&user, &token_grant, scope.clone(), now, abs_exp);
    access.jti = issue.jti.clone();
    let ring = state.keys.signing_ring().await?;
    let key = ring.signing();
    let access_token = key
        .sign(shared::claims::ACCESS_TOKEN_TYPE, &access)
        .map_err(OAuthError::Unexpected)?;
    let refresh_token = refresh_token.map(|(token, _)| token);
    let id_token = if scopes.contains(&"openid") {
        let extra = user_claims(&user, &scopes);
        let claims = IdClaims {
            iss: state.issuance.issuer.clone(),
            sub: grant.sub.clone(),
            aud: client.client_id.clone(),
            exp: now + access_ttl,
            iat: now,
            auth_time: grant.auth_time,
            nonce: grant.nonce.clone(),
            azp: client.client_id.clone(),
            sid: grant.sso_sid.clone(),
            amr: grant.amr.split(' ').map(str::to_owned).collect(),
            at_hash: Some(at_hash(&access_token, key.algorithm())),
            preferred_username: extra
                .get("preferred_username")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            email: extra
                .get("email")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            email_verified: extra.get("email_verified").and_then(|v| v.as_bool()),
        };
        Some(
            key.sign(ID_TOKEN_TYPE, &claims)
                .map_err(OAuthError::Unexpected)?,
        )
    } else {
        None
    };
    state.metrics.issued_access();
    state.metrics.authorization("code_exchanged");
    Ok(CodeTokens {
        access_token,
        token_type: "Bearer",
        expires_in: access.exp - now,
        refresh_expires_in: refresh_token.as_ref().map(|_| refresh_exp - now),
        refresh_token,
        id_token,
        scope,
    })
}

/// The `typ` of ID tokens.
pub const ID_TOKEN_TYPE: &str = "JWT";

/// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) equals the challenge; the verifier is 43 to 128
/// unreserved characters. Compared in constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let d = digest::digest(&digest::SHA256, verifier.as_bytes());
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref());
    well_formed & verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_is_s256_of_a_well_formed_verifier() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            challenge
        ));
        assert!(!pkce_matches(challenge, challenge), "plain is not S256");
        assert!(!pkce_matches("short", challenge));
        assert!(is_s256_challenge(challenge));
        assert!(!is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"
        ));
        assert!(!is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
    }

    #[test]
    fn parameters_are_sent_once_and_empty_ones_are_absent() {
        assert!(AuthorizationParams::parse("client_id=a&client_id=b").is_err());
        assert!(AuthorizationParams::parse("csrf=a&x=1&csrf=b").is_err());
        // Unrecognised parameters are ignored, even repeated (RFC 6749 §3.1).
        let p = AuthorizationParams::parse("x=1&x=2&=3&=4&client_id=a").unwrap();
        assert_eq!(p.get("client_id"), Some("a"));
        let p = AuthorizationParams::parse("client_id=a&nonce=&state=x%20y").unwrap();
        assert_eq!(p.get("client_id"), Some("a"));
        assert_eq!(p.get("nonce"), None);
        assert_eq!(p.get("state"), Some("x y"));
        assert_eq!(AuthorizationParams::parse(&p.encode()).unwrap(), p);
    }

    #[test]
    fn responses_keep_the_redirect_uris_own_query() {
        let r = AuthorizationResponse {
            redirect_uri: "https://a.example/cb?x=1".into(),
            mode: ResponseMode::Query,
            params: vec![("code", "c".into()), ("state", "s&t".into())],
        };
        assert_eq!(r.location(), "https://a.example/cb?x=1&code=c&state=s%26t");
    }

    #[test]
    fn at_hash_is_half_the_digest() {
        // OpenID Connect Core §3.1.3.6: 128 bits, base64url: 22 characters.
        assert_eq!(at_hash("token", shared::Algorithm::RS256).len(), 22);
        assert_eq!(at_hash("token", shared::Algorithm::ES256).len(), 22);
        // Ed25519: the left half of SHA-512, 256 bits: 43 characters.
        assert_eq!(at_hash("token", shared::Algorithm::EdDSA).len(), 43);
        assert_eq!(
            at_hash("token", shared::Algorithm::RS256),
            at_hash("token", shared::Algorithm::ES256)
        );
    }
}
