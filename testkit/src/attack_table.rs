//! The attack table: forged, altered and confused access tokens that every verifier of ours (the
//! gateway, and `shared`'s extractor for downstream services) must refuse with 401. One list,
//! so that both are held to the same cases; `shared`'s tests include this file by path (they
//! cannot depend on this crate).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, KeyPair as _};
use serde_json::{Value, json};
use shared::jws::{b64_decode, b64_encode};

/// What the table forges from.
pub struct Forger<'a> {
    /// A genuine access token (its payload is reused).
    pub good: &'a str,
    /// The genuine signing key's id.
    pub kid: &'a str,
    /// Valid access-token claims, changed one at a time.
    pub claims: &'a Value,
    /// The issuer (a refresh token's audience).
    pub issuer: &'a str,
    /// The genuine key's public modulus, base64url (the HMAC secret of key confusion).
    pub modulus: &'a str,
    /// Signs claims under a `typ` with the genuine key.
    pub sign: &'a dyn Fn(&str, &Value) -> String,
    /// A URL that nothing may ever fetch (`jku`, `x5u`).
    pub trap_url: &'a str,
}

fn with_header(token: &str, header: Value) -> String {
    let (_, rest) = token.split_once('.').expect("a compact JWS");
    format!("{}.{rest}", b64_encode(header.to_string()))
}

fn flip_signature(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').expect("a compact JWS");
    let mut bytes = b64_decode(sig).expect("base64url");
    bytes[20] ^= 0x01;
    format!("{head}.{}", b64_encode(bytes))
}

/// The genuine token with its subject replaced by another of the same length, and its header
/// and signature kept: the same length and the same last bytes, so a cache of verified tokens
/// keyed by either (as the gateway's is) would find the genuine token's entry for it. Only
/// comparing whole tokens tells them apart.
pub fn same_length_impostor(good: &str) -> String {
    let mut parts = good.split('.');
    let (head, payload, sig) = (
        parts.next().expect("a compact JWS"),
        parts.next().expect("a compact JWS"),
        parts.next().expect("a compact JWS"),
    );
    let raw = String::from_utf8(b64_decode(payload).expect("base64url")).expect("UTF-8 claims");
    let claims: Value = serde_json::from_str(&raw).expect("JSON claims");
    let sub = claims["sub"].as_str().expect("a subject");
    // Another subject: each hex digit moved one place (a UUID stays a UUID), nothing else.
    let other: String = sub
        .chars()
        .map(|c| match c {
            '0'..='8' | 'a'..='e' => char::from(c as u8 + 1),
            '9' => '0',
            'f' => 'a',
            c => c,
        })
        .collect();
    let forged = raw.replacen(&format!("\"{sub}\""), &format!("\"{other}\""), 1);
    format!("{head}.{}.{sig}", b64_encode(forged))
}

/// An attacker's own RSA key: signs anything, published nowhere.
fn attacker_signs(header: &Value, claims: &Value) -> (String, Value) {
    let kp = KeyPair::generate(KeySize::Rsa2048).expect("an RSA key");
    let c: PublicKeyComponents<Vec<u8>> = kp.public_key().into();
    let jwk = json!({"kty": "RSA", "kid": "attacker", "alg": "RS256", "use": "sig",
                     "n": b64_encode(&c.n), "e": b64_encode(&c.e)});
    let mut header = header.clone();
    header["jwk"] = jwk.clone();
    let input = format!(
        "{}.{}",
        b64_encode(header.to_string()),
        b64_encode(claims.to_string())
    );
    let mut sig = vec![0; kp.public_modulus_len()];
    kp.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .expect("signing");
    (format!("{input}.{}", b64_encode(sig)), jwk)
}

