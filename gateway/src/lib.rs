//! The gateway: a reverse proxy that verifies access tokens locally (cached JWKS keys, no
//! per-request call to the issuer), enforces per-route rules, and forwards the verified identity.

pub mod accesslog;
pub mod admin;
pub mod authn;
pub mod configuration;
pub mod forwarding;
pub mod h1client;
pub mod keys;
pub mod metrics;
pub mod proxy;
pub mod ratelimit;
pub mod revocation;
pub mod routing;
pub mod server;
pub mod startup;
pub mod telemetry;
pub mod upstream;
pub mod websocket;
