//! Registered clients: their ids, secrets, and client authentication (RFC 6749 §2.3).
//!
//! A secret is 256 random bits, shown once and stored as its SHA-256 digest. A slow hash would
//! protect low-entropy passwords; a 256-bit random value cannot be guessed from its digest, and a
//! fast digest keeps client authentication cheap. Digests are compared in constant time.

use anyhow::Context as _;
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use shared::{AccessClaims, Audience, RevocationEvent};

use crate::domain::redirect_uri::{self, UriUse};
use crate::domain::{DomainError, valid_scope_token};
use crate::error::{ApiError, OAuthError};
use crate::state::AppState;
use crate::storage::{
    ClientProfile, ClientSecrets, ClientType, ClientUpdate, CreateClientError, GRANT_TYPES,
    NewClient, RegisteredClient,
};

/// Longest client id.
pub const MAX_ID_LEN: usize = 64;
/// Longest overlap of an old secret after a rotation (30 days).
pub const MAX_OVERLAP: i64 = 30 * 86_400;

/// Checks a client id chosen at registration: 2 to 64 characters of `[a-z0-9._-]`, starting with
/// a letter or digit, and not shaped like a UUID (user ids are UUIDs, and a client's tokens carry
/// its id as `sub`: the two must never meet).
pub fn parse_id(raw: &str) -> Result<&str, String> {
    let ok_chars = raw
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !(2..=MAX_ID_LEN).contains(&raw.len())
        || !ok_chars
        || !raw.as_bytes()[0].is_ascii_alphanumeric()
    {
        return Err(format!(
            "client_id must be 2 to {MAX_ID_LEN} characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
        ));
    }
    if uuid::Uuid::parse_str(raw).is_ok() {
        return Err("client_id must not be a UUID (user ids are)".into());
    }
    Ok(raw)
}

/// Checks a list of scope or audience values (each a scope token, at most 64 of them), sorted
/// and without duplicates.
pub fn parse_list(what: &str, raw: &[String]) -> Result<Vec<String>, String> {
    if raw.len() > 64 {
        return Err(format!("at most 64 {what}"));
    }
    if let Some(bad) = raw.iter().find(|s| !valid_scope_token(s) || s.len() > 200) {
        return Err(format!("invalid value in {what}: {bad:?}"));
    }
    let mut list = raw.to_vec();
    list.sort();
    list.dedup();
    Ok(list)
}

/// A new secret and its digest.
pub fn new_secret() -> anyhow::Result<(SecretString, Vec<u8>)> {
    let secret = crate::crypto::random_secret()?;
    let hash = digest_of(&secret);
    Ok((SecretString::from(secret), hash))
}

fn digest_of(secret: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

/// True when `given` is the client's current secret, or its previous one before that expires.
/// Both digests are always compared, in constant time.
pub fn secret_matches(
    given: &str,
    client: &RegisteredClient,
    secrets: &ClientSecrets,
    now: i64,
) -> bool {
    let given = digest_of(given);
    let current = verify_slices_are_equal(&given, &secrets.current).is_ok();
    let previous_live = client.previous_secret_expires_at.is_some_and(|t| now < t);
    let previous = secrets
        .previous
        .as_deref()
        .is_some_and(|p| verify_slices_are_equal(&given, p).is_ok());
    current | (previous & previous_live)
}

/// A digest no secret has (compared against when the client id is unknown, so that an unknown
/// id costs the same work as a wrong secret).
const NO_CLIENT: [u8; 32] = [0; 32];

/// The credentials a request presents: HTTP Basic (RFC 6749 §2.3.1: the id and secret are
/// form-urlencoded, then base64) or `client_id` + `client_secret` in the body, never both.
#[derive(Debug)]
pub struct Credentials {
    /// Client id.
    pub id: String,
    /// Secret.
    pub secret: SecretString,
}

/// Reads the client credentials of a request: its `Authorization` header (bytes as sent; HTTP
/// Basic), or `client_id` and `client_secret` from its body. `Ok(None)`: none presented.
pub fn credentials(
    authorization: Option<&[u8]>,
    form_id: Option<&str>,
    form_secret: Option<&SecretString>,
) -> Result<Option<Credentials>, OAuthError> {
    let basic = basic_credentials(authorization)?;
    // Parameters sent without a value are treated as omitted (RFC 6749 §3.1).
    let form_id = form_id.filter(|id| !id.is_empty());
    let form_secret = form_secret.filter(|s| !s.expose_secret().is_empty());
    match (basic, form_secret) {
        // More than one method (RFC 6749 §2.3) or two client ids: the client is not
        // authenticated, so the answer is `invalid_client` with its Basic challenge.
        (Some(_), Some(_)) => Err(OAuthError::BadClientAuth(
            "use one client authentication method: HTTP Basic or client_secret in the body, not both",
        )),
        (Some((id, secret)), None) => {
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::BadClientAuth(
                    "client_id in the body differs from the client of the Basic credentials",
                ));
            }
            Ok(Some(Credentials { id, secret }))
        }
        (None, Some(secret)) => {
            let id = form_id.ok_or_else(|| {
                OAuthError::InvalidRequest("client_secret needs a client_id".into())
            })?;
            Ok(Some(Credentials {
                id: id.to_owned(),
                secret: secret.clone(),
            }))
        }
        (None, None) => Ok(None),
    }
}

