//! Role names as they appear in tokens: `[a-z0-9_:.-]{1,64}`.

use super::DomainError;

/// A valid role name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Role(String);

/// Role that grants the admin API.
pub const ADMIN: &str = "admin";

impl Role {
    /// Lowercase ASCII letters, digits and `_ : . -`, 1 to 64 of them.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_:.-".contains(&b));
        if !ok {
            return Err(DomainError::new(
                "invalid_role",
                format!("role {raw:?} must match [a-z0-9_:.-]{{1,64}}"),
            ));
        }
        Ok(Role(raw.to_owned()))
    }

    /// Parses a list, refusing more than 32 roles and removing duplicates.
    pub fn parse_list(raw: &[String]) -> Result<Vec<Role>, DomainError> {
        if raw.len() > 32 {
            return Err(DomainError::new("invalid_role", "at most 32 roles"));
        }
        let mut roles = raw
            .iter()
            .map(|r| Role::parse(r))
            .collect::<Result<Vec<_>, _>>()?;
        roles.sort();
        roles.dedup();
        Ok(roles)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_syntax() {
        for r in ["admin", "user", "billing:read", "a.b-c_d", "9"] {
            assert!(Role::parse(r).is_ok(), "{r}");
        }
        for r in ["", "Admin", "a b", "a,b", "ä", &"a".repeat(65)] {
            assert!(Role::parse(r).is_err(), "{r:?}");
        }
        let list = Role::parse_list(&["b".into(), "a".into(), "b".into()]).unwrap();
        assert_eq!(
            list.iter().map(Role::as_str).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
    }
}
