//! Gateway integration tests: the real gateway, the real auth-service, an echo upstream.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod attacks;
mod clients;
mod compromise;
mod connections;
mod cors;
mod errors;
mod forwarding;
mod helpers;
mod keys;
mod metrics;
mod paths;
mod process;
mod ratelimit;
mod revocation;
mod rotation;
mod smuggling;
mod streaming;
mod upstreams;
mod websocket;
