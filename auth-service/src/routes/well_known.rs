//! Discovery: RFC 8414 / OpenID metadata and the JWKS.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`. The
/// first-party login is deliberately not advertised as a password grant (RFC 9700).
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    let iss = &state.settings.tokens.issuer;
    let mut scopes: Vec<&str> = state
        .settings
        .tokens
        .role_scopes
        .values()
        .flatten()
        .map(String::as_str)
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    let mut doc = json!({
            "issuer": iss,
            "jwks_uri": format!("{iss}/.well-known/jwks.json"),
            "token_endpoint": format!("{iss}/v1/token"),
            "revocation_endpoint": format!("{iss}/v1/revoke"),
            "introspection_endpoint": format!("{iss}/v1/introspect"),
            "grant_types_supported": ["refresh_token", "client_credentials"],
            "response_types_supported": [],
            // `none` for refresh (first-party public clients); the secrets for registered clients.
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
