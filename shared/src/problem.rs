//! RFC 9457 problem-details bodies, shared so both services answer errors the same way.

/// Media type of a problem body.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// `{"type":"about:blank","title":…,"status":…,"detail":…,"code":…}`; `title` is the status's
/// reason phrase, `code` a stable machine-readable reason.
pub fn body(status: u16, title: &str, detail: &str, code: Option<&str>) -> String {
    let mut v = serde_json::json!({"type": "about:blank", "title": title, "status": status, "detail": detail});
    if let Some(code) = code {
        v["code"] = serde_json::Value::String(code.to_owned());
    }
    v.to_string()
}
