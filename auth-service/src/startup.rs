//! Builds the application: state, listener, HTTP server, background tasks.

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

use crate::configuration::Settings;
use crate::configuration::secs;
use crate::state::AppState;
use crate::{error, routes, telemetry};

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    admin_port: Option<u16>,
    admin: Option<Server>,
    server: Server,
    state: web::Data<AppState>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

async fn not_found() -> actix_web::HttpResponse {
    error::problem(StatusCode::NOT_FOUND, "no such endpoint", Some("not_found"))
}

impl Application {
    /// Connects to the stores and binds the listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        tracing::info!(config = %settings.redacted(), "effective configuration");
        let listen = settings.server.listen;
        let workers = settings.server.workers;
        let shutdown = settings.server.shutdown_timeout;
        let state = web::Data::new(AppState::init(settings).await?);
        let listener =
            TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
        let port = listener.local_addr()?.port();
        let base = state.clone();
        let server = HttpServer::new(move || {
            // Runs on each worker's thread: its store connections will live there.
            let data = match base.for_worker() {
                Ok(s) => web::Data::new(s),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "per-worker stores unavailable; sharing the main ones");
                    base.clone()
                }
            };
            App::new()
                // Registered first, so it runs inside the request context (logs, problem bodies).
                .wrap(from_fn(crate::browser::cors))
                .wrap(from_fn(telemetry::request_context))
                .app_data(data)
                .configure(routes::configure)
                .default_service(web::to(not_found))
        })
        .workers(workers)
        .shutdown_timeout(shutdown.as_secs())
        .listen(listener)?
        .run();
        let (admin, admin_port) = match state.settings.server.admin_listen {
            None => (None, None),
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .with_context(|| format!("cannot listen on {addr} (AUTH_ADMIN_LISTEN)"))?;
                let admin_port = listener.local_addr()?.port();
                let data = state.clone();
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .configure(routes::health::configure_admin)
                })
                .workers(1)
                .shutdown_timeout(shutdown.as_secs())
                .listen(listener)?
                .run();
                (Some(server), Some(admin_port))
            }
        };
        tracing::info!(port, admin_port, "listening");
        Ok(Application {
            port,
            admin_port,
            admin,
            server,
            state,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin port (`AUTH_ADMIN_LISTEN`), when configured.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_port
    }

    /// The shared state (tests inspect it).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle to stop the server (graceful by default).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGINT/SIGTERM or the handle); in-flight requests get the
    /// configured shutdown timeout.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let reload = tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.settings.keys.reload_interval);
            tick.tick().await;
            if let Err(e) = crate::services::keys::follow_configured_algorithm(&state).await {
                tracing::warn!(error = %e, "switching to the configured signing algorithm failed; trying again at the next key tick");
            }
            loop {
                tick.tick().await;
                if let Err(e) = crate::services::keys::tick(&state).await {
                    tracing::warn!(error = %format!("{e:#}"), "periodic key work failed; keeping the loaded keys");
                }
            }
        });
        // The hub follows the event stream on this (otherwise idle) thread: for the feed's
        // connections, and, feed or not, for keys other replicas (or the CLI) revoked.
        let keys = std::sync::Arc::clone(&self.state.keys);
        let leeway = secs(self.state.settings.tokens.leeway);
        let hub = Some(tokio::spawn(self.state.hub.clone().run(
            std::sync::Arc::clone(&self.state.feed),
            self.state.settings.feed.heartbeat,
            self.state.settings.feed.outage_grace,
            move |kid, exp| {
                if keys.is_revoked(kid) {
                    return;
                }
                tracing::warn!(kid, "a signing key was revoked (compromise rotation): refusing it");
                keys.revoke(kid, exp.saturating_add(leeway));
                let keys = std::sync::Arc::clone(&keys);
                tokio::spawn(async move {
                    if let Err(e) = keys.reload().await {
                        tracing::warn!(error = %e, "reloading the signing keys after a revocation failed");
                    }
                });
            },
        )));
        // SIGTERM/SIGINT: end the feed's streams so that they do not hold up the graceful stop
        // (actix handles the signals for the server itself).
        let hub_for_signals = self.state.hub.clone();
        let signals = tokio::spawn(async move {
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = term => {}
            }
            hub_for_signals.close();
        });
        let admin = self.admin.map(|a| {
            let handle = a.handle();
            (handle, tokio::spawn(a))
        });
        let result = self.server.await;
        if let Some((handle, task)) = admin {
            handle.stop(true).await;
            let _ = task.await;
        }
        signals.abort();
        reload.abort();
        if let Some(hub) = hub {
            hub.abort();
        }
        tracing::info!("stopped");
        result
    }
}