fn basic_credentials(
    authorization: Option<&[u8]>,
) -> Result<Option<(String, SecretString)>, OAuthError> {
    let Some(value) = authorization else {
        return Ok(None);
    };
    let bad = || OAuthError::BadClientAuth("the Basic credentials are malformed");
    let value = std::str::from_utf8(value).map_err(|_| bad())?;
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::BadClientAuth(
            "authenticate the client with HTTP Basic or client_secret in the body",
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    // Form-urlencoded (RFC 6749 §2.3.1): `+` is a space, `%XX` a byte; a raw `&` is kept.
    let unescape = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={}", s.replace('&', "%26")))
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, v)| v)
    };
    let id = unescape(id).ok_or_else(bad)?;
    let secret = unescape(secret).ok_or_else(bad)?;
    Ok(Some((id, SecretString::from(secret))))
}

/// Authenticates a client: the registered, enabled client whose secret was presented.
#[tracing::instrument(level = "debug", skip_all, fields(client_id = creds.id.as_str()))]
pub async fn authenticate(
    state: &AppState,
    creds: &Credentials,
) -> Result<RegisteredClient, OAuthError> {
    const FAILED: &str = "client authentication failed";
    let now = shared::unix_now();
    let found = if creds.id.len() <= MAX_ID_LEN {
        state.clients.find_client(&creds.id).await?
    } else {
        None
    };
    let Some((client, secrets)) = found else {
        // The same work as a wrong secret: a digest and a comparison.
        let _ = verify_slices_are_equal(&digest_of(creds.secret.expose_secret()), &NO_CLIENT);
        return Err(OAuthError::BadClientAuth(FAILED));
    };
    // A public client has no secret (its stored digest is empty and never matches).
    if !secret_matches(creds.secret.expose_secret(), &client, &secrets, now)
        || client.disabled
        || client.profile.client_type == ClientType::Public
    {
        return Err(OAuthError::BadClientAuth(FAILED));
    }
    Ok(client)
}

/// A client to register (the admin API's body, and the CLI's arguments).
#[derive(Debug, Default, serde::Deserialize)]
pub struct ClientRegistration {
    /// Client id.
    pub client_id: String,
    /// Name (default: empty).
    #[serde(default)]
    pub name: Option<String>,
    /// Allowed scopes (default: none).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Allowed audiences (default: the configured access-token audience).
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    /// `confidential` (default) or `public`.
    #[serde(default, rename = "type")]
    pub client_type: Option<ClientType>,
    /// Skips the consent page (default false).
    #[serde(default)]
    pub first_party: Option<bool>,
    /// Grant types (default: `authorization_code` and `refresh_token` with redirect URIs,
    /// otherwise `client_credentials`).
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    /// Redirect URIs for the authorization code flow.
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    /// Where RP-initiated logout may return to.
    #[serde(default)]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Back-channel logout endpoint.
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
}

