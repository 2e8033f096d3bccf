//! The hyper client the gateway talks to upstreams with when a request has a body, the upstream is
//! https, or a WebSocket is relayed (bodiless plain-http requests use [`crate::h1client`]): hyper's
//! pooled HTTP/1.1 client, one per worker (its connection tasks run on the worker's thread), TLS
//! through rustls with the system roots.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client as Legacy;

/// The client pieces the shared key cache uses too: one TLS setup, one connector.
pub use shared::http_client::{Body, BoxError, Client, empty, tls_config};

/// Runs hyper's connection tasks on the current worker's local task set, so a handler and
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
        tokio::task::spawn_local(fut);
    }
}

/// A client with its own connection pool, for one worker.
pub fn worker_client(tls: Arc<rustls::ClientConfig>, connect_timeout: Duration) -> Client {
    Legacy::builder(WorkerExecutor)
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build(shared::http_client::connector(tls, connect_timeout))
}

/// A body fed from a channel (the client's body is read on the worker and sent in).
pub fn channel(capacity: usize) -> (tokio::sync::mpsc::Sender<Result<Bytes, BoxError>>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, BoxError>>(capacity);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item.map(Frame::data), rx))
    });
    (tx, StreamBody::new(stream).boxed())
}
