//! A demo downstream service: answers every request with the identity the gateway forwarded.
//! `DEMO_LISTEN` (default 127.0.0.1:8082).

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
        "request_id": h(shared::headers::REQUEST_ID),
    }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::var("DEMO_LISTEN").unwrap_or_else(|_| "127.0.0.1:8082".into());
    HttpServer::new(|| App::new().default_service(web::to(whoami)))
        .workers(1)
        .bind(listen)?
        .run()
        .await
}
