#![allow(dead_code)] // each target uses part of it
// Shared by the token targets: one RSA key generated per fuzzing process, its key set, and the
// expectations the gateway applies.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use shared::jws::{self, Algorithm};
use shared::verifier::{KeySet, Validation, Verifier, VerifyingKey};
use std::sync::OnceLock;

pub const KID: &str = "fuzz";
pub const ISSUER: &str = "https://auth.example";
pub const AUDIENCE: &str = "api";
/// A fixed clock, so a finding replays the same way.
pub const NOW: i64 = 1_800_000_000;

pub struct Fixture {
    pub pair: KeyPair,
    pub keys: KeySet,
    pub verifier: Verifier,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let c: PublicKeyComponents<Vec<u8>> = pair.public_key().into();
        let mut keys = KeySet::default();
        keys.insert(
            VerifyingKey::from_components(KID, Algorithm::RS256, &c.n, &c.e).expect("our key"),
        );
        let verifier = Verifier::new(Validation::new(ISSUER, vec![AUDIENCE.to_owned()]));
        Fixture {
            pair,
            keys,
            verifier,
        }
    })
}

/// `base64url(header).base64url(payload).base64url(RS256 signature)` under the fixture's key.
pub fn sign(header: &[u8], payload: &[u8]) -> String {
    let f = fixture();
    let mut token = jws::b64_encode(header);
    token.push('.');
    token.push_str(&jws::b64_encode(payload));
    let mut sig = vec![0u8; f.pair.public_modulus_len()];
    f.pair
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            token.as_bytes(),
            &mut sig,
        )
        .expect("RSA signing");
    token.push('.');
    token.push_str(&jws::b64_encode(sig));
    token
}
