//! HTTP/1.1 on the wire, as pure functions: the request head (parsed by `httparse`), how its body
//! is framed (RFC 9112 §6, refusing every ambiguity a request-smuggling attack relies on), the
//! chunked decoder, and the response head. No I/O here: the connection code feeds bytes in.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use http::header;
use http::{HeaderMap, Method, StatusCode, Uri, Version};

pub use super::headers::{Offsets, RawHeaders, visible_ascii};

/// Most headers a request may carry (more is answered 431).
pub const MAX_HEADERS: usize = 100;

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request head: method, target, version and the header lines as they came.
#[derive(Debug)]
pub struct RequestHead {
    /// Method.
    pub method: Method,
    /// Request target.
    pub uri: Uri,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: Version,
    /// Header lines, sharing the head's bytes.
    pub headers: RawHeaders,
}

/// A parsed request head and what the connection needs to know about it.
#[derive(Debug)]
pub struct Head {
    /// Method, target, version and headers.
    pub request: RequestHead,
    /// How the body is delimited.
    pub framing: Framing,
    /// The client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on a request with a body.
    pub expects_continue: bool,
}

/// Why a request head is refused; the connection is closed after the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// 400 with this reason.
    Malformed(&'static str),
    /// 431: the head is larger than allowed or has too many headers.
    TooLarge,
    /// 505.
    Version,
}

impl HeadError {
    /// The status this error is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            HeadError::Malformed(_) => StatusCode::BAD_REQUEST,
            HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HeadError::Version => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
        }
    }

    /// A short reason for the problem body.
    pub fn detail(self) -> &'static str {
        match self {
            HeadError::Malformed(why) => why,
            HeadError::TooLarge => "request headers are too large",
            HeadError::Version => "this HTTP version is not served here",
        }
    }
}

/// Parses a request head from the start of `buf`. `Ok(None)`: incomplete (read more, unless
/// `buf` already holds `max_head` bytes, which is [`HeadError::TooLarge`]). On success the head's
/// bytes are split off `buf`; the target and the header values share them.
pub fn parse_head(buf: &mut BytesMut, max_head: usize) -> Result<Option<Head>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= max_head => n,
        Ok(httparse::Status::Complete(_)) => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) if buf.len() >= max_head => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return Err(HeadError::Version),
        Err(_) => return Err(HeadError::Malformed("the request head is malformed")),
    };
    // httparse accepts a bare LF as a line end (RFC 9112 §2.2 allows it); an upstream or a
    // front proxy may not, so two parsers could disagree on where a line ends: refused.
    if memchr::memchr_iter(b'\n', &buf[..len]).any(|i| i == 0 || buf[i - 1] != b'\r') {
        return Err(HeadError::Malformed(
            "a line ends with a bare LF: lines end with CRLF",
        ));
    }
    for h in req.headers.iter() {
        if folds_to_framing(h.name.as_bytes()) {
            return Err(HeadError::Malformed(
                "a Content-Length or Transfer-Encoding name spelled with an underscore",
            ));
        }
    }
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| HeadError::Malformed("the method is not valid"))?;
    let (path_at, path_len) = offset(req.path.unwrap_or("").as_bytes());
    let version = if req.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let offsets = Offsets::of(buf, req.headers);
    let bytes = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(bytes.slice(path_at..path_at + path_len))
        .map_err(|_| HeadError::Malformed("the request target is not valid"))?;
    let headers = RawHeaders::new(bytes, offsets);
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1 (at most one in 1.0); two could be read
    // differently by the gateway and an upstream.
    match headers.get_all("host").count() {
        0 if version == Version::HTTP_11 => {
            return Err(HeadError::Malformed(
                "an HTTP/1.1 request needs a Host header",
            ));
        }
        0 | 1 => {}
        _ => return Err(HeadError::Malformed("more than one Host header")),
    }
    let host = match headers.get("host") {
        Some(v) => Some(HostPort::parse(trim_ows(v)).ok_or(HeadError::Malformed(
            "the Host header is not a valid host[:port]",
        ))?),
        None => None,
    };
    check_target(&uri, host)?;
    let framing = framing(&headers, version)?;
    let keep_alive = keep_alive(&headers, version);
    let expects_continue = framing != Framing::Empty
        && version == Version::HTTP_11
        && headers
            .get("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    Ok(Some(Head {
        request: RequestHead {
            method,
            uri,
            version,
            headers,
        },
        framing,
        keep_alive,
        expects_continue,
    }))
}

