//! The auth-service's Prometheus metrics: HTTP requests per route, logins by outcome, tokens
//! issued, refreshes and reuse detections, verification failures by reason, the Argon2 queue,
//! the signing keys and the revocation feed. Plain atomics on the request path; rendered in
//! the text format on `AUTH_ADMIN_LISTEN` (`/metrics`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency histogram bucket bounds, seconds (logins take ~15 ms of Argon2).
const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Login outcomes.
pub const LOGIN_OUTCOMES: [&str; 6] = [
    "success",
    "invalid_credentials",
    "invalid_request",
    "throttled",
    "unavailable",
    "error",
];
/// Endpoints the brute-force defence counts.
pub const THROTTLED_ENDPOINTS: [&str; 5] =
    ["login", "register", "refresh", "revoke", "client_auth"];
/// The limits that can refuse a request.
pub const THROTTLE_LIMITS: [&str; 3] = ["client", "account_client", "account"];
/// Refresh outcomes.
pub const REFRESH_OUTCOMES: [&str; 5] =
    ["rotated", "grace", "reuse_detected", "invalid", "malformed"];
/// Authorization-flow outcomes: codes issued, exchanged, refused or reused, and the errors
/// authorization requests were answered with (an error page counts as
/// `invalid_client_or_redirect_uri`).
pub const AUTHORIZATION_OUTCOMES: [&str; 14] = [
    "code_issued",
    "code_exchanged",
    "code_invalid",
    "code_reused",
    "invalid_client_or_redirect_uri",
    "invalid_request",
    "unsupported_response_type",
    "invalid_scope",
    "login_required",
    "consent_required",
    "access_denied",
    "request_not_supported",
    "request_uri_not_supported",
    "server_error",
];
/// Access-token verification failure reasons (the shared verifier's, and `revoked`).
pub const VERIFY_REASONS: [&str; 13] = shared::verifier::FAILURE_REASONS;

