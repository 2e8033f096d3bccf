//! One worker's accept loop and its connections.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt as _;
use http::{Method, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::wire::{self, Decoded, Decoder, Framing, ResponseFraming};
use super::{Config, Deadline, Handler, Request, Response, ResponseBody};

/// Connections alive on this worker. A stop sets `stopping` (read on the request path: a plain
/// flag, not a channel each idle wait would subscribe to) and shuts the read side of the idle
/// ones, which wakes them to close; the drain then waits for the count to reach zero.
struct Live {
    stopping: Cell<bool>,
    conns: RefCell<HashMap<u64, Weak<Conn>>>,
    next: Cell<u64>,
    count: Cell<usize>,
    zero: Notify,
}

impl Live {
    fn new() -> Self {
        Live {
            stopping: Cell::new(false),
            conns: RefCell::new(HashMap::new()),
            next: Cell::new(0),
            count: Cell::new(0),
            zero: Notify::new(),
        }
    }

    /// Counts a connection in until its guard drops.
    fn enter(self: &Rc<Self>) -> LiveGuard {
        self.count.set(self.count.get() + 1);
        let id = self.next.get();
        self.next.set(id + 1);
        LiveGuard(Rc::clone(self), id)
    }

    /// Stops: connections waiting for a request head are woken (their read side shut) and
    /// close; the others close after their answer.
    fn stop(&self) {
        self.stopping.set(true);
        for conn in self.conns.borrow().values().filter_map(Weak::upgrade) {
            if conn.idle.get() {
                let _ = socket2::SockRef::from(&conn.stream).shutdown(std::net::Shutdown::Read);
            }
        }
    }
}

struct LiveGuard(Rc<Live>, u64);

impl LiveGuard {
    fn register(&self, conn: &Rc<Conn>) {
        self.0
            .conns
            .borrow_mut()
            .insert(self.1, Rc::downgrade(conn));
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.conns.borrow_mut().remove(&self.1);
        let n = self.0.count.get() - 1;
        self.0.count.set(n);
        if n == 0 {
            self.0.zero.notify_waiters();
        }
    }
}

/// Accepts until stopped, then gives connections up to the shutdown timeout to finish.
pub(super) async fn worker<H: Handler>(
    listener: std::net::TcpListener,
    config: Config,
    handler: Rc<H>,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "a worker cannot use the listener");
            return;
        }
    };
    let config = Rc::new(config);
    let live = Rc::new(Live::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::task::spawn_local(serve(
                        stream,
                        peer,
                        Rc::clone(&handler),
                        Rc::clone(&config),
                        live.enter(),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    live.stop();
    let drained = async {
        while live.count.get() > 0 {
            let notified = live.zero.notified();
            if live.count.get() == 0 {
                break;
            }
            notified.await;
        }
    };
    let _ = tokio::time::timeout(config.shutdown_timeout, drained).await;
}

/// The current request's body, as the connection tracks it.
struct BodyState {
    seq: u64,
    decoder: Decoder,
    failed: bool,
    /// `HTTP/1.1 100 Continue` still to be sent (bytes already written).
    continue_pending: Option<usize>,
}

struct Conn {
    stream: TcpStream,
    buf: RefCell<BytesMut>,
    body: RefCell<BodyState>,
    /// Waiting for a request head with nothing read of it: a stop closes the connection.
    idle: Cell<bool>,
    /// For the keep-alive and request-head timeouts, and the handler's while it runs.
    deadline: Rc<Deadline>,
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// How much room a read of a request head wants (most heads fit; a larger one grows the buffer).
const READ_CHUNK: usize = 4 * 1024;
/// How much room a read of a request body wants.
const BODY_CHUNK: usize = 16 * 1024;

#[derive(Debug)]
enum HeadOutcome {
    Head(wire::Head),
    /// Closed, idle too long, or stopping: close quietly.
    Close,
    Refuse(StatusCode, &'static str),
}

async fn serve<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Rc<H>,
    config: Rc<Config>,
    live: LiveGuard,
) {
    let conn = Rc::new(Conn {
        stream,
        buf: RefCell::new(BytesMut::new()),
        body: RefCell::new(BodyState {
            seq: 0,
            decoder: Decoder::Length(0),
            failed: false,
            continue_pending: None,
        }),
        idle: Cell::new(false),
        deadline: Rc::new(Deadline::new()),
    });
    live.register(&conn);
    let stopping = &live.0.stopping;
    let mut seq = 0u64;
    loop {
        let head = match read_head(&conn, &config, stopping, seq == 0).await {
            HeadOutcome::Head(h) => h,
            HeadOutcome::Close => break,
            HeadOutcome::Refuse(status, detail) => {
                let res = handler.refused(status, detail);
                if Box::pin(write_response(&conn, &config, res, false, true))
                    .await
                    .is_ok()
                {
                    Box::pin(linger(&conn)).await;
                }
                break;
            }
        };
        seq += 1;
        // The exchange is boxed: an idle connection's task then holds only what waiting for
        // the next head needs.
        // (Its future is ~1.2 KiB: the handler's and the answer's futures in turn.)
        let exchange = exchange(&conn, head, seq, peer, &handler, &config, stopping);
        match Box::pin(exchange).await {
            Next::KeepAlive => {}
            Next::Close => {
                Box::pin(linger(&conn)).await;
                break;
            }
            Next::Gone => break,
        }
    }
    // A body stream still held elsewhere (an upload the upstream stopped reading) ends now: it
    // errors on its next poll, and a read it waits on is woken by the shutdown.
    conn.body.borrow_mut().seq = u64::MAX;
    if Rc::strong_count(&conn) > 1 {
        let _ = socket2::SockRef::from(&conn.stream).shutdown(std::net::Shutdown::Both);
    }
}

/// What a connection does after an exchange.
enum Next {
    /// Reads the next request.
    KeepAlive,
    /// Closes after the answer (which is written).
    Close,
    /// Closes now: the write failed, or an upgraded connection has ended.
    Gone,
}

/// After an answer that closes the connection, the client may still be sending (a body the
/// gateway refused, a head past the limit). Closing at once would make the kernel answer with a
/// reset, which can destroy the answer before the client reads it; instead the gateway stops
/// writing and discards what still arrives, for at most 2 s and 256 KiB (as nginx's lingering
/// close does).
async fn linger(conn: &Conn) {
    // A body stream the handler still holds must not take these bytes for its body.
    conn.body.borrow_mut().seq = u64::MAX;
    if socket2::SockRef::from(&conn.stream)
        .shutdown(std::net::Shutdown::Write)
        .is_err()
    {
        return;
    }
    let until = Instant::now() + std::time::Duration::from_secs(2);
    let mut scratch = vec![0u8; 16 * 1024];
    let mut discarded = 0usize;
    while discarded < 256 * 1024 {
        tokio::select! {
            ready = conn.stream.readable() => if ready.is_err() { return },
            () = tokio::time::sleep_until(until) => return,
        }
        match conn.stream.try_read(&mut scratch) {
            Ok(0) => return,
            Ok(n) => discarded += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// One request and its answer. The handler's future is made before anything is awaited and is
/// followed by the answer's (`then`): the two never coexist, and nothing is held twice, in the
/// future that is boxed for each request.
fn exchange<'a, H: Handler>(
    conn: &'a Rc<Conn>,
    head: wire::Head,
    seq: u64,
    peer: SocketAddr,
    handler: &'a Rc<H>,
    config: &'a Config,
    stopping: &'a Cell<bool>,
) -> impl Future<Output = Next> + 'a {
    let wire::Head {
        request: parts,
        framing,
        keep_alive,
        expects_continue,
    } = head;
    *conn.body.borrow_mut() = BodyState {
        seq,
        decoder: Decoder::new(framing),
        failed: false,
        continue_pending: expects_continue.then_some(0),
    };
    let is_head = parts.method == Method::HEAD;
    let http10 = parts.version == Version::HTTP_10;
    let body = RequestBody {
        conn: (framing != Framing::Empty).then(|| Rc::clone(conn)),
        seq,
    };
    let call = Rc::clone(handler).call(Request {
        head: parts,
        peer,
        body,
        deadline: Rc::clone(&conn.deadline),
    });
    let keep_alive = keep_alive && !http10;
    call.then(move |response| answer(conn, config, response, is_head, keep_alive, stopping))
}

/// Writes the handler's answer; after a `101`, hands the connection over.
async fn answer(
    conn: &Rc<Conn>,
    config: &Config,
    response: Response,
    is_head: bool,
    keep_alive: bool,
    stopping: &Cell<bool>,
) -> Next {
    if response.status == StatusCode::SWITCHING_PROTOCOLS
        && let Some(upgrade) = response.upgrade
    {
        let res = Response {
            upgrade: None,
            ..response
        };
        if write_response(conn, config, res, false, false)
            .await
            .is_ok()
        {
            upgrade(Upgraded {
                conn: Rc::clone(conn),
            })
            .await;
        }
        return Next::Gone;
    }
    let body_done = drain_buffered(conn);
    let close = !keep_alive || !body_done || stopping.get();
    match write_response(conn, config, response, is_head, close).await {
        Ok(false) if !close => Next::KeepAlive,
        Ok(_) => Next::Close,
        Err(_) => Next::Gone,
    }
}

/// True when the request body is complete, so the connection can carry on. A body the handler
/// dropped unread (a refusal) is consumed from what is already buffered; a body still being
/// streamed elsewhere is left alone (the connection then closes after the answer).
fn drain_buffered(conn: &Rc<Conn>) -> bool {
    let mut state = conn.body.borrow_mut();
    if state.decoder.is_done() {
        return true;
    }
    if state.failed || Rc::strong_count(conn) > 1 {
        return false;
    }
    let mut buf = conn.buf.borrow_mut();
    loop {
        match state.decoder.decode(&mut buf) {
            Ok(Decoded::Data(_)) => {}
            Ok(Decoded::Done) => return true,
            Ok(Decoded::NeedMore) | Err(_) => return false,
        }
    }
}

async fn read_head(
    conn: &Conn,
    config: &Config,
    stopping: &Cell<bool>,
    first: bool,
) -> HeadOutcome {
    // Until bytes of a head arrive: the keep-alive limit (a new connection gets the head's);
    // from then on, the time the head has to arrive whole.
    let idle_for = if first {
        config.request_timeout
    } else {
        config.keep_alive
    };
    let mut waiting_idle = false;
    let mut head_started = false;
    loop {
        {
            let mut buf = conn.buf.borrow_mut();
            if buf.is_empty() {
                if stopping.get() {
                    return HeadOutcome::Close;
                }
                // Idle: hold no buffer while waiting.
                if buf.capacity() > 0 {
                    *buf = BytesMut::new();
                }
                if !waiting_idle {
                    conn.deadline.set(Instant::now() + idle_for);
                    waiting_idle = true;
                }
            } else {
                match wire::parse_head(&mut buf, config.max_head) {
                    Ok(Some(h)) => return HeadOutcome::Head(h),
                    Ok(None) if !head_started => {
                        conn.deadline.set(Instant::now() + config.request_timeout);
                        head_started = true;
                    }
                    Ok(None) => {}
                    Err(e) => return HeadOutcome::Refuse(e.status(), e.detail()),
                }
            }
        }
        conn.idle.set(!head_started);
        // `poll_read_ready` keeps the waker in the socket's one reader slot; `readable()` would
        // link and unlink a waiter on each wait.
        let woken = poll_fn(|cx| match conn.stream.poll_read_ready(cx) {
            Poll::Ready(r) => Poll::Ready(Some(r.is_ok())),
            Poll::Pending => conn.deadline.poll_passed(cx).map(|()| None),
        })
        .await;
        conn.idle.set(false);
        match woken {
            Some(true) => {}
            Some(false) => return HeadOutcome::Close,
            None if head_started => {
                return HeadOutcome::Refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request head took too long",
                );
            }
            None => return HeadOutcome::Close,
        }
        let mut buf = conn.buf.borrow_mut();
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_CHUNK);
        }
        match read_some(&conn.stream, &mut buf) {
            Ok(0) => return HeadOutcome::Close,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return HeadOutcome::Close,
        }
    }
}

/// Reads what the socket holds into `buf`. A read shorter than the room it was offered means the
/// socket is drained for now: its readiness is cleared then, as an `EAGAIN` would clear it, which
/// saves the extra `recv` per request that would only learn that. (Readiness that arrived in the
/// meantime is not lost: tokio clears only the readiness event this read observed.)
pub(crate) fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let room = buf.capacity() - buf.len();
    let mut got = 0;
    let read = stream.try_io(tokio::io::Interest::READABLE, || {
        got = stream.try_read_buf(buf)?;
        if got > 0 && got < room {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(got)
        }
    });
    match read {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        other => other,
    }
}