/// The body's framing (RFC 9112 §6.3), strictly: anything two parsers could read differently is
/// refused rather than resolved.
fn framing(headers: &RawHeaders, version: Version) -> Result<Framing, HeadError> {
    let mut te = headers.get_all("transfer-encoding");
    let mut cl = headers.get_all("content-length");
    match (te.next(), cl.next()) {
        (Some(_), Some(_)) => Err(HeadError::Malformed(
            "Content-Length and Transfer-Encoding together",
        )),
        (Some(_), None) if version == Version::HTTP_10 => Err(HeadError::Malformed(
            "Transfer-Encoding is not allowed before HTTP version 1.1",
        )),
        (Some(v), None) => {
            if te.next().is_some() {
                return Err(HeadError::Malformed(
                    "more than one Transfer-Encoding header",
                ));
            }
            if trim_ows(v).eq_ignore_ascii_case(b"chunked") {
                Ok(Framing::Chunked)
            } else {
                Err(HeadError::Malformed(
                    "only Transfer-Encoding: chunked is accepted",
                ))
            }
        }
        (None, Some(v)) => {
            if cl.next().is_some() {
                return Err(HeadError::Malformed("more than one Content-Length header"));
            }
            match content_length(v) {
                Some(0) => Ok(Framing::Empty),
                Some(n) => Ok(Framing::Length(n)),
                None => Err(HeadError::Malformed("the Content-Length is not valid")),
            }
        }
        (None, None) => Ok(Framing::Empty),
    }
}

/// A header name that an upstream folding case and `_` (as CGI-style servers do) would read as
/// `Content-Length` or `Transfer-Encoding`, though it is not spelled so: such a line would frame
/// the body for the upstream while the gateway framed it otherwise.
fn folds_to_framing(name: &[u8]) -> bool {
    let folds = |pattern: &[u8]| {
        name.len() == pattern.len()
            && name.contains(&b'_')
            && name.iter().zip(pattern).all(|(&c, &p)| {
                let c = c.to_ascii_lowercase();
                c == p || (c == b'_' && p == b'-')
            })
    };
    match name.len() {
        14 => folds(b"content-length"),
        17 => folds(b"transfer-encoding"),
        _ => false,
    }
}

/// A checked `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2–3.2.3), the form of `Host`,
/// an absolute-form target's authority and a trusted proxy's `X-Forwarded-Host`.
///
/// Stricter than RFC 3986 on purpose: a registered name is unreserved characters and
/// percent-escapes only (no sub-delims such as `,` or `;`, which no DNS name holds and which
/// upstreams may read as list or parameter separators), a port is 1 to 5 digits up to 65535
/// (not empty), and nothing is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort<'a> {
    /// The host as sent (compare without regard to case).
    pub host: &'a [u8],
    /// The port, when one is given.
    pub port: Option<u16>,
}

impl<'a> HostPort<'a> {
    /// Parses `uri-host [ ":" port ]`; `None` when it is not one.
    pub fn parse(v: &'a [u8]) -> Option<Self> {
        let (host, port) = if v.first() == Some(&b'[') {
            let close = v.iter().position(|&b| b == b']')?;
            let literal = std::str::from_utf8(&v[1..close]).ok()?;
            if !ip_literal(literal) {
                return None;
            }
            let rest = &v[close + 1..];
            let port = match rest {
                [] => None,
                [b':', port @ ..] => Some(port),
                _ => return None,
            };
            (&v[..=close], port)
        } else {
            let (host, port) = match v.iter().position(|&b| b == b':') {
                Some(i) => (&v[..i], Some(&v[i + 1..])),
                None => (v, None),
            };
            if host.is_empty() || !reg_name(host) {
                return None;
            }
            (host, port)
        };
        let port = match port {
            None => None,
            Some(p) if (1..=5).contains(&p.len()) && p.iter().all(u8::is_ascii_digit) => {
                let n = p.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
                Some(u16::try_from(n).ok()?)
            }
            Some(_) => return None,
        };
        Some(HostPort { host, port })
    }

