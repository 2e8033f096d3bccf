//! The upstream client for the common case: a request without a body to a plain-http upstream.
//! It runs inside the request's own task on the worker (no connection task, channel or pool lock
//! between the request and its socket), keeps idle keep-alive connections per worker, and reads
//! answers with the same strict framing rules as the server ([`crate::server::wire`]). Requests
//! with bodies, https upstreams and WebSocket upgrades go through hyper's client.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes, BytesMut};
use http::{Method, StatusCode};
use http_body::{Frame, SizeHint};
use tokio::net::TcpStream;

use crate::server::wire::{self, Decoded, Decoder};
use crate::server::{BoxError, RawHeaders};

/// Idle connections kept per upstream, and for how long.
const MAX_IDLE: usize = 256;
const IDLE_FOR: Duration = Duration::from_secs(30);
/// Largest answer head accepted from an upstream.
const MAX_HEAD: usize = 64 * 1024;

/// Why an upstream exchange failed (answered 502 by the caller).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection could be made.
    #[error("connect: {0}")]
    Connect(io::Error),
    /// The connection failed mid-exchange.
    #[error("upstream connection: {0}")]
    Io(io::Error),
    /// The upstream closed before answering.
    #[error("the upstream closed the connection before answering")]
    Closed,
    /// The answer is not valid HTTP/1.1, or its framing is ambiguous.
    #[error("the upstream's answer is malformed: {0}")]
    Malformed(&'static str),
}

struct Idle {
    stream: TcpStream,
    since: Instant,
}

/// One worker's idle upstream connections, by authority.
pub struct Pool {
    idle: RefCell<HashMap<String, Vec<Idle>>>,
    connect_timeout: Duration,
    /// How often idle connections are checked (and closed when stale or closed by the upstream).
    sweep_every: Duration,
    sweeping: Cell<bool>,
}

impl Idle {
    /// Still usable: young enough, and nothing to read (a readable idle connection has been
    /// closed by the upstream, or carries bytes nobody asked for).
    fn usable(&self, now: Instant) -> bool {
        let mut probe = [0u8; 1];
        now.saturating_duration_since(self.since) <= IDLE_FOR
            && matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl Pool {
    /// An empty pool.
    pub fn new(connect_timeout: Duration) -> Rc<Pool> {
        Self::with_sweep(connect_timeout, IDLE_FOR / 3)
    }

    fn with_sweep(connect_timeout: Duration, sweep_every: Duration) -> Rc<Pool> {
        Rc::new(Pool {
            idle: RefCell::new(HashMap::new()),
            connect_timeout,
            sweep_every,
            sweeping: Cell::new(false),
        })
    }

    /// How many idle connections the pool holds.
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle.borrow().values().map(Vec::len).sum()
    }

    /// From the first connection kept on, a task on this worker closes idle connections that
    /// went stale or that the upstream closed, so they do not linger until the next request.
    fn sweep_later(self: &Rc<Self>) {
        if self.sweeping.replace(true) {
            return;
        }
        let pool = Rc::downgrade(self);
        let every = self.sweep_every;
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(pool) = pool.upgrade() else {
                    return;
                };
                let now = Instant::now();
                pool.idle.borrow_mut().retain(|_, list| {
                    list.retain(|c| c.usable(now));
                    !list.is_empty()
                });
            }
        });
    }

    /// The most recently used idle connection that is still open and quiet. `now`: the
    /// request's start (close enough for a 30 s limit, and one clock read fewer).
    fn checkout(&self, authority: &str, now: Instant) -> Option<TcpStream> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(authority)?;
        while let Some(c) = list.pop() {
            if now.saturating_duration_since(c.since) > IDLE_FOR {
                // Older ones are older still.
                list.clear();
                return None;
            }
            if c.usable(now) {
                return Some(c.stream);
            }
        }
        None
    }

    fn checkin(self: &Rc<Self>, authority: &str, stream: TcpStream, now: Instant) {
        self.sweep_later();
        let mut idle = self.idle.borrow_mut();
        // `get_mut` first: the authority is copied only the first time it is seen.
        let list = match idle.get_mut(authority) {
            Some(list) => list,
            None => idle.entry(authority.to_owned()).or_default(),
        };
        if list.len() >= MAX_IDLE {
            list.remove(0);
        }
        list.push(Idle { stream, since: now });
    }
}

/// An upstream's answer; its body reads from the connection as it is polled.
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers as received (the caller filters them).
    pub headers: RawHeaders,
    /// The body's length when known (for `HEAD`: the length a `GET` would have).
    pub len: Option<u64>,
    /// The body.
    pub body: Payload,
}

