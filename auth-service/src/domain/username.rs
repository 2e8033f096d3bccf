//! Usernames: 3–64 ASCII characters, unique case-insensitively (compared lowercased).

use super::DomainError;

/// A valid username, with the case the user chose kept for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Letters, digits and `. _ - @ +`, starting with a letter or digit. ASCII only, so no two
    /// usernames can look alike through Unicode confusables.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let len = raw.chars().count();
        if !(3..=64).contains(&len) {
            return Err(DomainError::new(
                "invalid_username",
                "username must be 3 to 64 characters",
            ));
        }
        let first_ok = raw
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        let chars_ok = raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@+".contains(c));
        if !first_ok || !chars_ok {
            return Err(DomainError::new(
                "invalid_username",
                "username may hold ASCII letters, digits and . _ - @ +, and must start with a letter or digit",
            ));
        }
        Ok(Username(raw.to_owned()))
    }

    /// The username as chosen.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["alice", "Bob_99", "a.b-c", "x@example.com", "abc"] {
            assert!(Username::parse(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn refuses_odd_names() {
        for n in [
            "ab",
            "",
            " alice",
            "alice ",
            "-alice",
            "al ice",
            "ålice",
            "a\u{0}bc",
            &"a".repeat(65),
            "a/b",
        ] {
            assert!(Username::parse(n).is_err(), "{n:?}");
        }
    }
}