    /// The same host and port, a missing port standing for `default_port`.
    pub fn same_as(&self, other: &HostPort<'_>, default_port: u16) -> bool {
        self.host.eq_ignore_ascii_case(other.host)
            && self.port.unwrap_or(default_port) == other.port.unwrap_or(default_port)
    }
}

/// RFC 3986 `reg-name` restricted to unreserved characters and percent-escapes (see
/// [`HostPort`]); IPv4 addresses are of this shape too.
fn reg_name(v: &[u8]) -> bool {
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'%' => {
                if i + 2 >= v.len()
                    || !v[i + 1].is_ascii_hexdigit()
                    || !v[i + 2].is_ascii_hexdigit()
                {
                    return false;
                }
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => i += 1,
            _ => return false,
        }
    }
    true
}

/// The inside of an RFC 3986 `IP-literal`: an IPv6 address or `IPvFuture`.
fn ip_literal(v: &str) -> bool {
    if let Some(future) = v.strip_prefix(['v', 'V']) {
        let Some((version, rest)) = future.split_once('.') else {
            return false;
        };
        return !version.is_empty()
            && version.bytes().all(|b| b.is_ascii_hexdigit())
            && !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:".contains(&b));
    }
    v.parse::<std::net::Ipv6Addr>().is_ok()
}

/// The request target must be origin-form, absolute-form (`http` or `https`, no userinfo, its
/// authority the same host and port as `Host`), or `*`. The gateway is not a forward proxy:
/// an absolute-form target naming another authority than `Host` would make the gateway and
/// whatever reads `Host` before or after it disagree about the host, so it is refused rather
/// than resolved (RFC 9112 §3.2.2 would let the target's authority win).
fn check_target(uri: &Uri, host: Option<HostPort<'_>>) -> Result<(), HeadError> {
    let Some(scheme) = uri.scheme_str() else {
        if uri.authority().is_some() {
            return Err(HeadError::Malformed(
                "an authority-form target (CONNECT) is not served here",
            ));
        }
        return Ok(());
    };
    let default_port = if scheme.eq_ignore_ascii_case("http") {
        80
    } else if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        return Err(HeadError::Malformed(
            "an absolute-form target must be http or https",
        ));
    };
    let authority = uri
        .authority()
        .map(http::uri::Authority::as_str)
        .unwrap_or("");
    if authority.contains('@') {
        return Err(HeadError::Malformed(
            "a request target must not carry userinfo",
        ));
    }
    let target = HostPort::parse(authority.as_bytes()).ok_or(HeadError::Malformed(
        "the request target's authority is not a valid host[:port]",
    ))?;
    match host {
        Some(h) if !h.same_as(&target, default_port) => Err(HeadError::Malformed(
            "the request target's authority and the Host header differ",
        )),
        _ => Ok(()),
    }
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !matches!(b, b' ' | b'\t'));
    let end = v.iter().rposition(|b| !matches!(b, b' ' | b'\t'));
    match (start, end) {
        (Some(s), Some(e)) => &v[s..=e],
        _ => &[],
    }
}

/// `1*DIGIT` (no sign, no list, no hex), at most 18 digits.
pub fn content_length(v: &[u8]) -> Option<u64> {
    let v = trim_ows(v);
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

fn keep_alive(headers: &RawHeaders, version: Version) -> bool {
    let has = |token: &[u8]| {
        headers.get_all("connection").any(|v| {
            v.split(|&b| b == b',')
                .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
        })
    };
    if version == Version::HTTP_10 {
        has(b"keep-alive")
    } else {
        !has(b"close")
    }
}

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ChunkError {}

/// Longest chunk-size line (size, extensions) and trailer section accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers(usize),
    Done,
}