/// Changes to a client (the admin API's body, and the CLI's arguments).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Patch {
    /// New name.
    #[serde(default, deserialize_with = "crate::extract::present")]
    pub name: Option<String>,
    /// New allowed scopes.
    #[serde(default, deserialize_with = "crate::extract::present")]
    pub scopes: Option<Vec<String>>,
    /// New allowed audiences.
    #[serde(default, deserialize_with = "crate::extract::present")]
    pub audiences: Option<Vec<String>>,
    /// Disable or enable.
    #[serde(default, deserialize_with = "crate::extract::present")]
    pub disabled: Option<bool>,
    /// The type cannot change; sending the current one is accepted.
    #[serde(default, rename = "type", deserialize_with = "crate::extract::present")]
    pub client_type: Option<ClientType>,
    /// Skips the consent page.
    #[serde(default, deserialize_with = "crate::extract::present")]
    pub first_party: Option<bool>,
    /// Grant types.
    #[serde(default, deserialize_with = "crate::extract::present")]
    pub grant_types: Option<Vec<String>>,
    /// Redirect URIs.
    #[serde(default, deserialize_with = "crate::extract::present")]
    pub redirect_uris: Option<Vec<String>>,
    /// Post-logout redirect URIs.
    #[serde(default, deserialize_with = "crate::extract::present")]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Back-channel logout endpoint (`""` removes it).
    #[serde(default, deserialize_with = "crate::extract::present")]
    pub backchannel_logout_uri: Option<String>,
}

impl Patch {
    fn changes_profile(&self) -> bool {
        self.client_type.is_some()
            || self.first_party.is_some()
            || self.grant_types.is_some()
            || self.redirect_uris.is_some()
            || self.post_logout_redirect_uris.is_some()
            || self.backchannel_logout_uri.is_some()
    }
}

/// Most URIs of one kind a client may register.
const MAX_URIS: usize = 32;

fn uri_list(
    what: &'static str,
    raw: &[String],
    used: UriUse,
    plain_http: bool,
) -> Result<Vec<String>, ApiError> {
    if raw.len() > MAX_URIS {
        return Err(invalid(
            "invalid_redirect_uri",
            format!("at most {MAX_URIS} {what}"),
        ));
    }
    let mut list = raw
        .iter()
        .map(|u| redirect_uri::parse_registered(u, used, plain_http))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("invalid_redirect_uri", format!("{what}: {e}")))?;
    list.sort();
    list.dedup();
    Ok(list)
}

/// Checks a profile as a whole: known grants; a public client has no client-credentials grant
/// and needs redirect URIs; the authorization code grant needs redirect URIs, and redirect URIs
/// and refresh tokens need the authorization code grant.
fn check_profile(mut p: ClientProfile) -> Result<ClientProfile, ApiError> {
    p.grant_types.sort();
    p.grant_types.dedup();
    if let Some(bad) = p
        .grant_types
        .iter()
        .find(|g| !GRANT_TYPES.contains(&g.as_str()))
    {
        return Err(invalid(
            "invalid_grant_types",
            format!("unknown grant type {bad:?}: use {}", GRANT_TYPES.join(", ")),
        ));
    }
    if p.grant_types.is_empty() {
        return Err(invalid(
            "invalid_grant_types",
            "a client needs at least one grant type".into(),
        ));
    }
    let code = p.allows("authorization_code");
    if p.client_type == ClientType::Public && p.allows("client_credentials") {
        return Err(invalid(
            "invalid_grant_types",
            "a public client has no secret, so it cannot use client_credentials".into(),
        ));
    }
    if p.client_type == ClientType::Public && !code {
        return Err(invalid(
            "invalid_grant_types",
            "a public client signs users in: it needs the authorization_code grant".into(),
        ));
    }
    if code && p.redirect_uris.is_empty() {
        return Err(invalid(
            "invalid_redirect_uri",
            "the authorization_code grant needs at least one redirect URI".into(),
        ));
    }
    if !code && !p.redirect_uris.is_empty() {
        return Err(invalid(
            "invalid_grant_types",
            "redirect URIs are only used by the authorization_code grant: add it".into(),
        ));
    }
    if p.allows("refresh_token") && !code {
        return Err(invalid(
            "invalid_grant_types",
            "refresh_token comes with authorization_code (client credentials get no refresh token)"
                .into(),
        ));
    }
    if !code && (!p.post_logout_redirect_uris.is_empty() || p.backchannel_logout_uri.is_some()) {
        return Err(invalid(
            "invalid_grant_types",
            "logout URIs are for clients that sign users in (authorization_code)".into(),
        ));
    }
    Ok(p)
}

fn invalid(code: &'static str, message: String) -> ApiError {
    ApiError::Invalid(DomainError::new(code, message))
}

