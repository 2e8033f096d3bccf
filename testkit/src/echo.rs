//! An upstream that answers with what it received: method, path, query, headers, body size and
//! SHA-256, and the peer's port (to see connection reuse). It also counts requests, can be slow
//! (`/slow?ms=N`), stream (`/bytes?n=N`) and answer any status (`/status/N`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures_util::StreamExt as _;
use serde_json::json;

/// A running echo upstream.
pub struct Echo {
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// Requests received.
    pub hits: Arc<AtomicUsize>,
    /// Stops it.
    pub handle: ServerHandle,
}

impl Echo {
    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn echo(
    req: HttpRequest,
    mut body: web::Payload,
    hits: web::Data<Arc<AtomicUsize>>,
) -> HttpResponse {
    hits.fetch_add(1, Ordering::SeqCst);
    let path = req.path().to_owned();
    if path.ends_with("/ws") {
        return websocket(&req, body);
    }
    if let Some(ms) = path
        .strip_prefix("/slow")
        .and(req.query_string().strip_prefix("ms="))
        .and_then(|v| v.parse::<u64>().ok())
    {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if let Some(code) = path
        .rsplit_once("/status/")
        .and_then(|(_, c)| c.parse::<u16>().ok())
    {
        return HttpResponse::build(
            actix_web::http::StatusCode::from_u16(code).unwrap_or(actix_web::http::StatusCode::OK),
        )
        .finish();
    }
    if path == "/bytes" {
        let n: usize = req
            .query_string()
            .strip_prefix("n=")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let chunk = web::Bytes::from(vec![b'x'; 64 * 1024]);
        let chunks = n / chunk.len();
        let stream = futures_util::stream::iter(
            (0..chunks).map(move |_| Ok::<_, actix_web::Error>(chunk.clone())),
        );
        return HttpResponse::Ok()
            .content_type("application/octet-stream")
            .streaming(stream);
    }
    let mut len = 0usize;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            return HttpResponse::BadRequest().finish();
        };
        len += chunk.len();
        ctx.update(&chunk);
    }
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let entry = headers
            .entry(k.as_str().to_owned())
            .or_insert_with(|| json!([]));
        if let Some(list) = entry.as_array_mut() {
            list.push(json!(String::from_utf8_lossy(v.as_bytes())));
        }
    }
    HttpResponse::Ok().json(json!({
        "method": req.method().as_str(),
        "path": path,
        "query": req.query_string(),
        "headers": headers,
        "body_len": len,
        "body_sha256": shared::jws::b64_encode(ctx.finish()),
        "peer_port": req.peer_addr().map(|a| a.port()),
    }))
}

/// A WebSocket echo: first a text message with the handshake headers it received, then every
/// text or binary message back as it came.
fn websocket(req: &HttpRequest, body: web::Payload) -> HttpResponse {
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        headers.insert(
            k.as_str().to_owned(),
            json!(String::from_utf8_lossy(v.as_bytes())),
        );
    }
    let offered: Vec<String> = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').map(|p| p.trim().to_owned()).collect())
        .unwrap_or_default();
    let accept: Vec<&str> = offered
        .iter()
        .map(String::as_str)
        .filter(|p| *p == "chat.v1")
        .collect();
    let Ok((res, mut session, mut stream)) = actix_ws::handle_with_protocols(req, body, &accept)
    else {
        return HttpResponse::BadRequest().finish();
    };
    actix_web::rt::spawn(async move {
        if session
            .text(json!({"headers": headers}).to_string())
            .await
            .is_err()
        {
            return;
        }
        while let Some(Ok(msg)) = stream.recv().await {
            let sent = match msg {
                actix_ws::Message::Text(t) => session.text(t).await,
                actix_ws::Message::Binary(b) => session.binary(b).await,
                actix_ws::Message::Ping(p) => session.pong(&p).await,
                actix_ws::Message::Close(r) => {
                    let _ = session.close(r).await;
                    return;
                }
                _ => Ok(()),
            };
            if sent.is_err() {
                return;
            }
        }
    });
    res
}

/// Starts an echo upstream on a free port.
pub async fn start() -> Echo {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(Arc::clone(&h)))
            .default_service(web::to(echo))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Echo {
        url: format!("http://127.0.0.1:{port}"),
        hits,
        handle,
    }
}
