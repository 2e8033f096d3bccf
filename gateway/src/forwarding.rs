//! Which headers cross the gateway, in each direction. Pure functions: the request path applies
//! them, the tests pin them.

use std::net::IpAddr;

use http::HeaderMap;
use shared::AccessClaims;
use shared::headers;

use crate::server::RawHeaders;

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded. (Looked up by length in
/// `always_hop_by_hop`; a test keeps the two in step.)
#[cfg(test)]
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

/// Namespaces (name prefixes) that carry identity or routing facts between proxies: ours
/// (`X-User-*`, `X-Auth-*`), the whole `X-Forwarded-*` family (`-For`, `-Proto` and `-Host` are
/// then set by the gateway itself; `-User`, `-Email`, `-Groups`, `-Access-Token` and
/// `-Preferred-Username` are how oauth2-proxy hands over a user, `-Client-Cert` how Envoy hands
/// over a client certificate), and those of other authentication proxies and load balancers an
/// upstream may once have sat behind. Every name in them is the gateway's to set or to drop.
pub const RESERVED_PREFIXES: [&str; 19] = [
    "x-user-",
    "x-auth-",
    "x-forwarded-",
    "x-original-",
    "x-remote-",
    "remote-",
    "x-authenticated-",
    "x-webauth-",
    "x-amzn-oidc-",
    "x-goog-authenticated-user-",
    "x-goog-iap-",
    "cf-access-",
    "x-ms-client-principal-",
    "x-consumer-",
    "x-credential-",
    "x-pomerium-",
    "x-envoy-",
    "x-ssl-client-",
    "x-client-cert-",
];

/// Single names with the same role: `Forwarded` (RFC 7239), client addresses as CDNs and load
/// balancers set them, remote-user names of authentication proxies and web servers, client
/// certificates as TLS terminators forward them, and request rewrites.
pub const RESERVED_NAMES: [&str; 25] = [
    "forwarded",
    "x-session-id",
    "x-real-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-proxyuser-ip",
    "x-user",
    "x-username",
    "x-email",
    "x-preferred-username",
    "x-ms-client-principal",
    "x-anonymous-consumer",
    "x-client-cert",
    "x-ssl-cert",
    "ssl-client-cert",
    "x-arr-clientcert",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-host",
    "x-forwarded",
];

/// Names the gateway sets itself: never let through from a client, whatever a route says.
pub const SET_BY_GATEWAY: [&str; 10] = [
    "x-user-id",
    "x-user-roles",
    "x-user-scopes",
    "x-session-id",
    "x-auth-principal",
    "x-auth-client-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
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

/// True for headers in a reserved namespace ([`RESERVED_PREFIXES`], [`RESERVED_NAMES`]) in any
/// spelling an upstream may fold to it: only the gateway may set them.
pub fn reserved(name: &str) -> bool {
    let b = name.as_bytes();
    // Every reserved name starts with one of these letters (most headers a request carries do
    // not: Host, Accept, Authorization, Content-*, Cookie, User-Agent).
    if !matches!(
        b.first().map(u8::to_ascii_lowercase),
        Some(b'x' | b'f' | b'r' | b't' | b'c' | b's')
    ) {
        return false;
    }
    let first = b[0].to_ascii_lowercase();
    let prefixed = |p: &str| {
        p.as_bytes()[0] == first && b.len() > p.len() && folds_to(&b[..p.len()], p.as_bytes())
    };
    RESERVED_PREFIXES.iter().any(|p| prefixed(p))
        || RESERVED_NAMES
            .iter()
            .any(|n| n.as_bytes()[0] == first && folds_to(b, n.as_bytes()))
}

/// Header names listed in `Connection` values (they are hop-by-hop for this message), less
/// those that are hop-by-hop anyway and `close`: what is left is almost always nothing, so this
/// rarely allocates.
pub fn connection_tokens<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<&'a [u8]> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(b"close") && !always_hop_by_hop(t))
        .collect()
}

/// `name` (any case) is one of [`HOP_BY_HOP`]: compared only with those of its length.
fn always_hop_by_hop(name: &[u8]) -> bool {
    let same_length: &[&str] = match name.len() {
        2 => &["te"],
        7 => &["trailer", "upgrade"],
        10 => &["connection", "keep-alive"],
        16 => &["proxy-connection"],
        17 => &["transfer-encoding"],
        18 => &["proxy-authenticate"],
        19 => &["proxy-authorization"],
        _ => &[],
    };
    // `Keep_Alive` or `Transfer_Encoding` are the same header to an upstream that folds `_`.
    same_length.iter().any(|h| folds_to(name, h.as_bytes()))
}

/// `name` (any case) is hop-by-hop, or one that `Connection` listed.
fn hop_by_hop<L: AsRef<[u8]>>(name: &str, listed: &[L]) -> bool {
    always_hop_by_hop(name.as_bytes())
        || listed
            .iter()
            .any(|l| name.as_bytes().eq_ignore_ascii_case(l.as_ref()))
}

/// A verified identity with the headers that forward it, built once per token (the verified-token
/// cache keeps it) rather than on every request.
#[derive(Debug)]
pub struct ForwardedIdentity {
    /// The verified claims.
    pub claims: AccessClaims,
    /// The identity headers as request lines (`Name: value\r\n`), ready to copy into an
    /// upstream request: kept once, in the form the usual path sends (the verified-token cache
    /// holds one per token).
    lines: Box<[u8]>,
}

impl ForwardedIdentity {
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
        let mut lines = bytes::BytesMut::new();
        for (n, v) in values.into_iter().filter_map(|(n, v)| Some((n, v?))) {
            // A value that is not a valid field value (never from our issuer) is left out.
            if http::HeaderValue::from_str(&v).is_ok() {
                crate::server::wire::put_line(&mut lines, n, v.as_bytes());
            }
        }
        ForwardedIdentity {
            claims,
            lines: lines.as_ref().into(),
        }
    }
}

