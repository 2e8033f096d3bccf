//! Integration tests: the real auth-service against real PostgreSQL and Redis.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod admin;
mod at_rest;
mod audit;
mod bad_input;
mod browser;
mod cli;
mod clients;
mod concurrency;
mod constant_work;
mod discovery;
mod embedded;
mod feed;
mod first_hour;
mod hardening;
mod helpers;
mod interop;
mod keys;
mod login;
mod metrics;
mod oidc;
mod openapi;
mod outage;
mod process;
mod refresh;
mod registration;
mod revocation;
mod sessions;
mod throttle;
