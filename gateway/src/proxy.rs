//! The request path: normalise, route, answer CORS preflights, check the method, authenticate and
//! authorise, then forward to the upstream with bodies streamed both ways.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{FutureExt as _, StreamExt as _};
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use shared::{AccessClaims, Validation};

use crate::authn::{AuthFailure, WorkerAuthenticator, bearer};
use crate::configuration::{AuthRule, Cors, Route, Settings};
use crate::forwarding::{self, Context};
use crate::keys::KeyCache;
use crate::metrics::Metrics;
use crate::routing;
use crate::server::wire::visible_ascii;
use crate::server::{self, RawHeaders, Request, RequestBody, RequestHead, Response, ResponseBody};

/// What every worker shares.
#[derive(Debug)]
pub struct Gateway {
    /// Settings.
    pub settings: Settings,
    /// Keys.
    pub keys: Arc<KeyCache>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The revocation replica (`None` when revocation is switched off).
    pub revocations: Option<Arc<shared::RevocationReplica>>,
    /// Verified tokens, shared by the workers.
    pub verified: Arc<crate::authn::VerifiedCache>,
}

/// One HTTP worker's state: its upstream connection pool (and the shared verified-token cache).
pub struct Worker {
    gateway: Arc<Gateway>,
    auth: WorkerAuthenticator,
    client: crate::upstream::Client,
    pool: Rc<crate::h1client::Pool>,
    id_prefix: String,
    next_id: Cell<u64>,
    /// This worker's access log, when `RUST_LOG` lets `access` log at `info`.
    access_log: Option<Rc<crate::accesslog::AccessLog>>,
}

impl Worker {
    /// Builds a worker's state (on the worker's thread: the connection pool lives there).
    pub fn new(gateway: Arc<Gateway>, tls: Arc<rustls::ClientConfig>) -> Self {
        let s = &gateway.settings;
        let mut validation = Validation::new(s.issuer.clone(), s.audiences.clone());
        validation.leeway = s.leeway;
        validation.algorithms = s.algorithms.clone();
        let auth = WorkerAuthenticator::new(
            validation,
            Arc::clone(&gateway.keys),
            gateway.revocations.clone(),
            Arc::clone(&gateway.verified),
        );
        let client = crate::upstream::worker_client(tls, std::time::Duration::from_secs(5));
        let pool = crate::h1client::Pool::new(std::time::Duration::from_secs(5));
        let id_prefix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let access_log = tracing::enabled!(target: "access", tracing::Level::INFO)
            .then(crate::accesslog::AccessLog::new);
        Worker {
            gateway,
            auth,
            id_prefix,
            next_id: Cell::new(0),
            client,
            pool,
            access_log,
        }
    }
}

impl server::Handler for Worker {
    fn call(self: Rc<Self>, req: Request) -> impl std::future::Future<Output = Response> {
        // Taken apart here, not in `handle`: an `async fn` would hold both the request and its
        // parts.
        let Request {
            head,
            peer,
            body,
            deadline,
        } = req;
        handle(head, peer, body, deadline, self)
    }

    fn refused(&self, status: StatusCode, detail: &str) -> Response {
        let code = match status {
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
            StatusCode::REQUEST_TIMEOUT => "request_timeout",
            _ => "invalid_request",
        };
        problem(status, detail, code)
    }
}

fn problem(status: StatusCode, detail: &str, code: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = shared::problem::body(status.as_u16(), title, detail, Some(code));
    let mut res = Response::new(status, ResponseBody::Full(body.into()));
    res.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(shared::problem::CONTENT_TYPE),
    );
    res.headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn challenge(error: Option<(&str, &str)>) -> String {
    match error {
        None => "Bearer realm=\"gateway\"".to_owned(),
        Some((code, desc)) => {
            format!("Bearer realm=\"gateway\", error=\"{code}\", error_description=\"{desc}\"")
        }
    }
}

