//! Benchmark tooling (not part of the service): prints N distinct access tokens, one per line,
//! each for its own user and session, signed by the running service's current key (read from the
//! stores the `AUTH_*` variables name, as the service itself reads them). The gateway benchmark
//! sends them in its token mixes: many users, many tokens, as a gateway in front of real traffic
//! sees them. `cargo run --release -p auth-service --example mint_tokens -- 100000 > tokens.txt`
//!
//! `mint_tokens N TTL refresh:USERNAME` prints instead N signed refresh tokens of the kind
//! versions before opaque refresh tokens issued (`typ` `rt+jwt`), each with its session opened in
//! the store for that user: the auth benchmark presents them to measure the transition.

use auth_service::configuration::Settings;
use auth_service::state::AppState;
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let ttl: i64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3600);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let state = runtime.block_on(AppState::init(Settings::from_env()?))?;
    let ring = state.keys.ring();
    let key = ring.signing();
    let now = shared::unix_now();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if let Some(username) = std::env::args()
        .nth(3)
        .and_then(|m| m.strip_prefix("refresh:").map(str::to_owned))
    {
        let (user, _) = runtime
            .block_on(state.users.find_by_username(&username))?
            .ok_or_else(|| anyhow::anyhow!("no user {username}"))?;
        let client_id = state.settings.default_client_id().to_owned();
        for _ in 0..n {
            let (sid, jti) = (
                uuid::Uuid::new_v4().to_string(),
                uuid::Uuid::new_v4().to_string(),
            );
            let session = auth_service::storage::NewSession {
                sid: sid.clone(),
                sub: user.id.to_string(),
                refresh_jti: Some(jti.clone()),
                parent: None,
                browser: None,
                amr: "pwd".into(),
                auth_time: now,
                abs_exp: now + ttl,
                refresh_exp: now + ttl,
                client_id: client_id.clone(),
                scope: String::new(),
                user_agent: "mint_tokens".into(),
            };
            runtime.block_on(state.sessions.create(&session, now))?;
            let claims = shared::RefreshClaims {
                iss: state.settings.tokens.issuer.clone(),
                sub: user.id.to_string(),
                aud: shared::Audience::One(state.settings.tokens.issuer.clone()),
                exp: now + ttl,
                iat: now,
                jti,
                sid,
                client_id: client_id.clone(),
                scope: String::new(),
            };
            let token = key.sign(shared::claims::REFRESH_TOKEN_TYPE, &claims)?;
            std::io::Write::write_all(&mut out, token.as_bytes())?;
            std::io::Write::write_all(&mut out, b"\n")?;
        }
        std::io::Write::flush(&mut out)?;
        return Ok(());
    }
    for _ in 0..n {
        let claims = json!({
            "iss": state.settings.tokens.issuer, "sub": uuid::Uuid::new_v4(), "aud": state.settings.tokens.audience,
            "client_id": state.settings.default_client_id(), "exp": now + ttl, "iat": now, "nbf": now,
            "jti": uuid::Uuid::new_v4().simple().to_string(), "sid": uuid::Uuid::new_v4().simple().to_string(),
            "roles": ["user"], "scope": "",
        });
        let token = key.sign(shared::claims::ACCESS_TOKEN_TYPE, &claims)?;
        std::io::Write::write_all(&mut out, token.as_bytes())?;
        std::io::Write::write_all(&mut out, b"\n")?;
    }
    std::io::Write::flush(&mut out)?;
    Ok(())
}
