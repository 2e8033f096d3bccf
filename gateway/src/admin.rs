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

/// Ready when verification keys are loaded (and not older than the allowed staleness) and the
/// first revocation snapshot has loaded. The feed's later health is reported, not required:
/// readiness does not flap with it (with `max_staleness` set, protected routes answer 503 on
/// their own once the bound passes).
pub async fn readyz(gw: web::Data<Arc<Gateway>>) -> HttpResponse {
    let keys = gw.keys.current();
    let revocations = gw.revocations.as_ref().map(|r| {
        json!({
            "loaded": r.loaded(),
            "connected": r.connected(),
            "entries": r.len(),
            "staleness_seconds": r.staleness().as_secs_f64(),
            "outage_grace_seconds": r.outage_grace().map(|g| g.as_secs_f64()),
        })
    });
    let list_ok = gw.revocations.as_ref().is_none_or(|r| r.loaded());
    let ready = keys.is_some() && list_ok;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "keys": if keys.is_some() { "ok" } else { "unavailable" },
            "key_count": keys.as_ref().map_or(0, |k| k.keys.len()),
            "key_age_seconds": gw.keys.age().map(|a| a.as_secs()),
            "last_jwks_error": gw.keys.last_error(),
            "revocations": revocations.unwrap_or_else(|| json!("disabled")),
        },
    });
    let mut res = if ready {
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
        .body({
            let mut text = gw.metrics.render(gw.keys.age());
            crate::metrics::render_key_ages(&mut text, &gw.keys.key_ages());
            crate::metrics::render_revoked_keys(&mut text, &gw.keys.revoked_keys());
            if let Some(r) = &gw.revocations {
                crate::revocation::render_metrics(r, &mut text);
            }
            crate::metrics::render_allocator(&mut text);
            text
        })
}

/// Another method on an admin route: 405 with `Allow`, as a problem body.
async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((actix_web::http::header::ALLOW, "GET, HEAD"))
        .content_type(shared::problem::CONTENT_TYPE)
        .body(shared::problem::body(
            405,
            "Method Not Allowed",
            "the admin endpoints answer GET and HEAD",
            Some("method_not_allowed"),
        ))
}

/// Any other path on the admin listener: 404 with a problem body.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type(shared::problem::CONTENT_TYPE)
        .body(shared::problem::body(
            404,
            "Not Found",
            "the admin listener serves /healthz, /readyz and /metrics",
            Some("not_found"),
        ))
}

/// `GET`, and `HEAD` wherever `GET` works (the same answer without its body).
fn get_or_head() -> actix_web::Route {
    use actix_web::guard;
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// The admin routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/healthz")
            .route(get_or_head().to(healthz))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/readyz")
            .route(get_or_head().to(readyz))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/metrics")
            .route(get_or_head().to(metrics))
            .default_service(web::to(method_not_allowed)),
    );
}