/// An answer's body: already read whole with the head (the common case of a small answer with a
/// `Content-Length`), or still to be read from the connection.
pub enum Payload {
    /// The whole body; the connection is already back in the pool.
    Whole(Bytes),
    /// Read as it is polled.
    Streamed(AnswerBody),
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A request head without a body for `authority` (`host[:port]`): the request line (the path
/// in pieces, and the query), `Host`, the lines `headers` writes (already filtered for
/// forwarding: no `Host`, framing or hop-by-hop headers), and `Content-Length: 0` for methods
/// that expect a body.
pub fn request_head(
    method: &Method,
    (path, query): ([&str; 2], Option<&str>),
    authority: &str,
    headers: impl FnOnce(&mut BytesMut),
) -> BytesMut {
    let mut head = BytesMut::with_capacity(1024);
    head.put_slice(method.as_str().as_bytes());
    head.put_u8(b' ');
    for piece in path {
        head.put_slice(piece.as_bytes());
    }
    if let Some(q) = query {
        head.put_u8(b'?');
        head.put_slice(q.as_bytes());
    }
    head.put_slice(b" HTTP/1.1\r\nhost: ");
    head.put_slice(authority.as_bytes());
    head.put_slice(b"\r\n");
    headers(&mut head);
    if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        head.put_slice(b"content-length: 0\r\n");
    }
    head.put_slice(b"\r\n");
    head
}

/// Sends `head` (from [`request_head`]: a request without a body) to `authority` (plain http)
/// and reads the answer head. `now` is the time the request started.
pub async fn send(
    pool: &Rc<Pool>,
    authority: &str,
    method: &Method,
    head: &[u8],
    now: Instant,
) -> Result<Answer, Error> {
    // A pooled connection may have been closed by the upstream just as it was reused: then the
    // request goes once more on a new connection, if nothing was answered and the method may be
    // repeated.
    let mut reused = pool.checkout(authority, now);
    loop {
        let fresh = reused.is_none();
        let stream = match reused.take() {
            Some(s) => s,
            None => Box::pin(connect(authority, pool.connect_timeout)).await?,
        };
        let outcome = match write_all(&stream, head).await {
            Ok(()) => read_answer(stream, method).await,
            Err(e) => Err(Error::Io(e)),
        };
        match outcome {
            Err(Error::Closed | Error::Io(_)) if !fresh && idempotent(method) => continue,
            Err(e) => return Err(e),
            Ok((answer, Some(stream))) => {
                // No body to read: the connection is free again now.
                pool.checkin(authority, stream, now);
                return Ok(answer);
            }
            Ok((mut answer, None)) => {
                if let Payload::Streamed(AnswerBody(Some(b))) = &mut answer.body {
                    b.pool = Some((Rc::clone(pool), authority.to_owned()));
                }
                return Ok(answer);
            }
        }
    }
}

async fn connect(authority: &str, timeout: Duration) -> Result<TcpStream, Error> {
    let target = if has_port(authority) {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let stream = tokio::time::timeout(timeout, TcpStream::connect(target))
        .await
        .map_err(|_| Error::Connect(io::ErrorKind::TimedOut.into()))?
        .map_err(Error::Connect)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn has_port(authority: &str) -> bool {
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    authority[host_end..].contains(':')
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads what the socket holds; `Ok(0)` is the end of the stream. A short read clears the
/// socket's readiness (see [`crate::server::read_some`]), so the quiet-connection check at
/// checkout costs no `recv` unless the upstream has written or closed since.
/// `chunk`: the room to make when less than 1 KiB is left (small for the head, which is
/// usually all there is; larger for a body being streamed).
fn read_some(stream: &TcpStream, buf: &mut BytesMut, chunk: usize) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(chunk);
    }
    crate::server::read_some(stream, buf)
}

/// Reads the answer head. With the answer, the connection when its body is already complete.
async fn read_answer(
    stream: TcpStream,
    method: &Method,
) -> Result<(Answer, Option<TcpStream>), Error> {
    let mut buf = BytesMut::new();
    loop {
        if !buf.is_empty() {
            match parse_answer(&mut buf, method)? {
                Some(Parsed::Interim) => continue,
                Some(Parsed::Head(status, headers, framing, keep_alive)) => {
                    let len = match framing {
                        _ if *method == Method::HEAD => {
                            headers.get("content-length").and_then(wire::content_length)
                        }
                        BodyFraming::Known(Decoder::Length(n)) => Some(n),
                        _ => None,
                    };
                    let answer = |body| Answer {
                        status,
                        headers,
                        len,
                        body,
                    };
                    // A body of known length that has already arrived with the head is taken
                    // whole: the connection is free at once, and the client's answer goes out
                    // in one write.
                    if let BodyFraming::Known(Decoder::Length(n)) = framing
                        && buf.len() as u64 >= n
                    {
                        let body = buf.split_to(buf.len().min(n as usize)).freeze();
                        let reusable = keep_alive && buf.is_empty();
                        return Ok((answer(Payload::Whole(body)), reusable.then_some(stream)));
                    }
                    return Ok((
                        answer(Payload::Streamed(AnswerBody(Some(Box::new(Reading {
                            stream,
                            buf,
                            framing,
                            keep_alive,
                            pool: None,
                        }))))),
                        None,
                    ));
                }
                None if buf.len() >= MAX_HEAD => {
                    return Err(Error::Malformed("the answer head is too large"));
                }
                None => {}
            }
        }
        std::future::poll_fn(|cx| stream.poll_read_ready(cx))
            .await
            .map_err(Error::Io)?;
        match read_some(&stream, &mut buf, 4 * 1024) {
            Ok(0) if buf.is_empty() => return Err(Error::Closed),
            Ok(0) => return Err(Error::Malformed("the answer head is cut short")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum BodyFraming {
    Known(Decoder),
    UntilClose,
}

enum Parsed {
    /// A 1xx answer, skipped.
    Interim,
    Head(StatusCode, RawHeaders, BodyFraming, bool),
}

fn parse_answer(buf: &mut BytesMut, method: &Method) -> Result<Option<Parsed>, Error> {
    let mut slots = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
    let mut res = httparse::Response::new(&mut slots);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Error::Malformed("the answer head is not HTTP/1.1")),
    };
    let code = res.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| Error::Malformed("the status is not valid"))?;
    let http10 = res.version == Some(0);
    let offsets = wire::Offsets::of(buf, res.headers);
    let bytes = buf.split_to(len).freeze();
    if status.is_informational() {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Error::Malformed("the upstream switched protocols unasked"));
        }
        return Ok(Some(Parsed::Interim));
    }
    let headers = RawHeaders::new(bytes, offsets);
    let close_listed = headers.get_all("connection").any(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    });
    let keep_alive = !http10 && !close_listed;
    let bodiless = *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = {
        let mut te = headers.get_all("transfer-encoding");
        let mut cl = headers.get_all("content-length");
        match (bodiless, te.next(), cl.next()) {
            (true, _, _) => BodyFraming::Known(Decoder::Length(0)),
            (false, Some(_), Some(_)) => {
                return Err(Error::Malformed(
                    "Content-Length and Transfer-Encoding together",
                ));
            }
            (false, Some(v), None) => {
                let last = v.rsplit(|&b| b == b',').next().unwrap_or(b"");
                if te.next().is_none() && last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    BodyFraming::Known(Decoder::new(wire::Framing::Chunked))
                } else {
                    BodyFraming::UntilClose
                }
            }
            (false, None, Some(v)) => {
                if cl.any(|o| o != v) {
                    return Err(Error::Malformed("Content-Length values differ"));
                }
                let n = wire::content_length(v)
                    .ok_or(Error::Malformed("the Content-Length is not valid"))?;
                BodyFraming::Known(Decoder::Length(n))
            }
            (false, None, None) => BodyFraming::UntilClose,
        }
    };
    let keep_alive = keep_alive && !matches!(framing, BodyFraming::UntilClose);
    Ok(Some(Parsed::Head(status, headers, framing, keep_alive)))
}

