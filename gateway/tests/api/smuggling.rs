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
async fn bare_lf_underscored_framing_names_and_bad_hosts_are_refused() {
    let s = Stack::start().await;
    let mut failures = Vec::new();
    for case in testkit::raw::strict_head_cases() {
        let before = s.echo.hits();
        let raw = case.raw.replace("{path}", "/public/x");
        let answers =
            testkit::raw::exchange(&s.addr, raw.as_bytes(), Duration::from_millis(500)).await;
        let status = testkit::raw::first_status(&answers);
        let reached = s.echo.hits() - before;
        if status != 400 || answers.len() != 1 || reached != 0 {
            failures.push(format!(
                "{}: answers {answers:?}, {reached} reached the upstream",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[actix_web::test]
async fn an_absolute_form_target_for_this_host_is_served_in_origin_form() {
    let s = Stack::start().await;
    for (target, host) in [
        ("http://gw.example/public/a/../b?q=1", "gw.example"),
        ("HTTP://GW.EXAMPLE:80/public/b?q=1", "gw.example"),
        ("https://gw.example/public/b?q=1", "gw.example:443"),
    ] {
        let head = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let res = testkit::raw::send(&s.addr, &head, b"").await;
        assert_eq!(res.status, 200, "{target}: {res:?}");
        let echo: serde_json::Value = serde_json::from_str(&res.body).unwrap();
        assert_eq!(echo["path"], "/public/b", "{target}");
        assert_eq!(echo["query"], "q=1");
        assert_eq!(echo["headers"]["x-forwarded-host"][0], host);
        assert_eq!(
            echo["headers"]["x-forwarded-proto"][0], "http",
            "the connection is plain"
        );
    }
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