#[derive(Default)]
struct RouteStats {
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// Every counter of one process.
#[derive(Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<String, std::sync::Arc<RouteStats>>>,
    logins: [AtomicU64; LOGIN_OUTCOMES.len()],
    refreshes: [AtomicU64; REFRESH_OUTCOMES.len()],
    authorizations: [AtomicU64; AUTHORIZATION_OUTCOMES.len()],
    verify_failures: [AtomicU64; VERIFY_REASONS.len()],
    throttled: [AtomicU64; THROTTLED_ENDPOINTS.len() * THROTTLE_LIMITS.len()],
    access_issued: AtomicU64,
    refresh_issued: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn bump(counters: &[AtomicU64], names: &[&str], name: &str) {
    if let Some(i) = names.iter().position(|n| *n == name) {
        counters[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Values read at render time from elsewhere in the service.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    /// Requests waiting for an Argon2 thread.
    pub argon2_queue: usize,
    /// Argon2 verifications done (real and dummy).
    pub argon2_verifications: usize,
    /// Published keys by state.
    pub keys: Vec<(String, String, i64)>,
    /// Gateways connected to the revocation feed.
    pub feed_connections: usize,
    /// Audit events logged but not stored (the writer's queue was full).
    pub audit_dropped: u64,
}

impl Metrics {
    /// One request answered on the route `pattern` (the route table's pattern, so ids do not
    /// make new series).
    pub fn request(&self, pattern: &str, status: u16, elapsed: Duration) {
        let stats = {
            let mut routes = self
                .routes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::sync::Arc::clone(routes.entry(pattern.to_owned()).or_default())
        };
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        stats.by_class[class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            stats.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        stats.count.fetch_add(1, Ordering::Relaxed);
        stats.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// A login ended with `outcome` (one of [`LOGIN_OUTCOMES`]).
    pub fn login(&self, outcome: &str) {
        bump(&self.logins, &LOGIN_OUTCOMES, outcome);
    }

    /// A refresh ended with `outcome` (one of [`REFRESH_OUTCOMES`]).
    pub fn refresh(&self, outcome: &str) {
        bump(&self.refreshes, &REFRESH_OUTCOMES, outcome);
    }

    /// An authorization-flow step ended with `outcome` (one of [`AUTHORIZATION_OUTCOMES`]).
    pub fn authorization(&self, outcome: &str) {
        bump(&self.authorizations, &AUTHORIZATION_OUTCOMES, outcome);
    }

    /// An access token was refused for `reason` (one of [`VERIFY_REASONS`]).
    pub fn verify_failure(&self, reason: &str) {
        bump(&self.verify_failures, &VERIFY_REASONS, reason);
    }

    /// A request to `endpoint` was refused by the brute-force defence's `limit`.
    pub fn throttled(&self, endpoint: &str, limit: &str) {
        let e = THROTTLED_ENDPOINTS.iter().position(|n| *n == endpoint);
        let l = THROTTLE_LIMITS.iter().position(|n| *n == limit);
        if let (Some(e), Some(l)) = (e, l) {
            self.throttled[e * THROTTLE_LIMITS.len() + l].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An access token was signed alone (client credentials).
    pub fn issued_access(&self) {
        self.access_issued.fetch_add(1, Ordering::Relaxed);
    }

    /// A token pair was issued.
    pub fn issued_pair(&self) {
        self.access_issued.fetch_add(1, Ordering::Relaxed);
        self.refresh_issued.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text format.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        let esc = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        let routes: Vec<(String, std::sync::Arc<RouteStats>)> = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), std::sync::Arc::clone(v)))
            .collect();
        head(
            &mut out,
            "auth_http_requests_total",
            "counter",
            "Requests answered, by route and status class.",
        );
        for (route, s) in &routes {
            for (c, n) in s.by_class.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "auth_http_requests_total{{route=\"{}\",code=\"{}xx\"}} {}",
                    esc(route),
                    c + 1,
                    n.load(Ordering::Relaxed)
                );
            }
        }
        head(
            &mut out,
            "auth_http_request_duration_seconds",
            "histogram",
            "Time to answer, by route.",
        );
        for (route, s) in &routes {
            let r = esc(route);
            let mut cumulative = 0;
            for (b, n) in BUCKETS.iter().zip(&s.buckets) {
                cumulative += n.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "auth_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let count = s.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "auth_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "auth_http_request_duration_seconds_sum{{route=\"{r}\"}} {}",
                s.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "auth_http_request_duration_seconds_count{{route=\"{r}\"}} {count}"
            );
        }
        let labelled = |out: &mut String,
                        name: &str,
                        help: &str,
                        label: &str,
                        names: &[&str],
                        v: &[AtomicU64]| {
            head(out, name, "counter", help);
            for (n, c) in names.iter().zip(v) {
                let _ = writeln!(
                    out,
                    "{name}{{{label}=\"{n}\"}} {}",
                    c.load(Ordering::Relaxed)
                );
            }
        };
        labelled(
            &mut out,
            "auth_logins_total",
            "Logins, by outcome.",
            "outcome",
            &LOGIN_OUTCOMES,
            &self.logins,
        );
        labelled(
            &mut out,
            "auth_refreshes_total",
            "Refresh-token uses, by outcome (reuse_detected revoked a session; malformed was refused before any store lookup).",
            "outcome",
            &REFRESH_OUTCOMES,
            &self.refreshes,
        );
        labelled(
            &mut out,
            "auth_authorizations_total",
            "Authorization code flow steps, by outcome (codes issued, exchanged, refused, reused; errors answered to authorization requests).",
            "outcome",
            &AUTHORIZATION_OUTCOMES,
            &self.authorizations,
        );
        labelled(
            &mut out,
            "auth_token_verification_failures_total",
            "Access tokens refused by this service, by reason.",
            "reason",
            &VERIFY_REASONS,
            &self.verify_failures,
        );
        head(
            &mut out,
            "auth_throttled_total",
            "counter",
            "Requests refused with 429 by the brute-force defence, by endpoint and limit.",
        );
        for (e, endpoint) in THROTTLED_ENDPOINTS.iter().enumerate() {
            for (l, limit) in THROTTLE_LIMITS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "auth_throttled_total{{endpoint=\"{endpoint}\",limit=\"{limit}\"}} {}",
                    self.throttled[e * THROTTLE_LIMITS.len() + l].load(Ordering::Relaxed)
                );
            }
        }
        head(
            &mut out,
            "auth_tokens_issued_total",
            "counter",
            "Tokens signed, by type.",
        );
        let _ = writeln!(
            out,
            "auth_tokens_issued_total{{type=\"access\"}} {}",
            self.access_issued.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "auth_tokens_issued_total{{type=\"refresh\"}} {}",
            self.refresh_issued.load(Ordering::Relaxed)
        );
        head(
            &mut out,
            "auth_argon2_queue_depth",
            "gauge",
            "Requests waiting for an Argon2 thread.",
        );
        let _ = writeln!(out, "auth_argon2_queue_depth {}", g.argon2_queue);
        head(
            &mut out,
            "auth_argon2_verifications_total",
            "counter",
            "Password verifications (real, and dummy ones for unknown users).",
        );
        let _ = writeln!(
            out,
            "auth_argon2_verifications_total {}",
            g.argon2_verifications
        );
        head(
            &mut out,
            "auth_signing_key_age_seconds",
            "gauge",
            "Seconds since each published key was created, by kid and state.",
        );
        for (kid, state, age) in &g.keys {
            let _ = writeln!(
                out,
                "auth_signing_key_age_seconds{{kid=\"{}\",state=\"{}\"}} {age}",
                esc(kid),
                esc(state)
            );
        }
        head(
            &mut out,
            "auth_revocation_feed_connections",
            "gauge",
            "Gateways connected to the revocation feed of this replica.",
        );
        let _ = writeln!(
            out,
            "auth_revocation_feed_connections {}",
            g.feed_connections
        );
        head(
            &mut out,
            "auth_audit_events_dropped_total",
            "counter",
            "Audit events written to the log but not stored among the user's recent events (the store writer's queue was full).",
        );
        let _ = writeln!(out, "auth_audit_events_dropped_total {}", g.audit_dropped);
        out
    }
}
