//! `GET /v1/revocations`: the revocation feed for gateways (Server-Sent Events; see
//! `shared::feed` for the events and `crate::feed_server` for how they are produced).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;

use crate::error::{ApiError, BearerError};
use crate::extract::bearer_token;
use crate::state::AppState;

/// Whether `presented` is one of the configured feed tokens. Compares SHA-256 digests in
/// constant time (so neither content nor length leaks through timing) against every token.
fn feed_token_ok(state: &AppState, presented: &str) -> bool {
    use aws_lc_rs::digest::{SHA256, digest};
    let given = digest(&SHA256, presented.as_bytes());
    let mut ok = false;
    for t in &state.settings.feed.tokens {
        let want = digest(&SHA256, t.expose_secret().as_bytes());
        ok |= aws_lc_rs::constant_time::verify_slices_are_equal(given.as_ref(), want.as_ref())
            .is_ok();
    }
    ok
}

/// The feed. Needs `Authorization: Bearer <AUTH_FEED_TOKEN>`; resumes from `Last-Event-ID`.
#[utoipa::path(
    get, path = "/v1/revocations", tag = "revocation feed", security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "Resume after this position"),
        ("Revocation-Subscriber" = Option<String>, Header, description = "The follower's name (random, per process; 1 to 64 of A-Z a-z 0-9 _ -): followers that give one may receive `outage` events", pattern = "^[A-Za-z0-9_-]{1,64}$", min_length = 1, max_length = 64)),
    responses((status = 200, description = "Server-Sent Events: snapshot, revoke, key_revoked, heartbeat, reset, outage", content_type = "text/event-stream", body = super::openapi::FeedEvent),
        (status = 400, description = "An invalid Revocation-Subscriber", body = super::openapi::Problem), (status = 401, description = "Not authenticated (RFC 6750 challenge)", body = super::openapi::Problem), (status = 404, description = "The feed is not enabled", body = super::openapi::Problem),
        (status = 503, description = "Unavailable; retry", body = super::openapi::Problem))
)]
pub async fn revocations(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.settings.feed.tokens.is_empty() {
        return Ok(crate::error::problem(
            StatusCode::NOT_FOUND,
            "the revocation feed is not enabled (set AUTH_FEED_TOKEN)",
            Some("not_found"),
        ));
    }
    let token = bearer_token(&req)
        .map_err(ApiError::Unauthorized)?
        .ok_or(ApiError::Unauthorized(BearerError::Missing))?;
    if !feed_token_ok(&state, &token) {
        return Err(ApiError::Unauthorized(BearerError::InvalidToken(
            "not a revocation feed credential",
        )));
    }
    let subscriber = match req.headers().get(shared::feed::SUBSCRIBER_HEADER) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(name) if crate::feed_server::valid_subscriber(name) => Some(name.to_owned()),
            _ => {
                return Ok(crate::error::problem(
                    StatusCode::BAD_REQUEST,
                    "Revocation-Subscriber must be 1 to 64 of A-Z a-z 0-9 _ -",
                    Some("invalid_request"),
                ));
            }
        },
    };
    let resume = req.headers().get("last-event-id").map(|v| {
        v.to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or(())
    });
    // Subscribe first, then read where the stream stands: nothing can fall in between.
    let rx = state.hub.subscribe();
    let feed_state = state.feed.feed_state().await?;
    let (tx, body) = mpsc::channel(16);
    let store = std::sync::Arc::clone(&state.feed);
    let hub = state.hub.clone();
    actix_web::rt::spawn(async move {
        crate::feed_server::serve(store, &hub, rx, feed_state, resume, tx, subscriber).await;
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(crate::feed_server::FeedBody(body)))
}
