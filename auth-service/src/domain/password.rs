//! Passwords after NIST SP 800-63B rev. 4: length bounds only, counted in code points after NFKC,
//! no composition rules. The NFKC form is what gets hashed, so equivalent inputs match.

use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;

use super::DomainError;

/// Length bounds.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    /// Minimum code points after NFKC.
    pub min_chars: usize,
    /// Maximum bytes as sent (bounds the work done before hashing).
    pub max_bytes: usize,
}

/// A password that satisfies the policy, normalised, ready to hash.
#[derive(Debug)]
pub struct NewPassword(SecretString);

/// A password offered at login: normalised and bounded, but not held to the current minimum
/// (the policy may have been raised since the account was created).
#[derive(Debug)]
pub struct LoginPassword(SecretString);

fn normalise(raw: &str, policy: &PasswordPolicy) -> Result<SecretString, DomainError> {
    if raw.len() > policy.max_bytes {
        return Err(DomainError::new(
            "password_too_long",
            format!("password must be at most {} bytes", policy.max_bytes),
        ));
    }
    Ok(SecretString::from(raw.nfkc().collect::<String>()))
}

impl NewPassword {
    /// Checks length bounds and normalises.
    pub fn parse(raw: &SecretString, policy: &PasswordPolicy) -> Result<Self, DomainError> {
        let normalised = normalise(raw.expose_secret(), policy)?;
        if normalised.expose_secret().chars().count() < policy.min_chars {
            return Err(DomainError::new(
                "password_too_short",
                format!("password must be at least {} characters", policy.min_chars),
            ));
        }
        Ok(NewPassword(normalised))
    }

    /// The normalised secret.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl LoginPassword {
    /// Checks the byte bound and normalises.
    pub fn parse(raw: &SecretString, policy: &PasswordPolicy) -> Result<Self, DomainError> {
        normalise(raw.expose_secret(), policy).map(LoginPassword)
    }

    /// The normalised secret.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: PasswordPolicy = PasswordPolicy {
        min_chars: 15,
        max_bytes: 1024,
    };

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_owned())
    }

    #[test]
    fn length_is_counted_in_code_points_after_nfkc() {
        assert!(NewPassword::parse(&s("correct horse b"), &POLICY).is_ok());
        assert_eq!(
            NewPassword::parse(&s("correct horse "), &POLICY)
                .unwrap_err()
                .code,
            "password_too_short"
        );
        // 15 emoji: 60 bytes, 15 code points.
        assert!(NewPassword::parse(&s(&"🔑".repeat(15)), &POLICY).is_ok());
        // "ﬁ" (U+FB01) becomes "fi" under NFKC: 8 ligatures are 16 characters.
        assert!(NewPassword::parse(&s(&"ﬁ".repeat(8)), &POLICY).is_ok());
        // No composition rules: all lowercase letters is fine.
        assert!(NewPassword::parse(&s("aaaaaaaaaaaaaaa"), &POLICY).is_ok());
    }

    #[test]
    fn equivalent_forms_normalise_alike() {
        let composed = NewPassword::parse(&s("Ångström passphrase"), &POLICY).unwrap();
        let decomposed =
            NewPassword::parse(&s("A\u{30a}ngstro\u{308}m passphrase"), &POLICY).unwrap();
        assert_eq!(
            composed.secret().expose_secret(),
            decomposed.secret().expose_secret()
        );
    }

    #[test]
    fn byte_bound_applies_before_normalising() {
        assert!(NewPassword::parse(&s(&"a".repeat(1024)), &POLICY).is_ok());
        assert_eq!(
            NewPassword::parse(&s(&"a".repeat(1025)), &POLICY)
                .unwrap_err()
                .code,
            "password_too_long"
        );
        assert_eq!(
            LoginPassword::parse(&s(&"a".repeat(1025)), &POLICY)
                .unwrap_err()
                .code,
            "password_too_long"
        );
        assert!(LoginPassword::parse(&s("short"), &POLICY).is_ok());
    }
}
