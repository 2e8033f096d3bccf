//! Header lines as they arrived, kept as offsets into the bytes of the head they were parsed from.
//!
//! Why not `http::HeaderMap` on the request path: building one costs a name lookup, a hash and a
//! shared-buffer clone per header, and dropping it as much again; the gateway reads a handful of
//! headers per request and copies the rest through. Here a parsed head is one frozen buffer and a
//! list of offsets: lookups compare names without regard to case (RFC 9110 §5.1), and copying a
//! header through is copying its bytes. `httparse` has already checked what `HeaderMap` would
//! check: names are tokens, values hold only visible characters, SP, HTAB and obs-text.

use bytes::Bytes;

/// Where one header line's name and value lie in the head's bytes.
#[derive(Debug, Clone, Copy)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

/// The header lines of one message head, in order, names as sent.
#[derive(Debug, Clone, Default)]
pub struct RawHeaders {
    bytes: Bytes,
    spans: Vec<Span>,
}

/// Where `httparse` found each header, as offsets into the buffer it parsed (taken before the
/// buffer is frozen).
#[derive(Debug, Default)]
pub struct Offsets(Vec<Span>);

impl Offsets {
    /// Records the headers `httparse` parsed out of `buf`.
    pub fn of(buf: &[u8], headers: &[httparse::Header<'_>]) -> Self {
        let base = buf.as_ptr() as usize;
        // Slices of `buf` (httparse borrows it), and a head is far smaller than 4 GiB.
        let at = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            (start as u32, s.len() as u32)
        };
        Offsets(
            headers
                .iter()
                .map(|h| Span {
                    name: at(h.name.as_bytes()),
                    value: at(h.value),
                })
                .collect(),
        )
    }
}

fn range((start, len): (u32, u32)) -> std::ops::Range<usize> {
    start as usize..start as usize + len as usize
}

impl RawHeaders {
    /// The headers recorded in `offsets`, over the frozen bytes that were parsed.
    pub fn new(bytes: Bytes, offsets: Offsets) -> Self {
        RawHeaders {
            bytes,
            spans: offsets.0,
        }
    }

    /// Builds headers from pairs.
    #[cfg(test)]
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut bytes = Vec::new();
        let mut spans = Vec::new();
        for (name, value) in pairs {
            let n = (bytes.len() as u32, name.len() as u32);
            bytes.extend_from_slice(name.as_bytes());
            let v = (bytes.len() as u32, value.len() as u32);
            bytes.extend_from_slice(value);
            spans.push(Span { name: n, value: v });
        }
        RawHeaders {
            bytes: Bytes::from(bytes),
            spans,
        }
    }

    /// How many header lines there are.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    fn name_of(&self, s: &Span) -> &str {
        // Names were checked to be tokens (ASCII) when parsed.
        std::str::from_utf8(&self.bytes[range(s.name)]).unwrap_or("")
    }

    /// Every header line in order: the name as sent and the value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.spans
            .iter()
            .map(|s| (self.name_of(s), &self.bytes[range(s.value)]))
    }

    /// Every line as bytes; lookups compare these (no UTF-8 check of each name on the way).
    fn lines(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans
            .iter()
            .map(|s| (&self.bytes[range(s.name)], &self.bytes[range(s.value)]))
    }

    /// The values of every line named `name` (any case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.lines()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The first value named `name` (any case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.lines()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The first value named `name` if it is plain visible ASCII (what `HeaderValue::to_str`
    /// accepts).
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(visible_ascii)
    }

    /// True when a line is named `name` (any case).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Keeps only the lines `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &[u8]) -> bool) {
        let bytes = &self.bytes;
        self.spans.retain(|s| {
            let name = std::str::from_utf8(&bytes[range(s.name)]).unwrap_or("");
            keep(name, &bytes[range(s.value)])
        });
    }
}

/// `v` as text if every byte is visible ASCII, SP or HTAB (the rule of `HeaderValue::to_str`).
pub fn visible_ascii(v: &[u8]) -> Option<&str> {
    if v.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        std::str::from_utf8(v).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case_and_keep_order_and_duplicates() {
        let h = RawHeaders::from_pairs([
            ("Host", &b"a"[..]),
            ("X-A", b"1"),
            ("x-a", b"2"),
            ("X-Bin", b"\xff"),
        ]);
        assert_eq!(h.len(), 4);
        assert_eq!(h.get("host"), Some(&b"a"[..]));
        assert_eq!(h.get_all("X-a").collect::<Vec<_>>(), vec![b"1", b"2"]);
        assert_eq!(h.get_str("x-bin"), None, "obs-text is not plain text");
        assert!(h.contains("HOST") && !h.contains("hos"));
        assert_eq!(h.get("x-bin"), Some(&b"\xff"[..]));
        let mut kept = h.clone();
        kept.retain(|n, _| !n.eq_ignore_ascii_case("x-a"));
        assert_eq!(
            kept.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            vec!["Host", "X-Bin"]
        );
    }

    #[test]
    fn offsets_point_into_the_parsed_buffer() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Y:  v w \r\n\r\n";
        let mut slots = [httparse::EMPTY_HEADER; 4];
        let mut req = httparse::Request::new(&mut slots);
        let n = match req.parse(raw) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("{other:?}"),
        };
        let offsets = Offsets::of(raw, req.headers);
        let h = RawHeaders::new(Bytes::copy_from_slice(&raw[..n]), offsets);
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            vec![("Host", &b"h"[..]), ("X-Y", b"v w")]
        );
    }
}