/// Waits for the client to take more, at most the write timeout.
async fn writable(conn: &Conn, config: &Config) -> io::Result<()> {
    conn.deadline
        .within(Instant::now(), config.write_timeout, conn.stream.writable())
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

/// Writes `bytes` whole, waiting at most the write timeout for the client each time.
async fn write_all(conn: &Conn, config: &Config, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match conn.stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            // Boxed: the wait is rare for answers this size, and its state would otherwise
            // sit in every exchange's future.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                Box::pin(writable(conn, config)).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes `a` then `b` (one `writev` when the socket takes them).
async fn write_two(conn: &Conn, config: &Config, a: &[u8], b: &[u8]) -> io::Result<()> {
    loop {
        match conn
            .stream
            .try_write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)])
        {
            Ok(n) if n >= a.len() => return write_all(conn, config, &b[n - a.len()..]).await,
            Ok(n) => {
                write_all(conn, config, &a[n..]).await?;
                return write_all(conn, config, b).await;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                Box::pin(writable(conn, config)).await?;
            }
            Err(e) => return Err(e),
        }
    }
}

thread_local! {
    static DATE: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
}

/// `Date`, formatted once a second per worker (an IMF-fixdate is always 29 bytes).
fn date() -> [u8; 29] {
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let (at, text) = d.get();
        if at == secs {
            return text;
        }
        let mut text = [b' '; 29];
        let formatted = httpdate::fmt_http_date(now);
        let n = formatted.len().min(29);
        text[..n].copy_from_slice(&formatted.as_bytes()[..n]);
        d.set((secs, text));
        text
    })
}