fn auth_error(f: &AuthFailure, metrics: &Metrics) -> Response {
    match f {
        AuthFailure::Missing | AuthFailure::NotBearer(_) => {
            metrics.verify_failure("missing");
            let detail = match f {
                AuthFailure::NotBearer(true) => {
                    "the Authorization header has no scheme: send Authorization: Bearer <access token>"
                }
                AuthFailure::NotBearer(false) => {
                    "the Authorization header is not a bearer token: send Authorization: Bearer <access token>"
                }
                _ => "a bearer access token is required: send Authorization: Bearer <access token>",
            };
            let mut r = problem(StatusCode::UNAUTHORIZED, detail, "unauthorized");
            r.headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gateway\""),
            );
            r
        }
        AuthFailure::Invalid(reason) => {
            metrics.verify_failure(reason);
            let desc = shared::verifier::reason_detail(reason);
            let mut r = problem(StatusCode::UNAUTHORIZED, desc, "invalid_token");
            if let Ok(v) = HeaderValue::from_str(&challenge(Some(("invalid_token", desc)))) {
                r.headers.insert(header::WWW_AUTHENTICATE, v);
            }
            r
        }
        AuthFailure::BadRequest => {
            let mut r = problem(
                StatusCode::BAD_REQUEST,
                "send exactly one Authorization header",
                "invalid_request",
            );
            r.headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gateway\", error=\"invalid_request\""),
            );
            r
        }
        AuthFailure::Revoked | AuthFailure::RevokedKey => {
            metrics.verify_failure(if matches!(f, AuthFailure::Revoked) {
                "revoked"
            } else {
                "revoked_key"
            });
            let desc = "the token has been revoked";
            let mut r = problem(StatusCode::UNAUTHORIZED, desc, "invalid_token");
            if let Ok(v) = HeaderValue::from_str(&challenge(Some(("invalid_token", desc)))) {
                r.headers.insert(header::WWW_AUTHENTICATE, v);
            }
            r
        }
        AuthFailure::RevocationsUnavailable(detail) => {
            let mut r = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                detail,
                "revocations_unavailable",
            );
            r.headers
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        AuthFailure::KeysUnavailable => {
            let mut r = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "token verification keys are not available yet",
                "keys_unavailable",
            );
            r.headers
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}

fn forbidden(detail: &str) -> Response {
    let mut r = problem(StatusCode::FORBIDDEN, detail, "insufficient_scope");
    if let Ok(v) = HeaderValue::from_str(&challenge(Some(("insufficient_scope", detail)))) {
        r.headers.insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The client's request id if it is short and plain; otherwise this worker's random prefix and a
/// counter (unique without a syscall per request).
fn request_id(req: &RequestHead, worker: &Worker) -> String {
    let given = req
        .headers
        .get_str(shared::headers::REQUEST_ID)
        .filter(|v| shared::headers::acceptable_request_id(v));
    match given {
        Some(v) => v.to_owned(),
        None => {
            let n = worker.next_id.get();
            worker.next_id.set(n + 1);
            let mut id = String::with_capacity(worker.id_prefix.len() + 17);
            id.push_str(&worker.id_prefix);
            id.push('-');
            push_hex(&mut id, n);
            id
        }
    }
}

/// Appends `n` in lowercase hexadecimal (as `{n:x}` would, without the formatting machinery).
fn push_hex(out: &mut String, n: u64) {
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(char::from(
            b"0123456789abcdef"[((n >> (i * 4)) & 15) as usize],
        ));
    }
}

/// The CORS origin to echo, if the request's `Origin` is allowed by the route.
fn cors_origin<'a>(cors: &Cors, req: &'a RequestHead) -> Option<&'a str> {
    let origin = req.headers.get_str("origin")?;
    cors.allowed_origins
        .iter()
        .any(|o| o == "*" || o == origin)
        .then_some(origin)
}

