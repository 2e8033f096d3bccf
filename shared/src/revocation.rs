//! Revocation events: the wire format of the feed and of the store's entries.

use serde::{Deserialize, Serialize};

use crate::claims::AccessClaims;

/// One revocation. An entry is kept until `exp` plus the verification leeway, then dropped:
/// by then every token it could match has expired anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RevocationEvent {
    /// One access token, by `jti`.
    Jti {
        /// The token's `jti`.
        value: String,
        /// The token's `exp`.
        exp: i64,
    },
    /// Every token of a session (logout, refresh reuse, session deleted).
    Sid {
        /// The session id.
        value: String,
        /// When the last token of the session expires.
        exp: i64,
    },
    /// Every token of a user issued before `iat_before` (password or role change, disable,
    /// delete, log out everywhere). Tokens issued afterwards never carry an earlier `iat`.
    Sub {
        /// The user id.
        value: String,
        /// Tokens with `iat < iat_before` are revoked.
        iat_before: i64,
        /// When the last token it covers expires.
        exp: i64,
    },
    /// Every token signed by a compromised key, whatever it claims (an immediate rotation):
    /// verifiers drop the key at once and never take it back from a JWKS while the entry lives.
    Kid {
        /// The key id.
        value: String,
        /// Until when the entry is kept (the longest lifetime of a token the key could have
        /// signed legitimately).
        exp: i64,
    },
}

impl RevocationEvent {
    /// When the entry stops mattering (before the leeway is added).
    pub fn exp(&self) -> i64 {
        match self {
            RevocationEvent::Jti { exp, .. }
            | RevocationEvent::Sid { exp, .. }
            | RevocationEvent::Sub { exp, .. }
            | RevocationEvent::Kid { exp, .. } => *exp,
        }
    }

    /// The key id of a [`RevocationEvent::Kid`] entry.
    pub fn kid(&self) -> Option<&str> {
        match self {
            RevocationEvent::Kid { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The event as stored: (`jti`|`sid`|`sub`|`kid`, value, `exp`, `iat_before` (0 unless
    /// `sub`)).
    pub fn parts(&self) -> (&'static str, &str, i64, i64) {
        match self {
            RevocationEvent::Jti { value, exp } => ("jti", value, *exp, 0),
            RevocationEvent::Sid { value, exp } => ("sid", value, *exp, 0),
            RevocationEvent::Sub {
                value,
                iat_before,
                exp,
            } => ("sub", value, *exp, *iat_before),
            RevocationEvent::Kid { value, exp } => ("kid", value, *exp, 0),
        }
    }

    /// The inverse of [`RevocationEvent::parts`]; `None` for an unknown type.
    pub fn from_parts(typ: &str, value: String, exp: i64, iat_before: i64) -> Option<Self> {
        Some(match typ {
            "jti" => RevocationEvent::Jti { value, exp },
            "sid" => RevocationEvent::Sid { value, exp },
            "sub" => RevocationEvent::Sub {
                value,
                iat_before,
                exp,
            },
            "kid" => RevocationEvent::Kid { value, exp },
            _ => return None,
        })
    }

    /// True when this event revokes the token with these claims. A [`RevocationEvent::Kid`]
    /// entry names a key, which claims do not carry: verifiers apply it to their keys instead.
    pub fn applies_to(&self, claims: &AccessClaims) -> bool {
        match self {
            RevocationEvent::Jti { value, .. } => *value == claims.jti,
            RevocationEvent::Sid { value, .. } => claims.sid.as_deref() == Some(value.as_str()),
            RevocationEvent::Sub {
                value, iat_before, ..
            } => *value == claims.sub && claims.iat < *iat_before,
            RevocationEvent::Kid { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Audience;

    fn claims(iat: i64) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: "u1".into(),
            aud: Audience::One("api".into()),
            client_id: "app".into(),
            exp: iat + 900,
            iat,
            nbf: iat,
            jti: "j1".into(),
            sid: Some("s1".into()),
            roles: vec![],
            scope: String::new(),
        }
    }

    #[test]
    fn wire_format_is_tagged_by_type() {
        let e = RevocationEvent::Sub {
            value: "u1".into(),
            iat_before: 10,
            exp: 20,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"sub","value":"u1","iat_before":10,"exp":20}"#
        );
        let k = RevocationEvent::Kid {
            value: "k1".into(),
            exp: 9,
        };
        assert_eq!(
            serde_json::to_string(&k).unwrap(),
            r#"{"type":"kid","value":"k1","exp":9}"#
        );
        assert_eq!(k.kid(), Some("k1"));
        let j: RevocationEvent =
            serde_json::from_str(r#"{"type":"jti","value":"j1","exp":5}"#).unwrap();
        assert_eq!(
            j,
            RevocationEvent::Jti {
                value: "j1".into(),
                exp: 5
            }
        );
    }

    #[test]
    fn parts_round_trip() {
        for e in [
            RevocationEvent::Jti {
                value: "j".into(),
                exp: 1,
            },
            RevocationEvent::Sid {
                value: "s".into(),
                exp: 2,
            },
            RevocationEvent::Sub {
                value: "u".into(),
                iat_before: 3,
                exp: 4,
            },
            RevocationEvent::Kid {
                value: "k".into(),
                exp: 5,
            },
        ] {
            let (t, v, exp, ib) = e.parts();
            assert_eq!(
                RevocationEvent::from_parts(t, v.to_owned(), exp, ib),
                Some(e.clone())
            );
        }
        assert_eq!(RevocationEvent::from_parts("nope", "x".into(), 1, 0), None);
    }

    #[test]
    fn events_match_the_tokens_they_cover() {
        let c = claims(100);
        assert!(
            RevocationEvent::Jti {
                value: "j1".into(),
                exp: 0
            }
            .applies_to(&c)
        );
        assert!(
            !RevocationEvent::Jti {
                value: "j2".into(),
                exp: 0
            }
            .applies_to(&c)
        );
        assert!(
            RevocationEvent::Sid {
                value: "s1".into(),
                exp: 0
            }
            .applies_to(&c)
        );
        assert!(
            RevocationEvent::Sub {
                value: "u1".into(),
                iat_before: 101,
                exp: 0
            }
            .applies_to(&c)
        );
        // A token issued at iat_before or later is not covered.
        assert!(
            !RevocationEvent::Sub {
                value: "u1".into(),
                iat_before: 100,
                exp: 0
            }
            .applies_to(&c)
        );
        assert!(
            !RevocationEvent::Sub {
                value: "u2".into(),
                iat_before: 101,
                exp: 0
            }
            .applies_to(&c)
        );
    }
}
