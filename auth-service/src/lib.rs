//! The auth-service: users, logins, RS256 access and refresh tokens with rotation and reuse
//! detection, revocation, and the public keys to verify them.

pub mod audit;
pub mod browser;
pub mod cli;
pub mod configuration;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod extract;
pub mod feed_server;
pub mod metrics;
pub mod pages;
pub mod routes;
pub mod services;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod throttle;
pub mod tokens;
