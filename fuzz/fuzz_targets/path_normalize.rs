//! Any request path: normalisation refuses it or returns a canonical path (absolute, no empty or
//! dot segments, even once every escape is decoded; no escaped `/`, `\`, NUL or `;`; uppercase
//! escapes; idempotent), and route matching on it picks the longest prefix that covers it on a
//! segment boundary, so no spelling of a path reaches a route its canonical form does not.
#![no_main]

use gateway::routing::{covers, longest_match, normalize, upstream_path};
use libfuzzer_sys::fuzz_target;

/// Sorted longest first, as the configuration sorts routes.
const PREFIXES: [&str; 6] = ["/admin/keys", "/public", "/admin", "/api", "/a", "/"];

fn unhex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Every percent-escape decoded.
fn decode_all(seg: &str) -> Vec<u8> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(unhex),
                b.get(i + 2).copied().and_then(unhex),
            )
        {
            out.push((h << 4) | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = normalize(raw) else {
        return;
    };
    assert!(path.starts_with('/'), "{raw:?} -> {path:?}");
    assert!(!path.contains("//"), "{raw:?} -> {path:?}");
    assert!(!path.contains(['\\', '\0', ';']), "{raw:?} -> {path:?}");
    assert_eq!(
        normalize(&path).as_deref(),
        Ok(&*path),
        "not idempotent: {raw:?}"
    );
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        assert!(seg.len() > 0 || i == last, "{raw:?} -> {path:?}");
        let decoded = decode_all(seg);
        assert!(
            decoded != b"." && decoded != b"..",
            "dot segment in {path:?}"
        );
        assert!(
            !decoded.iter().any(|c| matches!(c, b'/' | b'\\' | 0 | b';')),
            "forbidden byte in {path:?}"
        );
        // Escapes left are uppercase and not of unreserved characters.
        let b = seg.as_bytes();
        for (j, _) in seg.match_indices('%') {
            let (h, l) = (b[j + 1], b[j + 2]);
            assert!(
                !h.is_ascii_lowercase() && !l.is_ascii_lowercase(),
                "{path:?}"
            );
            let v = (unhex(h).unwrap_or(0) << 4) | unhex(l).unwrap_or(0);
            assert!(
                !(v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~')),
                "unreserved escape left in {path:?}"
            );
        }
    }
    let chosen = longest_match(&PREFIXES, |p| p, &path).expect("/ covers every path");
    assert!(covers(chosen, &path));
    for p in PREFIXES {
        if p.len() > chosen.len() {
            assert!(
                !covers(p, &path),
                "{p} covers {path:?} but {chosen} was chosen"
            );
        }
    }
    if *chosen != "/" {
        let at = chosen.len();
        assert!(path.len() == at || path.as_bytes()[at] == b'/');
    }
    let up = upstream_path("/base/", chosen, &path, true);
    assert!(
        up.starts_with("/base/") && !up.starts_with("/base//"),
        "{up:?}"
    );
    let up = upstream_path("", chosen, &path, false);
    assert_eq!(up, *path);
});
