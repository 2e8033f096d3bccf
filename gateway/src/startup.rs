//! Builds the gateway: keys, listeners, HTTP servers, the key refresher.

use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::proxy::{Gateway, Worker};
use crate::server;

/// A built, bound gateway.
pub struct Application {
    port: u16,
    admin_port: u16,
    server: server::Server,
    admin: Server,
    gateway: Arc<Gateway>,
    first_refresh: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Fetches the keys once (readiness waits for them; serving does not), binds both listeners.
    /// Must run inside an actix runtime (`#[actix_web::main]`, `#[actix_web::test]`).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        tracing::info!(config = %settings.redacted(), "effective configuration");
        let metrics = Arc::new(Metrics::new(
            settings.routes.iter().map(|r| r.prefix.clone()).collect(),
        ));
        let tls = crate::upstream::tls_config();
        let keys = Arc::new(crate::keys::key_cache(
            &settings,
            Arc::clone(&metrics),
            Arc::clone(&tls),
        ));
        let first_refresh = match keys.fetch().await {
            Ok(next) => next,
            Err(_) => Duration::from_millis(500),
        };
        let listener = listen(settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let admin_listener = TcpListener::bind(settings.admin_listen)
            .with_context(|| format!("cannot listen on {}", settings.admin_listen))?;
        let port = listener.local_addr()?.port();
        let admin_port = admin_listener.local_addr()?.port();
        let workers = settings.workers;
        let shutdown = settings.shutdown_timeout;
        let revocations = settings.revocation.enabled.then(|| {
            Arc::new(shared::RevocationReplica::new(
                crate::revocation::replica_config(&settings.revocation, settings.leeway),
            ))
        });
        if revocations.is_none() {
            tracing::warn!(
                "revocation is switched off: revoked tokens stay valid here until they expire"
            );
        }
        let verified = Arc::new(crate::authn::VerifiedCache::new(
            settings.verified_token_cache,
            Arc::clone(&metrics),
        ));
        let gateway = Arc::new(Gateway {
            settings,
            keys,
            metrics,
            revocations,
            verified,
        });

        let gw = Arc::clone(&gateway);
        let config = server::Config {
            workers,
            // The header limit is checked on the parsed headers; the head may also hold a long
            // request line.
            max_head: gateway.settings.max_header_bytes + 16 * 1024,
            request_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(75),
            write_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(shutdown),
        };
        let server = server::Server::start(listener, config, move || {
            Rc::new(Worker::new(Arc::clone(&gw), Arc::clone(&tls)))
        })?;
        let gw = Arc::clone(&gateway);
        let admin = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(Arc::clone(&gw)))
                .configure(crate::admin::configure)
                .default_service(web::to(crate::admin::not_found))
        })
        .workers(1)
        .shutdown_timeout(shutdown)
        .disable_signals()
        .listen(admin_listener)?
        .run();
        tracing::info!(port, admin_port, "listening");
        Ok(Application {
            port,
            admin_port,
            server,
            admin,
            gateway,
            first_refresh,
        })
    }

    /// The public port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin port.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// Serves until stopped; keeps the keys fresh meanwhile.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let keys = Arc::clone(&self.gateway.keys);
        let refresher = actix_web::rt::spawn(keys.refresh_forever(self.first_refresh));
        let mut followers = Vec::new();
        if let (Some(r), Some(token)) =
            (&self.gateway.revocations, &self.gateway.settings.feed_token)
        {
            let follower = shared::ReplicaFollower::new(
                Arc::clone(r),
                Arc::clone(&self.gateway.keys),
                secrecy::ExposeSecret::expose_secret(token).to_owned(),
            );
            followers.push(actix_web::rt::spawn(follower.run()));
            followers.push(actix_web::rt::spawn(
                Arc::clone(r).sweep_forever(self.gateway.settings.revocation.sweep_interval),
            ));
        }
        // On SIGINT/SIGTERM both servers stop taking connections; requests in flight get the
        // shutdown timeout.
        let admin_handle = self.admin.handle();
        let admin = actix_web::rt::spawn(self.admin);
        let result = stop_signal().await;
        self.server.stopper().stop();
        let (admin, ()) = tokio::join!(
            async {
                admin_handle.stop(true).await;
                admin.await
            },
            self.server.stopped()
        );
        let result = result.and(admin.unwrap_or(Ok(())));
        refresher.abort();
        for f in followers {
            f.abort();
        }
        tracing::info!("stopped");
        result
    }
}

/// Binds the public listener with a backlog for bursts of new connections.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Waits for SIGINT or SIGTERM.
async fn stop_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
