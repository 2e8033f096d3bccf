//! Opaque refresh tokens. Only this service ever reads a refresh token, so it is not a signed
//! JWT but `agrt_` + base64url(256 random bits ‖ checksum), where the checksum is the first four
//! bytes of the SHA-256 of the random part: a mistyped, truncated or invented token is refused
//! before any store lookup. The store never sees the token, only its handle: the SHA-256 of the
//! whole token, base64url (a leaked store cannot be replayed as tokens).

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use shared::claims::REFRESH_TOKEN_PREFIX;

const RANDOM: usize = 32;
const CHECKSUM: usize = 4;
/// Base64url of 36 bytes, unpadded.
const ENCODED: usize = (RANDOM + CHECKSUM).div_ceil(3) * 4;

/// The length of every opaque refresh token: 5 + 48 characters.
pub const TOKEN_LEN: usize = REFRESH_TOKEN_PREFIX.len() + ENCODED;

fn checksum(random: &[u8]) -> [u8; CHECKSUM] {
    let d = digest(&SHA256, random);
    let mut out = [0u8; CHECKSUM];
    out.copy_from_slice(&d.as_ref()[..CHECKSUM]);
    out
}

/// The store's id for a token: base64url(SHA-256(token)).
fn handle(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()))
}

/// A new refresh token and its handle.
pub fn mint() -> anyhow::Result<(String, String)> {
    let mut bytes = [0u8; RANDOM + CHECKSUM];
    aws_lc_rs::rand::fill(&mut bytes[..RANDOM])
        .map_err(|_| anyhow::anyhow!("the random generator failed"))?;
    let sum = checksum(&bytes[..RANDOM]);
    bytes[RANDOM..].copy_from_slice(&sum);
    let mut token = String::with_capacity(TOKEN_LEN);
    token.push_str(REFRESH_TOKEN_PREFIX);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut token);
    let h = handle(&token);
    Ok((token, h))
}

/// What a presented string is, as a refresh token.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// An opaque token whose checksum holds: its handle, to look up.
    Opaque(String),
    /// Begins as an opaque token but is not one (length, alphabet or checksum): refused
    /// without a lookup.
    Garbage,
    /// Not in the opaque format at all: perhaps a signed refresh token of an earlier version.
    Other,
}

/// Classifies a presented refresh token.
pub fn parse(token: &str) -> Presented {
    let Some(body) = token.strip_prefix(REFRESH_TOKEN_PREFIX) else {
        return Presented::Other;
    };
    if body.len() != ENCODED {
        return Presented::Garbage;
    }
    let mut bytes = [0u8; RANDOM + CHECKSUM];
    match URL_SAFE_NO_PAD.decode_slice(body, &mut bytes) {
        Ok(n) if n == bytes.len() => {}
        _ => return Presented::Garbage,
    }
    // The checksum is a public function of the random part (no secret to time).
    if checksum(&bytes[..RANDOM]) != bytes[RANDOM..] {
        return Presented::Garbage;
    }
    // Base64url has one spelling per byte string only when the last character's unused bits
    // are zero; 36 bytes fill 48 characters exactly, so there are none.
    Presented::Opaque(handle(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_parses_to_its_handle() {
        let (token, h) = mint().unwrap();
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(token.starts_with(REFRESH_TOKEN_PREFIX));
        assert_eq!(parse(&token), Presented::Opaque(h.clone()));
        // The handle is the token's digest, not the token.
        assert!(!token.contains(&h));
        let (other, h2) = mint().unwrap();
        assert_ne!(token, other);
        assert_ne!(h, h2);
    }

    #[test]
    fn any_change_is_garbage() {
        let (token, _) = mint().unwrap();
        // Every single-character change of the body (the checksum or the random part).
        let body_start = REFRESH_TOKEN_PREFIX.len();
        for i in body_start..token.len() {
            let mut b = token.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(b).unwrap();
            assert_eq!(parse(&changed), Presented::Garbage, "position {i}");
        }
        for bad in [
            format!("{token}A"),
            token[..token.len() - 1].to_owned(),
            REFRESH_TOKEN_PREFIX.to_owned(),
            format!("{}{}", REFRESH_TOKEN_PREFIX, "+".repeat(ENCODED)),
            format!("{}{}", REFRESH_TOKEN_PREFIX, "=".repeat(ENCODED)),
            format!("{}{}", REFRESH_TOKEN_PREFIX, "é".repeat(ENCODED / 2)),
        ] {
            assert_eq!(parse(&bad), Presented::Garbage, "{bad}");
        }
    }

    #[test]
    fn other_shapes_are_not_opaque_tokens() {
        for other in [
            "",
            "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
            "agrt",
            "AGRT_x",
            "rt_abc",
        ] {
            assert_eq!(parse(other), Presented::Other, "{other}");
        }
    }
}
