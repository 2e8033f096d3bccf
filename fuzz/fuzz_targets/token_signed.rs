//! Tokens validly signed with our key over any header and payload bytes (input: header, a 0xFF
//! byte, payload). Whatever the header claims (alg, typ, kid, crit, jku, jwk, duplicates) and
//! whatever the claims hold, a token passes only if every rule holds: RS256 from the key (never
//! from the header), the right kid, the access type, our issuer and audience, within exp/nbf with
//! the leeway, non-empty identifiers. A token is never both an access and a refresh token, and a
//! changed signature byte fails.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::claims::{AccessClaims, RefreshClaims};
use shared::verifier::VerifyError;

#[path = "common.rs"]
mod common;

fn typ_is(typ: &str, expected: &str) -> bool {
    let t = typ.to_ascii_lowercase();
    t == expected || t == format!("application/{expected}")
}

fuzz_target!(|data: &[u8]| {
    let (header, payload) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let f = common::fixture();
    let token = common::sign(header, payload);
    let access = f
        .verifier
        .verify::<AccessClaims>(&f.keys, &token, common::NOW);
    let refresh = f
        .verifier
        .verify::<RefreshClaims>(&f.keys, &token, common::NOW);
    assert!(
        !(access.is_ok() && refresh.is_ok()),
        "one token passed as access and refresh token: {token}"
    );
    let v = f.verifier.validation();
    if let Ok(c) = &access {
        let h: serde_json::Value = serde_json::from_slice(header).expect("accepted header is JSON");
        assert_eq!(h["alg"], "RS256", "{h}");
        assert_eq!(h["kid"], common::KID, "{h}");
        assert!(h.get("crit").is_none(), "{h}");
        assert!(typ_is(h["typ"].as_str().unwrap_or(""), "at+jwt"), "{h}");
        assert_eq!(c.iss, common::ISSUER);
        assert!(c.aud.contains_any(&v.audiences));
        assert!(
            common::NOW < c.exp.saturating_add(v.leeway),
            "expired: {c:?}"
        );
        assert!(
            c.nbf <= common::NOW.saturating_add(v.leeway),
            "not yet valid: {c:?}"
        );
        assert!(!c.sub.is_empty() && !c.jti.is_empty());
        // A user's token has a session; a token without one is a client's own.
        match &c.sid {
            Some(sid) => assert!(!sid.is_empty()),
            None => assert_eq!(c.sub, c.client_id),
        }
        // One changed signature byte: refused.
        let mut tampered = token.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("base64url is ASCII");
        assert!(matches!(
            f.verifier
                .verify::<AccessClaims>(&f.keys, &tampered, common::NOW),
            Err(VerifyError::BadSignature | VerifyError::Malformed(_))
        ));
    }
    if let Ok(c) = &refresh {
        assert_eq!(c.iss, common::ISSUER);
        assert!(common::NOW < c.exp.saturating_add(v.leeway));
    }
});
