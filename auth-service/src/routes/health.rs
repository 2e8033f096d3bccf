//! Liveness and readiness.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// Alive: the process answers.
#[utoipa::path(
    get, path = "/healthz", tag = "health", responses((status = 200, description = "OK", body = super::openapi::Object))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({"status": "ok"}))
}

/// Ready: the stores (PostgreSQL and Redis, or the embedded file) answer and a signing key is
/// loaded.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses((status = 200, description = "OK", body = super::openapi::Object), (status = 503, description = "Unavailable; retry", body = super::openapi::Object))
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (pg, redis) = tokio::join!(state.users.ping(), state.sessions.ping());
    let check =
        |r: &Result<(), crate::storage::StoreError>| if r.is_ok() { "ok" } else { "unavailable" };
    let keys = !state.keys.ring().verifying().is_empty();
    let ready = pg.is_ok() && redis.is_ok() && keys;
    let signing = if keys { "ok" } else { "missing" };
    let checks = if state.embedded() {
        json!({"sqlite": check(&pg), "signing_keys": signing})
    } else {
        json!({"postgres": check(&pg), "redis": check(&redis), "signing_keys": signing})
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks,
    });
    let mut res = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    res.insert_header(("cache-control", "no-store")).json(body)
}

/// Prometheus text format (on `AUTH_ADMIN_LISTEN`).
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.render_metrics().await)
}

/// The admin listener's routes.
pub fn configure_admin(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}
