//! Request smuggling and header injection: every ambiguous or malformed framing is refused
//! with a 4xx, the connection is closed (the smuggled request behind it is never answered), and
//! nothing reaches the upstream.

use std::time::Duration;

use crate::helpers::Stack;

#[actix_web::test]
async fn ambiguous_framing_is_refused_and_never_reaches_the_upstream() {
    let s = Stack::start().await;
    // The route and the upstream work for a well-formed request on the same kind of connection.
    let ok = testkit::raw::exchange(
        &s.addr,
        b"POST /public/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /public/y HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(ok.len(), 2, "pipelined requests are both answered: {ok:?}");
    assert_eq!(s.echo.hits(), 2);

    let mut failures = Vec::new();
    for case in testkit::raw::smuggling_cases() {
        let before = s.echo.hits();
        let raw = case.raw.replace("{path}", "/public/x");
        let answers =
            testkit::raw::exchange(&s.addr, raw.as_bytes(), Duration::from_millis(500)).await;
        let status = testkit::raw::first_status(&answers);
        let reached = s.echo.hits() - before;
        if !(400..500).contains(&status) || answers.len() != 1 || reached != 0 {
            failures.push(format!(
                "{}: answers {answers:?}, {reached} reached the upstream",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[actix_web::test]
async fn oversized_headers_are_refused_with_431() {
    let s = Stack::start().await;
    let before = s.echo.hits();
    let big = "a".repeat(64 * 1024);
    let head =
        format!("GET /public/x HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    let res = testkit::raw::send(&s.addr, &head, b"").await;
    assert_eq!(res.status, 431, "{res:?}");
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let head = format!("GET /public/x HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    let res = testkit::raw::send(&s.addr, &head, b"").await;
    assert_eq!(res.status, 431, "{res:?}");
    assert_eq!(s.echo.hits(), before);
}
