//! Passwords after NIST SP 800-63B rev. 4: length bounds counted in code points after NFKC, no
//! composition rules, and a blocklist: passwords found in lists of common and breached passwords,
//! or made of patterns that fall to a guessing attack (repeats, sequences, keyboard walks, dates,
//! dictionary words), and passwords equal to the username are refused. The lists are the ones
//! `zxcvbn` carries (Dropbox's frequency lists: common passwords, names, English words), checked
//! offline. The NFKC form is what gets hashed, so equivalent inputs match.

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

/// Passwords an attacker would guess in fewer tries than this are refused (zxcvbn's estimate;
/// the bound of its score 1, "too guessable").
pub const MIN_GUESSES_LOG10: f64 = 6.0;

/// How much of a password the guessability estimate looks at: its cost grows faster than
/// linearly with length, and a password whose first 64 characters are guessable is weak anyway.
const ESTIMATE_CHARS: usize = 64;

impl NewPassword {
    /// Checks length bounds, the blocklist and the account's own names (`context`: the
    /// username first, then other values the user gave, such as the email address), and
    /// normalises. Takes a few milliseconds of CPU: call it off the async workers.
    pub fn parse(
        raw: &SecretString,
        policy: &PasswordPolicy,
        context: &[&str],
    ) -> Result<Self, DomainError> {
        let normalised = normalise(raw.expose_secret(), policy)?;
        let password = normalised.expose_secret();
        if password.chars().count() < policy.min_chars {
            return Err(DomainError::new(
                "password_too_short",
                format!("password must be at least {} characters", policy.min_chars),
            ));
        }
        let folded = password.to_lowercase();
        if context
            .first()
            .is_some_and(|username| folded == username.nfkc().collect::<String>().to_lowercase())
        {
            return Err(DomainError::new(
                "password_equals_username",
                "password must not be the username",
            ));
        }
        let head: String = password.chars().take(ESTIMATE_CHARS).collect();
        // The values themselves and their parts (`ivy.quintero@example.com` → `ivy`, `quintero`…).
        let inputs: Vec<&str> = context
            .iter()
            .copied()
            .chain(
                context
                    .iter()
                    .flat_map(|c| c.split(|ch: char| !ch.is_alphanumeric())),
            )
            .filter(|c| c.chars().count() >= 3)
            .collect();
        if zxcvbn::zxcvbn(&head, &inputs).guesses_log10() < MIN_GUESSES_LOG10 {
            return Err(DomainError::new(
                "password_too_common",
                "password is too easy to guess: it is a common or breached password, or built from one, from the username, or from a repeated, sequential or keyboard pattern; a few unrelated words make a good one",
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
        assert!(NewPassword::parse(&s("correct horse b"), &POLICY, &[]).is_ok());
        assert_eq!(
            NewPassword::parse(&s("correct horse "), &POLICY, &[])
                .unwrap_err()
                .code,
            "password_too_short"
        );
        // 15 different emoji: 60 bytes, 15 code points.
        let emoji = "🦊🍉🚲🎻🌋🧭🪁🐙🍄🛶🎲🧊🌵🦉🪐";
        assert_eq!(emoji.len(), 60);
        assert!(NewPassword::parse(&s(emoji), &POLICY, &[]).is_ok());
        // "ﬁ" (U+FB01) becomes "fi" under NFKC: "ﬁ" + 14 characters are 16 characters.
        assert!(NewPassword::parse(&s("ﬁnch quartz mol"), &POLICY, &[]).is_ok());
        assert_eq!(
            NewPassword::parse(&s("ﬁnch quartz m"), &POLICY, &[])
                .unwrap_err()
                .code,
            "password_too_short",
            "14 code points after NFKC"
        );
    }

    #[test]
    fn no_composition_rules() {
        for ok in [
            "all lowercase words here",
            "ALLUPPERCASEBUTRANDOMISH",
            "correct horse battery staple",
            "zebra kettle voyage",
        ] {
            assert!(NewPassword::parse(&s(ok), &POLICY, &[]).is_ok(), "{ok}");
        }
    }

    #[test]
    fn common_breached_and_patterned_passwords_are_refused() {
        for weak in [
            "passwordpassword",
            "iloveyouiloveyou",
            "123456789012345",
            "aaaaaaaaaaaaaaa",
            "qwertyuiopasdfgh",
            "abcdefghijklmnop",
            "P@ssw0rdP@ssw0rd",
            "monkey123456789",
            "1qaz2wsx3edc4rfv",
        ] {
            assert_eq!(
                NewPassword::parse(&s(weak), &POLICY, &[]).unwrap_err().code,
                "password_too_common",
                "{weak}"
            );
        }
    }

    #[test]
    fn the_username_is_refused_as_a_password_and_as_its_base() {
        let ctx = ["ambrosewhitfield", "ambrose@example.com"];
        assert_eq!(
            NewPassword::parse(&s("AmbroseWhitfield"), &POLICY, &ctx)
                .unwrap_err()
                .code,
            "password_equals_username"
        );
        assert_eq!(
            NewPassword::parse(&s("ambrosewhitfield1"), &POLICY, &ctx)
                .unwrap_err()
                .code,
            "password_too_common",
            "the username plus a digit"
        );
        assert!(NewPassword::parse(&s("correct horse battery staple"), &POLICY, &ctx).is_ok());
    }

    #[test]
    fn equivalent_forms_normalise_alike() {
        let composed = NewPassword::parse(&s("Ångström passphrase"), &POLICY, &[]).unwrap();
        let decomposed =
            NewPassword::parse(&s("A\u{30a}ngstro\u{308}m passphrase"), &POLICY, &[]).unwrap();
        assert_eq!(
            composed.secret().expose_secret(),
            decomposed.secret().expose_secret()
        );
    }

    #[test]
    fn byte_bound_applies_before_normalising() {
        let long: String = "tangerine voyage quartz ".repeat(43)[..1024].to_owned();
        assert!(NewPassword::parse(&s(&long), &POLICY, &[]).is_ok());
        assert_eq!(
            NewPassword::parse(&s(&format!("{long}x")), &POLICY, &[])
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
