//! WebSocket upgrades on routes that allow them: the gateway connects upstream first (with the
//! verified identity headers), then completes the client's handshake and relays frames both ways.
//! Relaying frames rather than raw bytes lets the gateway end the connection itself: when the
//! token that opened it expires or is revoked, both sides get a policy-violation close.

use std::time::Duration;

use actix_http::ws::{CloseCode, CloseReason, Codec, Frame, Message as UpMessage};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};

use crate::upstream;

/// True for `Upgrade: websocket` requests.
pub fn is_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
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
    pub watch: Option<(
        std::sync::Arc<crate::revocation::Revocations>,
        std::sync::Arc<crate::forwarding::Identity>,
    )>,
    /// Timeout for the upstream handshake.
    pub timeout: Duration,
}

/// Opens the upstream connection (an HTTP/1.1 upgrade through the pooled client), answers the
/// client's upgrade, and relays frames.
pub async fn proxy(
    req: &HttpRequest,
    payload: web::Payload,
    client: &upstream::Client,
    relay: Relay,
) -> Result<HttpResponse, String> {
    let protocols: Vec<String> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let mut nonce = [0u8; 16];
    aws_lc_rs::rand::fill(&mut nonce)
        .map_err(|_| "no randomness for a WebSocket key".to_owned())?;
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
            http::header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
        h.insert(
            http::header::UPGRADE,
            http::HeaderValue::from_static("websocket"),
        );
        h.insert(
            http::header::SEC_WEBSOCKET_VERSION,
            http::HeaderValue::from_static("13"),
        );
        if let Ok(k) = http::HeaderValue::from_str(&key) {
            h.insert(http::header::SEC_WEBSOCKET_KEY, k);
        }
        if !protocols.is_empty()
            && let Ok(p) = http::HeaderValue::from_str(&protocols.join(", "))
        {
            h.insert(http::header::SEC_WEBSOCKET_PROTOCOL, p);
        }
    }
    let request = builder
        .body(upstream::empty())
        .map_err(|e| format!("upstream WebSocket request: {e}"))?;
    let response = match tokio::time::timeout(relay.timeout, client.request(request)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(format!("upstream WebSocket handshake failed: {e}")),
        Err(_) => return Err("upstream WebSocket handshake timed out".into()),
    };
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(format!(
            "upstream answered the WebSocket handshake with {}",
            response.status()
        ));
    }
    let expected = actix_http::ws::hash_key(key.as_bytes());
    if response
        .headers()
        .get(http::header::SEC_WEBSOCKET_ACCEPT)
        .map(|v| v.as_bytes())
        != Some(&expected[..])
    {
        return Err("upstream sent a wrong Sec-WebSocket-Accept".into());
    }
    let chosen = response
        .headers()
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| format!("upstream upgrade: {e}"))?;
    let framed = actix_codec::Framed::new(
        hyper_util::rt::TokioIo::new(upgraded),
        Codec::new().client_mode(),
    );
    let offered: Vec<&str> = chosen.as_deref().into_iter().collect();
    let (res, mut session, mut from_client) =
        actix_ws::handle_with_protocols(req, payload, &offered)
            .map_err(|e| format!("client handshake: {e}"))?;
    let (mut to_up, mut from_up) = framed.split();
    let close_in = relay
        .close_at
        .map(|at| Duration::from_secs(u64::try_from(at - shared::unix_now()).unwrap_or(0)));
    actix_web::rt::spawn(async move {
        let expiry = async {
            match close_in {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expiry);
        let revoked = async {
            match relay.watch {
                Some((list, identity)) => {
                    let mut changes = list.changes();
                    while !list.covers(&identity.claims) {
                        if changes.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::pin!(revoked);
        loop {
            tokio::select! {
                msg = from_client.recv() => {
                    let forwarded = match msg {
                        Some(Ok(actix_ws::Message::Text(t))) => to_up.send(UpMessage::Text(t)).await,
                        Some(Ok(actix_ws::Message::Binary(b))) => to_up.send(UpMessage::Binary(b)).await,
                        Some(Ok(actix_ws::Message::Ping(b))) => to_up.send(UpMessage::Ping(b)).await,
                        Some(Ok(actix_ws::Message::Pong(b))) => to_up.send(UpMessage::Pong(b)).await,
                        Some(Ok(actix_ws::Message::Continuation(i))) => to_up.send(UpMessage::Continuation(i)).await,
                        Some(Ok(actix_ws::Message::Nop)) => Ok(()),
                        Some(Ok(actix_ws::Message::Close(reason))) => {
                            let _ = to_up.send(UpMessage::Close(reason)).await;
                            break;
                        }
                        Some(Err(_)) | None => {
                            let _ = to_up.send(UpMessage::Close(None)).await;
                            break;
                        }
                    };
                    if forwarded.is_err() {
                        let _ = session.close(Some(CloseCode::Away.into())).await;
                        break;
                    }
                }
                frame = from_up.next() => {
                    let delivered = match frame {
                        Some(Ok(Frame::Text(b))) => match bytestring::ByteString::try_from(b) {
                            Ok(text) => session.text(text).await,
                            Err(_) => {
                                let _ = session.close(Some(CloseCode::Invalid.into())).await;
                                break;
                            }
                        },
                        Some(Ok(Frame::Binary(b))) => session.binary(b).await,
                        Some(Ok(Frame::Ping(b))) => session.ping(&b).await,
                        Some(Ok(Frame::Pong(b))) => session.pong(&b).await,
                        Some(Ok(Frame::Continuation(i))) => session.continuation(i).await,
                        Some(Ok(Frame::Close(reason))) => {
                            let _ = session.close(reason).await;
                            break;
                        }
                        Some(Err(_)) | None => {
                            let _ = session.close(Some(CloseCode::Away.into())).await;
                            break;
                        }
                    };
                    if delivered.is_err() {
                        let _ = to_up.send(UpMessage::Close(Some(CloseCode::Away.into()))).await;
                        break;
                    }
                }
                () = &mut revoked => {
                    let reason = CloseReason { code: CloseCode::Policy, description: Some("token revoked".into()) };
                    let _ = to_up.send(UpMessage::Close(Some(reason.clone()))).await;
                    let _ = session.close(Some(reason)).await;
                    break;
                }
                () = &mut expiry => {
                    let reason = CloseReason { code: CloseCode::Policy, description: Some("token expired".into()) };
                    let _ = to_up.send(UpMessage::Close(Some(reason.clone()))).await;
                    let _ = session.close(Some(reason)).await;
                    break;
                }
            }
        }
    });
    Ok(res)
}