fn name(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(n) if n.chars().count() > 200 || n.chars().any(char::is_control) => Err(invalid(
            "invalid_name",
            "name must be at most 200 characters, without control characters".into(),
        )),
        other => Ok(other),
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such client".into())
}

/// Revokes every token of `client_id` issued before `iat_before`: the gateways hear of it
/// through the feed, like a user's revocation.
async fn revoke_tokens(
    state: &AppState,
    client_id: &str,
    iat_before: i64,
    now: i64,
) -> Result<(), ApiError> {
    let event = RevocationEvent::Sub {
        value: client_id.to_owned(),
        iat_before,
        exp: crate::services::sessions::revoke_until(state, now),
    };
    state.revocations.revoke(&event, now).await?;
    Ok(())
}

/// Registers a client; its secret is returned this once.
#[tracing::instrument(skip_all, fields(client_id = reg.client_id.as_str(), actor = actor))]
pub async fn register(
    state: &AppState,
    reg: ClientRegistration,
    actor: &str,
) -> Result<(RegisteredClient, Option<SecretString>), ApiError> {
    let id = parse_id(&reg.client_id).map_err(|e| invalid("invalid_client_id", e))?;
    let taken = || ApiError::Conflict {
        code: "client_id_taken",
        detail: "a client with this id exists".into(),
    };
    // The first-party ids named in tokens of users' sessions are not registrable.
    if state.settings.tokens.client_ids.iter().any(|c| c == id) {
        return Err(taken());
    }
    let scopes = parse_list("scopes", reg.scopes.as_deref().unwrap_or_default())
        .map_err(|e| invalid("invalid_scopes", e))?;
    let audiences = match reg.audiences.as_deref() {
        Some(list) => parse_list("audiences", list).map_err(|e| invalid("invalid_audiences", e))?,
        None => vec![state.settings.tokens.audience.clone()],
    };
    let plain_http = !state.settings.production;
    let redirect_uris = uri_list(
        "redirect_uris",
        reg.redirect_uris.as_deref().unwrap_or_default(),
        UriUse::Redirect,
        plain_http,
    )?;
    let client_type = reg.client_type.unwrap_or_default();
    let grant_types = reg.grant_types.unwrap_or_else(|| {
        if redirect_uris.is_empty() && client_type == ClientType::Confidential {
            vec!["client_credentials".into()]
        } else {
            vec!["authorization_code".into(), "refresh_token".into()]
        }
    });
    let profile = check_profile(ClientProfile {
        client_type,
        first_party: reg.first_party.unwrap_or(false),
        grant_types,
        redirect_uris,
        post_logout_redirect_uris: uri_list(
            "post_logout_redirect_uris",
            reg.post_logout_redirect_uris.as_deref().unwrap_or_default(),
            UriUse::Redirect,
            plain_http,
        )?,
        backchannel_logout_uri: reg
            .backchannel_logout_uri
            .filter(|u| !u.is_empty())
            .map(|u| {
                uri_list(
                    "backchannel_logout_uri",
                    &[u],
                    UriUse::Backchannel,
                    plain_http,
                )
            })
            .transpose()?
            .and_then(|mut l| l.pop()),
    })?;
    // A client that signs users in may ask for the OpenID scopes unless told otherwise.
    let scopes = match reg.scopes {
        None if profile.allows("authorization_code") => parse_list(
            "scopes",
            &crate::services::authorize::OPENID_SCOPES.map(String::from),
        )
        .map_err(|e| invalid("invalid_scopes", e))?,
        _ => scopes,
    };
    let (secret, secret_hash) = match profile.client_type {
        ClientType::Confidential => {
            let (secret, hash) = new_secret()?;
            (Some(secret), hash)
        }
        ClientType::Public => (None, Vec::new()),
    };
    let client = state
        .clients
        .create_client(
            NewClient {
                client_id: id.to_owned(),
                name: name(reg.name)?.unwrap_or_default(),
                scopes,
                audiences,
                secret_hash,
                profile,
            },
            shared::unix_now(),
        )
        .await
        .map_err(|e| match e {
            CreateClientError::Taken => taken(),
            CreateClientError::Store(e) => e.into(),
        })?;
    state
        .audit_writer.event(
            None,
            "client_registered",
            Some(actor),
            json!({"client_id": client.client_id, "scopes": client.scopes, "audiences": client.audiences,
                "type": client.profile.client_type, "grant_types": client.profile.grant_types,
                "redirect_uris": client.profile.redirect_uris, "first_party": client.profile.first_party}),
        );
    Ok((client, secret))
}

