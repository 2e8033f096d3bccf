//! The HTTP client issuer documents are fetched with: hyper's pooled HTTP/1.1 client, TLS through
//! rustls on aws-lc with the system's roots (the workspace's one TLS stack). The gateway builds its
//! upstream clients from the same pieces.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client as Legacy;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Errors a request body can carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request body: empty, or streamed.
pub type Body = BoxBody<Bytes, BoxError>;
/// An `http`/`https` connector.
pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
/// The pooled client.
pub type Client = Legacy<Connector, Body>;

/// TLS for https issuers and upstreams: the system's roots, on aws-lc.
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
        // Unreachable with aws-lc's provider; an empty root store then fails every https fetch
        // rather than trusting anything.
        Err(_) => Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
    }
}

/// A connector for `http` and `https` URLs with a bounded connect time.
pub fn connector(tls: Arc<rustls::ClientConfig>, connect_timeout: Duration) -> Connector {
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

/// A client with its own connection pool whose connection tasks run on the Tokio runtime of the
/// caller (any runtime, actix's included). It never follows redirects.
pub fn client(tls: Arc<rustls::ClientConfig>, connect_timeout: Duration) -> Client {
    Legacy::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build(connector(tls, connect_timeout))
}

/// No body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// POSTs a form (`application/x-www-form-urlencoded`) and answers the response's status, within
/// `timeout` for the whole exchange. The body of the answer is read and dropped.
pub async fn post_form(
    client: &Client,
    url: &str,
    form: String,
    timeout: Duration,
) -> Result<http::StatusCode, BoxError> {
    let request = hyper::Request::post(url)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(
            http_body_util::Full::new(Bytes::from(form))
                .map_err(|never| match never {})
                .boxed(),
        )?;
    let exchange = async {
        let response = client.request(request).await?;
        let status = response.status();
        let _ = response.into_body().collect().await;
        Ok::<_, BoxError>(status)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| BoxError::from("timed out"))?
}
