//! Which headers cross the gateway, in each direction. Pure functions: the request path applies
//! them, the tests pin them.

use std::net::IpAddr;

use http::HeaderMap;
use shared::AccessClaims;
use shared::headers;

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers a client could use to impersonate a proxy or rewrite the request upstream.
const OVERRIDES: [&str; 14] = [
    "forwarded",
    "x-real-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-original-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
];

/// Compares a header name as an upstream might read it (any case, `_` as `-`, as CGI-style
/// servers fold them) with a lowercase pattern, without allocating.
fn folds_to(name: &[u8], pattern: &[u8]) -> bool {
    name.len() == pattern.len()
        && name.iter().zip(pattern).all(|(&c, &p)| {
            let c = c.to_ascii_lowercase();
            c == p || (c == b'_' && p == b'-')
        })
}

/// True for headers in the identity namespace (`X-User-*`, `X-Auth-*`, `X-Session-Id`) or that
/// override proxy facts: only the gateway may set them.
pub fn reserved(name: &str) -> bool {
    let b = name.as_bytes();
    let prefixed = |p: &[u8]| b.len() > p.len() && folds_to(&b[..p.len()], p);
    prefixed(b"x-user-")
        || prefixed(b"x-auth-")
        || folds_to(b, headers::SESSION_ID.as_bytes())
        || OVERRIDES.iter().any(|o| folds_to(b, o.as_bytes()))
}

