//! Load for the whole browser sign-in, as `scripts/bench/auth.sh` drives it: each flow is what a
//! browser without a session and its app do (GET /v1/authorize → the sign-in page; POST
//! /v1/signin with the password → the code; POST /v1/token with the PKCE verifier → the
//! tokens), for `users` accounts in turn, on `connections` concurrent flows for `seconds`.
//! Prints `flows/s failures`.
//!
//!   signin_load <base url> <client_id> <redirect_uri> <user prefix> <users> <connections> <seconds>

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const PASSWORD: &str = "correct horse battery staple";

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(
        html[start..end]
            .replace("&#38;", "&")
            .replace("&#34;", "\"")
            .replace("&#39;", "'"),
    )
}

async fn flow(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    redirect: &str,
    user: &str,
) -> anyhow::Result<()> {
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect),
        ("scope", "openid"),
        ("state", "s"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ])?;
    let page = http
        .get(format!("{base}/v1/authorize?{query}"))
        .send()
        .await?;
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-auth_csrf="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no CSRF cookie"))?;
    let html = page.text().await?;
    let csrf = hidden(&html, "csrf").ok_or_else(|| anyhow::anyhow!("no csrf field"))?;
    let request = hidden(&html, "request").ok_or_else(|| anyhow::anyhow!("no request field"))?;
    let signed_in = http
        .post(format!("{base}/v1/signin"))
        .header("cookie", cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("username", user),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    let location = signed_in
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow::anyhow!("sign-in answered {}", signed_in.status()))?;
    let code = location
        .split_once('?')
        .and_then(|(_, q)| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "code"))
        .map(|(_, v)| v)
        .ok_or_else(|| anyhow::anyhow!("no code in {location}"))?;
    let tokens = http
        .post(format!("{base}/v1/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", VERIFIER),
            ("client_id", client_id),
        ])
        .send()
        .await?;
    anyhow::ensure!(tokens.status().is_success(), "token: {}", tokens.status());
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [
        base,
        client_id,
        redirect,
        prefix,
        users,
        connections,
        seconds,
    ] = args.as_slice()
    else {
        anyhow::bail!(
            "usage: signin_load <base> <client_id> <redirect_uri> <user prefix> <users> <connections> <seconds>"
        );
    };
    let users: u64 = users.parse()?;
    let connections: u64 = connections.parse()?;
    let until = Instant::now() + Duration::from_secs_f64(seconds.parse()?);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (http, done, failed, next) = (http.clone(), done.clone(), failed.clone(), next.clone());
        let (base, client_id, redirect, prefix) = (
            base.clone(),
            client_id.clone(),
            redirect.clone(),
            prefix.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let user = format!("{prefix}{}", next.fetch_add(1, Ordering::Relaxed) % users);
                match flow(&http, &base, &client_id, &redirect, &user).await {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("signin_load: first failure: {e:#}");
                        }
                        0
                    }
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:.1} {}",
        done.load(Ordering::Relaxed) as f64 / secs,
        failed.load(Ordering::Relaxed)
    );
    Ok(())
}
