//! JSON logs, request ids, one access-log line per request, and a safety net that gives every
//! error response a problem-details body (even the ones actix produces itself, such as 405).

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use futures_util::FutureExt as _;
use tracing::Instrument as _;
use tracing_subscriber::EnvFilter;

use crate::error::problem;

/// Installs the JSON subscriber (`RUST_LOG` filters; `default` otherwise). Idempotent.
pub fn init_subscriber(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_writer(std::io::stdout)
        .try_init();
}

/// The same JSON logs on standard error, for commands whose standard output is their result.
pub fn init_subscriber_stderr(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A request id from upstream is kept if it is short and plain; otherwise we make one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(shared::headers::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| shared::headers::acceptable_request_id(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// A body written for its reader: JSON (a problem or an OAuth error), or a hosted page.
fn is_meant(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/json")
                || v.starts_with("application/problem+json")
                || v.starts_with("text/html")
        })
}

/// The `code` of a problem body made for a bare error (one actix answered itself).
fn bare_code(status: actix_web::http::StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "body_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        431 => "headers_too_large",
        503 => "unavailable",
        s if s >= 500 => "internal_error",
        _ => "error",
    }
}

/// Middleware: request id span, access log, problem bodies for bare errors (a hosted page's
/// error is a page, and stays one).
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // HEAD is answered wherever GET is: routed as GET; the connection's codec, which saw HEAD,
    // sends the headers (Content-Length included) and leaves the body out.
    let mut req = req;
    let method = req.method().to_string();
    if req.method() == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    let id = request_id(&req);
    let span = tracing::info_span!("request", request_id = %id);
    let path = req.path().to_owned();
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let start = Instant::now();
    let limit = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .map_or(crate::configuration::DEFAULT_MAX_HEADER_BYTES, |s| {
            s.settings.server.max_header_bytes
        });
    let head_bytes: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    // Handlers and extractors turn their errors into responses; an `Err` here comes from actix
    // itself and is answered by it.
    let mut res = if head_bytes > limit {
        let (req, _) = req.into_parts();
        ServiceResponse::new(
            req,
            problem(
                actix_web::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                &format!("request headers exceed {limit} bytes"),
                Some("headers_too_large"),
            ),
        )
    } else {
        // A panic is a bug, and must cost its own request a 500 (problem body), not every
        // connection on this worker.
        let called = std::panic::AssertUnwindSafe(next.call(req).instrument(span.clone()))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(parent: &span, "bug: the request handler panicked");
                Err(crate::error::ApiError::Unexpected(anyhow::anyhow!("handler panicked")).into())
            });
        match called {
            Ok(res) => res.map_into_boxed_body(),
            Err(e) => {
                tracing::warn!(target: "access", parent: &span, method, path, peer, error = %e, "request failed");
                return Err(e);
            }
        }
    };
    let status = res.status();
    if (status.is_client_error() || status.is_server_error()) && !is_meant(res.headers()) {
        let (req, old) = res.into_parts();
        // A 405 names the methods the endpoint answers: HEAD wherever GET (see above).
        let allow = old
            .headers()
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .map(|a| {
                let has = |m: &str| a.split(',').any(|x| x.trim().eq_ignore_ascii_case(m));
                if has("GET") && !has("HEAD") {
                    format!("{a}, HEAD")
                } else {
                    a.to_owned()
                }
            });
        let detail = match &allow {
            Some(a) if status == actix_web::http::StatusCode::METHOD_NOT_ALLOWED => {
                format!("this endpoint answers {a}")
            }
            _ => status.canonical_reason().unwrap_or("error").to_owned(),
        };
        let mut new = problem(status, &detail, Some(bare_code(status)));
        for (k, v) in old.headers() {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                new.headers_mut().insert(k.clone(), v.clone());
            }
        }
        if let Some(v) = allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            new.headers_mut().insert(header::ALLOW, v);
        }
        res = ServiceResponse::new(req, new);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(shared::headers::REQUEST_ID), v);
    }
    let elapsed = start.elapsed();
    if let Some(state) = res
        .request()
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
    {
        // The route's pattern (`/v1/admin/users/{id}`), so ids do not make new series.
        let pattern = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "(unmatched)".to_owned());
        state.metrics.request(&pattern, status.as_u16(), elapsed);
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let _enter = span.enter();
    if path == "/healthz" || path == "/readyz" {
        tracing::debug!(target: "access", method, path, status = status.as_u16(), latency_ms, peer, "request");
    } else {
        tracing::info!(target: "access", method, path, status = status.as_u16(), latency_ms, peer, "request");
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use actix_web::dev::Service as _;
    use actix_web::middleware::from_fn;
    use actix_web::{App, HttpResponse, test, web};

    async fn boom() -> HttpResponse {
        panic!("a bug in a handler")
    }

    #[actix_web::test]
    async fn a_panicking_handler_costs_its_own_request_a_500_problem() {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(super::request_context))
                .route("/boom", web::get().to(boom))
                .route("/ok", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let err = app
            .call(test::TestRequest::get().uri("/boom").to_request())
            .await
            .expect_err("the panic becomes an error response");
        let res = err.error_response();
        assert_eq!(res.status(), 500);
        assert_eq!(
            res.headers().get("content-type").unwrap(),
            shared::problem::CONTENT_TYPE
        );
        let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["status"], 500);
        assert!(!body.to_string().contains("a bug in a handler"), "{body}");
        // The same worker goes on serving.
        let res = test::call_service(&app, test::TestRequest::get().uri("/ok").to_request()).await;
        assert_eq!(res.status(), 200);
    }
}