/// Larger chunks than this are written from their own buffer rather than copied.
const COPY_LIMIT: usize = 16 * 1024;

/// Writes a response. Returns whether the connection must close (a streamed body failed or ends
/// with the connection). The head (and a small body) is put together before the first await, so
/// the future holds the bytes to write rather than the response.
fn write_response<'a>(
    conn: &'a Conn,
    config: &'a Config,
    res: Response,
    is_head: bool,
    close: bool,
) -> impl Future<Output = io::Result<bool>> + 'a {
    let status = res.status;
    let bodiless = is_head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let length = match &res.body {
        ResponseBody::Empty => Some(0),
        ResponseBody::Full(b) => Some(b.len() as u64),
        ResponseBody::Stream { len, .. } => *len,
    };
    let framing = match (bodiless, length) {
        (true, Some(n)) if is_head => ResponseFraming::Length(n),
        (true, _) => ResponseFraming::None,
        (false, Some(n)) => ResponseFraming::Length(n),
        (false, None) if close => ResponseFraming::UntilClose,
        (false, None) => ResponseFraming::Chunked,
    };
    // Room for a typical head and a body small enough to be copied in, so that neither grows
    // the buffer.
    let copied = match &res.body {
        ResponseBody::Full(b) if !bodiless && b.len() <= COPY_LIMIT => b.len(),
        _ => 0,
    };
    let mut out = BytesMut::with_capacity(512 + copied);
    let lines = wire::Lines {
        passthrough: res.passthrough.as_ref(),
        headers: &res.headers,
        last: res
            .request_id
            .as_deref()
            .map(|id| ("x-request-id", id.as_bytes())),
    };
    wire::write_head(&mut out, status, lines, framing, close, &date());
    enum Rest {
        Nothing,
        Apart(Bytes),
        Stream(super::LocalBody),
    }
    let rest = match res.body {
        _ if bodiless => Rest::Nothing,
        ResponseBody::Empty => Rest::Nothing,
        ResponseBody::Full(b) if b.len() <= COPY_LIMIT => {
            out.extend_from_slice(&b);
            Rest::Nothing
        }
        ResponseBody::Full(b) => Rest::Apart(b),
        ResponseBody::Stream { body, .. } => Rest::Stream(body),
    };
    async move {
        match rest {
            Rest::Nothing => write_all(conn, config, &out).await.map(|()| false),
            Rest::Apart(b) => write_two(conn, config, &out, &b).await.map(|()| false),
            // Boxed: streamed bodies are the rarer case, and their loop's state is the larger.
            Rest::Stream(body) => {
                Box::pin(write_stream(conn, config, out, body, framing, length)).await
            }
        }
    }
}