/// What the gateway knows about a request when forwarding it.
#[derive(Debug)]
pub struct Context<'a> {
    /// Verified identity (`None` on public routes).
    pub identity: Option<&'a ForwardedIdentity>,
    /// Forward `Authorization` (the route's `forward_token`).
    pub forward_token: bool,
    /// The TCP peer.
    pub peer: Option<IpAddr>,
    /// The peer is a configured trusted proxy.
    pub trusted_peer: bool,
    /// This request's id.
    pub request_id: &'a str,
    /// Reserved names the route lets through from the client (lowercase, `-` spelling; the
    /// route's `forward_reserved_headers`).
    pub pass_reserved: &'a [Box<str>],
}

impl Context<'_> {
    /// A reserved header the route lets through: named exactly (any case), never in another
    /// spelling, so `X_Forwarded_Client_Cert` does not ride on `X-Forwarded-Client-Cert`.
    fn passes_reserved(&self, name: &str) -> bool {
        self.pass_reserved
            .iter()
            .any(|p| name.eq_ignore_ascii_case(p))
    }
}

/// Where forwarded header lines go: the upstream client's request head, or `hyper`'s header map.
pub trait HeaderSink {
    /// Adds one line; `name` is a token and `value` a valid field value.
    fn line(&mut self, name: &str, value: &[u8]);

    /// Adds the identity's headers, read back from its lines.
    fn identity(&mut self, identity: &ForwardedIdentity) {
        for line in identity.lines.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            if let Ok(name) = std::str::from_utf8(name) {
                self.line(name, value.strip_prefix(b" ").unwrap_or(value));
            }
        }
    }
}

impl HeaderSink for bytes::BytesMut {
    fn line(&mut self, name: &str, value: &[u8]) {
        crate::server::wire::put_line(self, name, value);
    }

    /// One copy of lines rendered when the token was verified.
    fn identity(&mut self, identity: &ForwardedIdentity) {
        self.extend_from_slice(&identity.lines);
    }
}