/// What decoding produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// Everything buffered is consumed; read more.
    NeedMore,
    /// The body is complete.
    Done,
}

/// Decodes a request body of either framing from a connection's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// `Content-Length`: bytes left.
    Length(u64),
    /// Chunked.
    Chunked(ChunkState),
}

/// The chunked decoder's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkState(Chunk);

impl Decoder {
    /// The decoder for a framing.
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty => Decoder::Length(0),
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::Chunked(ChunkState(Chunk::Size)),
        }
    }

    /// True once the whole body has been read.
    pub fn is_done(&self) -> bool {
        matches!(
            self,
            Decoder::Length(0) | Decoder::Chunked(ChunkState(Chunk::Done))
        )
    }

    /// Takes the next piece of body from `buf` (consuming framing bytes as it goes).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        match self {
            Decoder::Length(0) => Ok(Decoded::Done),
            Decoder::Length(left) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                *left -= n as u64;
                Ok(Decoded::Data(buf.split_to(n).freeze()))
            }
            Decoder::Chunked(ChunkState(state)) => decode_chunked(state, buf),
        }
    }
}

fn line(buf: &BytesMut, limit: usize, what: &'static str) -> Result<Option<usize>, ChunkError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) if i > limit => Err(ChunkError(what)),
        Some(0) => Err(ChunkError("a bare LF in the chunked framing")),
        Some(i) if buf[i - 1] != b'\r' => Err(ChunkError("a bare LF in the chunked framing")),
        Some(i) => Ok(Some(i + 1)),
        None if buf.len() > limit => Err(ChunkError(what)),
        None => Ok(None),
    }
}

/// `chunk-size [ chunk-ext ]`: hex digits (at most 15: no overflow), then nothing or `;`-led
/// extensions (ignored) after optional whitespace. Anything else is refused.
fn chunk_size(line: &[u8]) -> Result<u64, ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkError("a chunk size is not hexadecimal"));
    }
    if digits > 15 {
        return Err(ChunkError("a chunk size is too large"));
    }
    let rest = &line[digits..];
    let after_ws = rest
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .map_or(&[][..], |i| &rest[i..]);
    if after_ws.first().is_some_and(|&b| b != b';') {
        return Err(ChunkError("a chunk size line is malformed"));
    }
    if after_ws
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(ChunkError("a chunk extension holds a control character"));
    }
    Ok(line[..digits].iter().fold(0u64, |n, d| {
        n * 16 + u64::from((*d as char).to_digit(16).unwrap_or(0))
    }))
}

