//! A demo downstream service: answers every request with the identity the gateway forwarded,
//! and serves the demo page (`/app`: log in from a browser, call through the gateway).
//! `DEMO_LISTEN` (default 127.0.0.1:8082); `demo-upstream healthcheck` probes a running one.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::json;

async fn whoami(req: HttpRequest) -> HttpResponse {
    let h = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    HttpResponse::Ok().json(json!({
        "service": "demo-upstream",
        "path": req.path(),
        "user_id": h(shared::headers::USER_ID),
        "roles": h(shared::headers::USER_ROLES),
        "scopes": h(shared::headers::USER_SCOPES),
        "session_id": h(shared::headers::SESSION_ID),
        "principal": h(shared::headers::PRINCIPAL),
        "client_id": h(shared::headers::CLIENT_ID),
        "request_id": h(shared::headers::REQUEST_ID),
    }))
}

/// The demo page: plain HTML and JavaScript, no build step.
async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .insert_header((
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .body(include_str!("../page/index.html"))
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body(include_str!("../page/app.js"))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::var("DEMO_LISTEN").unwrap_or_else(|_| "127.0.0.1:8082".into());
    if std::env::args().nth(1).is_some_and(|a| a == "healthcheck") {
        // For container health checks: the runtime image has no curl.
        let addr = listen.parse().map_err(|_| {
            std::io::Error::other(format!("DEMO_LISTEN {listen:?} is not an address:port"))
        })?;
        return shared::probe::get(
            shared::probe::local_target(addr),
            "/healthz",
            std::time::Duration::from_secs(3),
        )
        .map(|_| ())
        .map_err(std::io::Error::other);
    }
    HttpServer::new(|| {
        App::new()
            .route("/app", web::get().to(page))
            .route("/app/", web::get().to(page))
            .route("/app/app.js", web::get().to(script))
            .default_service(web::to(whoami))
    })
    .workers(1)
    .bind(listen)?
    .run()
    .await
}
