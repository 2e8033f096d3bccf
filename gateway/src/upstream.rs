//! The client the gateway talks to upstreams with: hyper's pooled HTTP/1.1 client, one per worker
//! (its connection tasks run on the worker's thread), TLS through rustls with the system roots.
//! Measured against actix's own client on the same server: 59k vs 39k proxied requests/s on one
//! core (see BENCHMARKS.md).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client as Legacy;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Errors a request body can carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request body: empty, or streamed from the client through a channel.
pub type Body = BoxBody<Bytes, BoxError>;
/// The pooled client.
pub type Client = Legacy<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// TLS for https upstreams and issuers: the system's roots, loaded once per process.
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => Arc::new(b.with_root_certificates(roots).with_no_client_auth()),
        Err(_) => Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
    }
}

/// Runs hyper's connection tasks on the current actix worker's local task set, so a handler and
/// its upstream connection wake each other without crossing task queues. Only for clients that
/// are used on one worker.
#[derive(Debug, Clone, Copy)]
pub struct WorkerExecutor;

impl<F> hyper::rt::Executor<F> for WorkerExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        actix_web::rt::spawn(fut);
    }
}

/// A client with its own connection pool, for one worker.
pub fn worker_client(tls: Arc<rustls::ClientConfig>, connect_timeout: Duration) -> Client {
    Legacy::builder(WorkerExecutor)
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build(connector(tls, connect_timeout))
}

fn connector(
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
) -> hyper_rustls::HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

/// A client with its own connection pool, usable from any runtime.
pub fn client(tls: Arc<rustls::ClientConfig>, connect_timeout: Duration) -> Client {
    let https = connector(tls, connect_timeout);
    Legacy::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build(https)
}

/// No body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A body fed from a channel (the client's body is read on the worker and sent in).
pub fn channel(capacity: usize) -> (tokio::sync::mpsc::Sender<Result<Bytes, BoxError>>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, BoxError>>(capacity);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item.map(Frame::data), rx))
    });
    (tx, StreamBody::new(stream).boxed())
}