fn decode_chunked(state: &mut Chunk, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
    loop {
        match *state {
            Chunk::Done => return Ok(Decoded::Done),
            Chunk::Size => {
                let Some(end) = line(buf, MAX_CHUNK_LINE, "a chunk size line is too long")? else {
                    return Ok(Decoded::NeedMore);
                };
                let size = chunk_size(&buf[..end - 2])?;
                buf.advance(end);
                *state = if size == 0 {
                    Chunk::Trailers(0)
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(left) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let left = left - n as u64;
                *state = if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                };
                return Ok(Decoded::Data(buf.split_to(n).freeze()));
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    if buf.first().is_some_and(|&b| b != b'\r') {
                        return Err(ChunkError("a chunk does not end with CRLF"));
                    }
                    return Ok(Decoded::NeedMore);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(ChunkError("a chunk does not end with CRLF"));
                }
                buf.advance(2);
                *state = Chunk::Size;
            }
            Chunk::Trailers(seen) => {
                let Some(end) = line(buf, MAX_TRAILERS - seen, "the trailers are too large")?
                else {
                    return Ok(Decoded::NeedMore);
                };
                let field = &buf[..end - 2];
                if field.is_empty() {
                    buf.advance(end);
                    *state = Chunk::Done;
                    return Ok(Decoded::Done);
                }
                // Trailers are read and dropped (never forwarded); they must still be fields.
                let colon = field.iter().position(|&b| b == b':');
                let valid = colon.is_some_and(|c| {
                    c > 0
                        && field[..c].iter().all(|&b| is_tchar(b))
                        && field[c + 1..]
                            .iter()
                            .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
                });
                if !valid {
                    return Err(ChunkError("a trailer field is malformed"));
                }
                buf.advance(end);
                *state = Chunk::Trailers(seen + end);
            }
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The header lines of a response, by source.
#[derive(Debug, Clone, Copy)]
pub struct Lines<'a> {
    /// Passed through from an upstream, written first, less any name set below.
    pub passthrough: Option<&'a RawHeaders>,
    /// Set by this server.
    pub headers: &'a HeaderMap,
    /// One more line set by this server, written last (the request id).
    pub last: Option<(&'a str, &'a [u8])>,
}

/// Writes a response head: status line, the header lines, then the framing and `Connection`
/// headers this server decides. `length`: `Some(n)` sets `Content-Length` (unless the status has
/// no body); `chunked` sets `Transfer-Encoding: chunked`.
pub fn write_head(
    out: &mut BytesMut,
    status: StatusCode,
    lines: Lines<'_>,
    framing: ResponseFraming,
    close: bool,
    date: &[u8],
) {
    let Lines {
        passthrough,
        headers,
        last,
    } = lines;
    out.reserve(256);
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.put_slice(b"\r\n");
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    let framing_header = |name: &str| {
        !upgrade
            && ["content-length", "transfer-encoding", "connection"]
                .iter()
                .any(|f| name.eq_ignore_ascii_case(f))
    };
    let set_here = |name: &str| {
        headers
            .keys()
            .any(|k| name.eq_ignore_ascii_case(k.as_str()))
            || last.is_some_and(|(l, _)| name.eq_ignore_ascii_case(l))
    };
    let mut dated = headers.contains_key(header::DATE);
    for (name, value) in passthrough.iter().flat_map(|p| p.iter()) {
        if framing_header(name) || set_here(name) {
            continue;
        }
        dated |= name.eq_ignore_ascii_case("date");
        put_line(out, name, value);
    }
    for (name, value) in headers {
        if !framing_header(name.as_str())
            && !last.is_some_and(|(l, _)| name.as_str().eq_ignore_ascii_case(l))
        {
            put_line(out, name.as_str(), value.as_bytes());
        }
    }
    if let Some((name, value)) = last {
        put_line(out, name, value);
    }
    if !dated {
        put_line(out, "date", date);
    }
    match framing {
        ResponseFraming::Length(n) => {
            out.put_slice(b"content-length: ");
            put_number(out, n, 10);
            out.put_slice(b"\r\n");
        }
        ResponseFraming::Chunked => out.put_slice(b"transfer-encoding: chunked\r\n"),
        ResponseFraming::None | ResponseFraming::UntilClose => {}
    }
    if close {
        out.put_slice(b"connection: close\r\n");
    }
    out.put_slice(b"\r\n");
}

/// Writes one `name: value` header line.
pub fn put_line(out: &mut BytesMut, name: &str, value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body and no framing header (1xx, 204, 304, or a HEAD answer without a length).
    None,
    /// `Content-Length`.
    Length(u64),
    /// Chunked (HTTP/1.1 clients).
    Chunked,
    /// Ends with the connection (HTTP/1.0 clients, unknown length).
    UntilClose,
}

/// Writes `n` in base 10 or 16 without allocating.
fn put_number(out: &mut BytesMut, mut n: u64, base: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[(n % base) as usize];
        n /= base;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[at..]);
}

