//! Validated values: a `Username`, `Email`, `Role` or password exists only if it is valid.

mod email;
mod password;
pub mod redirect_uri;
mod role;
mod username;

pub use email::Email;
pub use password::{LoginPassword, NewPassword, PasswordPolicy};
pub use role::{ADMIN as ADMIN_ROLE, Role};
pub use username::Username;

/// Why client input was refused; `code` is stable for clients, `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DomainError {
    /// Machine-readable reason (`password_too_short`, …).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl DomainError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        DomainError {
            code,
            message: message.into(),
        }
    }
}

/// A scope token per RFC 6749 §3.3 (`NQCHAR`: printable ASCII except space, `"` and `\`).
pub fn valid_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}