/// Every case, named.
pub fn tokens(f: &Forger<'_>) -> Vec<(&'static str, String)> {
    let (good, kid, claims, trap) = (f.good, f.kid, f.claims, f.trap_url);
    let at = |c: &Value| (f.sign)("at+jwt", c);
    let with = |k: &str, v: Value| {
        let mut c = claims.clone();
        c[k] = v;
        at(&c)
    };
    let payload = good.split('.').nth(1).expect("a compact JWS").to_owned();
    let hs_input = format!(
        "{}.{payload}",
        b64_encode(json!({"alg":"HS256","typ":"at+jwt","kid":kid}).to_string())
    );
    let hs = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, f.modulus.as_bytes()),
        hs_input.as_bytes(),
    );
    let mut tampered_claims = claims.clone();
    tampered_claims["roles"] = json!(["admin"]);
    let signed = at(claims);
    let refresh = (f.sign)(
        "rt+jwt",
        &json!({"iss": f.issuer, "sub": claims["sub"], "aud": f.issuer, "exp": claims["exp"],
                "iat": claims["iat"], "jti": "r", "sid": "s", "client_id": "app"}),
    );
    // The attacker's own key, embedded, under the genuine kid, with a key URL too.
    let (self_signed, evil_jwk) = attacker_signs(
        &json!({"alg":"RS256","typ":"at+jwt","kid":kid,"jku":trap}),
        claims,
    );
    let none = |h: Value| format!("{}.{payload}.", b64_encode(h.to_string()));
    let header = |h: Value| with_header(&signed, h);

    vec![
        ("alg none", none(json!({"alg":"none","typ":"at+jwt"}))),
        (
            "alg none with kid",
            none(json!({"alg":"none","typ":"at+jwt","kid":kid})),
        ),
        (
            "alg None",
            with_header(good, json!({"alg":"None","typ":"at+jwt","kid":kid})),
        ),
        (
            "alg NONE",
            with_header(good, json!({"alg":"NONE","typ":"at+jwt","kid":kid})),
        ),
        (
            "alg nOnE",
            with_header(good, json!({"alg":"nOnE","typ":"at+jwt","kid":kid})),
        ),
        (
            "HS256 with the public key",
            format!("{hs_input}.{}", b64_encode(hs.as_ref())),
        ),
        (
            "RS512 relabelled",
            with_header(good, json!({"alg":"RS512","typ":"at+jwt","kid":kid})),
        ),
        (
            "PS256 relabelled",
            with_header(good, json!({"alg":"PS256","typ":"at+jwt","kid":kid})),
        ),
        (
            "tampered payload",
            format!(
                "{}.{}.{}",
                signed.split('.').next().unwrap_or_default(),
                b64_encode(tampered_claims.to_string()),
                signed.split('.').nth(2).unwrap_or_default()
            ),
        ),
        (
            "the genuine signature on another subject of the same length",
            same_length_impostor(good),
        ),
        ("tampered signature", flip_signature(&signed)),
        ("truncated signature", signed[..signed.len() - 4].to_owned()),
        ("wrong iss", with("iss", json!("https://evil.example"))),
        ("wrong aud", with("aud", json!("other-api"))),
        ("wrong aud list", with("aud", json!(["other", "another"]))),
        ("wrong typ", (f.sign)("JWT", claims)),
        ("no typ", (f.sign)("", claims)),
        ("expired", with("exp", json!(shared::unix_now() - 120))),
        ("future nbf", with("nbf", json!(shared::unix_now() + 3600))),
        ("refresh token as access token", refresh),
        ("self-signed with embedded jwk and jku", self_signed),
        (
            "jku header",
            header(json!({"alg":"RS256","typ":"at+jwt","kid":"attacker","jku":trap})),
        ),
        (
            "x5u header",
            header(json!({"alg":"RS256","typ":"at+jwt","kid":"attacker","x5u":trap})),
        ),
        (
            "embedded jwk",
            header(json!({"alg":"RS256","typ":"at+jwt","kid":"attacker","jwk":evil_jwk})),
        ),
        (
            "kid traversal",
            header(json!({"alg":"RS256","typ":"at+jwt","kid":"../../../../etc/passwd"})),
        ),
        (
            "kid sql",
            header(json!({"alg":"RS256","typ":"at+jwt","kid":"'OR'1'='1"})),
        ),
        (
            "kid huge",
            header(json!({"alg":"RS256","typ":"at+jwt","kid":"k".repeat(4000)})),
        ),
        (
            "kid control chars",
            header(json!({"alg":"RS256","typ":"at+jwt","kid":"a\r\nX-Injected: 1"})),
        ),
        (
            "kid not a string",
            header(json!({"alg":"RS256","typ":"at+jwt","kid":{"$ne":1}})),
        ),
        ("no kid", header(json!({"alg":"RS256","typ":"at+jwt"}))),
        (
            "crit",
            header(json!({"alg":"RS256","typ":"at+jwt","kid":kid,"crit":["exp"]})),
        ),
        (
            // Found by the token_raw fuzz target: a multi-byte character across byte 12 of
            // `typ` made the media-type check slice inside it and panic.
            "typ with a multi-byte character at byte 12",
            header(json!({"alg":"RS256","typ":"applicationé/at+jwt","kid":kid})),
        ),
        ("two parts", payload.clone()),
        ("four parts", format!("{good}.x")),
        ("empty", String::new()),
        ("garbage", "!!!.@@@.###".into()),
        ("oversized", "a".repeat(9000)),
        (
            // Past the verifier's 8 KiB limit, within the gateway's 16 KiB of headers.
            "oversized but well formed",
            with("scope", json!("s ".repeat(4_200))),
        ),
        ("not base64 header", format!("%%%.{payload}.sig")),
        (
            "json bomb header",
            format!("{}.{payload}.sig", b64_encode("[".repeat(3000))),
        ),
        (
            "claims not an object",
            (f.sign)("at+jwt", &json!("not json")),
        ),
        ("exp as a string", with("exp", json!("tomorrow"))),
        ("empty sub", with("sub", json!(""))),
        (
            "no session and a subject other than the client",
            with("sid", Value::Null),
        ),
    ]
}