fn add_cors(res: &mut Response, cors: &Cors, origin: &str) {
    // What is set here replaces an upstream's header of the same name: its `Vary` is carried
    // over first, so that adding `Origin` keeps what it listed.
    if let Some(p) = &res.passthrough {
        for v in p.get_all("vary") {
            if let Ok(v) = HeaderValue::from_bytes(v) {
                res.headers.append(header::VARY, v);
            }
        }
    }
    let h = &mut res.headers;
    let allow = if cors.allowed_origins.iter().any(|o| o == "*") && !cors.allow_credentials {
        "*"
    } else {
        origin
    };
    if let Ok(v) = HeaderValue::from_str(allow) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    if !h.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("origin"))
    }) {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if cors.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if !cors.exposed_headers.is_empty()
        && let Ok(v) = HeaderValue::from_str(&cors.exposed_headers.join(", "))
    {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}

/// Answers a CORS preflight without authentication.
fn preflight(req: &RequestHead, cors: &Cors) -> Response {
    let Some(origin) = cors_origin(cors, req) else {
        return problem(StatusCode::FORBIDDEN, "origin not allowed", "cors_refused");
    };
    let method = req
        .headers
        .get_str("access-control-request-method")
        .unwrap_or("");
    if !cors.allowed_methods.iter().any(|m| m == method) {
        return problem(
            StatusCode::FORBIDDEN,
            "method not allowed by CORS",
            "cors_refused",
        );
    }
    let asked: Vec<String> = req
        .headers
        .get_str("access-control-request-headers")
        .map(|v| {
            v.split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(h) = asked.iter().find(|h| !cors.allowed_headers.contains(h)) {
        return problem(
            StatusCode::FORBIDDEN,
            &format!("header {h} not allowed by CORS"),
            "cors_refused",
        );
    }
    let mut res = Response::new(StatusCode::NO_CONTENT, ResponseBody::Empty);
    add_cors(&mut res, cors, origin);
    let h = &mut res.headers;
    if let Ok(v) = HeaderValue::from_str(&cors.allowed_methods.join(", ")) {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if !asked.is_empty()
        && let Ok(v) = HeaderValue::from_str(&asked.join(", "))
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(cors.max_age),
    );
    res
}

fn allows(route: &Route, claims: &AccessClaims) -> Result<(), &'static str> {
    let AuthRule::Authenticated {
        roles,
        scopes,
        principal,
    } = &route.auth
    else {
        return Ok(());
    };
    match principal {
        Some(p) if *p != claims.principal() => {
            return Err(match p {
                shared::Principal::User => "this route requires a user's token",
                shared::Principal::Client => "this route requires a client's own token",
            });
        }
        _ => {}
    }
    if !roles.is_empty() && !roles.iter().any(|r| claims.roles.contains(r)) {
        return Err("the token lacks a role this route requires");
    }
    if !scopes.iter().all(|s| claims.scopes().any(|g| g == s)) {
        return Err("the token lacks a scope this route requires");
    }
    Ok(())
}

/// What a finished request reports for its access-log line.
struct Outcome<'a> {
    response: Response,
    route: Option<usize>,
    /// Who made the request (its verified identity), for the log line.
    user: Option<Arc<forwarding::ForwardedIdentity>>,
    path: std::borrow::Cow<'a, str>,
}

/// Runs `fut`; a panic in it (a bug) is logged and becomes `None`. (A combinator rather than an
/// `async fn`, which would hold `fut` twice: as its argument and as the future it polls.)
fn unless_panicked<'a, T>(
    fut: impl std::future::Future<Output = T> + 'a,
    id: &'a str,
) -> impl std::future::Future<Output = Option<T>> + 'a {
    std::panic::AssertUnwindSafe(fut)
        .catch_unwind()
        .map(move |r| match r {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::error!(request_id = %id, "bug: the request handler panicked");
                None
            }
        })
}

/// Every request comes here. (An `async` block rather than an `async fn`, which would copy its
/// arguments into locals and so hold the request head twice in every request's future.)
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub fn handle(
    req: RequestHead,
    peer: SocketAddr,
    payload: RequestBody,
    deadline: Rc<server::Deadline>,
    worker: Rc<Worker>,
) -> impl std::future::Future<Output = Response> {
    async move {
        let start = Instant::now();
        let id = request_id(&req, &worker);
        // A panic is a bug, and must cost its own request a 500, not every connection on this
        // worker.
        let o = match unless_panicked(
            route_and_forward(&req, peer, payload, &worker, &id, (start, &deadline)),
            &id,
        )
        .await
        {
            Some(o) => o,
            None => Outcome {
                response: problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                    "internal_error",
                ),
                route: None,
                user: None,
                path: std::borrow::Cow::Borrowed(req.uri.path()),
            },
        };
        let mut res = o.response;
        // Every answer on a CORS route carries the CORS headers for an allowed origin, errors
        // included, so a browser page can read why it was refused. Preflights set their own.
        let is_preflight =
            req.method == Method::OPTIONS && req.headers.contains("access-control-request-method");
        if !is_preflight
            && let Some(cors) = o
                .route
                .and_then(|i| worker.gateway.settings.routes.get(i))
                .and_then(|r| r.cors.as_ref())
            && let Some(origin) = cors_origin(cors, &req)
        {
            add_cors(&mut res, cors, origin);
        }

        let status = res.status.as_u16();
        let elapsed = start.elapsed();
        worker.gateway.metrics.request(o.route, status, elapsed);
        if let Some(log) = &worker.access_log {
            log.log(&crate::accesslog::Entry {
                request_id: &id,
                method: req.method.as_str(),
                path: &o.path,
                route: o
                    .route
                    .and_then(|i| worker.gateway.settings.routes.get(i))
                    .map(|r| r.prefix.as_str()),
                status,
                latency: elapsed,
                user_id: o.user.as_ref().map(|u| u.claims.sub.as_str()),
                peer: peer.ip(),
            });
        }
        res.request_id = Some(id);
        res
    }
}