/// Writes the chunk-size line for a chunk of `len` bytes.
pub fn put_chunk_line(out: &mut BytesMut, len: usize) {
    put_number(out, len as u64, 16);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Option<Head>, HeadError> {
        parse_head(&mut BytesMut::from(raw), 16 * 1024)
    }

    #[test]
    fn a_plain_head_parses_and_leaves_the_body_in_the_buffer() {
        let mut buf = BytesMut::from(
            "POST /a/b?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello",
        );
        let h = parse_head(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(h.request.method, Method::POST);
        assert_eq!(h.request.uri.path(), "/a/b");
        assert_eq!(h.request.uri.query(), Some("x=1"));
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.request.headers.get_all("x-a").count(), 2);
        assert_eq!(&buf[..], b"hello");
    }

    #[test]
    fn incomplete_heads_wait_and_oversized_ones_are_431() {
        assert!(head("GET / HTTP/1.1\r\nHost: h\r\n").unwrap().is_none());
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(100));
        assert_eq!(
            parse_head(&mut BytesMut::from(big.as_str()), 64).unwrap_err(),
            HeadError::TooLarge
        );
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            head(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(),
            HeadError::TooLarge
        );
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for bad in [
            "Content-Length: 5\r\nTransfer-Encoding: chunked",
            "Content-Length: 1\r\nContent-Length: 1",
            "Content-Length: 1, 1",
            "Content-Length: +1",
            "Content-Length: -1",
            "Content-Length: 0x1",
            "Content-Length: 1234567890123456789",
            "Content-Length: ",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            "Transfer-Encoding: gzip, chunked",
            "Transfer-Encoding: chunked, identity",
            "Transfer-Encoding: xchunked",
            "Transfer-Encoding : chunked",
            "X: a\r\n Transfer-Encoding: chunked",
            "X: a\0b",
        ] {
            let r = head(&format!("POST / HTTP/1.1\r\nHost: h\r\n{bad}\r\n\r\n"));
            assert!(
                matches!(r, Err(HeadError::Malformed(_))),
                "{bad:?} gave {r:?}"
            );
        }
        let r = head("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(r, Err(HeadError::Malformed(_))), "{r:?}");
        assert_eq!(
            head("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:  Chunked \r\n\r\n")
                .unwrap()
                .unwrap()
                .framing,
            Framing::Chunked
        );
    }

    #[test]
    fn http_1_1_needs_exactly_one_host() {
        for bad in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
        ] {
            assert!(matches!(head(bad), Err(HeadError::Malformed(_))), "{bad:?}");
        }
        assert!(head("GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn lines_end_with_crlf_and_a_bare_lf_anywhere_in_the_head_is_refused() {
        for bad in [
            "GET / HTTP/1.1\nHost: h\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\n\n",
            "GET / HTTP/1.1\nHost: h\n\n",
            "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\nContent-Length: 5\r\n\r\n",
            "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        ] {
            assert_eq!(
                head(bad).map(|h| h.map(|h| h.framing)),
                Err(HeadError::Malformed(
                    "a line ends with a bare LF: lines end with CRLF"
                )),
                "{bad:?}"
            );
        }
        // A request line split otherwise than by single spaces is refused too.
        for bad in [
            "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
            "GET\t/\tHTTP/1.1\r\nHost: h\r\n\r\n",
            " GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        ] {
            assert!(head(bad).is_err(), "{bad:?}");
        }
        // One empty line before the request line is tolerated (RFC 9112 §2.2), as a CRLF.
        assert!(
            head("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn framing_names_spelled_with_underscores_are_refused_in_any_case() {
        for name in [
            "Content_Length",
            "content_length",
            "CONTENT_LENGTH",
            "Transfer_Encoding",
            "transfer_encoding",
            "Transfer-Encoding_".trim_end_matches('_'),
        ]
        .into_iter()
        .filter(|n| n.contains('_'))
        {
            for value in ["5", "chunked"] {
                let r = head(&format!(
                    "POST / HTTP/1.1\r\nHost: h\r\n{name}: {value}\r\n\r\n"
                ));
                assert!(matches!(r, Err(HeadError::Malformed(_))), "{name}: {r:?}");
                let r = head(&format!(
                    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n{name}: {value}\r\n\r\n"
                ));
                assert!(matches!(r, Err(HeadError::Malformed(_))), "{name}: {r:?}");
            }
        }
        for fine in [
            "X_Custom",
            "Content-Type",
            "Content_Type",
            "Content-Length-X",
        ] {
            assert!(
                head(&format!("GET / HTTP/1.1\r\nHost: h\r\n{fine}: 1\r\n\r\n"))
                    .unwrap()
                    .is_some(),
                "{fine}"
            );
        }
        assert!(folds_to_framing(b"Content_Length") && folds_to_framing(b"TRANSFER_ENCODING"));
        assert!(!folds_to_framing(b"Content-Length") && !folds_to_framing(b"Content_Lengthx"));
    }

    #[test]
    fn host_is_a_valid_host_and_port_or_the_request_is_refused() {
        for good in [
            "example.com",
            "Example.COM:8080",
            "127.0.0.1",
            "127.0.0.1:65535",
            "localhost:1",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::7]:443",
            "[v1.fe80::a+en1]",
            "xn--bcher-kva.example",
            "under_score.local",
            "a%2Eb",
        ] {
            assert!(HostPort::parse(good.as_bytes()).is_some(), "{good}");
            assert!(
                head(&format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n"))
                    .unwrap()
                    .is_some(),
                "{good}"
            );
        }
        for bad in [
            "",
            " ",
            ":80",
            "example.com:",
            "example.com:http",
            "example.com:65536",
            "example.com:123456",
            "example.com:-1",
            "example.com:80:80",
            "a b",
            "a,b",
            "a;b",
            "evil.com/path",
            "evil.com?x",
            "evil.com#x",
            "user@evil.com",
            "evil.com\\x",
            "<script>",
            "[::1",
            "::1",
            "[::1]x",
            "[::1]:",
            "[not-an-ip]",
            "[::1%25eth0]",
            "a%zz",
            "a%4",
            "é.example",
        ] {
            assert!(HostPort::parse(bad.as_bytes()).is_none(), "{bad:?}");
            let r = head(&format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n"));
            assert!(matches!(r, Err(HeadError::Malformed(_))), "{bad:?}: {r:?}");
        }
        // HTTP/1.0 may leave Host out; when it sends one, it is checked all the same.
        assert!(head("GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
        assert!(head("GET / HTTP/1.0\r\nHost: a b\r\n\r\n").is_err());
    }

    #[test]
    fn an_absolute_form_target_must_name_the_host_it_is_sent_to() {
        let ok = |raw: &str| {
            let h = head(raw).unwrap().unwrap();
            h.request.uri.path().to_owned()
        };
        assert_eq!(
            ok("GET http://gw.example/a?b HTTP/1.1\r\nHost: gw.example\r\n\r\n"),
            "/a"
        );
        assert_eq!(
            ok("GET HTTP://GW.example:80/a HTTP/1.1\r\nHost: gw.example\r\n\r\n"),
            "/a"
        );
        assert_eq!(
            ok("GET https://gw.example/a HTTP/1.1\r\nHost: gw.example:443\r\n\r\n"),
            "/a"
        );
        assert_eq!(ok("GET http://gw.example/a HTTP/1.0\r\n\r\n"), "/a");
        for bad in [
            "GET http://evil.example/a HTTP/1.1\r\nHost: gw.example\r\n\r\n",
            "GET http://gw.example:8080/a HTTP/1.1\r\nHost: gw.example\r\n\r\n",
            "GET https://gw.example/a HTTP/1.1\r\nHost: gw.example:80\r\n\r\n",
            "GET ftp://gw.example/a HTTP/1.1\r\nHost: gw.example\r\n\r\n",
            "GET ws://gw.example/a HTTP/1.1\r\nHost: gw.example\r\n\r\n",
            "GET http://user@gw.example/a HTTP/1.1\r\nHost: gw.example\r\n\r\n",
            "GET http://a,b/a HTTP/1.1\r\nHost: gw.example\r\n\r\n",
            "CONNECT gw.example:443 HTTP/1.1\r\nHost: gw.example:443\r\n\r\n",
        ] {
            let r = head(bad);
            assert!(matches!(r, Err(HeadError::Malformed(_))), "{bad:?}: {r:?}");
        }
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_tokens() {
        let ka = |raw: &str| head(raw).unwrap().unwrap().keep_alive;
        assert!(ka("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert!(!ka(
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n"
        ));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }

    fn decode_all(framing: Framing, input: &[u8]) -> Result<(Vec<u8>, bool, usize), ChunkError> {
        let mut d = Decoder::new(framing);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => out.extend_from_slice(&b),
                Decoded::NeedMore => return Ok((out, false, buf.len())),
                Decoded::Done => return Ok((out, true, buf.len())),
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whole_and_byte_by_byte() {
        let raw = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        assert_eq!(
            decode_all(Framing::Chunked, raw).unwrap(),
            (b"hello world".to_vec(), true, 4)
        );
        let mut d = Decoder::new(Framing::Chunked);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in &raw[..raw.len() - 4] {
            buf.put_u8(b);
            while let Decoded::Data(x) = d.decode(&mut buf).unwrap() {
                out.extend_from_slice(&x);
            }
        }
        assert!(d.is_done());
        assert_eq!(out, b"hello world");
    }

    #[test]
    fn malformed_chunked_framing_is_an_error() {
        for bad in [
            &b"-5\r\nhello\r\n0\r\n\r\n"[..],
            b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"\r\n",
            b"0\r\nno colon\r\n\r\n",
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",
        ] {
            assert!(
                decode_all(Framing::Chunked, bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_LINE + 1));
        assert!(decode_all(Framing::Chunked, long.as_bytes()).is_err());
    }

    #[test]
    fn length_bodies_stop_at_their_length() {
        assert_eq!(
            decode_all(Framing::Length(3), b"abcdef").unwrap(),
            (b"abc".to_vec(), true, 3)
        );
        assert_eq!(
            decode_all(Framing::Length(9), b"abc").unwrap(),
            (b"abc".to_vec(), false, 0)
        );
    }

    #[test]
    fn response_heads_carry_the_framing_this_server_chose() {
        use http::HeaderValue;
        let mut out = BytesMut::new();
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        let lines = Lines {
            passthrough: None,
            headers: &h,
            last: None,
        };
        write_head(
            &mut out,
            StatusCode::OK,
            lines,
            ResponseFraming::Length(2),
            true,
            b"D",
        );
        assert_eq!(
            &out[..],
            b"HTTP/1.1 200 OK\r\nx-a: 1\r\ndate: D\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
        );
        // Passed-through lines keep their order and spelling; the server's own framing, and
        // any header this server sets itself, replace theirs; their Date is kept.
        let upstream = RawHeaders::from_pairs([
            ("Server", &b"up"[..]),
            ("X-A", b"upstream"),
            ("X-Request-Id", b"theirs"),
            ("Date", b"U"),
            ("Content-Length", b"7"),
            ("Connection", b"keep-alive"),
            ("Set-Cookie", b"a=1"),
            ("Set-Cookie", b"b=2"),
        ]);
        let mut ours = HeaderMap::new();
        ours.insert("x-a", HeaderValue::from_static("1"));
        let mut out = BytesMut::new();
        let lines = Lines {
            passthrough: Some(&upstream),
            headers: &ours,
            last: Some(("x-request-id", b"ours")),
        };
        write_head(
            &mut out,
            StatusCode::OK,
            lines,
            ResponseFraming::Length(2),
            false,
            b"D",
        );
        assert_eq!(
            &out[..],
            &b"HTTP/1.1 200 OK\r\nServer: up\r\nDate: U\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nx-a: 1\r\nx-request-id: ours\r\ncontent-length: 2\r\n\r\n"[..]
        );
        let mut line = BytesMut::new();
        put_chunk_line(&mut line, 0x1a2b);
        put_number(&mut line, 0, 10);
        put_number(&mut line, 18_446_744_073_709_551_615, 10);
        assert_eq!(&line[..], b"1a2b\r\n018446744073709551615");
    }
}