impl HeaderSink for HeaderMap {
    fn line(&mut self, name: &str, value: &[u8]) {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            self.append(n, v);
        }
    }
}

/// Writes the headers the upstream receives into `out`: the client's, less hop-by-hop ones,
/// those its `Connection` names, reserved ones (identity namespace, proxy overrides) and the ones
/// the gateway sets itself; then the forwarding headers and the verified identity.
pub fn upstream_request(client: &RawHeaders, ctx: &Context<'_>, out: &mut impl HeaderSink) {
    let listed = connection_tokens(client.get_all("connection"));
    for (n, v) in client.iter() {
        if hop_by_hop(n, &listed)
            || (reserved(n) && !ctx.passes_reserved(n))
            || ["host", "content-length", "expect", headers::REQUEST_ID]
                .iter()
                .any(|s| folds_to(n.as_bytes(), s.as_bytes()))
            || (!ctx.forward_token && n.eq_ignore_ascii_case("authorization"))
        {
            continue;
        }
        if !ctx.forward_token && n.eq_ignore_ascii_case("cookie") {
            // The auth-service's browser-session and CSRF cookies share the origin with the
            // apps behind the gateway; they go only where credentials are forwarded.
            match without_auth_cookies(v) {
                Some(kept) if kept.is_empty() => continue,
                Some(kept) => {
                    out.line(n, &kept);
                    continue;
                }
                None => {}
            }
        }
        out.line(n, v);
    }
    let mut text = [0u8; 64];
    let peer = ctx.peer.map_or(&[][..], |p| ip_text(p, &mut text));
    let from_trusted = |name: &str| -> Option<&str> {
        if ctx.trusted_peer {
            client.get_str(name).filter(|v| !v.is_empty())
        } else {
            None
        }
    };
    // What a trusted proxy says is passed on only when it is well formed: a list of addresses,
    // `http` or `https`, a host[:port]. Anything else is replaced by what the gateway knows.
    match client
        .get_str("x-forwarded-for")
        .map(str::trim)
        .filter(|chain| ctx.trusted_peer && address_list(chain))
    {
        Some(prior) => {
            let mut chain = Vec::with_capacity(prior.len() + 2 + peer.len());
            chain.extend_from_slice(prior.as_bytes());
            chain.extend_from_slice(b", ");
            chain.extend_from_slice(peer);
            out.line("x-forwarded-for", &chain);
        }
        None => out.line("x-forwarded-for", peer),
    }
    let proto = match from_trusted("x-forwarded-proto").map(str::trim) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    out.line("x-forwarded-proto", proto.as_bytes());
    let host = from_trusted("x-forwarded-host")
        .map(str::trim)
        .filter(|h| crate::server::wire::HostPort::parse(h.as_bytes()).is_some())
        .or_else(|| client.get_str("host").map(str::trim))
        .unwrap_or("");
    out.line("x-forwarded-host", host.as_bytes());
    out.line(headers::REQUEST_ID, ctx.request_id.as_bytes());
    if let Some(identity) = ctx.identity {
        out.identity(identity);
    }
}

/// The prefix of the auth-service's own cookies (`__Host-auth_session`, `__Host-auth_csrf`).
pub const AUTH_COOKIE_PREFIX: &[u8] = b"__Host-auth_";

/// A `Cookie` value without the auth-service's cookies; `None` when it holds none (the value
/// passes as it is).
fn without_auth_cookies(value: &[u8]) -> Option<Vec<u8>> {
    if !value
        .windows(AUTH_COOKIE_PREFIX.len())
        .any(|w| w == AUTH_COOKIE_PREFIX)
    {
        return None;
    }
    let mut kept = Vec::with_capacity(value.len());
    for pair in value.split(|b| *b == b';') {
        let trimmed = pair.trim_ascii_start();
        if trimmed.starts_with(AUTH_COOKIE_PREFIX) || trimmed.is_empty() {
            continue;
        }
        if !kept.is_empty() {
            kept.extend_from_slice(b"; ");
        }
        kept.extend_from_slice(trimmed);
    }
    Some(kept)
}

