//! Any bytes offered as a JWKS (the gateway fetches one from the issuer): parsing never panics,
//! every key is either usable or reported as skipped, and only RSA signing keys of 2048 to 8192
//! bits with a well-formed kid enter the key set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::jwk::JwkSet;
use shared::verifier::KeySet;

fuzz_target!(|data: &[u8]| {
    let Ok(set) = serde_json::from_slice::<JwkSet>(data) else {
        return;
    };
    let (keys, skipped) = KeySet::from_jwks(&set);
    // Keys with the same kid replace each other, so the set may hold fewer than were accepted.
    assert!(keys.len() + skipped.len() <= set.keys.len());
    assert!(skipped.len() <= set.keys.len());
    for kid in keys.kids() {
        assert!(!kid.is_empty() && kid.len() <= shared::jws::MAX_KID_LEN);
        assert!(kid.bytes().all(|b| b.is_ascii_graphic()));
        // Some JWK with this kid is an RSA signing key (a later unusable duplicate is skipped
        // and leaves the earlier key in place).
        assert!(
            set.keys.iter().any(|k| k.kid.as_deref() == Some(kid)
                && k.kty == "RSA"
                && k.use_.as_deref().is_none_or(|u| u == "sig")),
            "{kid:?} entered the key set without a usable JWK"
        );
    }
});
