//! Password hashing (Argon2id) and signing keys (RSA through aws-lc).

pub mod kek;
pub mod keys;
pub mod password;
pub mod refresh;

/// A random (v4) UUID from the OS generator: for token and session ids.
pub fn random_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// 256 random bits from the OS generator, base64url: client secrets, authorization codes,
/// browser-session cookies, CSRF tokens.
pub fn random_secret() -> anyhow::Result<String> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the random generator failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
