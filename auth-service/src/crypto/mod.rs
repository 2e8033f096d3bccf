//! Password hashing (Argon2id) and signing keys (RSA through aws-lc).

pub mod kek;
pub mod keys;
pub mod password;

/// A random (v4) UUID from the OS generator: for token and session ids.
pub fn random_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