/// The fields a bootstrap file's entry may hold (the registration's).
const BOOTSTRAP_FIELDS: [&str; 10] = [
    "client_id",
    "name",
    "scopes",
    "audiences",
    "type",
    "first_party",
    "grant_types",
    "redirect_uris",
    "post_logout_redirect_uris",
    "backchannel_logout_uri",
];

/// Registers the public clients of `AUTH_BOOTSTRAP_CLIENTS_FILE`, or brings existing ones to
/// its settings: how a deployment (compose, Kubernetes) provisions the apps that sign users in.
/// Only public clients: a confidential client's secret is shown once, by the API or the CLI.
pub async fn bootstrap(state: &AppState) -> anyhow::Result<()> {
    let Some(path) = &state.settings.browser.clients_file else {
        return Ok(());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| {
            format!(
                "AUTH_BOOTSTRAP_CLIENTS_FILE: cannot read {}",
                path.display()
            )
        })?
        .replace("{issuer}", &state.settings.tokens.issuer);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&text)
        .context("AUTH_BOOTSTRAP_CLIENTS_FILE: not a JSON list of clients")?;
    for entry in entries {
        let id = entry["client_id"].as_str().unwrap_or("?").to_owned();
        if let Some(unknown) = entry
            .as_object()
            .and_then(|o| o.keys().find(|k| !BOOTSTRAP_FIELDS.contains(&k.as_str())))
        {
            anyhow::bail!("AUTH_BOOTSTRAP_CLIENTS_FILE: client {id}: unknown field {unknown:?}");
        }
        let reg: ClientRegistration = serde_json::from_value(entry)
            .with_context(|| format!("AUTH_BOOTSTRAP_CLIENTS_FILE: client {id}"))?;
        if reg.client_type != Some(ClientType::Public) {
            anyhow::bail!(
                "AUTH_BOOTSTRAP_CLIENTS_FILE: client {id} must be \"type\": \"public\" (register confidential clients with the API or the CLI, which show the secret once)"
            );
        }
        apply(state, reg, "bootstrap")
            .await
            .map_err(|e| anyhow::anyhow!("AUTH_BOOTSTRAP_CLIENTS_FILE: client {id}: {e}"))?;
    }
    Ok(())
}

/// Registers a client, or, when its id is taken, brings it to these settings (its type stays).
pub async fn apply(
    state: &AppState,
    reg: ClientRegistration,
    actor: &str,
) -> Result<RegisteredClient, ApiError> {
    let patch = Patch {
        name: reg.name.clone(),
        scopes: reg.scopes.clone(),
        audiences: reg.audiences.clone(),
        disabled: None,
        client_type: reg.client_type,
        first_party: reg.first_party,
        grant_types: reg.grant_types.clone(),
        redirect_uris: reg.redirect_uris.clone(),
        post_logout_redirect_uris: reg.post_logout_redirect_uris.clone(),
        backchannel_logout_uri: Some(reg.backchannel_logout_uri.clone().unwrap_or_default()),
    };
    let id = reg.client_id.clone();
    match register(state, reg, actor).await {
        Ok((client, _)) => Ok(client),
        Err(ApiError::Conflict {
            code: "client_id_taken",
            ..
        }) => update(state, &id, patch, actor).await,
        Err(e) => Err(e),
    }
}

/// A client by id.
#[tracing::instrument(skip(state))]
pub async fn get(state: &AppState, id: &str) -> Result<RegisteredClient, ApiError> {
    if id.len() > MAX_ID_LEN {
        return Err(not_found());
    }
    let (client, _) = state.clients.find_client(id).await?.ok_or_else(not_found)?;
    Ok(client)
}

