//! Redirect URIs: which ones a client may register, and whether an authorization request's
//! `redirect_uri` is one of them (an exact string, with RFC 8252 §7.3's loopback port rule).

/// Longest URI a client may register.
pub const MAX_LEN: usize = 2000;

/// Where a registered URI is used; each allows different schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriUse {
    /// An authorization response, or a return after logout: a web app, or a native app's
    /// private-use scheme.
    Redirect,
    /// A back-channel logout POST from the server: web only.
    Backchannel,
}

/// Checks a URI a client registers. It must be absolute, written as it will be compared (the URL
/// standard's serialisation of itself: lowercase scheme and host, a path), without fragment or
/// userinfo; `https`, or `http` on a loopback host (anywhere when `plain_http` is allowed, as
/// outside production), or for redirects a native app's private-use scheme (RFC 8252 §7.1: a
/// reverse domain name, so it holds a dot).
pub fn parse_registered(raw: &str, used: UriUse, plain_http: bool) -> Result<String, String> {
    if raw.len() > MAX_LEN {
        return Err(format!("{raw:.60}…: longer than {MAX_LEN} characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not an absolute URI ({e})"))?;
    if url.fragment().is_some() {
        return Err(format!(
            "{raw:?} has a fragment, which redirect URIs must not have"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{raw:?} carries user information"));
    }
    match url.scheme() {
        "https" => {}
        "http" if plain_http || is_loopback_host(&url) => {}
        "http" => {
            return Err(format!(
                "{raw:?} uses plain http on a host other than loopback: use https"
            ));
        }
        s if used == UriUse::Redirect && s.contains('.') && !url.has_host() => {}
        _ => {
            return Err(format!(
                "{raw:?}: the scheme must be https, http on loopback, or (for native apps) a private-use scheme such as com.example.app"
            ));
        }
    }
    if url.as_str() != raw {
        return Err(format!(
            "{raw:?} is not written as it will be compared: register {:?}",
            url.as_str()
        ));
    }
    Ok(raw.to_owned())
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// True when `requested` is `registered`, character for character, or both are loopback IP
/// literals over http that differ only in the port (RFC 8252 §7.3: a native app listens on
/// whatever port the system gives it). `localhost` gets no such leeway (RFC 8252 §8.3).
pub fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    match (loopback_parts(registered), loopback_parts(requested)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A loopback IP literal URI without its port: (scheme and host, the rest).
fn loopback_parts(uri: &str) -> Option<(&str, &str)> {
    for host in ["http://127.0.0.1", "http://[::1]"] {
        let Some(rest) = uri.strip_prefix(host) else {
            continue;
        };
        let rest = match rest.strip_prefix(':') {
            Some(after) => {
                let end = after
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(after.len());
                after[..end].parse::<u16>().ok()?;
                &after[end..]
            }
            None => rest,
        };
        // The host must end here: `http://127.0.0.1.example.com` is another host.
        if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
            return None;
        }
        return Some((host, rest));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_uris_are_absolute_canonical_and_safe() {
        let ok = |s: &str| parse_registered(s, UriUse::Redirect, false);
        for good in [
            "https://app.example.com/callback",
            "https://app.example.com:8443/cb?x=1",
            "http://127.0.0.1/cb",
            "http://[::1]:9000/cb",
            "http://localhost:5173/",
            "com.example.app:/oauth2redirect",
        ] {
            assert_eq!(ok(good).as_deref(), Ok(good), "{good}");
        }
        for bad in [
            "/callback",
            "app.example.com/cb",
            "https://app.example.com/cb#frag",
            "https://user:pw@app.example.com/cb",
            "https://APP.example.com/cb",
            "https://app.example.com",
            "http://app.example.com/cb",
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "myapp:/cb",
            "",
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
        assert!(parse_registered("http://app.example.com/cb", UriUse::Redirect, true).is_ok());
        assert!(parse_registered("com.example.app:/cb", UriUse::Backchannel, false).is_err());
        assert!(
            parse_registered(&"https://a.example/".repeat(200), UriUse::Redirect, false).is_err()
        );
    }

    #[test]
    fn matching_is_exact_but_for_the_port_of_loopback_ip_literals() {
        let reg = "https://app.example.com/cb";
        assert!(matches(reg, reg));
        for near in [
            "https://app.example.com/cb/",
            "https://app.example.com/c",
            "https://app.example.com/cbx",
            "https://app.example.com/cb?x=1",
            "https://app.example.com/cb#x",
            "https://evil.app.example.com/cb",
            "https://app.example.com.evil.com/cb",
            "https://app.example.com:443/cb",
            "https://app.example.com:8443/cb",
            "http://app.example.com/cb",
            "https://app.example.com/CB",
            "https://user@app.example.com/cb",
            "https://app.example.com/%63b",
            "https://app.example.com//cb",
            "https://APP.example.com/cb",
        ] {
            assert!(!matches(reg, near), "{near}");
        }
        let native = "http://127.0.0.1/cb";
        assert!(matches(native, "http://127.0.0.1:49152/cb"));
        assert!(matches(
            "http://127.0.0.1:8000/cb",
            "http://127.0.0.1:49152/cb"
        ));
        assert!(matches("http://[::1]/cb", "http://[::1]:1234/cb"));
        for near in [
            "http://127.0.0.1:49152/cb2",
            "http://127.0.0.1:99999/cb",
            "http://127.0.0.1:/cb",
            "https://127.0.0.1:49152/cb",
            "http://127.0.0.1.evil.com/cb",
            "http://127.0.0.1:80@evil.com/cb",
            "http://[::1]:1234/cb",
            "http://localhost:1234/cb",
        ] {
            assert!(!matches(native, near), "{near}");
        }
        // localhost is compared exactly.
        assert!(!matches("http://localhost:5173/", "http://localhost:5174/"));
    }
}