/// Writes a streamed body after its head (in `out`, not yet written).
async fn write_stream(
    conn: &Conn,
    config: &Config,
    mut out: BytesMut,
    mut body: super::LocalBody,
    framing: ResponseFraming,
    length: Option<u64>,
) -> io::Result<bool> {
    let chunked = framing == ResponseFraming::Chunked;
    let mut left = length;
    loop {
        // Gather what the body has ready; write when it has nothing more for now.
        let frame = poll_fn(|cx| match body.as_mut().poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(Step::Flush),
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(Step::End),
            Poll::Ready(Some(Err(_))) => Poll::Ready(Step::Failed),
            Poll::Ready(Some(Ok(f))) => Poll::Ready(match f.into_data() {
                Ok(d) => Step::Data(d),
                Err(_) => Step::Skip,
            }),
        })
        .await;
        match frame {
            Step::Flush => {
                write_all(conn, config, &out).await?;
                out.clear();
            }
            Step::Skip => {}
            Step::Data(d) if d.is_empty() => {}
            Step::Data(d) => {
                if let Some(l) = left.as_mut() {
                    // More than the length announced: the upstream broke its framing.
                    if d.len() as u64 > *l {
                        write_all(conn, config, &out).await?;
                        return Ok(true);
                    }
                    *l -= d.len() as u64;
                }
                if chunked {
                    wire::put_chunk_line(&mut out, d.len());
                }
                if d.len() <= COPY_LIMIT {
                    out.extend_from_slice(&d);
                } else {
                    write_two(conn, config, &out, &d).await?;
                    out.clear();
                }
                if chunked {
                    out.extend_from_slice(b"\r\n");
                }
            }
            Step::End => {
                if chunked {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                write_all(conn, config, &out).await?;
                // A body shorter than its announced length cannot be completed.
                return Ok(left.is_some_and(|l| l > 0) || framing == ResponseFraming::UntilClose);
            }
            Step::Failed => {
                // Whatever was written stays unfinished: the client sees a cut-off body, never a
                // complete-looking one.
                write_all(conn, config, &out).await?;
                return Ok(true);
            }
        }
    }
}

