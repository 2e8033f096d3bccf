//! Password hashing (Argon2id) and signing keys (RSA through aws-lc).

pub mod keys;
pub mod password;

/// Random bytes from the OS, base64url: for token ids and the like.
pub fn random_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
