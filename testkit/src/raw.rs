//! Raw HTTP/1.1 over TCP: for request paths and headers that a normal client would normalise or
//! refuse before sending.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A parsed response.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header lines, lowercase names.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

impl RawResponse {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `head` (everything up to and including the blank line, `\r\n` line ends; a
/// `Connection: close` is advised) plus `body`, and reads the whole response.
pub async fn send(addr: &str, head: &str, body: &[u8]) -> RawResponse {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// `GET {path}` with extra header lines.
pub async fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    send(addr, &head, b"").await
}

/// Writes `bytes` and collects everything the server sends until it closes the connection or
/// stays silent for `quiet`; returns the status line of every response in it.
pub async fn exchange(addr: &str, bytes: &[u8], quiet: std::time::Duration) -> Vec<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match tokio::time::timeout(quiet, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    // A response's status line may follow the previous body directly.
    let text = String::from_utf8_lossy(&buf);
    text.match_indices("HTTP/1.")
        .map(|(i, _)| text[i..].lines().next().unwrap_or("").to_owned())
        .collect()
}

/// The status code of the first answer `exchange` collected (0: none).
pub fn first_status(answers: &[String]) -> u16 {
    answers
        .first()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A request that a front-end proxy and a back end could frame differently (request
/// smuggling), or that carries bytes no header may hold. Each is followed by a second,
/// smuggled request: a server that accepts the first one's framing might answer it too.
pub struct Smuggle {
    /// What the case tries.
    pub name: &'static str,
    /// The bytes, `{path}` standing for the request target.
    pub raw: String,
}

/// The request-smuggling and header-injection cases both services must refuse.
pub fn smuggling_cases() -> Vec<Smuggle> {
    let smuggled = "GET {path}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let framed = |name: &'static str, headers: &str, body: &str| Smuggle {
        name,
        raw: format!("POST {{path}} HTTP/1.1\r\nHost: x\r\n{headers}\r\n{body}{smuggled}"),
    };
    vec![
        framed(
            "Content-Length and Transfer-Encoding (CL.TE)",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
        ),
        framed(
            "Transfer-Encoding and Content-Length (TE.CL)",
            "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
            "0\r\n\r\n",
        ),
        framed(
            "two different Content-Length headers",
            "Content-Length: 0\r\nContent-Length: 5\r\n",
            "hello",
        ),
        framed(
            "two equal Content-Length headers",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            "hello",
        ),
        framed("a Content-Length list", "Content-Length: 5, 5\r\n", "hello"),
        framed("a negative Content-Length", "Content-Length: -5\r\n", ""),
        framed("a signed Content-Length", "Content-Length: +5\r\n", "hello"),
        framed("a hex Content-Length", "Content-Length: 0x5\r\n", "hello"),
        framed(
            "an overflowing Content-Length",
            "Content-Length: 99999999999999999999999\r\n",
            "",
        ),
        framed(
            "Transfer-Encoding not ending in chunked",
            "Transfer-Encoding: chunked, identity\r\n",
            "0\r\n\r\n",
        ),
        framed(
            "an unknown Transfer-Encoding",
            "Transfer-Encoding: xchunked\r\n",
            "0\r\n\r\n",
        ),
        framed(
            "two Transfer-Encoding headers",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
            "0\r\n\r\n",
        ),
        framed(
            "whitespace before the colon",
            "Transfer-Encoding : chunked\r\n",
            "0\r\n\r\n",
        ),
        framed(
            "a folded (obs-fold) Transfer-Encoding",
            "X-A: b\r\n Transfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
        ),
        framed(
            "a vertical tab in Transfer-Encoding",
            "Transfer-Encoding: \x0bchunked\r\n",
            "0\r\n\r\n",
        ),
        framed(
            "a negative chunk size",
            "Transfer-Encoding: chunked\r\n",
            "-5\r\nhello\r\n0\r\n\r\n",
        ),
        framed(
            "an overflowing chunk size",
            "Transfer-Encoding: chunked\r\n",
            "fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
        framed(
            "a NUL in a header value",
            "X-A: b\0c\r\nContent-Length: 0\r\n",
            "",
        ),
        framed(
            "a bare CR in a header value",
            "X-A: b\rContent-Length: 5\r\nContent-Length: 0\r\n",
            "",
        ),
        framed(
            "a space in a header name",
            "Content Length: 5\r\nContent-Length: 0\r\n",
            "",
        ),
        Smuggle {
            name: "Transfer-Encoding in HTTP/1.0",
            raw: format!(
                "POST {{path}} HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        },
        Smuggle {
            name: "a request line with a bare CR",
            raw: format!("GET {{path}}\rx HTTP/1.1\r\nHost: x\r\n\r\n{smuggled}"),
        },
    ]
}

/// Cases only the gateway's own HTTP/1.1 parser promises to refuse (the auth-service sits behind
/// it): a bare LF ending a line anywhere in the head, a framing header's name spelled with `_`
/// (an upstream that folds `_` to `-` would frame the body by it), a `Host` that is not a valid
/// `host[:port]`, and absolute-form targets that name another scheme or authority than `Host`.
/// Each is followed by a smuggled request.
pub fn strict_head_cases() -> Vec<Smuggle> {
    let smuggled = "GET {path}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let case = |name: &'static str, head: &str| Smuggle {
        name,
        raw: format!("{head}{smuggled}"),
    };
    let host = |name: &'static str, value: &str| {
        case(
            name,
            &format!("GET {{path}} HTTP/1.1\r\nHost: {value}\r\n\r\n"),
        )
    };
    vec![
        case(
            "a request line ending with a bare LF",
            "GET {path} HTTP/1.1\nHost: x\r\n\r\n",
        ),
        case(
            "a header line ending with a bare LF",
            "GET {path} HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n",
        ),
        case(
            "a head ending with a bare LF",
            "GET {path} HTTP/1.1\r\nHost: x\r\n\n",
        ),
        case(
            "every line ending with a bare LF",
            "GET {path} HTTP/1.1\nHost: x\n\n",
        ),
        case(
            "a bare LF hiding a Content-Length",
            "POST {path} HTTP/1.1\r\nHost: x\r\nX-A: 1\nContent-Length: 5\r\n\r\nhello",
        ),
        case(
            "Transfer_Encoding beside Content-Length",
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        case(
            "Content_Length beside Content-Length",
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent_Length: 5\r\n\r\nhello",
        ),
        case(
            "a lone CONTENT_LENGTH",
            "POST {path} HTTP/1.1\r\nHost: x\r\nCONTENT_LENGTH: 5\r\n\r\nhello",
        ),
        case(
            "a lone transfer_encoding",
            "POST {path} HTTP/1.1\r\nHost: x\r\ntransfer_encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        host("an empty Host", ""),
        host("a Host with a path", "evil.example/x"),
        host("a Host with userinfo", "user@evil.example"),
        host("a Host with a space", "evil.example gw"),
        host("a Host list", "evil.example,gw"),
        host("a Host with a bad port", "gw:http"),
        host("a Host with a port over 65535", "gw:65536"),
        host("a Host with an open bracket", "[::1"),
        host("a Host of angle brackets", "<gw>"),
        case(
            "an absolute-form target naming another host",
            "GET http://evil.example{path} HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        case(
            "an absolute-form target naming another port",
            "GET http://x:8080{path} HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        case(
            "an absolute-form target of another scheme",
            "GET ftp://x{path} HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        case(
            "an absolute-form target with userinfo",
            "GET http://u@x{path} HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        case(
            "an authority-form target",
            "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
        ),
    ]
}