async fn route_and_forward<'a>(
    req: &'a RequestHead,
    peer: SocketAddr,
    payload: RequestBody,
    worker: &Worker,
    id: &str,
    (start, deadline): (Instant, &server::Deadline),
) -> Outcome<'a> {
    let gw = &worker.gateway;
    let raw_path = req.uri.path();
    let fail = |response: Response, route: Option<usize>, path: &str| Outcome {
        response,
        route,
        user: None,
        path: std::borrow::Cow::Owned(path.to_owned()),
    };
    let header_bytes: usize = req.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    if header_bytes > gw.settings.max_header_bytes {
        return fail(
            problem(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request headers are too large",
                "headers_too_large",
            ),
            None,
            "",
        );
    }
    let path = match routing::normalize(raw_path) {
        Ok(p) => p,
        Err(e) => {
            return fail(
                problem(StatusCode::BAD_REQUEST, &e.to_string(), "bad_path"),
                None,
                "",
            );
        }
    };
    let Some(index) = gw
        .settings
        .routes
        .iter()
        .position(|r| routing::covers(&r.prefix, &path))
    else {
        return fail(
            problem(StatusCode::NOT_FOUND, "no route for this path", "not_found"),
            None,
            &path,
        );
    };
    let route = &gw.settings.routes[index];

    if let Some(cors) = &route.cors
        && req.method == Method::OPTIONS
        && req.headers.contains("access-control-request-method")
    {
        return fail(preflight(req, cors), Some(index), &path);
    }
    if let Some(methods) = &route.methods
        && !methods.contains(&req.method)
    {
        let mut r = problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this route",
            "method_not_allowed",
        );
        let allow = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(v) = HeaderValue::from_str(&allow) {
            r.headers.insert(header::ALLOW, v);
        }
        return fail(r, Some(index), &path);
    }

    let claims = match &route.auth {
        AuthRule::Public => None,
        AuthRule::Authenticated { .. } => {
            let token = match bearer(&req.headers) {
                Ok(Some(t)) => t,
                Ok(None) => {
                    return fail(
                        auth_error(&AuthFailure::Missing, &gw.metrics),
                        Some(index),
                        &path,
                    );
                }
                Err(e) => return fail(auth_error(&e, &gw.metrics), Some(index), &path),
            };
            match worker.auth.verify(token, shared::unix_now(), start).await {
                Ok(c) => {
                    if let Err(why) = allows(route, &c.claims) {
                        return Outcome {
                            response: forbidden(why),
                            route: Some(index),
                            user: Some(c),
                            path,
                        };
                    }
                    Some(c)
                }
                Err(e) => return fail(auth_error(&e, &gw.metrics), Some(index), &path),
            }
        }
    };

    if let Some(limit) = &route.rate_limit {
        let client = || {
            let forwarded = req
                .headers
                .get_all("x-forwarded-for")
                .filter_map(visible_ascii);
            let ip =
                shared::net::client_address(peer.ip(), forwarded, &gw.settings.trusted_proxies);
            format!("c:{}", shared::net::rate_key(ip))
        };
        let key = match (limit.by, claims.as_ref()) {
            (crate::ratelimit::LimitBy::User, Some(c)) => format!("u:{}", c.claims.sub),
            _ => client(),
        };
        if let Err(wait) = limit.check(&key, Instant::now()) {
            gw.metrics.rate_limited(index);
            let secs = wait.as_millis().div_ceil(1000).max(1);
            let mut response = problem(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("rate limit of this route exceeded; retry in {secs} s"),
                "rate_limited",
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers.insert(header::RETRY_AFTER, v);
            }
            return Outcome {
                response,
                route: Some(index),
                user: claims.clone(),
                path,
            };
        }
    }

    let declared_len = req
        .headers
        .get("content-length")
        .and_then(server::wire::content_length);
    if let (Some(limit), Some(n)) = (route.max_body_bytes, declared_len)
        && n > limit
    {
        return fail(
            problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body exceeds {limit} bytes"),
                "body_too_large",
            ),
            Some(index),
            &path,
        );
    }

    let peer: Option<IpAddr> = Some(peer.ip());
    let trusted_peer =
        peer.is_some_and(|p| gw.settings.trusted_proxies.iter().any(|c| c.contains(p)));
    let ctx = Context {
        identity: claims.as_deref(),
        forward_token: route.forward_token,
        peer,
        trusted_peer,
        request_id: id,
        pass_reserved: &route.forward_reserved_headers,
    };
    let query = req.uri.query();
    let up = &route.upstream;
    let target =
        routing::upstream_path_parts(&up.base_path, &route.prefix, &path, route.strip_prefix);
    // The whole URL, for hyper's client (the gateway's own writes the pieces into the request).
    let url = || {
        let mut url = format!("{}://{}{}{}", up.scheme, up.authority, target[0], target[1]);
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        url
    };
    let forwarded_map = || {
        let mut map = http::HeaderMap::with_capacity(req.headers.len() + 12);
        forwarding::upstream_request(&req.headers, &ctx, &mut map);
        map
    };
    let user = claims.clone();
    if crate::websocket::is_upgrade(req) {
        if !route.websocket {
            return fail(
                problem(
                    StatusCode::BAD_REQUEST,
                    "WebSocket upgrades are not enabled on this route",
                    "websocket_not_allowed",
                ),
                Some(index),
                &path,
            );
        }
        let relay = crate::websocket::Relay {
            url: url(),
            headers: forwarded_map(),
            close_at: claims
                .as_ref()
                .map(|c| c.claims.exp.saturating_add(gw.settings.leeway)),
            watch: match (&gw.revocations, &claims) {
                (Some(r), Some(c)) => Some(crate::websocket::Watch {
                    list: Arc::clone(r),
                    identity: Arc::clone(c),
                    keys: Arc::clone(&gw.keys),
                    kid: crate::authn::bearer(&req.headers)
                        .ok()
                        .flatten()
                        .and_then(|t| shared::jws::split(t).ok())
                        .and_then(|p| p.header.kid),
                }),
                _ => None,
            },
            timeout: route.timeout,
        };
        let response = match Box::pin(crate::websocket::proxy(req, &worker.client, relay)).await {
            Ok(r) => r,
            Err(crate::websocket::Failure::Handshake(why)) => {
                problem(StatusCode::BAD_REQUEST, why, "invalid_request")
            }
            Err(crate::websocket::Failure::Upstream(e)) => {
                tracing::warn!(request_id = %id, upstream = %route.upstream.authority, error = %e, "WebSocket upstream failed");
                problem(
                    StatusCode::BAD_GATEWAY,
                    "the upstream could not be reached",
                    "upstream_unavailable",
                )
            }
        };
        return Outcome {
            response,
            route: Some(index),
            user,
            path,
        };
    }
    let chunked = req.headers.contains("transfer-encoding");
    if payload.is_empty() && up.scheme == "http" {
        // No body (as the server framed the request), plain http: the worker's own client,
        // inside this task.
        let head =
            crate::h1client::request_head(&req.method, (target, query), &up.authority, |out| {
                forwarding::upstream_request(&req.headers, &ctx, out)
            });
        let from = tokio::time::Instant::from_std(start);
        let send = crate::h1client::send(&worker.pool, &up.authority, &req.method, &head, start);
        let response = match deadline.within(from, route.timeout, send).await {
            Ok(Ok(a)) => {
                let body = match a.body {
                    // A HEAD answer keeps the length a GET would have had.
                    crate::h1client::Payload::Whole(b) if req.method != Method::HEAD => {
                        ResponseBody::Full(b)
                    }
                    crate::h1client::Payload::Whole(_) => ResponseBody::Stream {
                        len: a.len,
                        body: Box::pin(http_body_util::Empty::new().map_err(|e| match e {})),
                    },
                    crate::h1client::Payload::Streamed(b) => ResponseBody::Stream {
                        len: a.len,
                        body: Box::pin(b),
                    },
                };
                respond(a.status, a.headers, body)
            }
            Ok(Err(e)) => {
                tracing::warn!(request_id = %id, upstream = %up.authority, error = %e, "upstream request failed");
                problem(
                    StatusCode::BAD_GATEWAY,
                    "the upstream could not be reached",
                    "upstream_unavailable",
                )
            }
            Err(_) => problem(
                StatusCode::GATEWAY_TIMEOUT,
                "the upstream did not answer in time",
                "upstream_timeout",
            ),
        };
        return Outcome {
            response,
            route: Some(index),
            user,
            path,
        };
    }
    // Bodies and https: hyper's client. Boxed, so that its larger state is not part of every
    // request's future (which is moved into a box per request).
    let response = Box::pin(forward_with_hyper(
        req,
        url(),
        forwarded_map(),
        payload,
        (declared_len, chunked),
        route,
        worker,
        id,
    ))
    .await;
    Outcome {
        response,
        route: Some(index),
        user,
        path,
    }
}

