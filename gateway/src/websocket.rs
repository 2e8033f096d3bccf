//! WebSocket upgrades on routes that allow them: the gateway connects upstream first (with the
//! verified identity headers), then completes the client's handshake and relays frames both ways.
//! Relaying frames rather than raw bytes lets the gateway end the connection itself: when the
//! token that opened it expires or is revoked, both sides get a policy-violation close.

use std::time::Duration;

use actix_http::ws::{CloseCode, CloseReason, Codec, Frame, Message};
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use http::header;

use crate::server::wire::visible_ascii;
use crate::server::{RequestHead, Response, ResponseBody, Upgraded};
use crate::upstream;

/// True for `Upgrade: websocket` requests.
pub fn is_upgrade(req: &RequestHead) -> bool {
    req.headers
        .get_str("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Why an upgrade was not relayed.
#[derive(Debug)]
pub enum Failure {
    /// The client's handshake is not a valid WebSocket opening (400).
    Handshake(&'static str),
    /// The upstream could not be reached or refused (502).
    Upstream(String),
}

/// The client's `Sec-WebSocket-Key` if its handshake is valid (RFC 6455 §4.2.1).
fn client_key(req: &RequestHead) -> Result<&[u8], Failure> {
    if req.method != http::Method::GET || req.version != http::Version::HTTP_11 {
        return Err(Failure::Handshake(
            "a WebSocket handshake is a GET over HTTP/1.1",
        ));
    }
    let upgrade_listed = req.headers.get_all("connection").any(|v| {
        visible_ascii(v).is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
    });
    if !upgrade_listed {
        return Err(Failure::Handshake("Connection must list upgrade"));
    }
    if req.headers.get("sec-websocket-version") != Some(b"13") {
        return Err(Failure::Handshake("Sec-WebSocket-Version must be 13"));
    }
    let key = req
        .headers
        .get("sec-websocket-key")
        .map(<[u8]>::trim_ascii)
        .ok_or(Failure::Handshake("Sec-WebSocket-Key is missing"))?;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => Ok(key),
        _ => Err(Failure::Handshake("Sec-WebSocket-Key is not valid")),
    }
}

/// What a relayed connection watches for: its token revoked, or the key that signed it.
pub struct Watch {
    /// The revocation replica.
    pub list: std::sync::Arc<shared::RevocationReplica>,
    /// The connection's verified identity.
    pub identity: std::sync::Arc<crate::forwarding::ForwardedIdentity>,
    /// The key cache, and the `kid` that signed the token.
    pub keys: std::sync::Arc<shared::KeyCache>,
    /// The token's `kid`.
    pub kid: Option<String>,
}

impl Watch {
    fn revoked(&self) -> bool {
        self.list.covers(&self.identity.claims)
            || self
                .kid
                .as_deref()
                .is_some_and(|k| self.keys.is_revoked_key(k))
    }
}

/// What the relay needs to know.
pub struct Relay {
    /// Upstream URL (`http(s)://…`).
    pub url: String,
    /// Headers for the upstream handshake (already filtered by the forwarding rules).
    pub headers: http::HeaderMap,
    /// Close the connection at this time (token `exp` + leeway), seconds since the epoch.
    pub close_at: Option<i64>,
    /// Close the connection when the revocation list comes to cover this identity's token.
    pub watch: Option<Watch>,
    /// Timeout for the upstream handshake.
    pub timeout: Duration,
}

/// Checks the client's handshake, opens the upstream connection (an HTTP/1.1 upgrade through
/// the pooled client), then answers the client's upgrade; frames are relayed on the connection.
pub async fn proxy(
    req: &RequestHead,
    client: &upstream::Client,
    relay: Relay,
) -> Result<Response, Failure> {
    let client_accept = actix_http::ws::hash_key(client_key(req)?);
    let protocols: Vec<String> = req
        .headers
        .get_all("sec-websocket-protocol")
        .filter_map(visible_ascii)
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let mut nonce = [0u8; 16];
    aws_lc_rs::rand::fill(&mut nonce)
        .map_err(|_| Failure::Upstream("no randomness for a WebSocket key".to_owned()))?;
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let mut builder = hyper::Request::builder()
        .method(http::Method::GET)
        .uri(relay.url.as_str());
    if let Some(h) = builder.headers_mut() {
        for (name, value) in &relay.headers {
            if !name.as_str().starts_with("sec-websocket-") {
                h.append(name.clone(), value.clone());
            }
        }
        h.insert(
            header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
        h.insert(header::UPGRADE, http::HeaderValue::from_static("websocket"));
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            http::HeaderValue::from_static("13"),
        );
        if let Ok(k) = http::HeaderValue::from_str(&key) {
            h.insert(header::SEC_WEBSOCKET_KEY, k);
        }
        if !protocols.is_empty()
            && let Ok(p) = http::HeaderValue::from_str(&protocols.join(", "))
        {
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
        }
    }
    let up = |m: String| Failure::Upstream(m);
    let request = builder
        .body(upstream::empty())
        .map_err(|e| up(format!("upstream WebSocket request: {e}")))?;
    let response = match tokio::time::timeout(relay.timeout, client.request(request)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(up(format!("upstream WebSocket handshake failed: {e}"))),
        Err(_) => return Err(up("upstream WebSocket handshake timed out".into())),
    };
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(up(format!(
            "upstream answered the WebSocket handshake with {}",
            response.status()
        )));
    }
    let expected = actix_http::ws::hash_key(key.as_bytes());
    if response
        .headers()
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .map(|v| v.as_bytes())
        != Some(&expected[..])
    {
        return Err(up("upstream sent a wrong Sec-WebSocket-Accept".into()));
    }
    // The upstream may only pick a protocol the client offered.
    let chosen = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .filter(|p| protocols.iter().any(|o| o == p))
        .map(str::to_owned);
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| up(format!("upstream upgrade: {e}")))?;
    let upstream = actix_codec::Framed::new(
        hyper_util::rt::TokioIo::new(upgraded),
        Codec::new().client_mode(),
    );
    let mut res = Response::new(http::StatusCode::SWITCHING_PROTOCOLS, ResponseBody::Empty);
    res.headers
        .insert(header::UPGRADE, http::HeaderValue::from_static("websocket"));
    res.headers.insert(
        header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = http::HeaderValue::from_bytes(&client_accept) {
        res.headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = chosen.and_then(|p| http::HeaderValue::from_str(&p).ok()) {
        res.headers.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    res.upgrade = Some(Box::new(move |io: Upgraded| {
        Box::pin(relay_frames(io, upstream, relay))
    }));
    Ok(res)
}

/// A frame received, as the message that forwards it; `None` for a close (handled apart).
fn forward(frame: Frame) -> Result<Option<Message>, CloseCode> {
    Ok(Some(match frame {
        Frame::Text(b) => match bytestring::ByteString::try_from(b) {
            Ok(text) => Message::Text(text),
            Err(_) => return Err(CloseCode::Invalid),
        },
        Frame::Binary(b) => Message::Binary(b),
        Frame::Ping(b) => Message::Ping(b),
        Frame::Pong(b) => Message::Pong(b),
        Frame::Continuation(i) => Message::Continuation(i),
        Frame::Close(_) => return Ok(None),
    }))
}

/// Passes one frame that one side sent (`back` answers that side) to the other side (`to`).
/// False when the relay is over: a close is passed on and answered, and a broken or invalid
/// side ends both (1002 or 1007 to the side at fault, 1001 to the other).
async fn pass<T, B>(
    frame: Option<Result<Frame, actix_http::ws::ProtocolError>>,
    to: &mut T,
    back: &mut B,
) -> bool
where
    T: futures_util::Sink<Message> + Unpin,
    B: futures_util::Sink<Message> + Unpin,
{
    let away = || Message::Close(Some(CloseCode::Away.into()));
    let fault = match frame {
        Some(Ok(Frame::Close(reason))) => {
            let _ = to.send(Message::Close(reason.clone())).await;
            let _ = back.send(Message::Close(reason)).await;
            return false;
        }
        Some(Ok(f)) => match forward(f) {
            Ok(Some(m)) => {
                if to.send(m).await.is_ok() {
                    return true;
                }
                let _ = back.send(away()).await;
                return false;
            }
            Ok(None) => return true,
            Err(code) => Some(code),
        },
        Some(Err(_)) => Some(CloseCode::Protocol),
        None => None,
    };
    if let Some(code) = fault {
        let _ = back.send(Message::Close(Some(code.into()))).await;
    }
    let _ = to.send(away()).await;
    false
}

async fn relay_frames<U>(io: Upgraded, upstream: actix_codec::Framed<U, Codec>, relay: Relay)
where
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let client = actix_codec::Framed::new(io, Codec::new());
    let (mut to_client, mut from_client) = client.split();
    let (mut to_up, mut from_up) = upstream.split();
    let close_in = relay
        .close_at
        .map(|at| Duration::from_secs(u64::try_from(at - shared::unix_now()).unwrap_or(0)));
    let expiry = async {
        match close_in {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expiry);
    let revoked = async {
        match relay.watch {
            Some(watch) => {
                let mut changes = watch.list.changes();
                while !watch.revoked() {
                    if changes.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(revoked);
    let close = |code: CloseCode, why: &str| {
        Message::Close(Some(CloseReason {
            code,
            description: Some(why.to_owned()),
        }))
    };
    loop {
        tokio::select! {
            frame = from_client.next() => if !pass(frame, &mut to_up, &mut to_client).await {
                break;
            },
            frame = from_up.next() => if !pass(frame, &mut to_client, &mut to_up).await {
                break;
            },
            () = &mut revoked => {
                let _ = to_up.send(close(CloseCode::Policy, "token revoked")).await;
                let _ = to_client.send(close(CloseCode::Policy, "token revoked")).await;
                break;
            }
            () = &mut expiry => {
                let _ = to_up.send(close(CloseCode::Policy, "token expired")).await;
                let _ = to_client.send(close(CloseCode::Policy, "token expired")).await;
                break;
            }
        }
    }
    let _ = to_client.close().await;
    let _ = to_up.close().await;
}
