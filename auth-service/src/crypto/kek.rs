//! Encryption at rest of the signing keys: AES-256-GCM under a key-encryption key (KEK) from
//! `AUTH_KEY_ENCRYPTION_KEY`, with the key's `kid` bound as associated data (a sealed key copied
//! onto another row does not open). Several KEKs may be configured (`new,old`): the first seals,
//! every one opens, so the KEK itself can be rotated; keys sealed by an older KEK are re-sealed
//! under the first at start.
//!
//! Sealed format (storage format 2): `kek id (8) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`, where the
//! KEK id is the first 8 bytes of SHA-256 of the KEK (it names the KEK without revealing it).

use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

/// Bytes of a KEK.
pub const KEK_LEN: usize = 32;
const ID_LEN: usize = 8;
const AAD_PREFIX: &str = "auth-service signing key, format 2, kid=";

/// Why a sealed key does not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KekError {
    /// Sealed under a KEK that is not configured.
    #[error("sealed under a key-encryption key that is not configured (id {0})")]
    UnknownKek(String),
    /// Wrong kid, corrupted or tampered with.
    #[error("does not decrypt (tampered, corrupted, or stored under another kid)")]
    Tampered,
    /// Too short to be a sealed key.
    #[error("is not a sealed key")]
    Malformed,
}

struct Kek {
    id: [u8; ID_LEN],
    key: LessSafeKey,
}

/// The configured KEKs; the first seals.
pub struct KeyEncryption {
    keks: Vec<Kek>,
}

impl std::fmt::Debug for KeyEncryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEncryption")
            .field("keks", &self.keks.len())
            .finish_non_exhaustive()
    }
}

/// Decodes one configured KEK: base64 (standard or URL-safe, padded or not) of 32 bytes.
pub fn decode(value: &str) -> Result<[u8; KEK_LEN], String> {
    let v = value.trim().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(v)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v))
        .map_err(|_| "is not base64".to_owned())?;
    <[u8; KEK_LEN]>::try_from(bytes.as_slice())
        .map_err(|_| format!("must be {KEK_LEN} bytes (got {})", bytes.len()))
}

fn kek_id(raw: &[u8]) -> [u8; ID_LEN] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, raw);
    let mut id = [0u8; ID_LEN];
    id.copy_from_slice(&d.as_ref()[..ID_LEN]);
    id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn aad(kid: &str) -> Vec<u8> {
    format!("{AAD_PREFIX}{kid}").into_bytes()
}

impl KeyEncryption {
    /// From the configured values (first seals); each is base64 of 32 bytes.
    pub fn new<S: ExposeSecret<str>>(values: &[S]) -> anyhow::Result<Self> {
        anyhow::ensure!(!values.is_empty(), "no key-encryption key");
        let mut keks = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let raw = decode(v.expose_secret())
                .map_err(|e| anyhow::anyhow!("AUTH_KEY_ENCRYPTION_KEY value {}: {e}", i + 1))?;
            let key = UnboundKey::new(&AES_256_GCM, &raw)
                .map_err(|_| anyhow::anyhow!("AES-256-GCM refused the key"))?;
            keks.push(Kek {
                id: kek_id(&raw),
                key: LessSafeKey::new(key),
            });
        }
        Ok(KeyEncryption { keks })
    }

    /// Development mode without `AUTH_KEY_ENCRYPTION_KEY`: a KEK kept in `dir` (made on first
    /// use, mode 0600). Returns it, its path, and whether it was just created.
    pub fn development(dir: &Path) -> anyhow::Result<(Self, PathBuf, bool)> {
        let path = dir.join("key-encryption-key");
        let created = if path.exists() {
            false
        } else {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            let mut raw = [0u8; KEK_LEN];
            aws_lc_rs::rand::fill(&mut raw).map_err(|_| anyhow::anyhow!("no randomness"))?;
            let text = base64::engine::general_purpose::STANDARD.encode(raw);
            write_private(&path, &text)?;
            true
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let kek = Self::new(&[SecretString::from(text.trim().to_owned())])?;
        Ok((kek, path, created))
    }

    /// Seals a private key for the row of `kid`.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
        let kek = self
            .keks
            .first()
            .ok_or_else(|| anyhow::anyhow!("no key-encryption key"))?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| anyhow::anyhow!("no randomness"))?;
        let mut buf = plaintext.to_vec();
        kek.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(kid)),
                &mut buf,
            )
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut out = Vec::with_capacity(ID_LEN + NONCE_LEN + buf.len());
        out.extend_from_slice(&kek.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens a key sealed for the row of `kid`.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, KekError> {
        if sealed.len() < ID_LEN + NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(KekError::Malformed);
        }
        let (id, rest) = sealed.split_at(ID_LEN);
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let kek = self
            .keks
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| KekError::UnknownKek(hex(id)))?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KekError::Malformed)?;
        let mut buf = ct.to_vec();
        let plain = kek
            .key
            .open_in_place(nonce, Aad::from(aad(kid)), &mut buf)
            .map_err(|_| KekError::Tampered)?;
        Ok(plain.to_vec())
    }

    /// True when `sealed` was sealed under the first (current) KEK.
    pub fn sealed_by_current(&self, sealed: &[u8]) -> bool {
        self.keks
            .first()
            .is_some_and(|k| sealed.len() >= ID_LEN && sealed[..ID_LEN] == k.id)
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(seed: u8) -> SecretString {
        SecretString::from(base64::engine::general_purpose::STANDARD.encode([seed; KEK_LEN]))
    }

    #[test]
    fn sealed_keys_open_only_for_their_kid_and_under_a_configured_kek() {
        let a = KeyEncryption::new(&[kek(1)]).unwrap();
        let sealed = a.seal("kid-1", b"private key bytes").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"private"), "no plaintext");
        assert_eq!(a.open("kid-1", &sealed).unwrap(), b"private key bytes");
        assert_eq!(a.open("kid-2", &sealed), Err(KekError::Tampered));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(a.open("kid-1", &flipped), Err(KekError::Tampered));
        assert_eq!(a.open("kid-1", &sealed[..10]), Err(KekError::Malformed));
        let b = KeyEncryption::new(&[kek(2)]).unwrap();
        assert!(matches!(
            b.open("kid-1", &sealed),
            Err(KekError::UnknownKek(_))
        ));
        // Rotation of the KEK: new first, old still opens.
        let both = KeyEncryption::new(&[kek(2), kek(1)]).unwrap();
        assert_eq!(both.open("kid-1", &sealed).unwrap(), b"private key bytes");
        assert!(!both.sealed_by_current(&sealed));
        assert!(both.sealed_by_current(&both.seal("kid-1", b"x").unwrap()));
        // Two seals of the same key differ (fresh nonce).
        assert_ne!(a.seal("k", b"x").unwrap(), a.seal("k", b"x").unwrap());
    }

    #[test]
    fn configured_keks_must_be_32_bytes_of_base64() {
        assert!(decode("not base64!").is_err());
        assert!(decode(&base64::engine::general_purpose::STANDARD.encode([0u8; 16])).is_err());
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8; 32]);
        assert_eq!(decode(&url).unwrap(), [0xfb; 32]);
    }

    #[test]
    fn a_development_kek_is_made_once_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("kek-{}", uuid::Uuid::new_v4().simple()));
        let (first, path, created) = KeyEncryption::development(&dir).unwrap();
        assert!(created);
        let sealed = first.seal("k", b"secret").unwrap();
        let (again, _, created) = KeyEncryption::development(&dir).unwrap();
        assert!(!created);
        assert_eq!(again.open("k", &sealed).unwrap(), b"secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