/// Changes a client. Disabling it, or changing its scopes or audiences, revokes its tokens (its
/// next token carries the new ones).
#[tracing::instrument(skip(state, patch))]
pub async fn update(
    state: &AppState,
    id: &str,
    patch: Patch,
    actor: &str,
) -> Result<RegisteredClient, ApiError> {
    let current = get(state, id).await?;
    let scopes = patch
        .scopes
        .as_deref()
        .map(|s| parse_list("scopes", s))
        .transpose()
        .map_err(|e| invalid("invalid_scopes", e))?;
    let audiences = patch
        .audiences
        .as_deref()
        .map(|a| parse_list("audiences", a))
        .transpose()
        .map_err(|e| invalid("invalid_audiences", e))?;
    let name = name(patch.name.clone())?;
    if name.is_none()
        && scopes.is_none()
        && audiences.is_none()
        && patch.disabled.is_none()
        && !patch.changes_profile()
    {
        return Err(ApiError::BadRequest(
            "nothing to change: send name, scopes, audiences, disabled, first_party, grant_types, redirect_uris, post_logout_redirect_uris and/or backchannel_logout_uri".into(),
        ));
    }
    let profile = if patch.changes_profile() {
        if patch
            .client_type
            .is_some_and(|t| t != current.profile.client_type)
        {
            return Err(invalid(
                "type_fixed",
                "a client's type cannot change: register a new client".into(),
            ));
        }
        let plain_http = !state.settings.production;
        let mut p = current.profile.clone();
        if let Some(f) = patch.first_party {
            p.first_party = f;
        }
        if let Some(g) = patch.grant_types {
            p.grant_types = g;
        }
        if let Some(u) = &patch.redirect_uris {
            p.redirect_uris = uri_list("redirect_uris", u, UriUse::Redirect, plain_http)?;
        }
        if let Some(u) = &patch.post_logout_redirect_uris {
            p.post_logout_redirect_uris =
                uri_list("post_logout_redirect_uris", u, UriUse::Redirect, plain_http)?;
        }
        if let Some(u) = patch.backchannel_logout_uri {
            p.backchannel_logout_uri = if u.is_empty() {
                None
            } else {
                uri_list(
                    "backchannel_logout_uri",
                    &[u],
                    UriUse::Backchannel,
                    plain_http,
                )?
                .pop()
            };
        }
        Some(check_profile(p)?)
    } else {
        None
    };
    // Fewer grants or redirect URIs make live tokens and codes wrong, as narrower scopes do.
    let narrowed = profile.as_ref().is_some_and(|p| {
        current
            .profile
            .grant_types
            .iter()
            .any(|g| !p.grant_types.contains(g))
            || current
                .profile
                .redirect_uris
                .iter()
                .any(|u| !p.redirect_uris.contains(u))
    });
    let revoke = patch.disabled == Some(true)
        || narrowed
        || scopes.as_ref().is_some_and(|s| *s != current.scopes)
        || audiences.as_ref().is_some_and(|a| *a != current.audiences);
    let now = shared::unix_now();
    let update = ClientUpdate {
        name,
        scopes,
        audiences,
        disabled: patch.disabled,
        profile,
        revoke_tokens: revoke,
    };
    let client = state
        .clients
        .update_client(id, &update, now)
        .await?
        .ok_or_else(not_found)?;
    if revoke {
        revoke_tokens(state, id, client.tokens_not_before, now).await?;
    }
    state
        .audit_writer.event(
            None,
            "client_updated",
            Some(actor),
            json!({"client_id": id, "scopes": client.scopes, "audiences": client.audiences, "disabled": client.disabled,
                "grant_types": client.profile.grant_types, "redirect_uris": client.profile.redirect_uris,
                "first_party": client.profile.first_party, "tokens_revoked": revoke}),
        );
    Ok(client)
}

/// Replaces a client's secret; the old one keeps working for `overlap` seconds (0: stops now).
#[tracing::instrument(skip(state))]
pub async fn rotate_secret(
    state: &AppState,
    id: &str,
    overlap: i64,
    actor: &str,
) -> Result<(RegisteredClient, SecretString), ApiError> {
    if !(0..=MAX_OVERLAP).contains(&overlap) {
        return Err(invalid(
            "invalid_overlap",
            format!("previous_secret_ttl must be between 0 and {MAX_OVERLAP} seconds"),
        ));
    }
    if get(state, id).await?.profile.client_type == ClientType::Public {
        return Err(ApiError::Conflict {
            code: "public_client",
            detail: "a public client has no secret to rotate".into(),
        });
    }
    let (secret, hash) = new_secret()?;
    let now = shared::unix_now();
    let client = state
        .clients
        .rotate_client_secret(id, &hash, now + overlap, now)
        .await?
        .ok_or_else(not_found)?;
    state.audit_writer.event(
        None,
        "client_secret_rotated",
        Some(actor),
        json!({"client_id": id, "previous_secret_expires_at": client.previous_secret_expires_at}),
    );
    Ok((client, secret))
}

