//! The admin listener: `/healthz` (alive), `/readyz` (keys loaded), `/metrics` (Prometheus).

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::proxy::Gateway;

/// Alive.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({"status": "ok"}))
}

/// Ready when verification keys are loaded and not older than the allowed staleness.
pub async fn readyz(gw: web::Data<Arc<Gateway>>) -> HttpResponse {
    let keys = gw.keys.current();
    let body = json!({
        "status": if keys.is_some() { "ready" } else { "not_ready" },
        "checks": {
            "keys": if keys.is_some() { "ok" } else { "unavailable" },
            "key_count": keys.as_ref().map_or(0, |k| k.keys.len()),
            "key_age_seconds": gw.keys.age().map(|a| a.as_secs()),
            "last_jwks_error": gw.keys.last_error(),
        },
    });
    let mut res = if keys.is_some() {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    res.insert_header(("cache-control", "no-store")).json(body)
}

/// Prometheus text format.
pub async fn metrics(gw: web::Data<Arc<Gateway>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(gw.metrics.render(gw.keys.age()))
}

/// The admin routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}