/// Forwards a request with a body, or to an https upstream, through hyper's client.
#[allow(clippy::too_many_arguments)] // the request's parts, as route_and_forward split them
async fn forward_with_hyper(
    req: &RequestHead,
    url: String,
    headers: http::HeaderMap,
    payload: RequestBody,
    (declared_len, chunked): (Option<u64>, bool),
    route: &Route,
    worker: &Worker,
    id: &str,
) -> Response {
    let mut builder = hyper::Request::builder()
        .method(req.method.clone())
        .uri(url.as_str());
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    let mut payload = payload;
    // A chunked body's framing is only checked as it is read: read the first chunk before
    // contacting the upstream, so a malformed one (a smuggling attempt) is answered 400 and
    // nothing is sent. (A later malformed chunk aborts the upload: the upstream then sees an
    // unfinished request, never a second one.)
    let first = if chunked {
        match tokio::time::timeout(route.timeout, payload.next()).await {
            Ok(Some(Err(_))) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "the request body's chunked framing is malformed",
                    "invalid_request",
                );
            }
            Ok(first) => first,
            Err(_) => None,
        }
    } else {
        None
    };
    let malformed = Rc::new(Cell::new(false));
    let tripped = Rc::new(Cell::new(false));
    let progress = Rc::new(Cell::new(Instant::now()));
    let body = if declared_len.is_none() && !chunked {
        crate::upstream::empty()
    } else {
        if let (Some(n), false, Some(h)) = (declared_len, chunked, builder.headers_mut()) {
            h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(n));
        }
        let (tx, body) = crate::upstream::channel(4);
        let limit = route.max_body_bytes.unwrap_or(u64::MAX);
        let (tripped, progress) = (Rc::clone(&tripped), Rc::clone(&progress));
        let malformed = Rc::clone(&malformed);
        let mut payload = futures_util::stream::iter(first).chain(payload);
        tokio::task::spawn_local(async move {
            let mut sent = 0u64;
            while let Some(chunk) = payload.next().await {
                let item: Result<bytes::Bytes, crate::upstream::BoxError> = match chunk {
                    Ok(c) if sent + c.len() as u64 > limit => {
                        tripped.set(true);
                        Err("request body exceeds the route's limit".into())
                    }
                    Ok(c) => {
                        sent += c.len() as u64;
                        Ok(c)
                    }
                    Err(e) => {
                        malformed.set(e.is_malformed());
                        Err(e.to_string().into())
                    }
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    break;
                }
                progress.set(Instant::now());
            }
        });
        body
    };
    let Ok(request) = builder.body(body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the request cannot be forwarded",
            "invalid_request",
        );
    };
    // The route's timeout bounds waiting on the upstream, not the client's upload: while a body
    // is still streaming, the deadline counts from the last chunk sent.
    let send = worker.client.request(request);
    tokio::pin!(send);
    let sent = loop {
        let deadline = tokio::time::Instant::from_std(progress.get()) + route.timeout;
        tokio::select! {
            r = &mut send => break Some(r),
            () = tokio::time::sleep_until(deadline) => {
                if tokio::time::Instant::from_std(progress.get()) + route.timeout <= tokio::time::Instant::now() {
                    break None;
                }
            }
        }
    };
    match sent {
        Some(Ok(upstream)) => relay(upstream),
        _ if tripped.get() => problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body exceeds the route's limit",
            "body_too_large",
        ),
        Some(Err(_)) if malformed.get() => problem(
            StatusCode::BAD_REQUEST,
            "the request body ended early or is malformed",
            "invalid_request",
        ),
        None => problem(
            StatusCode::GATEWAY_TIMEOUT,
            "the upstream did not answer in time",
            "upstream_timeout",
        ),
        Some(Err(e)) => {
            tracing::warn!(request_id = %id, upstream = %route.upstream.authority, error = %e, "upstream request failed");
            problem(
                StatusCode::BAD_GATEWAY,
                "the upstream could not be reached",
                "upstream_unavailable",
            )
        }
    }
}

