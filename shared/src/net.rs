//! Network addresses: who the client is, behind configured trusted proxies, and what a
//! rate-limit key for it is. Both services use it, so a spoofed `X-Forwarded-For` is ignored the
//! same way everywhere.

use std::net::{IpAddr, Ipv6Addr};

/// An IP network (`10.0.0.0/8`, `::1/128`, or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr` or `addr/len`.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p.trim().parse().ok().filter(|p| *p <= max)?,
        };
        Some(Cidr { addr, prefix })
    }

    /// True when `ip` is inside the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
/// `X-Forwarded-For` chain (every header's values, in order) is walked from the right, skipping
/// trusted proxies, and the first address that is not one is the client. An unparseable entry
/// stops the walk at the proxy that appended it, so a client can never name an address of its
/// choosing unless every hop after it is trusted.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[Cidr],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return canonical(peer);
    }
    let entries: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = parse_entry(entry) else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    canonical(client)
}

/// One `X-Forwarded-For` entry: an address, optionally `[v6]:port` or `v4:port`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = entry.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// IPv4-mapped IPv6 addresses as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key under which a client is counted: its IPv4 address, or its IPv6 /64 (one subscriber
/// usually holds a whole /64, so counting single IPv6 addresses would let it rotate freely).
pub fn rate_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// `scheme://host[:port]` of an absolute http(s) URL, lowercased: what browsers send in
/// `Origin`, and what "same origin" compares. `None` for anything else (or with userinfo).
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{authority}").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #[test]
    fn origins_are_scheme_and_authority_lowercased() {
        use super::origin;
        assert_eq!(
            origin("HTTPS://Auth.Example.com:8443/base?x#y").as_deref(),
            Some("https://auth.example.com:8443")
        );
        assert_eq!(
            origin("http://[::1]:80").as_deref(),
            Some("http://[::1]:80")
        );
        for bad in [
            "auth.example.com",
            "ftp://x",
            "https://",
            "https://u:p@x",
            "https:///p",
        ] {
            assert_eq!(origin(bad), None, "{bad}");
        }
    }

    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(
            Cidr::parse("127.0.0.1")
                .unwrap()
                .contains("127.0.0.1".parse().unwrap())
        );
        assert!(
            !Cidr::parse("127.0.0.1")
                .unwrap()
                .contains("127.0.0.2".parse().unwrap())
        );
        assert!(
            Cidr::parse("::1/128")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Cidr::parse("x").is_none());
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_send() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        assert_eq!(
            client_address(ip("203.0.113.9"), ["1.2.3.4"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_address(ip("203.0.113.9"), [], &[]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        // The client put a spoofed address first; the proxy appended the real one.
        assert_eq!(
            client_address(ip("10.0.0.2"), ["6.6.6.6, 198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        // Two trusted hops, two headers.
        assert_eq!(
            client_address(
                ip("10.0.0.2"),
                ["6.6.6.6, 198.51.100.7", "10.1.1.1"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the proxy that appended it.
        assert_eq!(
            client_address(ip("10.0.0.2"), ["198.51.100.7, nonsense"], &trusted),
            ip("10.0.0.2")
        );
        // Ports and bracketed IPv6.
        assert_eq!(
            client_address(ip("10.0.0.2"), ["198.51.100.7:4711"], &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), ["[2001:db8::1]:4711"], &trusted),
            ip("2001:db8::1")
        );
        // No header: the proxy itself.
        assert_eq!(client_address(ip("10.0.0.2"), [], &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        assert_eq!(rate_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            rate_key(ip("2001:db8:1:2:bbbb::9")),
            rate_key(ip("2001:db8:1:2:aaaa::1"))
        );
        assert_eq!(rate_key(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(rate_key(ip("192.0.2.1")), "192.0.2.1");
    }
}
