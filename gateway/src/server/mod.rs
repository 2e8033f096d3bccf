//! The gateway's public HTTP/1.1 server: one thread per worker, each a single-threaded tokio
//! runtime whose connections and upstream pool stay on it.
//!
//! Why not actix-web's server here: an idle keep-alive connection costs this server no buffers.
//! It waits for the socket to become readable with nothing allocated, reads into a buffer taken
//! only then, and gives the buffer back when the exchange is over. actix-http keeps an 8 KiB read
//! and an 8 KiB write buffer per connection for as long as it is open (135 MiB resident at 10,000
//! idle connections against this server's figure in BENCHMARKS.md). The framing rules are
//! strict and pure ([`wire`]), so they are unit-tested and fuzzed apart from the sockets.

mod conn;
mod deadline;
mod headers;
pub mod wire;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use http::{HeaderMap, StatusCode};

pub(crate) use conn::read_some;
pub use conn::{RequestBody, Upgraded};
pub use deadline::{Deadline, Elapsed};
pub use headers::RawHeaders;
pub use wire::RequestHead;

/// An error from a body stream (the one the shared HTTP client's bodies carry too).
pub use shared::http_client::BoxError;

/// A streamed body; it lives on its worker's thread, so it need not be `Send`.
pub type LocalBody = std::pin::Pin<Box<dyn http_body::Body<Data = Bytes, Error = BoxError>>>;

/// A request as the handler sees it.
pub struct Request {
    /// Method, target, version, headers.
    pub head: RequestHead,
    /// The client's address.
    pub peer: SocketAddr,
    /// The body, streamed from the connection.
    pub body: RequestBody,
    /// The connection's deadline, free for the handler's use until it answers (the server sets
    /// it again for the next request).
    pub deadline: Rc<Deadline>,
}

/// A response body.
pub enum ResponseBody {
    /// None.
    Empty,
    /// In memory.
    Full(Bytes),
    /// Streamed; `len` is sent as `Content-Length` when known (also for answers to `HEAD`).
    Stream {
        /// The length, if known.
        len: Option<u64>,
        /// The body.
        body: LocalBody,
    },
}

/// What runs on the client's connection after a `101 Switching Protocols` answer.
pub type OnUpgrade = Box<dyn FnOnce(Upgraded) -> LocalBoxFuture<'static, ()>>;

/// A response.
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// Headers passed through from an upstream's answer, written first; a name that `headers`
    /// also sets is written from `headers` only.
    pub passthrough: Option<RawHeaders>,
    /// Headers (framing and `Connection` headers are this server's to set, except on a 101).
    pub headers: HeaderMap,
    /// Written as `X-Request-Id`, last, replacing any other line of that name.
    pub request_id: Option<String>,
    /// Body.
    pub body: ResponseBody,
    /// With a 101: takes over the connection once the head is written.
    pub upgrade: Option<OnUpgrade>,
}

impl Response {
    /// A response with a status and body, no headers yet.
    pub fn new(status: StatusCode, body: ResponseBody) -> Self {
        Response {
            status,
            passthrough: None,
            headers: HeaderMap::new(),
            request_id: None,
            body,
            upgrade: None,
        }
    }
}

/// Answers requests; one per worker thread.
pub trait Handler: 'static {
    /// Answers one request. (A future of a type known to the server, not a boxed one: the
    /// server holds it in the exchange's own future, which is the one allocation per request.)
    fn call(self: Rc<Self>, req: Request) -> impl std::future::Future<Output = Response>;

    /// The answer to a request head this server refuses before the handler sees it.
    fn refused(&self, status: StatusCode, detail: &str) -> Response;
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker threads.
    pub workers: usize,
    /// Largest request head (431 beyond).
    pub max_head: usize,
    /// Time a client has to send a whole request head once it started (408 after).
    pub request_timeout: Duration,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive: Duration,
    /// How long a write may wait for the client to read.
    pub write_timeout: Duration,
    /// How long a stop waits for requests in flight.
    pub shutdown_timeout: Duration,
}

/// A running server.
pub struct Server {
    stop: tokio::sync::watch::Sender<bool>,
    done: Vec<tokio::sync::oneshot::Receiver<()>>,
}

impl Server {
    /// Starts `config.workers` threads serving `listener`; `make` builds each worker's handler on
    /// its thread.
    pub fn start<H: Handler>(
        listener: std::net::TcpListener,
        config: Config,
        make: impl Fn() -> Rc<H> + Send + Sync + 'static,
    ) -> std::io::Result<Server> {
        listener.set_nonblocking(true)?;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let make = Arc::new(make);
        let mut done = Vec::new();
        for i in 0..config.workers.max(1) {
            let listener = listener.try_clone()?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (make, stop_rx, config) = (Arc::clone(&make), stop_rx.clone(), config.clone());
            std::thread::Builder::new()
                .name(format!("gateway-worker-{i}"))
                .spawn(move || {
                    let local = tokio::task::LocalSet::new();
                    local.block_on(&runtime, conn::worker(listener, config, make(), stop_rx));
                    drop(local);
                    let _ = tx.send(());
                })?;
            done.push(rx);
        }
        Ok(Server { stop, done })
    }

    /// A handle that stops the server.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    /// Waits until every worker has stopped (after [`Stopper::stop`]: requests in flight get up
    /// to the shutdown timeout).
    pub async fn stopped(self) {
        for d in self.done {
            let _ = d.await;
        }
        drop(self.stop);
    }
}

/// Stops a [`Server`]: no new connections; idle ones close; busy ones close after their answer.
#[derive(Clone)]
pub struct Stopper(tokio::sync::watch::Sender<bool>);

impl Stopper {
    /// Begins the stop.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}
