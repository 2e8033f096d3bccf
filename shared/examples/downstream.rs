//! A downstream service that authenticates its callers with `shared`:
//!
//! ```text
//! DOWNSTREAM_ISSUER=http://127.0.0.1:8081 cargo run -p shared --features actix --example downstream
//! curl -H "authorization: Bearer $ACCESS_TOKEN" http://127.0.0.1:8090/me
//! ```
//!
//! `GET /me` answers any valid access token, `GET /admin` needs the `admin` role, `GET /billing`
//! a client's own token with the `invoices:write` scope, `GET /readyz` says whether the keys have
//! loaded. Environment: `DOWNSTREAM_ISSUER` (default `http://127.0.0.1:8081`),
//! `DOWNSTREAM_AUDIENCE` (default `api`), `DOWNSTREAM_LISTEN` (default `127.0.0.1:8090`), and
//! `DOWNSTREAM_TRUST_GATEWAY=true` to read the gateway's identity headers instead of verifying
//! tokens, which is safe only when nothing but the gateway can reach the service.
//!
//! Revocation: with `DOWNSTREAM_FEED_TOKEN` (one of the auth-service's `AUTH_FEED_TOKEN` values)
//! the service follows the revocation feed into a replica of its own, as the gateway does: revoked
//! tokens and keys are refused within about a millisecond, and requests get 503 until the first
//! snapshot has loaded. Without it, verifying locally, a revoked token stays valid here until it
//! expires; behind the gateway (which follows the feed) it does not.

use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;
use shared::actix::Verified;
use shared::{
    Authenticator, Denied, Identity, KeyCache, KeyCacheConfig, Principal, ReplicaConfig,
    ReplicaFollower, RevocationReplica, Validation,
};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Any valid token: who is calling.
async fn me(who: Identity) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "user_id": who.user_id,
        "roles": who.roles,
        "scopes": who.scopes,
        "principal": who.principal.as_str(),
        "client_id": who.client_id,
    }))
}

/// Users with the `admin` role; the full claims are there when the token was verified here.
async fn admin(who: Identity, claims: Option<Verified>) -> Result<HttpResponse, Denied> {
    who.require_any_role(&["admin"])?;
    Ok(HttpResponse::Ok().json(json!({
        "admin": who.user_id,
        "token_expires_at": claims.map(|c| c.exp),
    })))
}

/// A client acting for itself (client credentials) with the `invoices:write` scope.
async fn billing(who: Identity) -> Result<HttpResponse, Denied> {
    who.require_principal(Principal::Client)?;
    who.require_scopes(&["invoices:write"])?;
    Ok(HttpResponse::Ok().json(json!({"client": who.client_id})))
}

/// Ready once the keys (and, when followed, the first revocation snapshot) are loaded; always,
/// when trusting the gateway.
async fn readyz(auth: web::Data<Authenticator>) -> HttpResponse {
    let ready = auth.keys().is_none_or(|k| k.current().is_some())
        && auth.revocations().is_none_or(|r| r.loaded());
    if ready {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "not_ready"}))
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let issuer = env("DOWNSTREAM_ISSUER", "http://127.0.0.1:8081");
    let audience = env("DOWNSTREAM_AUDIENCE", "api");
    let listen = env("DOWNSTREAM_LISTEN", "127.0.0.1:8090");
    let mut refresher = None;
    let auth = if env("DOWNSTREAM_TRUST_GATEWAY", "false") == "true" {
        Authenticator::trust_gateway_headers()
    } else {
        let keys = Arc::new(KeyCache::new(KeyCacheConfig::new(&issuer)));
        // Fetches at once, then keeps the keys fresh; until then requests get 503.
        refresher = Some(keys.spawn_refresher());
        let auth = Authenticator::new(Arc::clone(&keys), Validation::new(issuer, vec![audience]));
        match std::env::var("DOWNSTREAM_FEED_TOKEN") {
            Ok(token) if !token.is_empty() => {
                let replica = Arc::new(RevocationReplica::new(ReplicaConfig::default()));
                let _tasks = ReplicaFollower::new(Arc::clone(&replica), keys, token).spawn();
                auth.with_revocations(replica)
            }
            _ => auth,
        }
    };
    let auth = web::Data::new(auth);
    println!("listening on http://{listen}");
    let result = HttpServer::new(move || {
        App::new()
            .app_data(auth.clone())
            .route("/me", web::get().to(me))
            .route("/admin", web::get().to(admin))
            .route("/billing", web::get().to(billing))
            .route("/readyz", web::get().to(readyz))
    })
    .bind(listen)?
    .run()
    .await;
    if let Some(r) = refresher {
        r.abort();
    }
    result
}
