//! The gateway's `/metrics` parse with the Prometheus client's own parser.

use crate::helpers::Stack;

#[actix_web::test]
async fn gateway_metrics_parse_with_the_reference_parser() {
    let s = Stack::start().await;
    let t = s.auth.user("vic").await;
    assert_eq!(s.get("/api/x", Some(&t.access_token)).await.status(), 200);
    assert_eq!(s.get("/api/x", Some("garbage")).await.status(), 401);
    let text = s.metrics().await;
    let out = testkit::interop::pipe("prom_parse.py", text.as_bytes()).await;
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: std::collections::HashMap<String, f64> =
        serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed["gateway_requests_total{code=2xx,route=/api}"], 1.0);
    assert_eq!(
        parsed["gateway_token_verification_failures_total{reason=malformed}"],
        1.0
    );
    assert_eq!(parsed["gateway_revocation_loaded{}"], 1.0);
}