struct Reading {
    stream: TcpStream,
    buf: BytesMut,
    framing: BodyFraming,
    keep_alive: bool,
    /// Where the connection goes back when the body has been read whole.
    pool: Option<(Rc<Pool>, String)>,
}

/// An answer's body, read from the upstream connection as it is polled. Read whole, the
/// connection returns to the pool; dropped early, it is closed.
pub struct AnswerBody(Option<Box<Reading>>);

impl http_body::Body for AnswerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(r) = this.0.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut r.framing {
                BodyFraming::Known(d) => match d.decode(&mut r.buf) {
                    Ok(Decoded::Data(b)) => return Poll::Ready(Some(Ok(Frame::data(b)))),
                    Ok(Decoded::Done) => {
                        if let Some(r) = this.0.take()
                            && r.keep_alive
                            && r.buf.is_empty()
                            && let Some((pool, authority)) = r.pool
                        {
                            pool.checkin(&authority, r.stream, Instant::now());
                        }
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::NeedMore) => {}
                    Err(e) => {
                        this.0 = None;
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                },
                BodyFraming::UntilClose if !r.buf.is_empty() => {
                    let b = r.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                BodyFraming::UntilClose => {}
            }
            if let Err(e) = ready!(r.stream.poll_read_ready(cx)) {
                this.0 = None;
                return Poll::Ready(Some(Err(Box::new(e))));
            }
            match read_some(&r.stream, &mut r.buf, 16 * 1024) {
                Ok(0) => {
                    let until_close = matches!(r.framing, BodyFraming::UntilClose);
                    this.0 = None;
                    return Poll::Ready(if until_close {
                        None
                    } else {
                        Some(Err("the upstream closed the connection mid-body".into()))
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    this.0 = None;
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.0.as_ref().map(|r| r.framing) {
            None => SizeHint::with_exact(0),
            Some(BodyFraming::Known(Decoder::Length(n))) => SizeHint::with_exact(n),
            Some(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, method: &Method) -> Result<Option<Parsed>, Error> {
        parse_answer(&mut BytesMut::from(raw), method)
    }

    fn framing(raw: &str) -> (BodyFraming, bool) {
        match parse(raw, &Method::GET) {
            Ok(Some(Parsed::Head(_, _, f, ka))) => (f, ka),
            other => panic!("{raw:?}: {:?}", other.err()),
        }
    }

    #[test]
    fn answers_are_framed_strictly() {
        assert!(matches!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            (BodyFraming::Known(Decoder::Length(2)), true)
        ));
        assert!(matches!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            (BodyFraming::Known(Decoder::Chunked(_)), true)
        ));
        assert!(matches!(
            framing("HTTP/1.1 200 OK\r\n\r\n"),
            (BodyFraming::UntilClose, false)
        ));
        assert!(matches!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n"),
            (BodyFraming::Known(Decoder::Length(1)), false)
        ));
        assert!(matches!(
            framing("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"),
            (_, false)
        ));
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
            "HTTTP/1.1 200 OK\r\n\r\n",
        ] {
            assert!(parse(bad, &Method::GET).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn head_and_bodiless_statuses_have_no_body_and_interim_answers_are_skipped() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
        assert!(matches!(
            parse(raw, &Method::HEAD),
            Ok(Some(Parsed::Head(
                _,
                _,
                BodyFraming::Known(Decoder::Length(0)),
                true
            )))
        ));
        assert!(matches!(
            parse("HTTP/1.1 304 Not Modified\r\n\r\n", &Method::GET),
            Ok(Some(Parsed::Head(
                _,
                _,
                BodyFraming::Known(Decoder::Length(0)),
                true
            )))
        ));
        let mut buf =
            BytesMut::from("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
        assert!(matches!(
            parse_answer(&mut buf, &Method::GET),
            Ok(Some(Parsed::Interim))
        ));
        assert!(matches!(
            parse_answer(&mut buf, &Method::GET),
            Ok(Some(Parsed::Head(StatusCode::NO_CONTENT, ..)))
        ));
    }

    #[tokio::test]
    async fn the_sweeper_closes_idle_connections_the_upstream_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let pool = Pool::with_sweep(Duration::from_secs(1), Duration::from_millis(20));
                let kept = TcpStream::connect(&addr).await.unwrap();
                let (_kept_peer, _) = listener.accept().await.unwrap();
                let dropped = TcpStream::connect(&addr).await.unwrap();
                let (dropped_peer, _) = listener.accept().await.unwrap();
                pool.checkin(&addr, kept, Instant::now());
                pool.checkin(&addr, dropped, Instant::now());
                assert_eq!(pool.idle_count(), 2);
                drop(dropped_peer);
                for _ in 0..100 {
                    if pool.idle_count() == 1 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert_eq!(pool.idle_count(), 1, "the closed connection is swept");
                assert!(
                    pool.checkout(&addr, Instant::now()).is_some(),
                    "the open one is kept"
                );
            })
            .await;
    }

    #[test]
    fn an_authority_without_a_port_gets_80() {
        assert!(has_port("a:8080"));
        assert!(has_port("[::1]:8080"));
        assert!(!has_port("[::1]"));
        assert!(!has_port("upstream"));
    }
}