/// Header names listed in `Connection` values (they are hop-by-hop for this message).
pub fn connection_tokens<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    values
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn connection_listed(map: &HeaderMap) -> Vec<String> {
    connection_tokens(
        map.get_all("connection")
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

fn hop_by_hop(name: &str, listed: &[String]) -> bool {
    HOP_BY_HOP.contains(&name) || listed.iter().any(|l| l == name)
}

/// A verified identity with the headers that forward it, built once per token (the verified-token
/// cache keeps it) rather than on every request.
#[derive(Debug)]
pub struct Identity {
    /// The verified claims.
    pub claims: AccessClaims,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl Identity {
    /// Builds `X-User-Id`, `X-User-Roles`, `X-User-Scopes` (comma-separated), `X-Session-Id`
    /// (user tokens only), `X-Auth-Principal` (`user` or `client`) and `X-Auth-Client-Id`.
    pub fn new(claims: AccessClaims) -> Self {
        let values = [
            (headers::USER_ID, Some(claims.sub.clone())),
            (headers::USER_ROLES, Some(claims.roles.join(","))),
            (
                headers::USER_SCOPES,
                Some(claims.scopes().collect::<Vec<_>>().join(",")),
            ),
            (headers::SESSION_ID, claims.sid.clone()),
            (
                headers::PRINCIPAL,
                Some(claims.principal().as_str().to_owned()),
            ),
            (headers::CLIENT_ID, Some(claims.client_id.clone())),
        ];
        let headers = values
            .into_iter()
            .filter_map(|(n, v)| Some((n, v?)))
            .filter_map(|(n, v)| {
                http::HeaderValue::from_str(&v)
                    .ok()
                    .map(|v| (http::HeaderName::from_static(n), v))
            })
            .collect();
        Identity { claims, headers }
    }
}

/// What the gateway knows about a request when forwarding it.
#[derive(Debug)]
pub struct Context<'a> {
    /// Verified identity (`None` on public routes).
    pub identity: Option<&'a Identity>,
    /// Forward `Authorization` (the route's `forward_token`).
    pub forward_token: bool,
    /// The TCP peer.
    pub peer: Option<IpAddr>,
    /// The peer is a configured trusted proxy.
    pub trusted_peer: bool,
    /// This request's id.
    pub request_id: &'a str,
}

/// The headers the upstream receives, as hyper's header map.
pub fn upstream_request(client: &HeaderMap, ctx: &Context<'_>) -> http::HeaderMap {
    let listed = connection_listed(client);
    let mut out = http::HeaderMap::with_capacity(client.len() + 8);
    for (name, v) in client.iter() {
        let n = name.as_str();
        if hop_by_hop(n, &listed)
            || reserved(n)
            || matches!(n, "host" | "content-length" | "expect" | "x-request-id")
            || (n == "authorization" && !ctx.forward_token)
        {
            continue;
        }
        out.append(name.clone(), v.clone());
    }
    let peer = ctx.peer.map(|p| p.to_string()).unwrap_or_default();
    let forwarded_for = match (
        ctx.trusted_peer,
        client.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
    ) {
        (true, Some(prior)) if !prior.trim().is_empty() => format!("{}, {peer}", prior.trim()),
        _ => peer,
    };
    let from_trusted = |name: &str| -> Option<&str> {
        if ctx.trusted_peer {
            client
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        } else {
            None
        }
    };
    let host = client
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut set = |name: &'static str, v: &str| {
        if let Ok(v) = http::HeaderValue::from_str(v) {
            out.append(http::HeaderName::from_static(name), v);
        }
    };
    set("x-forwarded-for", &forwarded_for);
    set(
        "x-forwarded-proto",
        from_trusted("x-forwarded-proto").unwrap_or("http"),
    );
    set(
        "x-forwarded-host",
        from_trusted("x-forwarded-host").unwrap_or(host),
    );
    set(headers::REQUEST_ID, ctx.request_id);
    if let Some(identity) = ctx.identity {
        for (n, v) in &identity.headers {
            out.append(n.clone(), v.clone());
        }
    }
    out
}

/// True when an upstream response header (lowercase `name`) passes to the client; `listed` are
/// the names its `Connection` header lists.
pub fn passes_to_client(name: &str, listed: &[String]) -> bool {
    !hop_by_hop(name, listed) && name != "content-length"
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use shared::Audience;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: "user-1".into(),
            aud: Audience::One("api".into()),
            client_id: "app".into(),
            exp: 0,
            iat: 0,
            nbf: 0,
            jti: "j".into(),
            sid: Some("s-1".into()),
            roles: vec!["user".into(), "admin".into()],
            scope: "read write".into(),
        }
    }

    fn names(out: &http::HeaderMap) -> Vec<String> {
        out.iter().map(|(n, _)| n.as_str().to_owned()).collect()
    }

    fn get<'a>(out: &'a http::HeaderMap, n: &str) -> Vec<&'a str> {
        out.get_all(n).iter().map(|v| v.to_str().unwrap()).collect()
    }

    #[test]
    fn spoofed_identity_and_override_headers_never_pass() {
        let client = map(&[
            ("x-user-id", "admin"),
            ("X-User-Roles", "admin"),
            ("x_user_id", "admin"),
            ("X_AUTH_USER", "root"),
            ("x-auth-request-user", "root"),
            ("x-session-id", "stolen"),
            ("x_session_id", "stolen"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
            ("x-http-method-override", "DELETE"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-host", "evil"),
            ("accept", "text/html"),
        ]);
        let c = Identity::new(claims());
        let ctx = Context {
            identity: Some(&c),
            forward_token: false,
            peer: "10.1.1.1".parse().ok(),
            trusted_peer: false,
            request_id: "r1",
        };
        let out = upstream_request(&client, &ctx);
        assert_eq!(get(&out, "x-user-id"), vec!["user-1"]);
        assert_eq!(get(&out, "x-user-roles"), vec!["user,admin"]);
        assert_eq!(get(&out, "x-user-scopes"), vec!["read,write"]);
        assert_eq!(get(&out, "x-session-id"), vec!["s-1"]);
        assert_eq!(
            get(&out, "x-forwarded-for"),
            vec!["10.1.1.1"],
            "replaced, not appended: the peer is not trusted"
        );
        assert_eq!(get(&out, "x-forwarded-proto"), vec!["http"]);
        assert_eq!(get(&out, "x-request-id"), vec!["r1"]);
        assert_eq!(get(&out, "accept"), vec!["text/html"]);
        for n in names(&out) {
            assert!(!n.contains('_'), "{n}");
            assert!(
                ![
                    "forwarded",
                    "x-real-ip",
                    "x-original-url",
                    "x-rewrite-url",
                    "x-http-method-override",
                    "x-auth-request-user"
                ]
                .contains(&n.as_str()),
                "{n}"
            );
        }
    }

    #[test]
    fn public_routes_get_no_identity_and_no_token() {
        let client = map(&[("authorization", "Bearer abc"), ("x-user-id", "admin")]);
        let ctx = Context {
            identity: None,
            forward_token: false,
            peer: None,
            trusted_peer: false,
            request_id: "r",
        };
        let out = upstream_request(&client, &ctx);
        assert!(
            names(&out)
                .iter()
                .all(|n| !n.starts_with("x-user") && n != "x-session-id" && n != "authorization")
        );
        let ctx = Context {
            forward_token: true,
            ..ctx
        };
        assert_eq!(
            get(&upstream_request(&client, &ctx), "authorization"),
            vec!["Bearer abc"]
        );
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let client = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("content-length", "5"),
            ("host", "gw"),
            ("x-kept", "yes"),
        ]);
        let ctx = Context {
            identity: None,
            forward_token: false,
            peer: None,
            trusted_peer: false,
            request_id: "r",
        };
        let out = upstream_request(&client, &ctx);
        assert_eq!(
            names(&out)
                .iter()
                .filter(|n| !n.starts_with("x-forwarded") && *n != "x-request-id")
                .collect::<Vec<_>>(),
            vec!["x-kept"]
        );
        assert_eq!(get(&out, "x-forwarded-host"), vec!["gw"]);
        let upstream = map(&[
            ("connection", "close, x-internal"),
            ("x-internal", "1"),
            ("transfer-encoding", "chunked"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
        ]);
        let listed = connection_listed(&upstream);
        let back: Vec<_> = upstream
            .iter()
            .filter(|(n, _)| passes_to_client(n.as_str(), &listed))
            .map(|(n, _)| n.as_str().to_owned())
            .collect();
        assert_eq!(back, vec!["set-cookie", "set-cookie"]);
    }

    #[test]
    fn forwarded_for_is_appended_only_for_trusted_proxies() {
        let client = map(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
        ]);
        let ctx = Context {
            identity: None,
            forward_token: false,
            peer: "10.0.0.2".parse().ok(),
            trusted_peer: true,
            request_id: "r",
        };
        let out = upstream_request(&client, &ctx);
        assert_eq!(get(&out, "x-forwarded-for"), vec!["203.0.113.7, 10.0.0.2"]);
        assert_eq!(get(&out, "x-forwarded-proto"), vec!["https"]);
        assert_eq!(get(&out, "x-forwarded-host"), vec!["app.example.com"]);
    }
}
