//! WebSocket upgrades: authenticated, identity forwarded, frames relayed, closed at token expiry.

use std::time::{Duration, Instant};

use awc::ws::{CloseCode, Frame, Message};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;

use crate::helpers::Stack;

fn ws_url(s: &Stack, path: &str) -> String {
    format!("ws://{}{path}", s.addr)
}

#[actix_web::test]
async fn websocket_upgrades_relay_frames_with_the_verified_identity() {
    let s = Stack::start().await;
    let t = s.auth.user("wendy").await;
    let (res, mut ws) = awc::Client::new()
        .ws(ws_url(&s, "/live/ws"))
        .bearer_auth(&t.access_token)
        .header("x-user-id", "admin")
        .protocols(["chat.v1", "chat.v0"])
        .connect()
        .await
        .unwrap();
    assert_eq!(res.status(), 101);
    assert_eq!(
        res.headers().get("sec-websocket-protocol").unwrap(),
        "chat.v1",
        "the upstream's choice reaches the client"
    );
    let Some(Ok(Frame::Text(first))) = ws.next().await else {
        panic!("no handshake report")
    };
    let seen: Value = serde_json::from_slice(&first).unwrap();
    let sub = {
        let payload = t.access_token.split('.').nth(1).unwrap();
        serde_json::from_slice::<Value>(&shared::jws::b64_decode(payload).unwrap()).unwrap()["sub"]
            .clone()
    };
    assert_eq!(
        seen["headers"]["x-user-id"], sub,
        "verified identity, not the spoofed one"
    );
    assert!(seen["headers"].get("authorization").is_none());
    ws.send(Message::Text("hello".into())).await.unwrap();
    let Some(Ok(Frame::Text(echo))) = ws.next().await else {
        panic!("no echo")
    };
    assert_eq!(&echo[..], b"hello");
    ws.send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    let Some(Ok(Frame::Binary(echo))) = ws.next().await else {
        panic!("no binary echo")
    };
    assert_eq!(&echo[..], &[1, 2, 3]);
    ws.send(Message::Close(None)).await.unwrap();
}

#[actix_web::test]
async fn websocket_upgrades_need_a_token_and_a_route_that_allows_them() {
    use awc::error::WsClientError::InvalidResponseStatus;
    let s = Stack::start().await;
    let status = |e: Option<awc::error::WsClientError>| match e {
        Some(InvalidResponseStatus(st)) => st.as_u16(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        status(
            awc::Client::new()
                .ws(ws_url(&s, "/live/ws"))
                .connect()
                .await
                .err()
        ),
        401
    );
    let t = s.auth.user("xavier").await;
    assert_eq!(
        status(
            awc::Client::new()
                .ws(ws_url(&s, "/api/ws"))
                .bearer_auth(&t.access_token)
                .connect()
                .await
                .err()
        ),
        400
    );
}

#[actix_web::test]
async fn a_websocket_is_closed_when_its_token_expires() {
    let auth = testkit::auth::Auth::start(&[]).await;
    let echo = testkit::echo::start().await;
    let toml = crate::helpers::config(&auth.url, &echo.url, "leeway = 0");
    let crate::helpers::Started { addr, .. } =
        crate::helpers::start_ready_gateway(&toml, &[]).await;
    let mut claims = auth.claims();
    claims["exp"] = serde_json::json!(shared::unix_now() + 2);
    let token = auth.sign("at+jwt", &claims);
    let (_, mut ws) = awc::Client::new()
        .ws(format!("ws://{addr}/live/ws"))
        .bearer_auth(&token)
        .connect()
        .await
        .unwrap();
    let _ = ws.next().await; // handshake report
    let start = Instant::now();
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Frame::Close(reason)))) => break reason,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(closed.map(|r| r.code), Some(CloseCode::Policy));
    assert!(start.elapsed() <= Duration::from_secs(4));
}
