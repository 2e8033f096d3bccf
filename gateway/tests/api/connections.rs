//! The public server's connection handling, over raw sockets: keep-alive, `Connection: close`,
//! HTTP/1.0, `Expect: 100-continue`, `HEAD`, chunked answers, and what happens to a request body
//! the gateway refuses without reading.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::Stack;

/// One response read off a connection: status, lowercase headers, body (de-chunked).
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: &str) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads until `n` bytes are buffered; false if the server closed first.
    async fn fill(&mut self, n: usize) -> bool {
        while self.buf.len() < n {
            let mut chunk = [0u8; 8192];
            let got = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                .await
                .expect("the gateway answers within 10 s")
                .unwrap_or(0);
            if got == 0 {
                return false;
            }
            self.buf.extend_from_slice(&chunk[..got]);
        }
        true
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return line;
            }
            let want = self.buf.len() + 1;
            assert!(self.fill(want).await, "the connection closed mid-response");
        }
    }

    async fn take(&mut self, n: usize) -> Vec<u8> {
        assert!(self.fill(n).await, "the connection closed mid-body");
        self.buf.drain(..n).collect()
    }

    /// Reads one response; `head_request` answers have no body whatever their length says.
    async fn answer(&mut self, head_request: bool) -> Answer {
        let status_line = self.line().await;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').expect("a header line");
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        let mut a = Answer {
            status,
            headers,
            body: Vec::new(),
        };
        if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
            return a;
        }
        if let Some(n) = a
            .header("content-length")
            .map(|v| v.parse::<usize>().unwrap())
        {
            a.body = self.take(n).await;
        } else if a.header("transfer-encoding") == Some("chunked") {
            loop {
                let size = usize::from_str_radix(&self.line().await, 16).unwrap();
                let data = self.take(size).await;
                assert_eq!(self.line().await, "", "a chunk ends with CRLF");
                if size == 0 {
                    break;
                }
                a.body.extend_from_slice(&data);
            }
        }
        a
    }

    /// True when the server has closed the connection (nothing more to read).
    async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

fn json(a: &Answer) -> serde_json::Value {
    serde_json::from_slice(&a.body).unwrap_or_else(|_| panic!("a JSON body: {a:?}"))
}

#[actix_web::test]
async fn a_connection_carries_many_requests_until_the_client_closes_it() {
    let s = Stack::start().await;
    let mut c = Client::connect(&s.addr).await;
    let mut ports = Vec::new();
    for i in 0..3 {
        c.send(format!("GET /public/n{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await;
        let a = c.answer(false).await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.header("connection"), None);
        assert!(a.header("date").is_some(), "{a:?}");
        assert_eq!(json(&a)["path"], format!("/public/n{i}"));
        ports.push(json(&a)["peer_port"].clone());
    }
    // The gateway reuses its pooled upstream connection as well.
    assert!(ports.windows(2).all(|w| w[0] == w[1]), "{ports:?}");
    c.send(b"GET /public/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let a = c.answer(false).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("connection"), Some("close"));
    assert!(c.closed().await);

    let mut old = Client::connect(&s.addr).await;
    old.send(b"GET /public/old HTTP/1.0\r\nHost: x\r\n\r\n")
        .await;
    let a = old.answer(false).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("connection"), Some("close"));
    assert!(old.closed().await);
}

#[actix_web::test]
async fn expect_100_continue_gets_an_interim_answer_before_the_body_is_sent() {
    let s = Stack::start().await;
    let mut c = Client::connect(&s.addr).await;
    c.send(
        b"POST /public/up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    let interim = c.answer(false).await;
    assert_eq!(interim.status, 100, "{interim:?}");
    c.send(b"hello").await;
    let a = c.answer(false).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(json(&a)["body_len"], 5);

    // Refused before its body is read: no interim answer, and the unsent body ends the connection.
    let mut c = Client::connect(&s.addr).await;
    c.send(
        b"POST /api/up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    let a = c.answer(false).await;
    assert_eq!(a.status, 401, "{a:?}");
    assert_eq!(a.header("connection"), Some("close"));
    assert!(c.closed().await);
}

#[actix_web::test]
async fn a_refused_request_with_its_body_already_sent_leaves_the_connection_usable() {
    let s = Stack::start().await;
    let mut c = Client::connect(&s.addr).await;
    c.send(b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
        .await;
    let a = c.answer(false).await;
    assert_eq!(a.status, 401, "{a:?}");
    assert_eq!(a.header("connection"), None, "{a:?}");
    // The unread body was consumed, not taken for the next request.
    c.send(b"GET /public/next HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let a = c.answer(false).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(json(&a)["path"], "/public/next");

    // A body that has not arrived yet is not waited for: the answer closes the connection.
    let mut c = Client::connect(&s.addr).await;
    c.send(b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\npartial")
        .await;
    let a = c.answer(false).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.header("connection"), Some("close"));
    assert!(c.closed().await);
}

#[actix_web::test]
async fn head_answers_keep_their_length_and_streamed_answers_are_chunked() {
    let s = Stack::start().await;
    let mut c = Client::connect(&s.addr).await;
    let token = s.auth.user("reader").await.access_token;
    c.send(
        format!("HEAD /get-only/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    let a = c.answer(true).await;
    assert_eq!(a.status, 200, "{a:?}");
    let len: usize = a.header("content-length").unwrap().parse().unwrap();
    assert!(len > 0, "{a:?}");
    // No body followed the HEAD answer: the next answer parses from the first byte.
    c.send(b"GET /bytes?n=131072 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let a = c.answer(false).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.header("transfer-encoding"), Some("chunked"), "{a:?}");
    assert_eq!(a.body.len(), 131072);
    assert!(a.body.iter().all(|&b| b == b'x'));
}
