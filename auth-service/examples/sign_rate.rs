//! RS256 signatures per second through the service's signing path (pre-parsed aws-lc key), on one
//! thread: compare with `openssl speed rsa2048` on the same core.

use auth_service::crypto::keys::SigningKey;

fn main() -> anyhow::Result<()> {
    let new = SigningKey::generate(auth_service::crypto::keys::KeySpec::Rsa(2048))?;
    let stored = auth_service::storage::StoredKey {
        kid: new.kid.clone(),
        format_version: new.format_version,
        private: secrecy::ExposeSecret::expose_secret(&new.private)
            .to_vec()
            .into(),
        state: auth_service::storage::KeyState::Current,
        times: Default::default(),
    };
    // A plaintext (format 1) key needs no key-encryption key to open; any KEK will do here.
    let kek = auth_service::crypto::kek::KeyEncryption::new(&[secrecy::SecretString::from(
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".to_owned(),
    )])?;
    let key = SigningKey::from_stored(&stored, &kek)?;
    let claims = serde_json::json!({"iss":"http://127.0.0.1:8081","sub":"5a1ac933-13a1-40aa-b8ca-b5371e0304ab","aud":"api",
        "client_id":"app","exp":1_800_000_000i64,"iat":1_799_999_100i64,"nbf":1_799_999_100i64,
        "jti":"0f8fad5b-d9cb-469f-a165-70867728950e","sid":"7c9e6679-7425-40de-944b-e07fc1f90ae7","roles":["user"]});
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3.0);
    let start = std::time::Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        key.sign("at+jwt", &claims)?;
        n += 1;
    }
    println!("{:.1}", n as f64 / start.elapsed().as_secs_f64());
    Ok(())
}
