//! The gateway's own upstream client (bodiless requests to plain-http upstreams) against a
//! scripted raw upstream: every framing of an answer, interim answers, ambiguous answers, and
//! pooled connections the upstream has closed.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::start_ready_gateway;

/// What the upstream does with a request: `(connection index, request index on it, head)`.
type Script = fn(usize, usize, &str) -> Option<String>;

/// A raw upstream on a free port; it records every request head it read.
async fn raw_upstream(script: Script) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut conn = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            let index = conn;
            conn += 1;
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut nth = 0;
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    log.lock().unwrap().push(head.clone());
                    match script(index, nth, &head) {
                        Some(answer) => {
                            if s.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    }
                    if head.contains("/close") {
                        return;
                    }
                    nth += 1;
                }
            });
        }
    });
    (url, seen)
}

async fn gateway(upstream: &str) -> (testkit::auth::Auth, String) {
    let auth = testkit::auth::Auth::start(&[]).await;
    let toml = format!(
        r#"
issuer = "{}"
audiences = ["api"]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
workers = 1

[[routes]]
prefix = "/raw"
upstream = "{upstream}"
auth = "public"
timeout = 2
"#,
        auth.url
    );
    let started = start_ready_gateway(&toml, &[]).await;
    (auth, started.url)
}

fn ok(body: &str) -> Option<String> {
    Some(format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

#[actix_web::test]
async fn a_pooled_connection_the_upstream_dropped_is_replaced_for_repeatable_requests() {
    // Every connection answers its first request, then drops the next one unanswered: the race
    // of an upstream closing an idle connection just as the gateway reuses it.
    let (up, seen) = raw_upstream(|_, nth, _| if nth == 0 { ok("ok") } else { None }).await;
    let (_auth, gw) = gateway(&up).await;
    let client = reqwest::Client::new();
    for path in ["/raw/a", "/raw/b"] {
        let res = client.get(format!("{gw}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.text().await.unwrap(), "ok");
    }
    // /raw/b went out on the pooled connection, was dropped, and went again on a new one.
    let heads = seen.lock().unwrap().clone();
    let b = heads
        .iter()
        .filter(|h| h.starts_with("GET /raw/b "))
        .count();
    assert_eq!(b, 2, "{heads:#?}");

    // A POST is not repeated: its answer is 502, and the upstream saw it once.
    let res = client.post(format!("{gw}/raw/c")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let heads = seen.lock().unwrap().clone();
    let c: Vec<_> = heads
        .iter()
        .filter(|h| h.starts_with("POST /raw/c "))
        .collect();
    assert_eq!(c.len(), 1, "{heads:#?}");
    assert!(
        c[0].to_ascii_lowercase().contains("content-length: 0"),
        "{c:?}"
    );
}

#[actix_web::test]
async fn answers_of_every_framing_reach_the_client_and_ambiguous_ones_are_502() {
    let (up, seen) = raw_upstream(|_, _, head| {
        let path = head.split(' ').nth(1).unwrap_or("");
        Some(match path {
            "/raw/chunked" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nT: 1\r\n\r\n".to_owned(),
            "/raw/close" => "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end".to_owned(),
            "/raw/interim" => "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ninterim".to_owned(),
            "/raw/ambiguous" => "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_owned(),
            "/raw/hop" => "HTTP/1.1 200 OK\r\nConnection: x-secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok".to_owned(),
            _ => return ok("plain"),
        })
    })
    .await;
    let (_auth, gw) = gateway(&up).await;
    let client = reqwest::Client::new();
    let get = |p: &str| client.get(format!("{gw}{p}")).send();
    let res = get("/raw/chunked").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello world");
    let res = get("/raw/close").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "until the end");
    let res = get("/raw/interim").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "interim");
    let res = get("/raw/ambiguous").await.unwrap();
    assert_eq!(res.status(), 502);
    let res = get("/raw/hop").await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("x-secret").is_none(),
        "{:?}",
        res.headers()
    );
    assert!(
        res.headers().get("keep-alive").is_none(),
        "{:?}",
        res.headers()
    );
    assert_eq!(res.headers().get("x-kept").unwrap(), "1");
    // The request the upstream received: Host is the upstream's, framing is the client's own.
    let res = get("/raw/plain?q=1").await.unwrap();
    assert_eq!(res.text().await.unwrap(), "plain");
    let heads = seen.lock().unwrap().clone();
    let plain = heads
        .iter()
        .find(|h| h.starts_with("GET /raw/plain?q=1 HTTP/1.1\r\n"))
        .unwrap_or_else(|| panic!("{heads:#?}"));
    let host = up.trim_start_matches("http://");
    assert!(plain.contains(&format!("host: {host}")), "{plain}");
    assert!(plain.contains("x-forwarded-for: 127.0.0.1"), "{plain}");
}