/// A non-empty `X-Forwarded-For` list of IP addresses (`1.2.3.4, 2001:db8::1`).
fn address_list(chain: &str) -> bool {
    !chain.is_empty() && chain.split(',').all(|a| a.trim().parse::<IpAddr>().is_ok())
}

/// `ip` as text in `buf` (IPv4 without the formatting machinery: it is on every request).
pub(crate) fn ip_text(ip: IpAddr, buf: &mut [u8; 64]) -> &[u8] {
    match ip {
        IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            &buf[..n]
        }
        IpAddr::V6(_) => {
            use std::io::Write as _;
            let mut w = &mut buf[..];
            let _ = write!(w, "{ip}");
            let left = w.len();
            &buf[..64 - left]
        }
    }
}

/// True when an upstream response header (`name`, any case) passes to the client; `listed` are
/// the names its `Connection` header lists.
pub fn passes_to_client<L: AsRef<[u8]>>(name: &str, listed: &[L]) -> bool {
    !hop_by_hop(name, listed) && !name.eq_ignore_ascii_case("content-length")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::Audience;

    fn map(pairs: &[(&str, &str)]) -> RawHeaders {
        RawHeaders::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_bytes())))
    }

    /// The forwarded headers, as the map `hyper` would get (and the upstream client's bytes, the
    /// same lines: both sinks see one sequence).
    fn upstream_request(client: &RawHeaders, ctx: &Context<'_>) -> HeaderMap {
        let mut m = HeaderMap::new();
        super::upstream_request(client, ctx, &mut m);
        let mut bytes = bytes::BytesMut::new();
        super::upstream_request(client, ctx, &mut bytes);
        let mut lines = String::new();
        for (n, v) in &m {
            lines.push_str(&format!("{n}: {}\r\n", v.to_str().unwrap()));
        }
        assert_eq!(
            String::from_utf8_lossy(&bytes).to_ascii_lowercase(),
            lines.to_ascii_lowercase()
        );
        m
    }

    /// A public route's context: no identity, no token forwarded, no peer.
    fn anonymous() -> Context<'static> {
        Context {
            identity: None,
            forward_token: false,
            peer: None,
            trusted_peer: false,
            request_id: "r",
            pass_reserved: &[],
        }
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
        let c = ForwardedIdentity::new(claims());
        let ctx = Context {
            identity: Some(&c),
            forward_token: false,
            peer: "10.1.1.1".parse().ok(),
            trusted_peer: false,
            request_id: "r1",
            pass_reserved: &[],
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

    /// Every way an upstream may spell `name`: as listed, upper case, title case, and with `_`
    /// for each `-` (in each of those cases).
    fn spellings(name: &str) -> Vec<String> {
        let title: String = name
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("-");
        let mut out = Vec::new();
        for n in [name.to_owned(), name.to_ascii_uppercase(), title] {
            out.push(n.replace('-', "_"));
            out.push(n);
        }
        out
    }

    #[test]
    fn every_reserved_namespace_is_stripped_in_every_spelling() {
        let mut sent: Vec<String> = RESERVED_NAMES.iter().map(|n| (*n).to_owned()).collect();
        for p in RESERVED_PREFIXES {
            sent.push(format!("{p}anything"));
        }
        // The names other proxies use, spelled out (each is in a namespace above).
        sent.extend(
            [
                "x-forwarded-user",
                "x-forwarded-email",
                "x-forwarded-groups",
                "x-forwarded-preferred-username",
                "x-forwarded-access-token",
                "x-forwarded-client-cert",
                "x-forwarded-port",
                "x-forwarded-prefix",
                "x-forwarded-server",
                "x-forwarded-scheme",
                "x-forwarded-ssl",
                "x-forwarded-uri",
                "x-forwarded-method",
                "x-auth-request-user",
                "x-auth-request-email",
                "remote-user",
                "remote-groups",
                "remote-email",
                "remote-name",
                "x-remote-user",
                "x-remote-group",
                "x-remote-extra-scopes",
                "x-webauth-user",
                "x-authenticated-userid",
                "x-amzn-oidc-identity",
                "x-amzn-oidc-data",
                "x-goog-authenticated-user-email",
                "x-goog-iap-jwt-assertion",
                "cf-access-authenticated-user-email",
                "cf-access-jwt-assertion",
                "x-ms-client-principal-name",
                "x-consumer-username",
                "x-credential-identifier",
                "x-original-uri",
                "x-original-method",
                "x-envoy-original-path",
                "x-ssl-client-s-dn",
            ]
            .map(str::to_owned),
        );
        let mut pairs = Vec::new();
        for name in &sent {
            for spelling in spellings(name) {
                pairs.push((spelling, "spoofed".to_owned()));
            }
        }
        let client = RawHeaders::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_bytes())));
        let c = ForwardedIdentity::new(claims());
        let ctx = Context {
            identity: Some(&c),
            forward_token: false,
            peer: "10.1.1.1".parse().ok(),
            trusted_peer: false,
            request_id: "r1",
            pass_reserved: &[],
        };
        let out = upstream_request(&client, &ctx);
        for (n, v) in &out {
            assert_ne!(v.to_str().unwrap(), "spoofed", "{n} passed");
        }
        for (name, _) in &pairs {
            assert!(reserved(name), "{name} is not reserved");
        }
        // What the gateway sets itself is there once, with its own values.
        assert_eq!(get(&out, "x-forwarded-for"), vec!["10.1.1.1"]);
        assert_eq!(get(&out, "x-forwarded-proto"), vec!["http"]);
        assert_eq!(get(&out, "x-user-id"), vec!["user-1"]);
        // Names merely resembling a namespace pass.
        for fine in [
            "x-forwardedx",
            "x-users",
            "remote",
            "x-request-start",
            "cfaccess",
        ] {
            assert!(!reserved(fine), "{fine}");
        }
    }

    #[test]
    fn a_route_lets_named_reserved_headers_through_in_their_exact_spelling_only() {
        let client = map(&[
            ("X-Forwarded-Client-Cert", "by=a"),
            ("x_forwarded_client_cert", "smuggled"),
            ("X-Amzn-Oidc-Data", "jwt"),
            ("x-forwarded-user", "spoofed"),
        ]);
        let passes: Vec<Box<str>> =
            vec!["x-forwarded-client-cert".into(), "x-amzn-oidc-data".into()];
        let ctx = Context {
            pass_reserved: &passes,
            ..anonymous()
        };
        let out = upstream_request(&client, &ctx);
        assert_eq!(get(&out, "x-forwarded-client-cert"), vec!["by=a"]);
        assert_eq!(get(&out, "x-amzn-oidc-data"), vec!["jwt"]);
        assert!(get(&out, "x-forwarded-user").is_empty());
        assert!(
            names(&out).iter().all(|n| !n.contains('_')),
            "{:?}",
            names(&out)
        );
    }

    #[test]
    fn a_trusted_proxys_forwarding_headers_pass_only_when_well_formed() {
        let ctx = |client: &RawHeaders| {
            let ctx = Context {
                peer: "10.0.0.2".parse().ok(),
                trusted_peer: true,
                ..anonymous()
            };
            upstream_request(client, &ctx)
        };
        for (xff, xfp, xfh) in [
            ("evil", "javascript", "evil.com/path"),
            ("1.2.3.4, <script>", "https, http", "a b"),
            ("", "", ""),
            ("1.2.3.4 1.2.3.5", "ftp", "user@evil.com"),
            ("1.2.3.4,", "http:", "[::1"),
        ] {
            let client = map(&[
                ("host", "gw.example"),
                ("x-forwarded-for", xff),
                ("x-forwarded-proto", xfp),
                ("x-forwarded-host", xfh),
            ]);
            let out = ctx(&client);
            assert_eq!(get(&out, "x-forwarded-for"), vec!["10.0.0.2"], "{xff:?}");
            assert_eq!(get(&out, "x-forwarded-proto"), vec!["http"], "{xfp:?}");
            assert_eq!(get(&out, "x-forwarded-host"), vec!["gw.example"], "{xfh:?}");
        }
        let client = map(&[
            ("host", "gw.example"),
            ("x-forwarded-for", "203.0.113.7, 2001:db8::1"),
            ("x-forwarded-proto", "HTTPS"),
            ("x-forwarded-host", "app.example.com:8443"),
        ]);
        let out = ctx(&client);
        assert_eq!(
            get(&out, "x-forwarded-for"),
            vec!["203.0.113.7, 2001:db8::1, 10.0.0.2"]
        );
        assert_eq!(get(&out, "x-forwarded-proto"), vec!["https"]);
        assert_eq!(get(&out, "x-forwarded-host"), vec!["app.example.com:8443"]);
    }

    #[test]
    fn public_routes_get_no_identity_and_no_token() {
        let client = map(&[("authorization", "Bearer abc"), ("x-user-id", "admin")]);
        let ctx = anonymous();
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
    fn the_auth_services_cookies_stay_with_it() {
        assert_eq!(without_auth_cookies(b"a=1; b=2"), None);
        assert_eq!(
            without_auth_cookies(b"a=1; __Host-auth_session=s; b=2;__Host-auth_csrf=c").as_deref(),
            Some(&b"a=1; b=2"[..])
        );
        assert_eq!(
            without_auth_cookies(b"__Host-auth_session=s").as_deref(),
            Some(&b""[..])
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
        let ctx = anonymous();
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
            ("Connection", "close, X-Internal"),
            ("x-internal", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "1"),
            ("Set-Cookie", "a=1"),
            ("set-cookie", "b=2"),
        ]);
        let listed = connection_tokens(upstream.get_all("connection"));
        let back: Vec<_> = upstream
            .iter()
            .filter(|(n, _)| passes_to_client(n, &listed))
            .map(|(n, _)| n.to_owned())
            .collect();
        assert_eq!(back, vec!["Set-Cookie", "set-cookie"]);
    }

    #[test]
    fn forwarded_lines_keep_the_spelling_they_came_with() {
        let client = map(&[("X-Custom-Thing", "1"), ("accept", "*/*")]);
        let ctx = anonymous();
        let mut out = bytes::BytesMut::new();
        super::upstream_request(&client, &ctx, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("X-Custom-Thing: 1\r\naccept: */*\r\n"),
            "{text}"
        );
    }

    #[test]
    fn the_hop_by_hop_lookup_knows_every_name_in_any_case_and_no_other() {
        for h in HOP_BY_HOP {
            assert!(always_hop_by_hop(h.as_bytes()), "{h}");
            assert!(always_hop_by_hop(h.to_ascii_uppercase().as_bytes()), "{h}");
        }
        for folded in ["Keep_Alive", "TRANSFER_ENCODING", "proxy_connection"] {
            assert!(always_hop_by_hop(folded.as_bytes()), "{folded}");
        }
        for other in [
            "host",
            "tee",
            "t",
            "upgrades",
            "connectio",
            "content-length",
            "",
        ] {
            assert!(!always_hop_by_hop(other.as_bytes()), "{other}");
        }
    }

    #[test]
    fn addresses_are_written_as_std_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "1.10.100.9",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.128",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut buf = [0u8; 64];
            assert_eq!(ip_text(ip, &mut buf), ip.to_string().as_bytes());
        }
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
            pass_reserved: &[],
        };
        let out = upstream_request(&client, &ctx);
        assert_eq!(get(&out, "x-forwarded-for"), vec!["203.0.113.7, 10.0.0.2"]);
        assert_eq!(get(&out, "x-forwarded-proto"), vec!["https"]);
        assert_eq!(get(&out, "x-forwarded-host"), vec!["app.example.com"]);
    }
}
