//! The downstream-service library end to end: the actix extractors over an `Authenticator`, the
//! key cache fetching from a real (tiny) issuer on 127.0.0.1, tokens signed with test RSA keys.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

/// The gateway's attack table, one list for both (testkit holds it; this crate cannot depend on
/// testkit, which depends on the auth-service).
#[path = "../../../testkit/src/attack_table.rs"]
mod attack_table;
mod gateway_headers;
mod keys;
mod support;
mod verify;
