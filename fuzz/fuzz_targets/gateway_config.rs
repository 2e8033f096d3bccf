//! Any gateway configuration file (TOML), with any of the environment overrides (input: the TOML,
//! then a 0xFF byte and `NAME=value` lines): loading refuses it with a one-line reason or yields
//! settings that keep their promises: routes unique and sorted longest first on canonical
//! prefixes, durations that cannot overflow the clock, bounded sizes, and a printed
//! configuration that never shows the feed token.
#![no_main]

use gateway::configuration::{AuthRule, Settings};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const FEED_TOKEN: &str = "fuzz-feed-token-0123456789";

fn finite(d: Duration) -> bool {
    Instant::now().checked_add(d).is_some()
}

fuzz_target!(|data: &[u8]| {
    let (toml, env) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(toml) = std::str::from_utf8(toml) else {
        return;
    };
    let mut vars: HashMap<String, String> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| {
            k.starts_with("GATEWAY_") && !k.ends_with("_FILE") && *k != "GATEWAY_CONFIG"
        })
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    vars.insert("GATEWAY_CONFIG_TOML".into(), toml.to_owned());
    vars.insert("GATEWAY_FEED_TOKEN".into(), FEED_TOKEN.into());
    // The secret may only show up where the input itself holds its text (a parse error quotes
    // the file).
    let secret_in_input = data
        .windows(FEED_TOKEN.len())
        .any(|w| w == FEED_TOKEN.as_bytes());
    let s = match Settings::load(&|name| vars.get(name).cloned()) {
        Ok(s) => s,
        Err(e) => {
            assert!(
                !e.0.contains('\n'),
                "a reason on more than one line: {:?}",
                e.0
            );
            assert!(secret_in_input || !e.0.contains(FEED_TOKEN), "{:?}", e.0);
            return;
        }
    };
    assert!(!s.routes.is_empty());
    for pair in s.routes.windows(2) {
        assert!(
            pair[0].prefix.len() >= pair[1].prefix.len(),
            "routes not sorted"
        );
        assert_ne!(pair[0].prefix, pair[1].prefix, "duplicate prefix");
    }
    for r in &s.routes {
        assert!(
            r.prefix == "/" || gateway::routing::normalize(&r.prefix).as_deref() == Ok(&*r.prefix)
        );
        assert!(!r.timeout.is_zero() && finite(r.timeout));
        assert!(
            matches!(r.upstream.scheme.as_str(), "http" | "https"),
            "{:?}",
            r.upstream.scheme
        );
        assert!(!r.upstream.authority.is_empty());
        if let AuthRule::Authenticated { roles, scopes, .. } = &r.auth {
            assert!(
                roles.iter().chain(scopes).all(|x| !x.is_empty()),
                "an empty role or scope"
            );
        }
    }
    assert!((0..=300).contains(&s.leeway));
    assert!(!s.algorithms.is_empty());
    assert!((1..=1024).contains(&s.workers), "workers = {}", s.workers);
    let j = &s.jwks;
    for d in [
        j.min_refresh,
        j.max_refresh,
        j.max_stale,
        j.unknown_kid_cooldown,
        j.fetch_timeout,
    ] {
        assert!(finite(d), "{j:?}");
    }
    assert!(j.min_refresh <= j.max_refresh);
    let r = &s.revocation;
    assert!(r.max_staleness.is_none_or(|m| !m.is_zero() && finite(m)));
    assert!(finite(Duration::from_secs(s.shutdown_timeout)));
    let printed = s.redacted().to_string();
    assert!(
        secret_in_input || !printed.contains(FEED_TOKEN),
        "the feed token is printed"
    );
});
