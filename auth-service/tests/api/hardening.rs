//! Request hardening: ambiguous framing, header injection and oversized heads are refused with
//! a 4xx and the connection closed, so a smuggled request behind them is never answered.

use std::time::Duration;

use crate::helpers::TestApp;

fn addr(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn ambiguous_framing_is_refused_and_the_connection_closed() {
    let app = TestApp::spawn().await;
    let addr = addr(&app);
    let ok = testkit::raw::exchange(
        &addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(ok.len(), 2, "pipelined requests are both answered: {ok:?}");
    let mut failures = Vec::new();
    for case in testkit::raw::smuggling_cases() {
        let raw = case.raw.replace("{path}", "/v1/login");
        let answers =
            testkit::raw::exchange(&addr, raw.as_bytes(), Duration::from_millis(500)).await;
        let status = testkit::raw::first_status(&answers);
        if !(400..500).contains(&status) || answers.len() != 1 {
            failures.push(format!("{}: answers {answers:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn oversized_heads_are_refused_with_431() {
    let app = TestApp::spawn().await;
    let addr = addr(&app);
    let big = "a".repeat(64 * 1024);
    let head =
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    assert_eq!(testkit::raw::send(&addr, &head, b"").await.status, 431);
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let head = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    assert_eq!(testkit::raw::send(&addr, &head, b"").await.status, 431);
}