/// Deletes a client and revokes every token it holds.
#[tracing::instrument(skip(state))]
pub async fn delete(state: &AppState, id: &str, actor: &str) -> Result<(), ApiError> {
    if id.len() > MAX_ID_LEN {
        return Err(not_found());
    }
    let now = shared::unix_now();
    // Every token it holds was issued before the raised `tokens_not_before`.
    let not_before = state
        .clients
        .delete_client(id, now)
        .await?
        .ok_or_else(not_found)?;
    revoke_tokens(state, id, not_before, now).await?;
    state.audit_writer.event(
        None,
        "client_deleted",
        Some(actor),
        json!({"client_id": id}),
    );
    Ok(())
}

/// A client's access token (client credentials), as issued.
#[derive(Debug)]
pub struct IssuedToken {
    /// The signed token.
    pub token: String,
    /// Its lifetime, seconds.
    pub expires_in: i64,
    /// The scope it carries (space-separated).
    pub scope: String,
}

/// Client credentials (RFC 6749 §4.4): the authenticated `client` gets an access token for
/// itself (`sub` = `client_id`, no session, no roles, no refresh token) with the requested scopes
/// and audiences, each of which it must be allowed; none requested: all of its own.
#[tracing::instrument(level = "debug", skip(state, client), fields(client_id = client.client_id.as_str()))]
pub async fn issue_token(
    state: &AppState,
    client: &RegisteredClient,
    scope: Option<&str>,
    audience: Option<&str>,
) -> Result<IssuedToken, OAuthError> {
    if !client.profile.allows("client_credentials") {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not use the client_credentials grant",
        ));
    }
    let scopes = requested_subset(scope, &client.scopes).map_err(|bad| {
        OAuthError::InvalidScope(match bad {
            Refused::Malformed(s) => format!("invalid scope token {s:?}"),
            Refused::NotAllowed(s) => format!("scope {s:?} is not allowed for this client"),
        })
    })?;
    let audiences = requested_subset(audience, &client.audiences).map_err(|bad| {
        OAuthError::InvalidTarget(match bad {
            Refused::Malformed(a) | Refused::NotAllowed(a) => {
                format!("audience {a:?} is not allowed for this client")
            }
        })
    })?;
    let scope = scopes.join(" ");
    let aud = match <[String; 1]>::try_from(audiences) {
        Ok([one]) => Audience::One(one),
        Err(list) if list.is_empty() => {
            return Err(OAuthError::UnauthorizedClient(
                "the client may not obtain tokens for any audience",
            ));
        }
        Err(list) => Audience::Many(list),
    };
    let now = shared::unix_now();
    let claims = AccessClaims {
        iss: state.issuance.issuer.clone(),
        sub: client.client_id.clone(),
        aud,
        client_id: client.client_id.clone(),
        exp: now + state.issuance.access_ttl,
        iat: now.max(client.tokens_not_before),
        nbf: now,
        jti: crate::crypto::random_id(),
        sid: None,
        roles: vec![],
        scope,
    };
    let token = state
        .keys
        .signing_ring()
        .await?
        .signing()
        .sign(shared::claims::ACCESS_TOKEN_TYPE, &claims)
        .map_err(OAuthError::Unexpected)?;
    state.metrics.issued_access();
    tracing::debug!("client credentials token issued");
    Ok(IssuedToken {
        token,
        expires_in: claims.exp - now,
        scope: claims.scope,
    })
}

/// Why a requested value was refused.
enum Refused {
    /// Not a scope token (RFC 6749 §3.3).
    Malformed(String),
    /// Not among the client's.
    NotAllowed(String),
}

