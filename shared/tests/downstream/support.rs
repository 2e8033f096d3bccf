//! A tiny issuer (metadata + JWKS over real HTTP on 127.0.0.1), a token signer with test RSA
//! keys, and a downstream app using the extractors.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::{HttpResponse, web};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, KeyPair as _};
use serde_json::{Value, json};
use shared::actix::Verified;
use shared::jws::b64_encode;
use shared::{
    Algorithm, Authenticator, Denied, Identity, Jwk, JwkSet, KeyCache, KeyCacheConfig, Principal,
    Validation,
};

/// An RSA signing key.
pub struct Signer {
    kp: KeyPair,
    pub kid: String,
}

impl Signer {
    pub fn new(kid: &str) -> Signer {
        Signer {
            kp: KeyPair::generate(KeySize::Rsa2048).unwrap(),
            kid: kid.into(),
        }
    }

    pub fn jwk(&self) -> Jwk {
        let c: PublicKeyComponents<Vec<u8>> = self.kp.public_key().into();
        Jwk::rsa(&self.kid, Algorithm::RS256, &c.n, &c.e)
    }

    /// Signs any header and claims (RS256), whatever they say.
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        self.sign_bytes(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// Signs any bytes as header and payload.
    pub fn sign_bytes(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64_encode(header), b64_encode(payload));
        let mut sig = vec![0; self.kp.public_modulus_len()];
        self.kp
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{input}.{}", b64_encode(sig))
    }

    /// Signs `claims` under `typ` with this key's `kid`.
    pub fn sign(&self, typ: &str, claims: &Value) -> String {
        self.sign_raw(
            &json!({"alg": "RS256", "typ": typ, "kid": self.kid}),
            claims,
        )
    }
}

/// What the issuer serves, and what it was asked.
#[derive(Default)]
pub struct IssuerState {
    pub url: String,
    /// The issuer the metadata names (its own URL unless a test says otherwise).
    pub claimed_issuer: Mutex<Option<String>>,
    pub keys: Mutex<Vec<Jwk>>,
    pub jwks_hits: AtomicUsize,
    /// JWKS requests answer 503 while this is set.
    pub down: AtomicBool,
    /// Delay before each JWKS response, ms (widens the window for concurrent requests).
    pub delay_ms: AtomicU64,
}

/// A running issuer with one signing key.
pub struct Issuer {
    pub state: Arc<IssuerState>,
    pub signer: Signer,
}

impl Issuer {
    /// Starts an issuer publishing one key (`k1`) with `Cache-Control: max-age=300`.
    pub async fn start() -> Issuer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let signer = Signer::new("k1");
        let state = Arc::new(IssuerState {
            url,
            keys: Mutex::new(vec![signer.jwk()]),
            ..IssuerState::default()
        });
        let s = Arc::clone(&state);
        let server = actix_web::HttpServer::new(move || {
            let s = Arc::clone(&s);
            actix_web::App::new()
                .app_data(web::Data::from(s))
                .route(
                    "/.well-known/oauth-authorization-server",
                    web::get().to(metadata),
                )
                .route("/jwks", web::get().to(jwks))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        Issuer { state, signer }
    }

    pub fn url(&self) -> &str {
        &self.state.url
    }

    /// Publishes another key.
    pub fn publish(&self, key: &Signer) {
        self.state.keys.lock().unwrap().push(key.jwk());
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    /// The cache settings tests use: quick fetches, one unknown-`kid` refetch per minute.
    pub fn config(&self) -> KeyCacheConfig {
        let mut c = KeyCacheConfig::new(self.url());
        c.min_refresh = Duration::from_millis(100);
        c.unknown_kid_cooldown = Duration::from_secs(60);
        c.fetch_timeout = Duration::from_secs(5);
        c
    }

    /// An authenticator whose keys are already loaded.
    pub async fn authenticator(&self) -> (web::Data<Authenticator>, Arc<KeyCache>) {
        let keys = Arc::new(KeyCache::new(self.config()));
        keys.fetch().await.unwrap();
        let auth = Authenticator::new(Arc::clone(&keys), self.validation());
        (web::Data::new(auth), keys)
    }

    pub fn validation(&self) -> Validation {
        Validation::new(self.url(), vec!["api".into()])
    }

    /// Valid access-token claims for a user, to alter one field at a time.
    pub fn claims(&self) -> Value {
        let now = shared::unix_now();
        json!({"iss": self.url(), "sub": "00000000-0000-4000-8000-000000000001", "aud": "api",
               "client_id": "app", "exp": now + 600, "iat": now, "nbf": now,
               "jti": format!("j-{now}"), "sid": "s-1", "roles": ["user"], "scope": "profile"})
    }

    /// A valid access token for a user.
    pub fn token(&self) -> String {
        self.signer.sign("at+jwt", &self.claims())
    }
}

async fn metadata(s: web::Data<IssuerState>) -> HttpResponse {
    let issuer = s
        .claimed_issuer
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| s.url.clone());
    HttpResponse::Ok().json(json!({"issuer": issuer, "jwks_uri": format!("{}/jwks", s.url)}))
}

async fn jwks(s: web::Data<IssuerState>) -> HttpResponse {
    s.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        actix_web::rt::time::sleep(Duration::from_millis(delay)).await;
    }
    if s.down.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let keys = s.keys.lock().unwrap().clone();
    HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=300"))
        .json(JwkSet { keys })
}

/// The downstream service's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/me", web::get().to(me))
        .route("/claims", web::get().to(claims))
        .route("/admin", web::get().to(admin))
        .route("/billing", web::get().to(billing));
}

async fn me(who: Identity) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "user_id": who.user_id, "roles": who.roles, "scopes": who.scopes,
        "session_id": who.session_id, "principal": who.principal.as_str(),
        "client_id": who.client_id,
    }))
}

/// Both extractors in one handler: the token is verified once.
async fn claims(v: Verified, who: Identity) -> HttpResponse {
    HttpResponse::Ok().json(json!({"jti": v.jti, "sub": who.user_id}))
}

async fn admin(who: Identity) -> Result<HttpResponse, Denied> {
    who.require_any_role(&["admin"])?;
    Ok(HttpResponse::Ok().finish())
}

async fn billing(who: Identity) -> Result<HttpResponse, Denied> {
    who.require_principal(Principal::Client)?;
    who.require_scopes(&["invoices:write"])?;
    Ok(HttpResponse::Ok().finish())
}

/// An answer: status, headers, JSON body (`Null` when not JSON).
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().unwrap_or(""))
    }
}

/// Sends `req` through the app (the real extractors; the keys come over real HTTP).
pub async fn send<S, R>(app: &S, req: R) -> Reply
where
    S: Service<R, Response = ServiceResponse, Error = actix_web::Error>,
{
    let res = app.call(req).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = actix_web::body::to_bytes(res.into_body()).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

/// `GET path` with `Authorization: Bearer token`.
pub fn get(path: &str, token: Option<&str>) -> actix_web::test::TestRequest {
    let req = actix_web::test::TestRequest::get().uri(path);
    match token {
        Some(t) => req.insert_header(("authorization", format!("Bearer {t}"))),
        None => req,
    }
}