/// The upstream's response (through hyper's client), streamed to the client.
fn relay(upstream: hyper::Response<hyper::body::Incoming>) -> Response {
    let (parts, incoming) = upstream.into_parts();
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        // Only a WebSocket handshake may switch protocols, and that goes through the relay.
        return problem(
            StatusCode::BAD_GATEWAY,
            "the upstream switched protocols unasked",
            "upstream_unavailable",
        );
    }
    let len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| server::wire::content_length(v.as_bytes()));
    let body: server::LocalBody =
        Box::pin(incoming.map_err(|e| -> server::BoxError { Box::new(e) }));
    let mut headers = parts.headers;
    let listed: Vec<Box<[u8]>> = forwarding::connection_tokens(
        headers
            .get_all(header::CONNECTION)
            .iter()
            .map(HeaderValue::as_bytes),
    )
    .into_iter()
    .map(Box::from)
    .collect();
    if headers
        .keys()
        .any(|n| !forwarding::passes_to_client(n.as_str(), &listed))
    {
        let all = std::mem::take(&mut headers);
        let mut name = None;
        for (n, v) in all {
            name = n.or(name);
            if let Some(n) = &name
                && forwarding::passes_to_client(n.as_str(), &listed)
            {
                headers.append(n.clone(), v);
            }
        }
    }
    let mut res = Response::new(parts.status, ResponseBody::Stream { len, body });
    res.headers = headers;
    res
}

