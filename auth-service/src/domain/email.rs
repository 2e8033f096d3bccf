//! Email addresses: a light syntactic check; ownership is not verified by this service.

use super::DomainError;

/// A syntactically plausible email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// One `@`, non-empty local part and a dotted domain, no spaces or controls, ≤ 254 bytes.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let bad = || DomainError::new("invalid_email", "email must look like name@example.com");
        if raw.len() > 254 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = raw.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(bad());
        }
        Ok(Email(raw.to_owned()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_shape() {
        assert!(Email::parse("a@example.com").is_ok());
        for e in [
            "",
            "a",
            "a@b",
            "@b.c",
            "a@@b.c",
            "a b@c.d",
            "a@.c",
            "a@c.",
            &format!("{}@b.c", "a".repeat(260)),
        ] {
            assert!(Email::parse(e).is_err(), "{e:?}");
        }
    }
}