enum Step {
    Flush,
    Data(Bytes),
    Skip,
    End,
    Failed,
}

/// Why a request body could not be read.
#[derive(Debug)]
pub struct RequestBodyError(&'static str);

impl std::fmt::Display for RequestBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for RequestBodyError {}

impl RequestBodyError {
    /// True when the client's framing was malformed (rather than the connection lost).
    pub fn is_malformed(&self) -> bool {
        self.0 != LOST
    }
}

const LOST: &str = "the client's connection closed before the body ended";

/// A request body, read from the connection as it is polled.
pub struct RequestBody {
    conn: Option<Rc<Conn>>,
    seq: u64,
}

impl RequestBody {
    /// True when the request has no body.
    pub fn is_empty(&self) -> bool {
        self.conn.is_none()
    }
}

impl futures_util::Stream for RequestBody {
    type Item = Result<Bytes, RequestBodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let seq = self.seq;
        let Some(conn) = self.get_mut().conn.as_ref() else {
            return Poll::Ready(None);
        };
        loop {
            let mut state = conn.body.borrow_mut();
            if state.seq != seq {
                return Poll::Ready(Some(Err(RequestBodyError(LOST))));
            }
            if state.failed {
                return Poll::Ready(None);
            }
            if let Some(sent) = state.continue_pending {
                let rest = &CONTINUE[sent..];
                match conn.stream.try_write(rest) {
                    Ok(n) if n == rest.len() => state.continue_pending = None,
                    Ok(n) => state.continue_pending = Some(sent + n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if ready!(conn.stream.poll_write_ready(cx)).is_err() {
                            state.failed = true;
                            return Poll::Ready(Some(Err(RequestBodyError(LOST))));
                        }
                    }
                    Err(_) => {
                        state.failed = true;
                        return Poll::Ready(Some(Err(RequestBodyError(LOST))));
                    }
                }
                continue;
            }
            let mut buf = conn.buf.borrow_mut();
            match state.decoder.decode(&mut buf) {
                Ok(Decoded::Data(b)) => return Poll::Ready(Some(Ok(b))),
                Ok(Decoded::Done) => return Poll::Ready(None),
                Ok(Decoded::NeedMore) => {}
                Err(e) => {
                    state.failed = true;
                    return Poll::Ready(Some(Err(RequestBodyError(e.0))));
                }
            }
            if ready!(conn.stream.poll_read_ready(cx)).is_err() {
                state.failed = true;
                return Poll::Ready(Some(Err(RequestBodyError(LOST))));
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(BODY_CHUNK);
            }
            match read_some(&conn.stream, &mut buf) {
                Ok(0) => {
                    state.failed = true;
                    return Poll::Ready(Some(Err(RequestBodyError(LOST))));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    state.failed = true;
                    return Poll::Ready(Some(Err(RequestBodyError(LOST))));
                }
            }
        }
    }
}

