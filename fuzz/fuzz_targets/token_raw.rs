//! Any string offered as a token: the verifier answers with an error, never a panic, and nothing
//! made without the private key verifies, as an access token or as a refresh token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::claims::{AccessClaims, RefreshClaims};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let f = common::fixture();
    let token = String::from_utf8_lossy(data);
    let _ = shared::jws::split(&token);
    let access = f
        .verifier
        .verify::<AccessClaims>(&f.keys, &token, common::NOW);
    assert!(access.is_err(), "forged access token accepted: {token:?}");
    let refresh = f
        .verifier
        .verify::<RefreshClaims>(&f.keys, &token, common::NOW);
    assert!(refresh.is_err(), "forged refresh token accepted: {token:?}");
    // Every failure maps to a listed reason (metrics labels, logs).
    let reason = access.err().map(|e| e.reason());
    assert!(reason.is_some_and(|r| shared::verifier::FAILURE_REASONS.contains(&r)));
});
