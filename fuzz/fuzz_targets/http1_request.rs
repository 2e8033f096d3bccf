//! Any bytes a client can send the gateway's HTTP/1.1 server: the head parser and the body
//! decoders never panic, and they read the same bytes the same way however the network splits
//! them (a parser whose answer depends on packet boundaries is a request-smuggling parser).
//! An accepted head has at most one framing header, ends every line with CRLF, names no framing
//! header with `_`, carries a valid `host[:port]`, and a body never yields more than its length.
#![no_main]

use bytes::BytesMut;
use gateway::server::wire::{Decoded, Decoder, Framing, HostPort, parse_head};
use libfuzzer_sys::fuzz_target;

const MAX_HEAD: usize = 4096;

/// Decodes a body fed in pieces of `step` bytes: (data, finished, error, bytes left after it).
fn decode(framing: Framing, rest: &[u8], step: usize) -> (Vec<u8>, bool, bool, Vec<u8>) {
    let mut d = Decoder::new(framing);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    while fed < rest.len() {
        let end = (fed + step.max(1)).min(rest.len());
        buf.extend_from_slice(&rest[fed..end]);
        fed = end;
        loop {
            match d.decode(&mut buf) {
                Ok(Decoded::Data(b)) => out.extend_from_slice(&b),
                Ok(Decoded::NeedMore) => break,
                Ok(Decoded::Done) => {
                    let mut left = buf.to_vec();
                    left.extend_from_slice(&rest[fed..]);
                    return (out, true, false, left);
                }
                Err(_) => return (out, false, true, Vec::new()),
            }
        }
    }
    if d.is_done() {
        return (out, true, false, buf.to_vec());
    }
    (out, false, false, Vec::new())
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, raw)) = data.split_first() else {
        return;
    };
    let mut whole = BytesMut::from(raw);
    let parsed = parse_head(&mut whole, MAX_HEAD);

    // The same bytes in two reads.
    let k = (split as usize * raw.len()) / 256;
    let mut first = BytesMut::from(&raw[..k]);
    let incremental = match parse_head(&mut first, MAX_HEAD) {
        Ok(None) => {
            first.extend_from_slice(&raw[k..]);
            match parse_head(&mut first, MAX_HEAD) {
                Ok(h) => (Ok(h.map(|h| (h.framing, h.keep_alive))), first.len()),
                Err(e) => (Err(e), usize::MAX),
            }
        }
        Ok(Some(h)) => {
            first.extend_from_slice(&raw[k..]);
            (Ok(Some((h.framing, h.keep_alive))), first.len())
        }
        Err(e) => (Err(e), usize::MAX),
    };
    let whole_summary = (
        parsed
            .as_ref()
            .map(|h| h.as_ref().map(|h| (h.framing, h.keep_alive)))
            .map_err(|e| *e),
        if parsed.is_err() {
            usize::MAX
        } else {
            whole.len()
        },
    );
    assert_eq!(
        whole_summary, incremental,
        "the head parse depends on the split"
    );

    let Ok(Some(head)) = parsed else {
        return;
    };
    let h = &head.request.headers;
    assert!(h.get_all("transfer-encoding").count() + h.get_all("content-length").count() <= 1);
    let head_bytes = &raw[..raw.len() - whole.len()];
    for (i, _) in head_bytes.iter().enumerate().filter(|(_, b)| **b == b'\n') {
        assert!(i > 0 && head_bytes[i - 1] == b'\r', "a bare LF was accepted");
    }
    for (name, _) in h.iter() {
        let folded = name.to_ascii_lowercase().replace('_', "-");
        assert!(
            !(name.contains('_') && (folded == "content-length" || folded == "transfer-encoding")),
            "{name} was accepted"
        );
    }
    if let Some(host) = h.get("host") {
        assert!(HostPort::parse(host.trim_ascii()).is_some(), "a bad Host was accepted");
    }

    let rest = whole.to_vec();
    let at_once = decode(head.framing, &rest, rest.len());
    for step in [1, 2, 7, (split as usize % 13) + 1] {
        assert_eq!(
            decode(head.framing, &rest, step),
            at_once,
            "the body decode depends on the split"
        );
    }
    if let Framing::Length(n) = head.framing {
        assert!(at_once.0.len() as u64 <= n);
    }
    if head.framing == Framing::Empty {
        assert_eq!(at_once, (Vec::new(), true, false, rest));
    }
});
