//! Test harness shared by integration tests: a fresh PostgreSQL database and Redis key prefix per
//! test (removed afterwards), the real auth-service running in-process, an upstream that echoes
//! what it received, and a raw HTTP client for requests a normal client would "fix" first.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness: fail loudly"
)]

pub mod attack_table;
pub mod auth;
pub mod echo;
pub mod feed;
pub mod interop;
pub mod raw;
pub mod redis_server;
pub mod relay;
pub mod stores;

/// The standard test password.
pub const PASSWORD: &str = "correct horse battery staple";

/// The key-encryption key test auth-services seal their signing keys with.
pub const KEK: &str = "dGVzdC1rZXktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM";

/// The revocation feed credential test auth-services accept and test gateways present.
pub const FEED_TOKEN: &str = "test-feed-token-0123456789abcdef";

/// A free TCP port on 127.0.0.1 (bound and released; fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
