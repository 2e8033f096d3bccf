//! Discovery: RFC 8414 / OpenID metadata and the JWKS.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// The algorithms ID tokens are or will be signed with: the signing key's, every published
/// key's, and the configured one's (a switch in progress lists both), in a fixed order.
fn signing_algorithms(state: &AppState) -> Vec<&'static str> {
    let ring = state.keys.ring();
    shared::Algorithm::ALL
        .into_iter()
        .filter(|a| {
            *a == state.settings.keys.signing_alg
                || *a == ring.signing().algorithm()
                || ring
                    .verifying()
                    .kids()
                    .filter_map(|k| ring.verifying().get(k))
                    .any(|k| k.algorithm() == *a)
        })
        .map(shared::Algorithm::name)
        .collect()
}

/// `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`: what a
/// Basic OpenID provider publishes (OpenID Connect Discovery 1.0 §3, RFC 8414). The first-party
/// login is deliberately not advertised as a password grant (RFC 9700).
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    use crate::services::authorize::{OPENID_SCOPES, PROMPT_VALUES};
    let iss = &state.settings.tokens.issuer;
    let mut scopes: Vec<&str> = state
        .settings
        .tokens
        .role_scopes
        .values()
        .flatten()
        .map(String::as_str)
        .chain(OPENID_SCOPES)
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    let mut doc = json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/v1/authorize"),
            "token_endpoint": format!("{iss}/v1/token"),
            "userinfo_endpoint": format!("{iss}/v1/userinfo"),
            "end_session_endpoint": format!("{iss}/v1/end-session"),
            "jwks_uri": format!("{iss}/.well-known/jwks.json"),
            "revocation_endpoint": format!("{iss}/v1/revoke"),
            "introspection_endpoint": format!("{iss}/v1/introspect"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "form_post"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": signing_algorithms(&state),
            "code_challenge_methods_supported": ["S256"],
            "prompt_values_supported": PROMPT_VALUES,
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "sid", "amr", "at_hash",
                                 "preferred_username", "updated_at", "email", "email_verified"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "authorization_response_iss_parameter_supported": true,
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
            // `none` for public clients (PKCE) and first-party refresh; the secrets for the rest.
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": scopes,
    });
    if !state.settings.feed.tokens.is_empty() {
        doc["revocation_feed_endpoint"] = json!(format!("{iss}/v1/revocations"));
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(doc)
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
#[utoipa::path(
    get, path = "/.well-known/oauth-authorization-server", tag = "discovery",
    responses((status = 200, description = "OK", body = super::openapi::Object))
)]
pub async fn metadata_oauth(state: web::Data<AppState>) -> HttpResponse {
    metadata(state).await
}

/// `GET /.well-known/openid-configuration` (the same document).
#[utoipa::path(
    get, path = "/.well-known/openid-configuration", tag = "discovery",
    responses((status = 200, description = "OK", body = super::openapi::Object))
)]
pub async fn metadata_openid(state: web::Data<AppState>) -> HttpResponse {
    metadata(state).await
}

/// `/.well-known/jwks.json`: public keys only, cacheable, with a strong ETag.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "discovery",
    responses((status = 200, description = "Public keys (cacheable, ETag)", content_type = "application/jwk-set+json", body = super::openapi::Object),
        (status = 304, description = "Not modified"))
)]
pub async fn jwks(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let ring = state.keys.ring();
    // Rotation publishes a new key at least this long (plus the reload interval) before it
    // signs: AUTH_KEY_ROTATION_LEAD is checked against it at start.
    let cache = format!(
        "public, max-age={}",
        state.settings.keys.jwks_max_age.as_secs()
    );
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == ring.etag() || t.trim() == "*")
        });
    if matches {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, ring.etag()))
            .insert_header((header::CACHE_CONTROL, cache))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::ETAG, ring.etag()))
        .insert_header((header::CACHE_CONTROL, cache))
        .content_type("application/jwk-set+json")
        .body(ring.jwks().to_vec())
}
