//! Path normalisation and route matching. The normalised path is what routes match and what the
//! upstream receives, so a path can never mean one thing to the gateway and another upstream.

use std::fmt;

/// Why a request path is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not an absolute path.
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// An encoded `/`, `\`, NUL or `;` inside a segment, or a raw `\`, NUL or `;`.
    ForbiddenCharacter,
    /// Longer than we accept.
    TooLong,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "the request path must be absolute",
            PathError::BadEscape => "the request path has a malformed percent-escape",
            PathError::ForbiddenCharacter => {
                "the request path holds an encoded '/', '\\', NUL or ';'"
            }
            PathError::TooLong => "the request path is too long",
        })
    }
}

/// Longest path we route.
pub const MAX_PATH: usize = 8 * 1024;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Normalises a raw (still percent-encoded) request path, RFC 3986 §6.2.2:
/// - percent-escapes of unreserved characters are decoded (`%7E` → `~`, `%2e` → `.`), other
///   escapes are kept with uppercase hex; an escape of `/`, `\`, NUL or `;` (or a raw `\`, NUL,
///   `;`) refuses the request, since servers disagree on what they mean;
/// - dot segments are removed (`/a/./b/../c` → `/a/c`), never climbing above the root;
/// - empty segments are dropped (`//admin` → `/admin`); a trailing slash is kept.
pub fn normalize(raw: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    if raw.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    // Most paths are already normal: no escapes, no dot segments, no empty segments, nothing
    // forbidden. Those are returned as they are, without allocating.
    let b = raw.as_bytes();
    let plain = !b.iter().any(|c| matches!(c, b'%' | b'\\' | 0 | b';'))
        && !raw.contains("//")
        && !raw.split('/').any(|seg| seg == "." || seg == "..");
    if plain {
        return Ok(std::borrow::Cow::Borrowed(raw));
    }
    let mut segments: Vec<String> = Vec::new();
    let parts: Vec<&str> = raw[1..].split('/').collect();
    let last = parts.len() - 1;
    let mut trailing_slash = false;
    for (i, part) in parts.iter().enumerate() {
        let seg = decode_segment(part)?;
        match seg.as_str() {
            "" => {
                if i == last {
                    trailing_slash = true;
                }
            }
            "." => trailing_slash = i == last,
            ".." => {
                segments.pop();
                trailing_slash = i == last;
            }
            _ => {
                segments.push(seg);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(raw.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(std::borrow::Cow::Owned(out))
}

fn decode_segment(part: &str) -> Result<String, PathError> {
    let bytes = part.as_bytes();
    let mut out = String::with_capacity(part.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).and_then(|b| hex(*b)),
                    bytes.get(i + 2).and_then(|b| hex(*b)),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let v = (h << 4) | l;
                if matches!(v, b'/' | b'\\' | 0 | b';') {
                    return Err(PathError::ForbiddenCharacter);
                }
                if unreserved(v) {
                    out.push(v as char);
                } else {
                    out.push('%');
                    out.push(char::from(b"0123456789ABCDEF"[(v >> 4) as usize]));
                    out.push(char::from(b"0123456789ABCDEF"[(v & 15) as usize]));
                }
                i += 3;
            }
            b'\\' | 0 | b';' => return Err(PathError::ForbiddenCharacter),
            _ => {
                // `part` is a &str, so multi-byte UTF-8 is copied through whole.
                let ch_len = utf8_len(b);
                out.push_str(&part[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    Ok(out)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// True when `prefix` covers `path` on a segment boundary: `/api` covers `/api` and `/api/x`,
/// not `/apix`. The root prefix `/` covers everything.
pub fn covers(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    path.starts_with(prefix)
        && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

/// Picks the route with the longest prefix covering `path`. `prefixes` must be sorted longest
/// first (the configuration does that).
pub fn longest_match<'a, T>(
    routes: &'a [T],
    prefix_of: impl Fn(&T) -> &str,
    path: &str,
) -> Option<&'a T> {
    routes.iter().find(|r| covers(prefix_of(r), path))
}

/// The path the upstream receives: the normalised path, with the route prefix removed when
/// `strip` is set, under the upstream URL's own base path.
pub fn upstream_path(base: &str, prefix: &str, path: &str, strip: bool) -> String {
    upstream_path_parts(base, prefix, path, strip).concat()
}

/// [`upstream_path`] as its two pieces (written where they are needed, without a copy).
pub fn upstream_path_parts<'a>(
    base: &'a str,
    prefix: &str,
    path: &'a str,
    strip: bool,
) -> [&'a str; 2] {
    let rest = if strip && prefix != "/" {
        &path[prefix.len()..]
    } else {
        path
    };
    [
        base.trim_end_matches('/'),
        if rest.is_empty() { "/" } else { rest },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_duplicate_slashes_are_removed() {
        let cases = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//admin", "/admin"),
            ("/public/../admin", "/admin"),
            ("/public/./x", "/public/x"),
            ("/a/b/..", "/a/"),
            ("/../../../etc/passwd", "/etc/passwd"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2E/admin", "/admin"),
            ("/public/.%2e/admin", "/admin"),
            ("/%7Euser/%41", "/~user/A"),
            ("/a///b//", "/a/b/"),
            ("/x/%c3%a9", "/x/%C3%A9"),
            ("/é/ü", "/é/ü"),
            ("/a/%20b", "/a/%20b"),
            ("/.", "/"),
            ("/..", "/"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn encoded_separators_and_bad_escapes_are_refused() {
        for raw in [
            "/a%2fb",
            "/a%2Fb",
            "/admin%5c..",
            "/a%00b",
            "/a%3bb",
            "/a;jsessionid=1",
            "/a\\b",
            "/a%zz",
            "/a%2",
            "/a%",
        ] {
            assert!(normalize(raw).is_err(), "{raw}");
        }
        assert_eq!(normalize("relative"), Err(PathError::NotAbsolute));
        assert_eq!(
            normalize(&format!("/{}", "a".repeat(MAX_PATH))),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn prefixes_match_on_segment_boundaries_and_the_longest_wins() {
        assert!(covers("/public", "/public"));
        assert!(covers("/public", "/public/x"));
        assert!(!covers("/public", "/publicx"));
        assert!(!covers("/public", "/pub"));
        assert!(covers("/", "/anything"));
        let routes = ["/api/admin", "/api", "/"];
        assert_eq!(
            longest_match(&routes, |r| r, "/api/admin/x"),
            Some(&"/api/admin")
        );
        assert_eq!(longest_match(&routes, |r| r, "/api/adminx"), Some(&"/api"));
        assert_eq!(longest_match(&routes, |r| r, "/other"), Some(&"/"));
        assert_eq!(longest_match(&routes[..2], |r| r, "/other"), None);
        // Case matters: `/ADMIN` is not `/admin` (paths are case-sensitive, RFC 3986).
        assert_eq!(longest_match(&routes[..2], |r| r, "/API/admin"), None);
    }

    #[test]
    fn upstream_paths() {
        assert_eq!(upstream_path("", "/api", "/api/users", false), "/api/users");
        assert_eq!(upstream_path("", "/api", "/api/users", true), "/users");
        assert_eq!(upstream_path("", "/api", "/api", true), "/");
        assert_eq!(
            upstream_path("/v2/", "/api", "/api/users", true),
            "/v2/users"
        );
        assert_eq!(upstream_path("/v2", "/", "/x", true), "/v2/x");
    }
}