/// The client's connection after a `101`: bytes already read come first.
pub struct Upgraded {
    conn: Rc<Conn>,
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let conn = &self.conn;
        {
            let mut buf = conn.buf.borrow_mut();
            if !buf.is_empty() {
                let n = buf.len().min(out.remaining());
                out.put_slice(&buf.split_to(n));
                return Poll::Ready(Ok(()));
            }
        }
        loop {
            ready!(conn.stream.poll_read_ready(cx))?;
            match conn.stream.try_read(out.initialize_unfilled()) {
                Ok(n) => {
                    out.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.conn.stream.poll_write_ready(cx))?;
            match self.conn.stream.try_write(data) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&self.conn.stream).shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Nothing;

    /// How much `/big` answers: more than loopback sockets buffer.
    const BIG: usize = 32 << 20;

    impl Handler for Nothing {
        async fn call(self: Rc<Self>, req: Request) -> Response {
            if req.head.uri.path() == "/big" {
                return Response::new(StatusCode::OK, ResponseBody::Full(vec![b'x'; BIG].into()));
            }
            Response::new(StatusCode::OK, ResponseBody::Empty)
        }
        fn refused(&self, status: StatusCode, _: &str) -> Response {
            Response::new(status, ResponseBody::Empty)
        }
    }

    /// Settings with every timeout `t`, one worker, 1 KiB heads.
    fn config(t: Duration) -> Config {
        Config {
            workers: 1,
            max_head: 1024,
            request_timeout: t,
            keep_alive: t,
            write_timeout: t,
            shutdown_timeout: t,
        }
    }

    /// A server answering 200 to everything, with every timeout `t`, and its address.
    fn server(t: Duration) -> (crate::server::Server, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = crate::server::Server::start(listener, config(t), || Rc::new(Nothing));
        (server.unwrap(), addr)
    }

    /// A connection to `addr` that has sent `bytes`.
    async fn sent(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
        use tokio::io::AsyncWriteExt as _;
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(bytes).await.unwrap();
        c
    }

    /// The head timeout and the keep-alive limit, with short settings: a partial head gets 408
    /// and the connection closes; an idle connection after an answer is closed quietly.
    #[tokio::test]
    async fn slow_heads_get_408_and_idle_connections_are_closed() {
        use tokio::io::AsyncReadExt as _;
        let (server, addr) = server(Duration::from_millis(300));
        let read_all = |mut s: tokio::net::TcpStream| async move {
            let mut out = Vec::new();
            let ended = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
                .await
                .is_ok();
            assert!(ended, "the server closes the connection within 5 s");
            String::from_utf8_lossy(&out).into_owned()
        };
        let slow = sent(addr, b"GET / HTTP/1.1\r\nHost: x\r\n").await;
        let answer = read_all(slow).await;
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
        assert!(answer.contains("connection: close"), "{answer:?}");

        let idle = sent(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let answer = read_all(idle).await;
        // One answer, then the connection ends (the client never sent another request).
        assert_eq!(answer.matches("HTTP/1.1 200 ").count(), 1, "{answer:?}");
        server.stopper().stop();
        server.stopped().await;
    }

    /// A client that stops reading an answer is given up on after the write timeout: the
    /// connection is closed with the answer unfinished.
    #[tokio::test]
    async fn a_client_that_does_not_read_is_dropped_after_the_write_timeout() {
        use tokio::io::AsyncReadExt as _;
        let (server, addr) = server(Duration::from_millis(300));
        let mut c = sent(addr, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match c.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += n,
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the server closed the connection");
        assert!(got > 0 && got < BIG, "an unfinished answer: {got} bytes");
        server.stopper().stop();
        server.stopped().await;
    }

    #[test]
    fn the_date_is_an_imf_fixdate_of_now() {
        let before = std::time::SystemTime::now();
        let text = date();
        let parsed = httpdate::parse_http_date(std::str::from_utf8(&text).unwrap()).unwrap();
        let after = std::time::SystemTime::now();
        assert!(text.ends_with(b" GMT"));
        assert!(parsed + Duration::from_secs(1) > before && parsed <= after);
    }

    /// A stop closes connections that wait for a request (after an answer, or before any) at
    /// once, not when their keep-alive runs out; the server then ends.
    #[tokio::test]
    async fn a_stop_closes_idle_connections_at_once() {
        use tokio::io::AsyncReadExt as _;
        let (server, addr) = server(Duration::from_secs(60));
        let mut used = sent(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut answer = [0u8; 256];
        let n = used.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200 "));
        let fresh = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.stopper().stop();
        for mut s in [used, fresh] {
            let mut rest = Vec::new();
            let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
                .await
                .is_ok_and(|r| r.is_ok());
            assert!(closed && rest.is_empty(), "closed quietly: {rest:?}");
        }
        tokio::time::timeout(Duration::from_secs(5), server.stopped())
            .await
            .expect("the server ends once its connections have");
    }

    /// What an idle keep-alive connection costs is its task (this future) plus the socket: the
    /// exchange and its buffers are boxed and exist only while a request is under way.
    #[tokio::test]
    async fn an_idle_connections_task_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let live = Rc::new(Live::new());
        let s = Duration::from_secs(1);
        let config = Rc::new(config(s));
        let task = serve(
            stream,
            "127.0.0.1:1".parse().unwrap(),
            Rc::new(Nothing),
            config,
            live.enter(),
        );
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1024, "a connection's task is {size} bytes");
    }
}