/// The space-separated `requested` values (sorted, once each), each of which must be in
/// `allowed`; nothing requested means all of `allowed`.
fn requested_subset(requested: Option<&str>, allowed: &[String]) -> Result<Vec<String>, Refused> {
    let Some(requested) = requested.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(allowed.to_vec());
    };
    let mut wanted: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    if let Some(bad) = wanted.iter().find(|s| !valid_scope_token(s)) {
        return Err(Refused::Malformed((*bad).to_owned()));
    }
    if let Some(extra) = wanted.iter().find(|s| !allowed.iter().any(|a| a == *s)) {
        return Err(Refused::NotAllowed((*extra).to_owned()));
    }
    Ok(wanted.into_iter().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(previous_until: Option<i64>) -> RegisteredClient {
        RegisteredClient {
            client_id: "svc".into(),
            name: String::new(),
            scopes: vec![],
            audiences: vec![],
            disabled: false,
            tokens_not_before: 0,
            created_at: 0,
            updated_at: 0,
            previous_secret_expires_at: previous_until,
            profile: ClientProfile::default(),
        }
    }

    #[test]
    fn ids_are_lowercase_names_never_uuids() {
        assert_eq!(parse_id("billing-service"), Ok("billing-service"));
        assert_eq!(parse_id("a1.b_c"), Ok("a1.b_c"));
        for bad in [
            "",
            "a",
            "-billing",
            "Billing",
            "bill ing",
            "bill:ing",
            "bill/ing",
            "é-service",
            &"a".repeat(65),
            "5c0f0f39-1f7a-4c4e-9b4a-2d8f6a6f1e11",
        ] {
            assert!(parse_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lists_are_scope_tokens_sorted_once() {
        let raw = vec!["b".to_owned(), "a".into(), "b".into()];
        assert_eq!(parse_list("scopes", &raw).unwrap(), ["a", "b"]);
        assert!(parse_list("scopes", &["a b".to_owned()]).is_err());
        assert!(parse_list("scopes", &["\"".to_owned()]).is_err());
        assert!(parse_list("scopes", &vec!["a".to_owned(); 65]).is_err());
    }

    #[test]
    fn basic_credentials_are_form_urlencoded_then_base64() {
        let req = |value: &str| value.as_bytes().to_vec();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        // RFC 6749 §2.3.1: `:` inside the id or secret is escaped; `+` is a space.
        let r = req(&format!("Basic {}", b64("my%3Aapp:s%3Ae+c%26r%25et")));
        let c = credentials(Some(&r), None, None).unwrap().unwrap();
        assert_eq!(c.id, "my:app");
        assert_eq!(c.secret.expose_secret(), "s:e c&r%et");
        // A raw `&` stays itself; the scheme is case-insensitive.
        let r = req(&format!("basic {}", b64("app:a&b")));
        let c = credentials(Some(&r), Some("app"), None).unwrap().unwrap();
        assert_eq!((c.id.as_str(), c.secret.expose_secret()), ("app", "a&b"));
        // A body client_id that disagrees, both methods, malformed values, a secret alone.
        assert!(credentials(Some(&r), Some("other"), None).is_err());
        let form_secret = SecretString::from("x");
        assert!(credentials(Some(&r), None, Some(&form_secret)).is_err());
        for bad in [
            "Basic",
            "Basic !!!",
            &format!("Basic {}", b64("no-colon")),
            "Bearer t",
        ] {
            assert!(credentials(Some(&req(bad)), None, None).is_err(), "{bad}");
        }
        assert!(credentials(None, None, Some(&form_secret)).is_err());
        assert!(credentials(None, None, None).unwrap().is_none());
        let c = credentials(None, Some("app"), Some(&form_secret))
            .unwrap()
            .unwrap();
        assert_eq!((c.id.as_str(), c.secret.expose_secret()), ("app", "x"));
    }

    #[test]
    fn secrets_are_random_and_match_only_themselves() {
        let (a, hash_a) = new_secret().unwrap();
        let (b, hash_b) = new_secret().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), 43);
        let secrets = ClientSecrets {
            current: hash_a.clone(),
            previous: Some(hash_b.clone()),
        };
        assert!(secret_matches(
            a.expose_secret(),
            &client(None),
            &secrets,
            10
        ));
        assert!(!secret_matches("wrong", &client(None), &secrets, 10));
        // The previous secret only while its overlap lasts.
        assert!(!secret_matches(
            b.expose_secret(),
            &client(None),
            &secrets,
            10
        ));
        assert!(secret_matches(
            b.expose_secret(),
            &client(Some(11)),
            &secrets,
            10
        ));
        assert!(!secret_matches(
            b.expose_secret(),
            &client(Some(10)),
            &secrets,
            10
        ));
    }
}