/// An upstream's answer (from the gateway's own client) for the client: its header lines passed
/// through as they came, less hop-by-hop ones and those its `Connection` names (the server sets
/// the framing).
fn respond(status: StatusCode, mut headers: RawHeaders, body: ResponseBody) -> Response {
    let listed: Vec<Box<[u8]>> = forwarding::connection_tokens(headers.get_all("connection"))
        .into_iter()
        .map(Box::from)
        .collect();
    headers.retain(|n, _| forwarding::passes_to_client(n, &listed));
    let mut res = Response::new(status, body);
    res.passthrough = Some(headers);
    res
}

#[cfg(test)]
mod tests {
    use super::{push_hex, unless_panicked};

    #[test]
    fn request_id_counters_are_written_as_format_writes_them() {
        for n in [0, 1, 9, 10, 15, 16, 255, 256, 4095, 0xdead_beef, u64::MAX] {
            let mut s = String::new();
            push_hex(&mut s, n);
            assert_eq!(s, format!("{n:x}"));
        }
    }

    #[tokio::test]
    async fn a_panic_in_a_request_becomes_none_and_the_worker_goes_on() {
        let boom = async {
            if std::hint::black_box(true) {
                panic!("a bug in a handler");
            }
            1
        };
        assert_eq!(unless_panicked(boom, "r1").await, None);
        assert_eq!(unless_panicked(async { 2 }, "r2").await, Some(2));
    }
}
